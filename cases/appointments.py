"""Appointments with the referent: recorded idempotently, each change a timeline event."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Appointment, CaseEvent, Person
from cases.paths import current_orientations, open_paths
from cases.procedure import (
    CaseValidationError,
    _as_datetime,
    _check_source,
    _require_persons,
    check_outcome_time,
)
from cases.timeline import add_event

APPOINTMENT_STATUSES = ("planned", "honoured", "no_show", "excused", "cancelled")


APPOINTMENT_KINDS = ("first", "follow_up", "review")


_APPOINTMENT_LABELS = {"planned": "planifié", "honoured": "honoré", "no_show": "absence non excusée",
                       "excused": "absence excusée", "cancelled": "annulé"}


@dataclass(frozen=True)
class AppointmentIn:
    """One appointment to record (record_appointments): the arguments of record_appointment."""

    person_id: int
    scheduled_at: dt.datetime | dt.date
    status: str = "planned"
    kind: str = "first"
    structure_id: int | None = None
    agent_id: int | None = None
    notes: str | None = None
    occurred_on: dt.date | None = None
    as_of: dt.date | None = None


def record_appointment(session: Session, person_id: int, scheduled_at: dt.datetime | dt.date, status: str = "planned",
                       *, kind: str = "first", structure_id: int | None = None, agent_id: int | None = None,
                       source: str, author_id: int | None = None, notes: str | None = None,
                       occurred_on: dt.date | None = None, as_of: dt.date | None = None) -> Appointment:
    """Record an appointment with the referent (with its timeline event).

    Idempotent on (person, scheduled_at): the same appointment sent again (provider return file,
    API retry) updates its status instead of creating a second one. An outcome (honoured, no-show)
    typed by a person needs the appointment's time to have come (as_of: the day of reference)."""
    return record_appointments(session, [AppointmentIn(person_id, scheduled_at, status, kind, structure_id, agent_id,
                                                       notes, occurred_on, as_of)],
                               source=source, author_id=author_id)[0]


def record_appointments(session: Session, items, *, source: str, author_id: int | None = None) -> list[Appointment]:
    """record_appointment for many appointments (AppointmentIn), in the given order, with the same
    checks, rows and timeline events: every check first (nothing is written when one fails), then the
    persons, their open paths, current orientations and existing appointments read once for all,
    and one flush for the new rows."""
    items = list(items)
    _check_source(source)
    for it in items:
        if it.status not in APPOINTMENT_STATUSES:
            raise CaseValidationError({"status": [f"statut inconnu {it.status!r} (attendu: "
                                                  f"{', '.join(APPOINTMENT_STATUSES)})"]})
        if it.kind not in APPOINTMENT_KINDS:
            raise CaseValidationError({"kind": [f"type inconnu {it.kind!r} (attendu: {', '.join(APPOINTMENT_KINDS)})"]})
        check_outcome_time(it.status, _as_datetime(it.scheduled_at), source, it.as_of)
    ids = sorted({it.person_id for it in items})
    persons = _require_persons(session, ids)  # held here: the identity map keeps only what is referenced
    existing: dict[tuple[int, dt.datetime], Appointment] = {}
    wanted = {(it.person_id, _as_datetime(it.scheduled_at)) for it in items}
    for i in range(0, len(ids), 5000):
        for appt in session.scalars(select(Appointment).where(Appointment.person_id.in_(ids[i:i + 5000]))
                                    .order_by(Appointment.id)):
            if (appt.person_id, appt.scheduled_at) in wanted:
                existing.setdefault((appt.person_id, appt.scheduled_at), appt)
    orientation_of = current_orientations(session, ids)
    path_of = open_paths(session, ids)
    plan: list[tuple[AppointmentIn, Appointment, bool]] = []  # (item, appointment, created here)
    for it in items:
        at = _as_datetime(it.scheduled_at)
        appt = existing.get((it.person_id, at))
        if appt is not None:
            plan.append((it, appt, False))
            continue
        orientation = orientation_of.get(it.person_id)
        structure_id, agent_id = it.structure_id, it.agent_id
        if structure_id is None and orientation is not None:
            structure_id = orientation.structure_id
        if agent_id is None and orientation is not None:
            agent_id = orientation.agent_id
        path = path_of.get(it.person_id)
        appt = Appointment(person_id=it.person_id, path_id=path.id if path else None, structure_id=structure_id,
                           agent_id=agent_id, scheduled_at=at, kind=it.kind, status=it.status, source=source,
                           notes=it.notes)
        session.add(appt)
        existing[(it.person_id, at)] = appt  # the same appointment twice in a batch: the second updates it
        plan.append((it, appt, True))
    session.flush()
    for it, appt, created in plan:
        if not created:
            if appt.status != it.status:
                update_appointment_status(session, appt.id, it.status, source=source, author_id=author_id,
                                          occurred_on=it.occurred_on, as_of=it.as_of)
            if it.notes and not appt.notes:
                appt.notes = it.notes
            continue
        if it.status != "planned":
            # Recorded after the fact: the plan and the outcome are one event each, both on the day.
            _appointment_event(session, appt, "planned", source, author_id, it.occurred_on)
        _appointment_event(session, appt, it.status, source, author_id, it.occurred_on)
        _touch_contact(session, appt, persons.get(appt.person_id))
    return [appt for _it, appt, _created in plan]


def update_appointment_status(session: Session, appointment_id: int, status: str, *, source: str,
                              author_id: int | None = None, occurred_on: dt.date | None = None,
                              as_of: dt.date | None = None) -> Appointment:
    """Move an appointment to its outcome; one timeline event per change, none when unchanged."""
    _check_source(source)
    if status not in APPOINTMENT_STATUSES:
        raise CaseValidationError({"status": [f"statut inconnu {status!r} (attendu: {', '.join(APPOINTMENT_STATUSES)})"]})
    appt = session.get(Appointment, appointment_id)
    if appt is None:
        raise CaseValidationError({"appointment_id": [f"rendez-vous {appointment_id} inconnu"]})
    check_outcome_time(status, appt.scheduled_at, source, as_of)
    if appt.status == status:
        return appt
    appt.status = status
    _appointment_event(session, appt, status, source, author_id, occurred_on)
    _touch_contact(session, appt)
    return appt


def _appointment_event(session, appt: Appointment, status: str, source: str, author_id, occurred_on) -> CaseEvent:
    when = occurred_on or appt.scheduled_at.date()
    label = "premier rendez-vous" if appt.kind == "first" else "rendez-vous"
    return add_event(session, appt.person_id, f"appointment.{status}", when, source,
                     summary=f"{label.capitalize()} du {appt.scheduled_at:%d/%m/%Y %H:%M}: {_APPOINTMENT_LABELS[status]}",
                     data={"appointment_id": appt.id, "kind": appt.kind, "status": status,
                           "scheduled_at": appt.scheduled_at.isoformat(), "structure_id": appt.structure_id},
                     path_id=appt.path_id, author_id=author_id)


def _touch_contact(session: Session, appt: Appointment, person: Person | None = None) -> None:
    """An honoured appointment is a contact: it moves the 2-year retention clock."""
    if appt.status != "honoured":
        return
    person = person or session.get(Person, appt.person_id)
    day = appt.scheduled_at.date()
    if person is not None and (person.last_contact_on is None or person.last_contact_on < day):
        person.last_contact_on = day


