"""Appointments with the referent: recorded idempotently, each change a timeline event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Appointment, CaseEvent, Person
from cases.paths import current_orientation, open_path
from cases.procedure import (
    CaseValidationError,
    _as_datetime,
    _check_source,
    _require_person,
    check_outcome_time,
)
from cases.timeline import add_event

APPOINTMENT_STATUSES = ("planned", "honoured", "no_show", "excused", "cancelled")


APPOINTMENT_KINDS = ("first", "follow_up", "review")


_APPOINTMENT_LABELS = {"planned": "planifié", "honoured": "honoré", "no_show": "absence non excusée",
                       "excused": "absence excusée", "cancelled": "annulé"}


def record_appointment(session: Session, person_id: int, scheduled_at: dt.datetime | dt.date, status: str = "planned",
                       *, kind: str = "first", structure_id: int | None = None, agent_id: int | None = None,
                       source: str, author_id: int | None = None, notes: str | None = None,
                       occurred_on: dt.date | None = None, as_of: dt.date | None = None) -> Appointment:
    """Record an appointment with the referent (with its timeline event).

    Idempotent on (person, scheduled_at): the same appointment sent again (provider return file,
    API retry) updates its status instead of creating a second one. An outcome (honoured, no-show)
    typed by a person needs the appointment's time to have come (as_of: the day of reference)."""
    _check_source(source)
    if status not in APPOINTMENT_STATUSES:
        raise CaseValidationError({"status": [f"statut inconnu {status!r} (attendu: {', '.join(APPOINTMENT_STATUSES)})"]})
    if kind not in APPOINTMENT_KINDS:
        raise CaseValidationError({"kind": [f"type inconnu {kind!r} (attendu: {', '.join(APPOINTMENT_KINDS)})"]})
    check_outcome_time(status, _as_datetime(scheduled_at), source, as_of)
    _require_person(session, person_id)
    at = _as_datetime(scheduled_at)
    existing = session.scalar(select(Appointment).where(Appointment.person_id == person_id,
                                                        Appointment.scheduled_at == at).limit(1))
    if existing is not None:
        if existing.status != status:
            update_appointment_status(session, existing.id, status, source=source, author_id=author_id,
                                      occurred_on=occurred_on, as_of=as_of)
        if notes and not existing.notes:
            existing.notes = notes
        return existing
    orientation = current_orientation(session, person_id)
    if structure_id is None and orientation is not None:
        structure_id = orientation.structure_id
    if agent_id is None and orientation is not None:
        agent_id = orientation.agent_id
    path = open_path(session, person_id)
    appt = Appointment(person_id=person_id, path_id=path.id if path else None, structure_id=structure_id,
                       agent_id=agent_id, scheduled_at=at, kind=kind, status=status, source=source, notes=notes)
    session.add(appt)
    session.flush()
    if status != "planned":
        # Recorded after the fact: the plan and the outcome are one event each, both on the day.
        _appointment_event(session, appt, "planned", source, author_id, occurred_on)
    _appointment_event(session, appt, status, source, author_id, occurred_on)
    _touch_contact(session, appt)
    return appt


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


def _touch_contact(session: Session, appt: Appointment) -> None:
    """An honoured appointment is a contact: it moves the 2-year retention clock."""
    if appt.status != "honoured":
        return
    person = session.get(Person, appt.person_id)
    day = appt.scheduled_at.date()
    if person is not None and (person.last_contact_on is None or person.last_contact_on < day):
        person.last_contact_on = day


