"""Case logic over a session: scoping of persons for a user, timeline events, alerts."""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from pathlib import Path

import yaml
from dateutil.relativedelta import relativedelta
from sqlalchemy import (
    ARRAY,
    Date,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from cases.models import (
    Alert,
    Appointment,
    CaseEvent,
    Contract,
    Diagnostic,
    Exit,
    Household,
    Person,
    Review,
    Sanction,
)
from cases.models import Path as PathModel
from referents.models import Role, Structure, User


def person_scope(user: User) -> ColumnElement[bool]:
    """THE scoping rule: a SQL condition on Person selecting who this user may see.

    Every list, search, detail, export and report query goes through it.
    - admin, manager: everybody;
    - mds_worker: people living in the sector of their MDS, and people oriented to their MDS;
    - provider: people currently oriented to their structure;
    - ati: people currently oriented to an ATI team of their territory.
    """
    from orientation.models import Orientation

    if user is None or not user.active:
        return false()
    if user.role in (Role.ADMIN, Role.MANAGER):
        return true()
    # Aliases correlated to Person only: the condition means the same inside any outer query,
    # even one that already selects from household or orientation (no silent auto-correlation).
    o, h, st = _scope_aliases(Orientation)
    current = and_(o.person_id == Person.id, o.status == "validated")
    if user.role == Role.MDS_WORKER:
        lives_in_sector = exists(select(h.id).where(
            h.id == Person.household_id, h.mds_id == user.structure_id).correlate(Person))
        oriented_here = exists(select(o.id).where(current, o.structure_id == user.structure_id).correlate(Person))
        return lives_in_sector | oriented_here
    if user.role == Role.PROVIDER:
        return exists(select(o.id).where(current, o.structure_id == user.structure_id).correlate(Person))
    if user.role == Role.ATI:
        ati_structures = select(st.id).where(st.kind == "ati", st.territory_id == user.territory_id)
        return exists(select(o.id).where(current, o.referent_type == "ati",
                                         o.structure_id.in_(ati_structures)).correlate(Person))
    return false()


def scoped_person_ids(user: User):
    """person_scope(user) as a set of ids: a SELECT of person ids (a UNION of index look-ups)
    instead of a condition evaluated on every person. The same rule, for the reports that
    materialise a scope once: an MDS worker's 35,000 persons come from the household and orientation
    indexes instead of a test of a million persons. tests/test_security_scope.py checks that both
    select the same persons in every scenario."""
    from sqlalchemy import union

    from orientation.models import Orientation

    if user is None or not user.active:
        return select(Person.id).where(false())
    if user.role in (Role.ADMIN, Role.MANAGER):
        return select(Person.id)
    validated = Orientation.status == "validated"
    if user.role == Role.MDS_WORKER:
        lives_in_sector = (select(Person.id).join(Household, Household.id == Person.household_id)
                           .where(Household.mds_id == user.structure_id))
        oriented_here = select(Orientation.person_id).where(validated, Orientation.structure_id == user.structure_id)
        return select(union(lives_in_sector, oriented_here).subquery().c[0].label("id"))
    if user.role == Role.PROVIDER:
        return (select(Orientation.person_id.label("id")).distinct()
                .where(validated, Orientation.structure_id == user.structure_id))
    if user.role == Role.ATI:
        ati_structures = select(Structure.id).where(Structure.kind == "ati", Structure.territory_id == user.territory_id)
        return (select(Orientation.person_id.label("id")).distinct()
                .where(validated, Orientation.referent_type == "ati", Orientation.structure_id.in_(ati_structures)))
    return select(Person.id).where(false())


@functools.cache
def _scope_aliases(orientation_model):
    """Built once: making the aliases and adapting their columns cost ~7 ms on every request."""
    return aliased(orientation_model), aliased(Household), aliased(Structure)


def scoped_persons(user: User):
    """A select of Person restricted to the user's scope; callers add filters and paging."""
    return select(Person).where(person_scope(user))


def get_person_in_scope(session: Session, user: User, person_id: int) -> Person | None:
    """None when the person does not exist or is out of scope (the API answers 404 for both)."""
    return session.scalar(scoped_persons(user).where(Person.id == person_id))


def add_event(session: Session, person_id: int, kind: str, occurred_on: dt.date, source: str,
              summary: str = "", data: dict | None = None, path_id: int | None = None,
              author_id: int | None = None) -> CaseEvent:
    event = CaseEvent(person_id=person_id, path_id=path_id, kind=kind, occurred_on=occurred_on,
                      source=source, summary=summary, data=data, author_id=author_id)
    session.add(event)
    return event


def raise_alert(session: Session, key: str, kind: str, message: str, raised_on: dt.date,
                severity: str = "warning", person_id: int | None = None, structure_id: int | None = None,
                data: dict | None = None) -> tuple[Alert, bool]:
    """Idempotent by key: returns (alert, created)."""
    alert = session.scalar(select(Alert).where(Alert.key == key))
    if alert is not None:
        return alert, False
    alert = Alert(key=key, kind=kind, message=message, raised_on=raised_on, severity=severity,
                  person_id=person_id, structure_id=structure_id, data=data)
    session.add(alert)
    return alert, True


# ---------------------------------------------------------------------------------------------
# Path tracking: configuration, validation errors, small lookups
# ---------------------------------------------------------------------------------------------

DATA_DIR = Path(__file__).resolve().parent / "data"
SOURCES = ("flow", "agent", "provider", "job", "kiosque", "france_travail")
APPOINTMENT_STATUSES = ("planned", "honoured", "no_show", "excused", "cancelled")
APPOINTMENT_KINDS = ("first", "follow_up", "review")
CONTRACT_KINDS = ("engagement", "ppae", "cer_pro", "cer_social")
LEGACY_CONTRACT_KINDS = ("ppae", "cer_pro", "cer_social")

_APPOINTMENT_LABELS = {"planned": "planifié", "honoured": "honoré", "no_show": "absence non excusée",
                       "excused": "absence excusée", "cancelled": "annulé"}


class CaseValidationError(ValueError):
    """A domain rule refused the input; `messages` maps field → list of French messages (API: 422)."""

    def __init__(self, messages: dict[str, list[str]] | str):
        if isinstance(messages, str):
            messages = {"_schema": [messages]}
        self.messages = messages
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items()))


@functools.cache
def _load_yaml(name: str) -> dict:
    with open(DATA_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def procedure() -> dict:
    """The legal parameters (cases/data/procedure.yaml): deadlines, reasons, sanction bounds."""
    return _load_yaml("procedure.yaml")


def exit_reasons() -> dict[str, dict]:
    """Exit reason → {label, positive} (cases/data/exit_reasons.yaml)."""
    return _load_yaml("exit_reasons.yaml")["reasons"]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise CaseValidationError({"source": [f"source inconnue {source!r} (attendu: {', '.join(SOURCES)})"]})


def open_path(session: Session, person_id: int) -> PathModel | None:
    """The person's current (not closed) path, the most recent when several are open."""
    return session.scalar(select(PathModel).where(PathModel.person_id == person_id, PathModel.closed_on.is_(None))
                          .order_by(PathModel.clock_start.desc(), PathModel.id.desc()).limit(1))


def latest_path(session: Session, person_id: int) -> PathModel | None:
    """The open path, else the most recently started one."""
    return open_path(session, person_id) or session.scalar(
        select(PathModel).where(PathModel.person_id == person_id)
        .order_by(PathModel.clock_start.desc(), PathModel.id.desc()).limit(1))


def current_orientation(session: Session, person_id: int):
    """The person's current validated orientation (orientation.models.Orientation) or None."""
    from orientation.models import Orientation

    return session.scalar(select(Orientation).where(Orientation.person_id == person_id,
                                                    Orientation.status == "validated")
                          .order_by(Orientation.validated_on.desc(), Orientation.id.desc()).limit(1))


def _require_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise CaseValidationError({"person_id": [f"personne {person_id} inconnue"]})
    return person


def _as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    return dt.datetime.combine(value, dt.time(0, 0))


# ---------------------------------------------------------------------------------------------
# Appointments with the referent
# ---------------------------------------------------------------------------------------------

def record_appointment(session: Session, person_id: int, scheduled_at: dt.datetime | dt.date, status: str = "planned",
                       *, kind: str = "first", structure_id: int | None = None, agent_id: int | None = None,
                       source: str, author_id: int | None = None, notes: str | None = None,
                       occurred_on: dt.date | None = None) -> Appointment:
    """Record an appointment with the referent (with its timeline event).

    Idempotent on (person, scheduled_at): the same appointment sent again (provider return file,
    API retry) updates its status instead of creating a second one."""
    _check_source(source)
    if status not in APPOINTMENT_STATUSES:
        raise CaseValidationError({"status": [f"statut inconnu {status!r} (attendu: {', '.join(APPOINTMENT_STATUSES)})"]})
    if kind not in APPOINTMENT_KINDS:
        raise CaseValidationError({"kind": [f"type inconnu {kind!r} (attendu: {', '.join(APPOINTMENT_KINDS)})"]})
    _require_person(session, person_id)
    at = _as_datetime(scheduled_at)
    existing = session.scalar(select(Appointment).where(Appointment.person_id == person_id,
                                                        Appointment.scheduled_at == at).limit(1))
    if existing is not None:
        if existing.status != status:
            update_appointment_status(session, existing.id, status, source=source, author_id=author_id,
                                      occurred_on=occurred_on)
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
                              author_id: int | None = None, occurred_on: dt.date | None = None) -> Appointment:
    """Move an appointment to its outcome; one timeline event per change, none when unchanged."""
    _check_source(source)
    if status not in APPOINTMENT_STATUSES:
        raise CaseValidationError({"status": [f"statut inconnu {status!r} (attendu: {', '.join(APPOINTMENT_STATUSES)})"]})
    appt = session.get(Appointment, appointment_id)
    if appt is None:
        raise CaseValidationError({"appointment_id": [f"rendez-vous {appointment_id} inconnu"]})
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


# ---------------------------------------------------------------------------------------------
# Contrat d'engagement
# ---------------------------------------------------------------------------------------------

def orientation_notice_date(session: Session, orientation) -> dt.date | None:
    """The day the orientation was notified (first Notification), else its validation date."""
    from orientation.models import Notification

    if orientation is None:
        return None
    notified = session.scalar(select(func.min(Notification.notified_on))
                              .where(Notification.orientation_id == orientation.id))
    return notified or orientation.notified_on or orientation.validated_on


def contract_deadline(session: Session, person_id: int, kind: str = "engagement") -> dt.date | None:
    """Deadline of the contract: orientation notice + 1 month (CER social: 2).

    On a path reopened after an exit, the clock starts again at the reopening (even before a new
    orientation: the reopened path needs a contract)."""
    orientation = current_orientation(session, person_id)
    base = orientation_notice_date(session, orientation)
    path = open_path(session, person_id)
    if path is not None and path.opening_reason == "reopening" and (base is None or path.clock_start > base):
        base = path.clock_start
    if base is None:
        return None
    months = procedure()["contract"]["deadline_months"].get(kind, 1)
    return base + relativedelta(months=months)


def validate_contract(kind: str, weekly_hours, hours_reduction_reason: str | None, objectives) -> dict[str, list[str]]:
    """The legal rules of the contract; returns field → messages (empty when valid)."""
    rules = procedure()["contract"]
    errors: dict[str, list[str]] = {}
    if kind not in CONTRACT_KINDS:
        errors.setdefault("kind", []).append(f"type inconnu {kind!r} (attendu: {', '.join(CONTRACT_KINDS)})")
    reasons = rules["hours_reduction_reasons"]
    if hours_reduction_reason is not None and hours_reduction_reason not in reasons:
        errors.setdefault("hours_reduction_reason", []).append(
            f"motif inconnu {hours_reduction_reason!r} (motifs légaux: {', '.join(reasons)})")
    if weekly_hours is not None:
        hours = float(weekly_hours)
        if hours < 0 or hours > 35:
            errors.setdefault("weekly_hours", []).append("la durée hebdomadaire doit être comprise entre 0 et 35 heures")
        elif kind == "engagement" and hours < rules["default_weekly_hours"] and hours_reduction_reason is None:
            errors.setdefault("weekly_hours", []).append(
                f"moins de {rules['default_weekly_hours']} heures par semaine seulement avec un motif légal "
                f"({', '.join(reasons)})")
    themes = rules["themes"]
    for i, obj in enumerate(objectives or []):
        if not isinstance(obj, dict) or obj.get("theme") not in themes:
            errors.setdefault("objectives", []).append(
                f"objectif {i + 1}: thème inconnu (attendu: {', '.join(themes)})")
        elif not str(obj.get("text") or "").strip():
            errors.setdefault("objectives", []).append(f"objectif {i + 1}: texte vide")
    return errors


def record_contract(session: Session, person_id: int, signed_on: dt.date | None, *, weekly_hours=None,
                    hours_reduction_reason: str | None = None, kind: str = "engagement", objectives=None,
                    duration_months: int | None = None, vulnerability: bool = False, source: str,
                    author_id: int | None = None) -> Contract:
    """Record the contrat d'engagement (or a legacy PPAE/CER from imported history).

    Weekly hours: 15 by default, fewer only with a legal reason. A signed contract replaces the
    previous one of the path; a social path (MDS orientation) gets its review due date."""
    _check_source(source)
    _require_person(session, person_id)
    rules = procedure()["contract"]
    if weekly_hours is None:
        weekly_hours = rules["default_weekly_hours"]
    errors = validate_contract(kind, weekly_hours, hours_reduction_reason, objectives)
    if duration_months is not None and not 1 <= int(duration_months) <= 60:
        errors.setdefault("duration_months", []).append("durée en mois entre 1 et 60")
    if errors:
        raise CaseValidationError(errors)
    path = open_path(session, person_id)
    orientation = current_orientation(session, person_id)
    pending = session.scalar(select(Contract).where(
        Contract.person_id == person_id, Contract.status == "pending",
        Contract.path_id == path.id).order_by(Contract.id.desc()).limit(1)) if path else None
    contract = pending or Contract(person_id=person_id, path_id=path.id if path else None)
    contract.kind = kind
    contract.orientation_id = orientation.id if orientation else None
    # A pending contract (revision asked by a review) keeps its own deadline.
    contract.due_on = (pending.due_on if pending is not None and pending.due_on
                       else contract_deadline(session, person_id, kind))
    contract.signed_on = signed_on
    contract.duration_months = duration_months
    contract.weekly_hours = weekly_hours
    contract.hours_reduction_reason = hours_reduction_reason
    contract.objectives = [{"theme": o["theme"], "text": str(o["text"]).strip()} for o in (objectives or [])]
    contract.vulnerability = bool(vulnerability)
    contract.status = "signed" if signed_on else "pending"
    contract.source = source
    if pending is None:
        session.add(contract)
    session.flush()
    if signed_on is None:
        add_event(session, person_id, "contract.pending", contract.due_on or dt.date.today(), source,
                  summary=f"Contrat à signer avant le {contract.due_on:%d/%m/%Y}" if contract.due_on else "Contrat à signer",
                  data={"contract_id": contract.id, "kind": kind}, path_id=contract.path_id, author_id=author_id)
        return contract
    # The newly signed contract replaces the earlier ones of the same path.
    for old in session.scalars(select(Contract).where(Contract.person_id == person_id, Contract.id != contract.id,
                                                      Contract.status == "signed")):
        if path is None or old.path_id in (path.id, None):
            old.status = "ended"
    late = contract.due_on is not None and signed_on > contract.due_on
    hours = float(contract.weekly_hours)
    summary = (f"Contrat {_contract_label(kind)} signé le {signed_on:%d/%m/%Y}, {hours:g} h/semaine"
               + (f" (réduction: {hours_reduction_reason})" if hours_reduction_reason else "")
               + (f", hors délai (échéance {contract.due_on:%d/%m/%Y})" if late else ""))
    add_event(session, person_id, "contract.signed", signed_on, source, summary=summary,
              data={"contract_id": contract.id, "kind": kind, "weekly_hours": hours,
                    "hours_reduction_reason": hours_reduction_reason, "due_on": _iso(contract.due_on),
                    "late": late, "themes": sorted({o["theme"] for o in contract.objectives})},
              path_id=contract.path_id, author_id=author_id)
    _resolve_alerts(session, f"contract_overdue:{person_id}:", signed_on)
    if kind == "engagement":
        _schedule_review(session, contract, orientation, source, author_id)
    return contract


def _contract_label(kind: str) -> str:
    return {"engagement": "d'engagement", "ppae": "PPAE", "cer_pro": "CER professionnel",
            "cer_social": "CER social"}.get(kind, kind)


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _resolve_alerts(session: Session, key_prefix: str, on: dt.date) -> int:
    n = 0
    for alert in session.scalars(select(Alert).where(Alert.key.startswith(key_prefix, autoescape=True),
                                                     Alert.resolved_on.is_(None))):
        alert.resolved_on = on
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Exit
# ---------------------------------------------------------------------------------------------

def is_positive_exit(reason: str) -> bool:
    return bool(exit_reasons().get(reason, {}).get("positive", False))


def record_exit(session: Session, person_id: int, exit_on: dt.date, reason: str, *, source: str,
                structure_id: int | None = None, details: str | None = None,
                author_id: int | None = None) -> Exit:
    """Record the exit of the person's path and close it (close_reason "exit:<reason>").

    One exit per path: a flow closure arriving after a provider or referent exit returns the
    existing exit (and notes the confirmation in the timeline) instead of creating a second one;
    a provider or referent exit arriving after the flow's qualifies it (reason, date, structure)."""
    _check_source(source)
    reasons = exit_reasons()
    if reason not in reasons:
        raise CaseValidationError({"reason": [f"motif de sortie inconnu {reason!r} (attendu: {', '.join(reasons)})"]})
    _require_person(session, person_id)
    path = latest_path(session, person_id)
    existing = session.scalar(select(Exit).where(Exit.person_id == person_id, Exit.path_id == path.id)
                              .order_by(Exit.id).limit(1)) if path is not None else None
    if existing is not None:
        if existing.source == "flow" and source != "flow":
            return _qualify_flow_exit(session, existing, exit_on, reason, source, structure_id, details, author_id)
        if source == "flow" and existing.source != "flow":
            already = session.scalar(select(func.count(CaseEvent.id)).where(
                CaseEvent.person_id == person_id, CaseEvent.kind == "exit.confirmed",
                CaseEvent.path_id == existing.path_id))
            if not already:
                add_event(session, person_id, "exit.confirmed", exit_on, source,
                          summary=f"Fin de droit confirmée par le flux ({reasons[reason]['label']})",
                          data={"exit_id": existing.id, "reason": reason}, path_id=existing.path_id,
                          author_id=author_id)
        return existing
    orientation = current_orientation(session, person_id)
    if structure_id is None and orientation is not None:
        structure_id = orientation.structure_id
    if structure_id is None and path is not None:
        structure_id = _path_structure(session, path.id)
    positive = is_positive_exit(reason)
    ex = Exit(person_id=person_id, path_id=path.id if path else None, structure_id=structure_id, exit_on=exit_on,
              reason=reason, positive=positive, source=source, details=details)
    session.add(ex)
    if path is not None and path.closed_on is None:
        path.closed_on = exit_on
        path.close_reason = f"exit:{reason}"
    if orientation is not None:
        orientation.status = "ended"
        orientation.ended_on = exit_on
        orientation.end_reason = "exit"
    for contract in session.scalars(select(Contract).where(Contract.person_id == person_id,
                                                           Contract.status.in_(("pending", "signed")))):
        contract.status = "ended"
    session.flush()
    add_event(session, person_id, "exit.recorded", exit_on, source,
              summary=f"Sortie: {reasons[reason]['label']}" + (" (sortie positive)" if positive else ""),
              data={"exit_id": ex.id, "reason": reason, "positive": positive, "structure_id": structure_id,
                    "details": details}, path_id=ex.path_id, author_id=author_id)
    _resolve_alerts(session, f"contract_overdue:{person_id}:", exit_on)
    _resolve_alerts(session, f"review_due:{person_id}:", exit_on)
    return ex


# ---------------------------------------------------------------------------------------------
# Reviews of social paths
# ---------------------------------------------------------------------------------------------

REVIEW_OUTCOMES = ("maintain", "revise", "reorientation")


def _review_months(vulnerability: bool) -> int:
    rules = procedure()["review"]
    return rules["months_vulnerability"] if vulnerability else rules["months"]


def _open_reviews(session: Session, person_id: int):
    return session.scalars(select(Review).where(Review.person_id == person_id, Review.held_on.is_(None),
                                                Review.outcome.is_(None)).order_by(Review.due_on, Review.id))


def _schedule_review(session: Session, contract: Contract, orientation, source: str, author_id,
                     start: dt.date | None = None) -> Review | None:
    """Social paths (MDS orientation): a review 6 months after signature, 12 with a vulnerability."""
    rules = procedure()["review"]
    if orientation is None or orientation.referent_type not in rules["referent_types"]:
        return None
    for old in _open_reviews(session, contract.person_id):
        old.outcome = "superseded"
    start = start or contract.signed_on
    review = Review(person_id=contract.person_id, contract_id=contract.id,
                    due_on=start + relativedelta(months=_review_months(contract.vulnerability)))
    session.add(review)
    session.flush()
    add_event(session, contract.person_id, "review.scheduled", start, source,
              summary=f"Bilan du parcours social prévu le {review.due_on:%d/%m/%Y}"
                      + (" (vulnérabilité documentée: 12 mois)" if contract.vulnerability else ""),
              data={"review_id": review.id, "due_on": review.due_on.isoformat(), "contract_id": contract.id},
              path_id=contract.path_id, author_id=author_id)
    return review


def _qualify_flow_exit(session: Session, ex: Exit, exit_on: dt.date, reason: str, source: str,
                      structure_id: int | None, details: str | None, author_id: int | None) -> Exit:
    """A referent or provider qualifies an exit the flow recorded first (the flow only knows that the
    right closed; the referent knows it was, say, a job): the reason, date and structure become theirs."""
    if structure_id is None:
        structure_id = ex.structure_id or _path_structure(session, ex.path_id)
    if (ex.reason, ex.exit_on, ex.structure_id) == (reason, exit_on, structure_id):
        return ex
    before = {"reason": ex.reason, "exit_on": ex.exit_on.isoformat()}
    noted_on = max(exit_on, ex.exit_on)  # never before the flow's own record
    ex.reason, ex.exit_on, ex.structure_id = reason, exit_on, structure_id
    ex.positive = is_positive_exit(reason)
    ex.source = source
    if details:
        ex.details = details
    add_event(session, ex.person_id, "exit.qualified", noted_on, source,
              summary=f"Sortie précisée: {exit_reasons()[reason]['label']}" + (" (sortie positive)" if ex.positive else ""),
              data={"exit_id": ex.id, "reason": reason, "positive": ex.positive, "before": before,
                    "structure_id": structure_id}, path_id=ex.path_id, author_id=author_id)
    return ex


def _path_structure(session: Session, path_id: int | None) -> int | None:
    """The structure of the last validated orientation of a path."""
    from orientation.models import Orientation

    if path_id is None:
        return None
    return session.scalar(select(Orientation.structure_id).where(Orientation.path_id == path_id,
                                                                 Orientation.validated_on.is_not(None))
                          .order_by(Orientation.validated_on.desc(), Orientation.id.desc()).limit(1))


def record_review(session: Session, person_id: int, held_on: dt.date, outcome: str, *, source: str,
                  author_id: int | None = None, notes: str | None = None, review_id: int | None = None,
                  reorientation_reason: str | None = None, wanted_referent_type: str | None = None,
                  wanted_structure_id: int | None = None) -> Review:
    """Hold the (next) review: maintain → next review scheduled; revise → a contract to re-sign within
    the contract delay; reorientation → a pending ReorientationRequest for the orientation service."""
    _check_source(source)
    if outcome not in REVIEW_OUTCOMES:
        raise CaseValidationError({"outcome": [f"issue inconnue {outcome!r} (attendu: {', '.join(REVIEW_OUTCOMES)})"]})
    if outcome == "reorientation" and not (reorientation_reason or notes):
        raise CaseValidationError({"reorientation_reason": ["une demande de réorientation doit être motivée"]})
    _require_person(session, person_id)
    path = open_path(session, person_id)
    if review_id is not None:
        review = session.get(Review, review_id)
        if review is None or review.person_id != person_id:
            raise CaseValidationError({"review_id": [f"bilan {review_id} inconnu pour cette personne"]})
        if review.held_on is not None:
            raise CaseValidationError({"review_id": ["ce bilan a déjà eu lieu"]})
    else:
        review = _open_reviews(session, person_id).first()
    contract = session.scalar(select(Contract).where(Contract.person_id == person_id, Contract.status == "signed")
                              .order_by(Contract.signed_on.desc(), Contract.id.desc()).limit(1))
    if review is None:  # an unscheduled (early) review
        review = Review(person_id=person_id, contract_id=contract.id if contract else None, due_on=held_on)
        session.add(review)
    review.held_on = held_on
    review.outcome = outcome
    review.notes = notes
    session.flush()
    labels = {"maintain": "maintien du contrat", "revise": "contrat à réviser", "reorientation": "réorientation demandée"}
    add_event(session, person_id, "review.held", held_on, source, summary=f"Bilan tenu: {labels[outcome]}",
              data={"review_id": review.id, "outcome": outcome, "due_on": review.due_on.isoformat()},
              path_id=path.id if path else None, author_id=author_id)
    _resolve_alerts(session, f"review_due:{person_id}:", held_on)
    orientation = current_orientation(session, person_id)
    if outcome == "maintain" and contract is not None:
        _schedule_review(session, contract, orientation, source, author_id, start=held_on)
    elif outcome == "revise":
        months = procedure()["contract"]["deadline_months"]["engagement"]
        pending = Contract(person_id=person_id, path_id=path.id if path else None,
                           orientation_id=orientation.id if orientation else None, kind="engagement",
                           due_on=held_on + relativedelta(months=months), status="pending", source=source,
                           vulnerability=contract.vulnerability if contract else False,
                           weekly_hours=procedure()["contract"]["default_weekly_hours"])
        session.add(pending)
        session.flush()
        add_event(session, person_id, "contract.pending", held_on, source,
                  summary=f"Contrat à réviser avant le {pending.due_on:%d/%m/%Y}",
                  data={"contract_id": pending.id, "kind": "engagement", "due_on": pending.due_on.isoformat()},
                  path_id=pending.path_id, author_id=author_id)
    elif outcome == "reorientation":
        from orientation.models import ReorientationRequest

        request = ReorientationRequest(person_id=person_id, orientation_id=orientation.id if orientation else None,
                                       requested_by=author_id, requested_on=held_on,
                                       reason=reorientation_reason or notes, status="pending",
                                       wanted_referent_type=wanted_referent_type,
                                       wanted_structure_id=wanted_structure_id)
        session.add(request)
        session.flush()
        add_event(session, person_id, "reorientation.requested", held_on, source,
                  summary="Demande de réorientation à l'issue du bilan"
                          + (f" (vers {wanted_referent_type})" if wanted_referent_type else ""),
                  data={"reorientation_request_id": request.id, "review_id": review.id,
                        "wanted_referent_type": wanted_referent_type},
                  path_id=path.id if path else None, author_id=author_id)
    return review


# ---------------------------------------------------------------------------------------------
# Suspension procedure (sanctions)
# ---------------------------------------------------------------------------------------------

def _sanction(session: Session, sanction_id: int) -> Sanction:
    sanction = session.get(Sanction, sanction_id)
    if sanction is None:
        raise CaseValidationError({"sanction_id": [f"procédure {sanction_id} inconnue"]})
    return sanction


def _sanction_event(session, sanction: Sanction, step: str, on: dt.date, source, author_id, summary, **data):
    path = open_path(session, sanction.person_id)
    add_event(session, sanction.person_id, f"sanction.{step}", on, source, summary=summary,
              data={"sanction_id": sanction.id, **data}, path_id=path.id if path else None, author_id=author_id)


def record_breach(session: Session, person_id: int, breach_on: dt.date, breach: str, *, source: str,
                  author_id: int | None = None) -> Sanction:
    """The referent records a breach (contract refused or not respected): the procedure starts."""
    _check_source(source)
    _require_person(session, person_id)
    if not (breach or "").strip():
        raise CaseValidationError({"breach": ["le manquement doit être décrit"]})
    earlier = session.scalar(select(func.count(Sanction.id)).where(
        Sanction.person_id == person_id, Sanction.decided_on.is_not(None), Sanction.decided_on <= breach_on))
    sanction = Sanction(person_id=person_id, breach_on=breach_on, breach=breach.strip(), repeated=bool(earlier),
                        status="breach")
    session.add(sanction)
    session.flush()
    _sanction_event(session, sanction, "breach", breach_on, source, author_id,
                    "Manquement constaté" + (" (réitération)" if sanction.repeated else ""),
                    repeated=sanction.repeated)
    return sanction


def record_observations(session: Session, sanction_id: int, observations_on: dt.date, observations: str, *,
                        source: str, author_id: int | None = None) -> Sanction:
    """The person's observations (contradictory phase) before any decision."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.decided_on is not None:
        raise CaseValidationError({"observations": ["la décision est déjà prise"]})
    if observations_on < sanction.breach_on:
        raise CaseValidationError({"observations_on": ["les observations ne peuvent précéder le manquement"]})
    sanction.observations_on = observations_on
    sanction.observations = observations
    sanction.status = "observations"
    _sanction_event(session, sanction, "observations", observations_on, source, author_id,
                    "Observations de la personne recueillies")
    return sanction


def request_ep_opinion(session: Session, sanction_id: int, requested_on: dt.date, *, source: str,
                       author_id: int | None = None) -> Sanction:
    """Refer the case to the équipe pluridisciplinaire (needed before a suppression)."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    sanction.ep_requested_on = requested_on
    _sanction_event(session, sanction, "ep_requested", requested_on, source, author_id,
                    f"Saisine de l'équipe pluridisciplinaire (avis réputé rendu le {ep_deemed_on(sanction):%d/%m/%Y})")
    return sanction


def ep_deemed_on(sanction: Sanction) -> dt.date | None:
    """The day the équipe pluridisciplinaire opinion is deemed given without answer."""
    if sanction.ep_requested_on is None:
        return None
    return sanction.ep_requested_on + relativedelta(months=procedure()["sanction"]["ep_opinion_deemed_after_months"])


def record_ep_opinion(session: Session, sanction_id: int, opinion_on: dt.date, opinion: str, *, source: str,
                      author_id: int | None = None) -> Sanction:
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.ep_requested_on is None:
        raise CaseValidationError({"ep_opinion": ["l'équipe pluridisciplinaire n'a pas été saisie"]})
    sanction.ep_opinion_on = opinion_on
    sanction.ep_opinion = opinion
    _sanction_event(session, sanction, "ep_opinion", opinion_on, source, author_id,
                    "Avis de l'équipe pluridisciplinaire rendu")
    return sanction


def decide_sanction(session: Session, sanction_id: int, decided_on: dt.date, *, kind: str = "suspension",
                    rate_percent: int | None = None, duration_months: int | None = None, source: str,
                    author_id: int | None = None) -> Sanction:
    """Decision of the Président: suspension (rate ≥ 30%, 1–2 months, 1–4 on repetition), or suppression
    once the équipe pluridisciplinaire gave its opinion (or it is deemed given). Bounds: procedure.yaml."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    rules = procedure()["sanction"]
    errors: dict[str, list[str]] = {}
    if sanction.decided_on is not None:
        errors.setdefault("decided_on", []).append("la décision est déjà prise")
    if sanction.observations_on is None:
        errors.setdefault("observations", []).append("les observations de la personne doivent être recueillies d'abord")
    if kind == "suspension":
        bounds = rules["duration_months_repeated"] if sanction.repeated else rules["duration_months"]
        if rate_percent is None or not rules["minimum_rate_percent"] <= int(rate_percent) <= 100:
            errors.setdefault("rate_percent", []).append(
                f"taux de suspension entre {rules['minimum_rate_percent']} et 100 %")
        if duration_months is None or not bounds["min"] <= int(duration_months) <= bounds["max"]:
            errors.setdefault("duration_months", []).append(
                f"durée entre {bounds['min']} et {bounds['max']} mois"
                + (" (réitération)" if sanction.repeated else ""))
    elif kind == "suppression":
        deemed = ep_deemed_on(sanction)
        if sanction.ep_opinion_on is None and (deemed is None or decided_on < deemed):
            errors.setdefault("kind", []).append(
                "une suppression exige l'avis de l'équipe pluridisciplinaire"
                + (f" (réputé rendu le {deemed:%d/%m/%Y})" if deemed else " (non saisie)"))
    else:
        errors.setdefault("kind", []).append("suspension ou suppression")
    if errors:
        raise CaseValidationError(errors)
    sanction.kind = kind
    sanction.decided_on = decided_on
    sanction.rate_percent = rate_percent if kind == "suspension" else None
    sanction.duration_months = duration_months if kind == "suspension" else None
    sanction.status = "decided"
    summary = (f"Suspension décidée: {rate_percent} % pendant {duration_months} mois" if kind == "suspension"
               else "Suppression décidée après avis de l'équipe pluridisciplinaire")
    _sanction_event(session, sanction, "decided", decided_on, source, author_id, summary, kind=kind,
                    rate_percent=sanction.rate_percent, duration_months=sanction.duration_months,
                    ends_on=_iso(sanction_end(sanction)))
    return sanction


def sanction_end(sanction: Sanction) -> dt.date | None:
    if sanction.kind != "suspension" or sanction.decided_on is None or not sanction.duration_months:
        return None
    return sanction.decided_on + relativedelta(months=sanction.duration_months)


def lift_sanction(session: Session, sanction_id: int, lifted_on: dt.date, *, source: str,
                  author_id: int | None = None, reason: str | None = None) -> Sanction:
    """Lifted as soon as the person complies (or the procedure is dropped before decision)."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.lifted_on is not None:
        return sanction
    if lifted_on < sanction.breach_on:
        raise CaseValidationError({"lifted_on": ["la levée ne peut précéder le manquement"]})
    sanction.lifted_on = lifted_on
    sanction.status = "lifted" if sanction.decided_on else "closed"
    _sanction_event(session, sanction, "lifted", lifted_on, source, author_id,
                    ("Sanction levée" if sanction.decided_on else "Procédure close sans sanction")
                    + (f": {reason}" if reason else ""))
    return sanction


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------

DIAGNOSTIC_CONSTRAINTS = ("health", "housing", "mobility", "family", "finance", "digital", "administrative",
                          "language")
CONSTRAINT_LEVELS = ("none", "medium", "strong")


def record_diagnostic(session: Session, person_id: int, recorded_on: dt.date, constraints: dict | None,
                      education_level: str | None, can_seek_work: bool | None, author_id: int | None = None,
                      *, notes: str | None = None, source: str = "agent") -> Diagnostic:
    """A socio-professional diagnostic; the latest one is a fact the orientation rules read."""
    _check_source(source)
    _require_person(session, person_id)
    constraints = dict(constraints or {})
    errors = [f"{k}: contrainte inconnue" for k in constraints if k not in DIAGNOSTIC_CONSTRAINTS]
    errors += [f"{k}: niveau {v!r} (attendu: {', '.join(CONSTRAINT_LEVELS)})" for k, v in constraints.items()
               if k in DIAGNOSTIC_CONSTRAINTS and v not in CONSTRAINT_LEVELS]
    if errors:
        raise CaseValidationError({"constraints": errors})
    diag = Diagnostic(person_id=person_id, recorded_on=recorded_on, author_id=author_id, constraints=constraints,
                      education_level=education_level, can_seek_work=can_seek_work, notes=notes)
    session.add(diag)
    session.flush()
    strong = sorted(k for k, v in constraints.items() if v == "strong")
    path = open_path(session, person_id)
    add_event(session, person_id, "diagnostic.recorded", recorded_on, source,
              summary="Diagnostic socio-professionnel" + (f": freins forts {', '.join(strong)}" if strong else ""),
              data={"diagnostic_id": diag.id, "strong_constraints": strong, "can_seek_work": can_seek_work,
                    "education_level": education_level}, path_id=path.id if path else None, author_id=author_id)
    return diag


def latest_diagnostic(session: Session, person_id: int) -> Diagnostic | None:
    return session.scalar(select(Diagnostic).where(Diagnostic.person_id == person_id)
                          .order_by(Diagnostic.recorded_on.desc(), Diagnostic.id.desc()).limit(1))


# ---------------------------------------------------------------------------------------------
# Reopening after an exit
# ---------------------------------------------------------------------------------------------

def reopening_applies(session: Session, person_id: int, reopened_on: dt.date) -> bool:
    """True when the person's last path was closed less than 12 months (procedure.yaml) before
    `reopened_on`: the flow importer then opens the new path with opening_reason "reopening"."""
    last_closed = session.scalar(select(func.max(PathModel.closed_on)).where(
        PathModel.person_id == person_id, PathModel.closed_on.is_not(None), PathModel.closed_on <= reopened_on))
    if last_closed is None:
        return False
    return reopened_on <= last_closed + relativedelta(months=procedure()["reopening"]["within_months"])


def needs_new_contract(session: Session, person_id: int) -> bool:
    """A reopened path needs a new contrat d'engagement until one is signed on it."""
    path = open_path(session, person_id)
    if path is None or path.opening_reason != "reopening":
        return False
    signed = session.scalar(select(func.count(Contract.id)).where(
        Contract.person_id == person_id, Contract.path_id == path.id, Contract.status == "signed"))
    return not signed


def reopening_status(session: Session, person_id: int) -> dict:
    """What a referent needs to know about a reopened path: previous exit and whether a contract is due."""
    path = open_path(session, person_id)
    reopened = path is not None and path.opening_reason == "reopening"
    previous_exit = None
    if reopened:
        ex = session.scalar(select(Exit).join(PathModel, PathModel.id == Exit.path_id)
                            .where(Exit.person_id == person_id, PathModel.id != path.id)
                            .order_by(Exit.exit_on.desc(), Exit.id.desc()).limit(1))
        if ex is not None:
            previous_exit = {"exit_on": ex.exit_on.isoformat(), "reason": ex.reason, "source": ex.source}
    return {"reopened": reopened, "reopened_on": _iso(path.clock_start) if reopened else None,
            "previous_exit": previous_exit, "needs_contract": needs_new_contract(session, person_id),
            "contract_due_on": _iso(contract_deadline(session, person_id)) if reopened else None}


# ---------------------------------------------------------------------------------------------
# Timeline
# ---------------------------------------------------------------------------------------------

def timeline(session: Session, person_id: int, *, path_id: int | None = None) -> list[dict]:
    """The person's events ordered by date then recording order, each with source and author."""
    from referents.models import User as UserModel

    query = (select(CaseEvent, UserModel.display_name, UserModel.email)
             .outerjoin(UserModel, UserModel.id == CaseEvent.author_id)
             .where(CaseEvent.person_id == person_id)
             .order_by(CaseEvent.occurred_on, CaseEvent.id))
    if path_id is not None:
        query = query.where(CaseEvent.path_id == path_id)
    return [{"id": ev.id, "occurred_on": ev.occurred_on.isoformat(), "kind": ev.kind, "source": ev.source,
             "author_id": ev.author_id, "author": (name or email) if ev.author_id else None,
             "summary": ev.summary, "path_id": ev.path_id, "data": ev.data or {}}
            for ev, name, email in session.execute(query)]


# ---------------------------------------------------------------------------------------------
# Persons: search and detail
# ---------------------------------------------------------------------------------------------

def search_persons(session: Session, user: User, *, q: str | None = None, birth_date: dt.date | None = None,
                   caf_number: str | None = None, page: int = 1, per_page: int = 50) -> tuple[list[dict], int]:
    """Scoped search by name (last, birth or first name, prefix), birth date and CAF/MSA number."""
    query = scoped_persons(user)  # no join on Household: person_scope correlates its own subqueries
    if q:
        for word in q.split():
            pattern = f"{word.lower()}%"
            query = query.where(func.lower(Person.last_name).like(pattern)
                                | func.lower(Person.birth_name).like(pattern)
                                | func.lower(Person.first_name).like(pattern))
    if birth_date:
        query = query.where(Person.birth_date == birth_date)
    if caf_number:
        query = query.where(Person.household_id.in_(select(Household.id)
                                                    .where(Household.matricule == caf_number.strip())))
    page, per_page = max(1, int(page)), max(1, min(200, int(per_page)))
    # Ordered on lower(last_name), which no index provides in this order: PostgreSQL then takes the
    # matches from the name indexes and sorts them, instead of walking ix_person_identity from "A"
    # and filtering out a million rows before a late-alphabet prefix (540 ms → a few ms at 1M persons).
    # The total comes with the page (COUNT(*) OVER ()): one pass over the matches instead of two.
    found = session.execute(query.add_columns(func.count().over())
                            .order_by(func.lower(Person.last_name), Person.first_name, Person.id)
                            .offset((page - 1) * per_page).limit(per_page)).all()
    if found:
        total = found[0][1]
    else:  # an empty page: nothing matched, or the page is past the end
        total = 0 if page == 1 else session.scalar(
            select(func.count()).select_from(query.with_only_columns(Person.id).subquery()))
    return _person_rows(session, [row[0] for row in found]), total


def _person_rows(session: Session, persons: list[Person]) -> list[dict]:
    """Rows of a page of persons with household, open path and current orientation: three queries
    for the whole page, not three per person."""
    from orientation.models import Orientation

    ids = [p.id for p in persons]
    households = {h.id: h for h in session.execute(
        select(Household.id, Household.matricule, Household.organism, Household.commune_insee)
        .where(Household.id.in_({p.household_id for p in persons if p.household_id is not None} or {-1})))}
    open_paths = set(session.scalars(select(PathModel.person_id)
                                     .where(PathModel.person_id.in_(ids or [-1]), PathModel.closed_on.is_(None))))
    orientations = {}
    for o in session.execute(select(Orientation.person_id, Orientation.referent_type, Orientation.structure_id)
                             .where(Orientation.person_id.in_(ids or [-1]), Orientation.status == "validated")
                             .order_by(Orientation.validated_on, Orientation.id)):
        orientations[o.person_id] = o  # the latest validated wins, as in current_orientation
    rows = []
    for person in persons:
        household = households.get(person.household_id)
        orientation = orientations.get(person.id)
        rows.append({"id": person.id, "last_name": person.last_name, "first_name": person.first_name,
                     "birth_date": _iso(person.birth_date), "role": person.role, "sdd": person.sdd,
                     "caf_number": household.matricule if household else None,
                     "organism": household.organism if household else None,
                     "commune_insee": household.commune_insee if household else None,
                     "path_open": person.id in open_paths,
                     "referent_type": orientation.referent_type if orientation else None,
                     "structure_id": orientation.structure_id if orientation else None})
    return rows


def orientation_summary(session: Session, person_id: int) -> dict | None:
    """The current orientation as shown with a person: the orientation service's summary when it
    provides one, else the latest orientation row."""
    try:
        from orientation import service as orientation_service
    except ImportError:
        orientation_service = None
    summarise = getattr(orientation_service, "current_orientation_summary", None)
    if summarise is not None:
        return summarise(session, person_id)
    from orientation.models import Orientation
    from referents.models import Structure as StructureModel

    o = session.scalar(select(Orientation).where(Orientation.person_id == person_id)
                       .order_by(Orientation.decided_on.desc(), Orientation.id.desc()).limit(1))
    if o is None:
        return None
    structure = session.get(StructureModel, o.structure_id) if o.structure_id else None
    return {"referent_type": o.referent_type, "rule": o.rule_id, "status": o.status, "origin": o.origin,
            "decided_on": _iso(o.decided_on), "structure": structure.code if structure else None}


def next_due_dates(session: Session, person_id: int, as_of: dt.date) -> dict:
    """Contract deadline, review, next appointment, end of suspension, for one person."""
    return _due_dates(session, [person_id], as_of).get(person_id, _empty_due())


def person_detail(session: Session, person: Person, *, role: str, vault, as_of: dt.date) -> dict:
    """Everything a referent needs on one screen; identity per role (NIR only through nir_view)."""
    from cases.nir import nir_view

    household = person.household
    path = open_path(session, person.id) or latest_path(session, person.id)
    contract = session.scalar(select(Contract).where(Contract.person_id == person.id)
                              .order_by(Contract.id.desc()).limit(1))
    diag = latest_diagnostic(session, person.id)
    exit_row = session.scalar(select(Exit).where(Exit.person_id == person.id, Exit.path_id == path.id)
                              .limit(1)) if path else None
    sanctions = session.scalars(select(Sanction).where(Sanction.person_id == person.id,
                                                       Sanction.lifted_on.is_(None))).all()
    staff = role in ("admin", "manager", "mds_worker")
    members = []
    if household is not None and staff:  # the rest of the household: not a provider's need-to-know
        members = [{"id": m.id, "role": m.role, "last_name": m.last_name, "first_name": m.first_name,
                    "sdd": m.sdd} for m in household.persons if m.id != person.id]
    return {
        "id": person.id,
        "identity": {"civility": person.civility, "last_name": person.last_name, "birth_name": person.birth_name,
                     "first_name": person.first_name, "birth_date": _iso(person.birth_date), "sex": person.sex,
                     "nir": nir_view(role, vault.decrypt(person.nir_encrypted)),
                     "email": person.email, "phone": person.phone, "role": person.role, "sdd": person.sdd},
        "household": None if household is None else {
            "id": household.id, "organism": household.organism, "caf_number": household.matricule,
            "right_state": household.right_state, "right_state_on": _iso(household.right_state_on),
            "commune_insee": household.commune_insee, "postal_code": household.postal_code,
            "city": household.city, "mds_id": household.mds_id, "territory_id": household.territory_id,
            "family_situation": household.family_situation if staff else None,
            "children_count": household.children_count,
            "rsa_amount": float(household.rsa_amount) if staff and household.rsa_amount is not None else None,
            "members": members},
        "path": None if path is None else {
            "id": path.id, "clock_start": path.clock_start.isoformat(), "request_date": _iso(path.request_date),
            "opening_reason": path.opening_reason, "closed_on": _iso(path.closed_on),
            "close_reason": path.close_reason},
        "orientation": orientation_summary(session, person.id),
        "contract": None if contract is None else contract_dict(contract),
        "diagnostic": None if diag is None else {
            "recorded_on": diag.recorded_on.isoformat(), "constraints": diag.constraints,
            "education_level": diag.education_level, "can_seek_work": diag.can_seek_work},
        "open_sanctions": [sanction_dict(s) for s in sanctions],
        "exit": None if exit_row is None else exit_dict(exit_row),
        "reopening": reopening_status(session, person.id),
        "due": next_due_dates(session, person.id, as_of),
    }


def contract_dict(c: Contract) -> dict:
    return {"id": c.id, "kind": c.kind, "status": c.status, "due_on": _iso(c.due_on), "signed_on": _iso(c.signed_on),
            "duration_months": c.duration_months, "weekly_hours": float(c.weekly_hours),
            "hours_reduction_reason": c.hours_reduction_reason, "objectives": c.objectives or [],
            "vulnerability": c.vulnerability, "source": c.source}


def appointment_dict(a: Appointment) -> dict:
    return {"id": a.id, "person_id": a.person_id, "scheduled_at": a.scheduled_at.isoformat(), "kind": a.kind,
            "status": a.status, "structure_id": a.structure_id, "agent_id": a.agent_id, "source": a.source,
            "notes": a.notes}


def review_dict(r: Review) -> dict:
    return {"id": r.id, "contract_id": r.contract_id, "due_on": r.due_on.isoformat(), "held_on": _iso(r.held_on),
            "outcome": r.outcome, "notes": r.notes}


def sanction_dict(s: Sanction) -> dict:
    return {"id": s.id, "kind": s.kind, "status": s.status, "breach_on": s.breach_on.isoformat(),
            "breach": s.breach, "repeated": s.repeated, "observations_on": _iso(s.observations_on),
            "ep_requested_on": _iso(s.ep_requested_on), "ep_deemed_on": _iso(ep_deemed_on(s)),
            "ep_opinion_on": _iso(s.ep_opinion_on), "decided_on": _iso(s.decided_on),
            "rate_percent": s.rate_percent, "duration_months": s.duration_months,
            "ends_on": _iso(sanction_end(s)), "lifted_on": _iso(s.lifted_on)}


def exit_dict(e: Exit) -> dict:
    return {"id": e.id, "exit_on": e.exit_on.isoformat(), "reason": e.reason,
            "label": exit_reasons().get(e.reason, {}).get("label", e.reason), "positive": e.positive,
            "source": e.source, "structure_id": e.structure_id, "path_id": e.path_id}


def diagnostic_dict(d: Diagnostic) -> dict:
    return {"id": d.id, "recorded_on": d.recorded_on.isoformat(), "constraints": d.constraints,
            "education_level": d.education_level, "can_seek_work": d.can_seek_work, "notes": d.notes,
            "author_id": d.author_id}


# ---------------------------------------------------------------------------------------------
# Due dates and the useful lists (all scoped, all with as_of)
# ---------------------------------------------------------------------------------------------

def _empty_due() -> dict:
    return {"contract_due_on": None, "contract_overdue": False, "review_due_on": None, "review_id": None,
            "next_appointment_at": None, "suspension_ends_on": None, "next_due_on": None, "next_due": None}


def _among(session: Session, column, ids: list[int]):
    """column IN ids. On PostgreSQL one array parameter (= ANY): with thousands of ids, one bound
    parameter each costs more to build, send and parse than the query itself. The array travels as
    its text form ('{1,2,3}') cast in SQL: the driver's element-by-element adaptation of a Python
    list cost ~1 ms per 1,500 ids and query."""
    if session.get_bind().dialect.name == "postgresql":
        literal_array = "{" + ",".join(str(int(i)) for i in ids) + "}"
        return column == any_(cast(bindparam(None, literal_array, type_=String), ARRAY(Integer)))
    return column.in_(ids)


def add_months(day: dt.date, months: int) -> dt.date:
    """day + months, clamped to the end of a shorter month: relativedelta(months=…) for dates,
    without its cost in loops over whole caseloads (5× faster)."""
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return day.replace(year=year, month=month0 + 1, day=min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def _chunks(ids: list[int], size: int = 2000):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _due_dates(session: Session, person_ids: list[int], as_of: dt.date) -> dict[int, dict]:
    """Batched due dates for many persons (a handful of queries per 2,000 persons).

    contract_due_on: orientation notice (+1 month) when no contract is signed on the open path
    (a pending contract's own deadline first); review_due_on: next review not held;
    next_appointment_at: next planned appointment from as_of."""
    from orientation.models import Notification, Orientation

    result: dict[int, dict] = {}
    months = procedure()["contract"]["deadline_months"]
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    for chunk in _chunks(sorted(set(person_ids))):
        # Plain rows, not ORM entities: these lists cover whole caseloads.
        paths = {}
        for p in session.execute(select(PathModel.person_id, PathModel.id, PathModel.clock_start,
                                        PathModel.opening_reason)
                                 .where(_among(session, PathModel.person_id, chunk), PathModel.closed_on.is_(None))
                                 .order_by(PathModel.clock_start, PathModel.id)):
            paths[p.person_id] = p
        orientations = {}
        for o in session.execute(select(Orientation.person_id, Orientation.id, Orientation.notified_on,
                                        Orientation.validated_on)
                                 .where(_among(session, Orientation.person_id, chunk), Orientation.status == "validated")
                                 .order_by(Orientation.validated_on, Orientation.id)):
            orientations[o.person_id] = o
        notified = dict(session.execute(
            select(Notification.orientation_id, func.min(Notification.notified_on))
            .where(_among(session, Notification.orientation_id, [o.id for o in orientations.values()] or [-1]))
            .group_by(Notification.orientation_id)).all())
        signed, pending = set(), {}
        for c in session.execute(select(Contract.person_id, Contract.path_id, Contract.status, Contract.due_on)
                                 .where(_among(session, Contract.person_id, chunk), Contract.status.in_(("signed", "pending")))
                                 .order_by(Contract.id)):
            path = paths.get(c.person_id)
            if path is None or c.path_id != path.id:
                continue
            if c.status == "signed":
                signed.add(c.person_id)
            elif c.due_on:
                pending[c.person_id] = c.due_on
        reviews = {}
        for r in session.execute(select(Review.person_id, Review.id, Review.due_on)
                                 .where(_among(session, Review.person_id, chunk), Review.held_on.is_(None),
                                        Review.outcome.is_(None)).order_by(Review.due_on.desc())):
            reviews[r.person_id] = r
        appointments = dict(session.execute(
            select(Appointment.person_id, func.min(Appointment.scheduled_at))
            .where(_among(session, Appointment.person_id, chunk), Appointment.status == "planned",
                   Appointment.scheduled_at >= start_of_day).group_by(Appointment.person_id)).all())
        suspensions = {}
        for s in session.scalars(select(Sanction).where(_among(session, Sanction.person_id, chunk), Sanction.lifted_on.is_(None),
                                                        Sanction.kind == "suspension",
                                                        Sanction.decided_on.is_not(None))):
            end = sanction_end(s)
            if end and end >= as_of:
                suspensions[s.person_id] = min(end, suspensions.get(s.person_id, end))
        for pid in chunk:
            due = _empty_due()
            path = paths.get(pid)
            if path is not None:
                o = orientations.get(pid)
                reopened = path.opening_reason == "reopening"
                if pid in pending:  # a contract to (re)sign, e.g. a revision asked by a review
                    due["contract_due_on"] = pending[pid]
                elif pid not in signed and (o is not None or reopened):
                    base = (notified.get(o.id) or o.notified_on or o.validated_on) if o is not None else None
                    if reopened and (base is None or path.clock_start > base):
                        base = path.clock_start
                    if base is not None:
                        due["contract_due_on"] = add_months(base, months["engagement"])
                if due["contract_due_on"] is not None:
                    due["contract_overdue"] = due["contract_due_on"] < as_of
                review = reviews.get(pid)
                if review is not None:
                    due["review_due_on"], due["review_id"] = review.due_on, review.id
                if pid in appointments:
                    due["next_appointment_at"] = appointments[pid]
                due["suspension_ends_on"] = suspensions.get(pid)
                candidates = [(d, k) for d, k in (
                    (due["contract_due_on"], "contract"), (due["review_due_on"], "review"),
                    (due["next_appointment_at"].date() if due["next_appointment_at"] else None, "appointment"),
                    (due["suspension_ends_on"], "suspension_end")) if d is not None]
                if candidates:
                    due["next_due_on"], due["next_due"] = min(candidates)
            result[pid] = due
    for due in result.values():
        for key in ("contract_due_on", "review_due_on", "suspension_ends_on", "next_due_on"):
            due[key] = _iso(due[key])
        if due["next_appointment_at"] is not None:
            due["next_appointment_at"] = due["next_appointment_at"].isoformat()
    return result


def _scoped_open_ids(session: Session, user: User, extra=None) -> list[int]:
    query = (select(Person.id).where(person_scope(user))
             .where(exists(select(PathModel.id).where(PathModel.person_id == Person.id, PathModel.closed_on.is_(None)))))
    if extra is not None:
        query = query.where(extra)
    return list(session.scalars(query))


_PERSON_COLUMNS = (Person.id, Person.last_name, Person.first_name, Person.birth_date)


def _names(session: Session, ids) -> dict[int, tuple]:
    out = {}
    for chunk in _chunks(sorted(set(ids))):
        for p in session.execute(select(*_PERSON_COLUMNS).where(_among(session, Person.id, chunk))):
            out[p.id] = p
    return out


def _listed(person, **extra) -> dict:
    """A list row; `person` is a Person or a row with its id, names and birth date."""
    return {"person_id": person.id, "last_name": person.last_name, "first_name": person.first_name,
            "birth_date": _iso(person.birth_date), **extra}


def my_people(session: Session, user: User, as_of: dt.date, *, structure_id: int | None = None) -> list[dict]:
    """People of the user's scope on an open path, soonest due date first (none last)."""
    from orientation.models import Orientation

    extra = None
    if structure_id is not None:
        extra = exists(select(Orientation.id).where(Orientation.person_id == Person.id,
                                                    Orientation.status == "validated",
                                                    Orientation.structure_id == structure_id))
    ids = _scoped_open_ids(session, user, extra)
    due = _due_dates(session, ids, as_of)
    persons = _names(session, ids)
    rows = [_listed(persons[i], **due[i]) for i in ids]
    rows.sort(key=lambda r: (r["next_due_on"] is None, r["next_due_on"] or "", r["last_name"] or "", r["person_id"]))
    return rows


def overdue_contracts(session: Session, user: User, as_of: dt.date) -> list[dict]:
    """Oriented people on an open path whose contract deadline is before as_of with no signed contract."""
    from orientation.models import Orientation

    oriented_or_pending = (exists(select(Orientation.id).where(Orientation.person_id == Person.id,
                                                               Orientation.status == "validated"))
                           | exists(select(Contract.id).where(Contract.person_id == Person.id,
                                                              Contract.status == "pending"))
                           | exists(select(PathModel.id).where(PathModel.person_id == Person.id,
                                                               PathModel.closed_on.is_(None),
                                                               PathModel.opening_reason == "reopening")))
    ids = _scoped_open_ids(session, user, oriented_or_pending)
    due = _due_dates(session, ids, as_of)
    persons = _names(session, ids)
    rows = [_listed(persons[i], contract_due_on=due[i]["contract_due_on"],
                    days_late=(as_of - dt.date.fromisoformat(due[i]["contract_due_on"])).days)
            for i in ids if due[i]["contract_overdue"]]
    rows.sort(key=lambda r: (r["contract_due_on"], r["person_id"]))
    return rows


def reviews_due(session: Session, user: User, as_of: dt.date, *, within_days: int | None = None) -> list[dict]:
    """Reviews not yet held, due before as_of + within_days (default procedure.yaml), on open paths."""
    if within_days is None:
        within_days = procedure()["lists"]["reviews_due_within_days"]
    limit = as_of + dt.timedelta(days=within_days)
    query = (select(Review, Person).join(Person, Person.id == Review.person_id)
             .where(person_scope(user), Review.held_on.is_(None), Review.outcome.is_(None), Review.due_on <= limit,
                    exists(select(PathModel.id).where(PathModel.person_id == Person.id, PathModel.closed_on.is_(None))))
             .order_by(Review.due_on, Review.id))
    return [_listed(p, review_id=r.id, due_on=r.due_on.isoformat(), overdue=r.due_on < as_of)
            for r, p in session.execute(query)]


def appointments_to_update(session: Session, user: User, as_of: dt.date) -> list[dict]:
    """Appointments still "planned" whose day is before as_of: their outcome is missing."""
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    query = (select(*_PERSON_COLUMNS, Appointment.id.label("appointment_id"), Appointment.scheduled_at,
                    Appointment.kind, Appointment.structure_id)
             .join(Person, Person.id == Appointment.person_id)
             .where(person_scope(user), Appointment.status == "planned", Appointment.scheduled_at < start_of_day)
             .order_by(Appointment.scheduled_at, Appointment.id))
    return [_listed(r, appointment_id=r.appointment_id, scheduled_at=_as_datetime(r.scheduled_at).isoformat(),
                    kind=r.kind, structure_id=r.structure_id) for r in session.execute(query)]


def without_recent_appointment(session: Session, user: User, as_of: dt.date, *, days: int | None = None) -> list[dict]:
    """Accompanied people (validated orientation at least `days` old, open path) with no honoured
    appointment in the last `days` days and none planned from as_of on."""
    from orientation.models import Orientation

    if days is None:
        days = procedure()["lists"]["no_appointment_days"]
    since = dt.datetime.combine(as_of - dt.timedelta(days=days), dt.time(0, 0))
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    recent = exists(select(Appointment.id).where(
        Appointment.person_id == Person.id,
        ((Appointment.status == "honoured") & (Appointment.scheduled_at >= since))
        | ((Appointment.status == "planned") & (Appointment.scheduled_at >= start_of_day))))
    # An alias: person_scope correlates its own Orientation subqueries to Person only.
    orientation = aliased(Orientation)
    query = (select(*_PERSON_COLUMNS, orientation.validated_on, orientation.structure_id)
             .join(orientation, orientation.person_id == Person.id)
             .where(person_scope(user), orientation.status == "validated",
                    orientation.validated_on <= as_of - dt.timedelta(days=days), ~recent,
                    exists(select(PathModel.id).where(PathModel.person_id == Person.id, PathModel.closed_on.is_(None))))
             .order_by(orientation.validated_on, Person.id))
    rows, seen, last = [], set(), {}
    found = session.execute(query).all()
    for chunk in _chunks([r.id for r in found]):
        last.update(dict(session.execute(select(Appointment.person_id, func.max(Appointment.scheduled_at))
                                         .where(_among(session, Appointment.person_id, chunk),
                                                Appointment.status == "honoured")
                                         .group_by(Appointment.person_id)).all()))
    for r in found:
        if r.id in seen:
            continue
        seen.add(r.id)
        rows.append(_listed(r, oriented_on=_iso(r.validated_on), structure_id=r.structure_id,
                            last_appointment_on=_as_datetime(last[r.id]).date().isoformat() if r.id in last else None))
    return rows


LISTS = {
    "my-people": my_people,
    "overdue-contracts": overdue_contracts,
    "reviews-due": reviews_due,
    "appointments-to-update": appointments_to_update,
    "without-appointment": without_recent_appointment,
}


# ---------------------------------------------------------------------------------------------
# Aggregates for the reports package (one definition each; documented in docs/cases.md)
# ---------------------------------------------------------------------------------------------

def _positive_reasons() -> list[str]:
    return [r for r, spec in exit_reasons().items() if spec.get("positive")]


def _exits_with_structure(start: dt.date, end: dt.date):
    """Exits in [start, end] with the structure they count for: the one recorded with the exit, else
    the structure of the path's last validated orientation (flow closures carry no structure)."""
    from orientation.models import Orientation

    of_path = (select(Orientation.structure_id)
               .where(Orientation.path_id == Exit.path_id, Orientation.validated_on.is_not(None))
               .order_by(Orientation.validated_on.desc(), Orientation.id.desc()).limit(1)
               .correlate(Exit).scalar_subquery())
    return (select(Exit.id, Exit.reason, func.coalesce(Exit.structure_id, of_path).label("structure_id"))
            .where(Exit.exit_on >= start, Exit.exit_on <= end).subquery())


def exits_by_reason(session: Session, start: dt.date, end: dt.date, structure_id: int | None = None) -> list[dict]:
    """Exits with exit_on in [start, end], counted by reason (positive per the current mapping)."""
    exits = _exits_with_structure(start, end)
    query = (select(exits.c.reason, func.count(exits.c.id)).group_by(exits.c.reason)
             .order_by(func.count(exits.c.id).desc(), exits.c.reason))
    if structure_id is not None:
        query = query.where(exits.c.structure_id == structure_id)
    reasons = exit_reasons()
    return [{"reason": reason, "label": reasons.get(reason, {}).get("label", reason),
             "positive": bool(reasons.get(reason, {}).get("positive")), "count": count}
            for reason, count in session.execute(query)]


def positive_exit_rate(session: Session, start: dt.date, end: dt.date, structure_id: int | None = None) -> list[dict]:
    """Per structure (see _exits_with_structure): exits, positive exits (current mapping), rate.

    The row with structure_id None gathers exits of people who never had a referent structure."""
    from sqlalchemy import case

    from referents.models import Structure as StructureModel

    exits = _exits_with_structure(start, end)
    positive = func.sum(case((exits.c.reason.in_(_positive_reasons()), 1), else_=0))
    query = (select(exits.c.structure_id, StructureModel.code, StructureModel.name, func.count(exits.c.id), positive)
             .outerjoin(StructureModel, StructureModel.id == exits.c.structure_id)
             .group_by(exits.c.structure_id, StructureModel.code, StructureModel.name)
             .order_by(StructureModel.code))
    if structure_id is not None:
        query = query.where(exits.c.structure_id == structure_id)
    return [{"structure_id": sid, "structure_code": code, "structure_name": name, "exits": n,
             "positive": int(pos or 0), "rate": round(int(pos or 0) / n, 4) if n else None}
            for sid, code, name, n, pos in session.execute(query)]


def _first_validated_orientations(start, end, structure_id):
    """The first validated orientation of each path, as a subquery (id, person, dates, structure).

    THE definition of a path's decision (docs/indicators.md): the earliest validated_on, ties to the
    lowest id, as stored on the path by the orientation service (Path.oriented_on) — the reports'
    delays and these after-orientation indicators judge the same decision."""
    from orientation.models import Notification, Orientation

    first = (select(func.min(Orientation.id).label("oid"))
             .join(PathModel, PathModel.id == Orientation.path_id)
             .where(Orientation.validated_on == PathModel.oriented_on, Orientation.person_id == PathModel.person_id)
             .group_by(Orientation.path_id).subquery())
    notified = (select(func.min(Notification.notified_on)).where(Notification.orientation_id == Orientation.id)
                .correlate(Orientation).scalar_subquery())
    query = (select(Orientation.id, Orientation.person_id, Orientation.validated_on, Orientation.structure_id,
                    func.coalesce(notified, Orientation.notified_on, Orientation.validated_on).label("notice_on"))
             .join(first, first.c.oid == Orientation.id))
    if start is not None:
        query = query.where(Orientation.validated_on >= start)
    if end is not None:
        query = query.where(Orientation.validated_on <= end)
    if structure_id is not None:
        query = query.where(Orientation.structure_id == structure_id)
    return query, Orientation


def _rate(eligible: int, success: int) -> float | None:
    return round(success / eligible, 4) if eligible else None


def _plus_days(session: Session, day, days: int):
    """SQL: the date `days` days after `day`."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(day, f"{days:+d} days")
    return day + days  # PostgreSQL: date + integer is a date


def _plus_months(session: Session, day, months: int):
    """SQL: the date `months` months after `day`, clamped to the end of a shorter month (31 January
    + 1 month = 28 February), as dateutil's relativedelta and PostgreSQL's interval do."""
    if session.get_bind().dialect.name == "sqlite":  # SQLite overflows into the next month: clamp it
        return func.min(func.date(day, f"{months:+d} months"),
                        func.date(day, "start of month", f"{months + 1:+d} months", "-1 day"))
    return cast(day + func.make_interval(0, months), Date)


def first_appointment_within(session: Session, days: int = 15, *, start: dt.date | None = None,
                             end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Share of first validated orientations (per path, validated in [start, end]) followed by an
    honoured appointment within `days` days of the validation. Only orientations validated at
    least `days` days before as_of are judged. One SQL aggregate (no loop over orientations)."""
    from sqlalchemy import case

    query, _orientation = _first_validated_orientations(start, end, structure_id)
    first = query.where(query.selected_columns.validated_on <= as_of - dt.timedelta(days=days)).subquery()
    honoured = exists(select(Appointment.id).where(
        Appointment.person_id == first.c.person_id, Appointment.status == "honoured",
        Appointment.scheduled_at >= first.c.validated_on,
        Appointment.scheduled_at < _plus_days(session, first.c.validated_on, days + 1)))  # by the limit day
    eligible, success = session.execute(select(func.count(), func.sum(case((honoured, 1), else_=0)))
                                        .select_from(first)).one()
    eligible, success = int(eligible or 0), int(success or 0)
    return {"days": days, "eligible": eligible, "success": success, "rate": _rate(eligible, success)}


def contract_within(session: Session, months: int = 1, *, days: int | None = None, start: dt.date | None = None,
                    end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Share of first validated orientations (per path, validated in [start, end]) with a contract
    signed within `months` months (or `days` days) of the orientation notice (first notification,
    else validation). Only orientations whose deadline is on or before as_of are judged. One SQL
    aggregate (no loop over orientations)."""
    from sqlalchemy import case

    query, _orientation = _first_validated_orientations(start, end, structure_id)
    sub = query.subquery()
    notice = func.date(sub.c.notice_on) if session.get_bind().dialect.name == "sqlite" else sub.c.notice_on
    limit = _plus_days(session, notice, days) if days is not None else _plus_months(session, notice, months)
    signed = exists(select(Contract.id).where(
        Contract.person_id == sub.c.person_id, Contract.signed_on.is_not(None),
        Contract.signed_on >= sub.c.validated_on, Contract.signed_on <= limit))
    eligible, success = session.execute(select(func.count(), func.sum(case((signed, 1), else_=0)))
                                        .select_from(sub).where(limit <= as_of)).one()
    eligible, success = int(eligible or 0), int(success or 0)
    return {"months": months if days is None else None, "days": days, "eligible": eligible, "success": success,
            "rate": _rate(eligible, success)}


def first_appointment_no_show_rate(session: Session, start: dt.date, end: dt.date,
                                   structure_id: int | None = None) -> dict:
    """Among first appointments scheduled in [start, end] whose outcome is known (honoured, no_show,
    excused), the share of no-shows."""
    from sqlalchemy import case

    lo = dt.datetime.combine(start, dt.time(0, 0))
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0))
    query = (select(func.count(Appointment.id), func.sum(case((Appointment.status == "no_show", 1), else_=0)))
             .where(Appointment.kind == "first", Appointment.status.in_(("honoured", "no_show", "excused")),
                    Appointment.scheduled_at >= lo, Appointment.scheduled_at < hi))
    if structure_id is not None:
        query = query.where(Appointment.structure_id == structure_id)
    total, no_show = session.execute(query).one()
    return {"appointments": total or 0, "no_show": int(no_show or 0), "rate": _rate(total or 0, int(no_show or 0))}


# ---------------------------------------------------------------------------------------------
# Daily alerts (scheduled in cases/jobs.py)
# ---------------------------------------------------------------------------------------------

def raise_daily_alerts(session: Session, as_of: dt.date) -> dict:
    """Contracts whose deadline passed and reviews due: one alert each (idempotent by key) and one
    timeline event from the job when the alert is new. Batched: the first run may meet thousands."""
    from orientation.models import Orientation

    everybody = _system_user()
    counts = {"contract_overdue": 0, "review_due": 0}
    contracts = overdue_contracts(session, everybody, as_of)
    reviews = reviews_due(session, everybody, as_of, within_days=0)
    ids = sorted({r["person_id"] for r in contracts} | {r["person_id"] for r in reviews})
    paths, structures = {}, {}
    for chunk in _chunks(ids):
        paths.update(dict(session.execute(select(PathModel.person_id, PathModel.id).where(
            PathModel.person_id.in_(chunk), PathModel.closed_on.is_(None)).order_by(PathModel.clock_start,
                                                                                    PathModel.id)).all()))
        structures.update(dict(session.execute(select(Orientation.person_id, Orientation.structure_id).where(
            Orientation.person_id.in_(chunk), Orientation.status == "validated")
            .order_by(Orientation.validated_on, Orientation.id)).all()))
    wanted = {}
    for r in contracts:
        pid = r["person_id"]
        key = f"contract_overdue:{pid}:{paths.get(pid)}:{r['contract_due_on']}"
        wanted[key] = ("contract_overdue", pid, r)
    for r in reviews:
        wanted[f"review_due:{r['person_id']}:{r['review_id']}"] = ("review_due", r["person_id"], r)
    known = set()
    keys = sorted(wanted)
    for i in range(0, len(keys), 2000):
        known.update(session.scalars(select(Alert.key).where(Alert.key.in_(keys[i:i + 2000]))))
    for key in keys:
        if key in known:
            continue
        kind, pid, r = wanted[key]
        if kind == "contract_overdue":
            due = r["contract_due_on"]
            message, data = f"Contrat d'engagement non signé: échéance du {due} dépassée", {"due_on": due}
            event = ("contract.overdue", f"Échéance du contrat dépassée ({due})")
        else:
            due = r["due_on"]
            message, data = f"Bilan du parcours à tenir (échéance {due})", {"review_id": r["review_id"], "due_on": due}
            event = ("review.due", f"Bilan à tenir (échéance {due})")
        session.add(Alert(key=key, kind=kind, message=message, raised_on=as_of, severity="warning", person_id=pid,
                          structure_id=structures.get(pid), data=data))
        add_event(session, pid, event[0], as_of, "job", summary=event[1], data=data, path_id=paths.get(pid))
        counts[kind] += 1
    session.flush()
    return counts


def _system_user() -> User:
    """An in-memory (never saved) manager used by jobs to see everybody through person_scope."""
    return User(id=None, email="job@local", role=Role.MANAGER.value, active=True)


# ---------------------------------------------------------------------------------------------
# `rsa demo` step
# ---------------------------------------------------------------------------------------------

def demo(ctx) -> dict:
    """Walk two persons with a validated orientation (a social path first) through a first
    appointment and a contract, and print the end of their timeline."""
    from orientation.models import Orientation

    walked = []
    with ctx.runtime.session() as session:
        # People with a validated orientation and no appointment yet (the kiosque books some).
        validated = (select(Orientation).where(Orientation.status == "validated", Orientation.validated_on.is_not(None),
                                               Orientation.validated_on <= ctx.as_of,
                                               ~exists(select(Appointment.id)
                                                       .where(Appointment.person_id == Orientation.person_id)))
                     .order_by(Orientation.validated_on, Orientation.id))
        candidates = list(session.scalars(validated.where(Orientation.referent_type == "mds").limit(1)))
        candidates += session.scalars(validated.where(Orientation.referent_type != "mds")
                                      .limit(2 - len(candidates))).all()
        if not candidates:
            ctx.echo("[parcours] aucune orientation validée: pas de parcours à suivre")
            return {"walked": []}
        for o in candidates:
            # Dates capped at as_of: the demo never records the future as done.
            met_on = min(o.validated_on + dt.timedelta(days=7), ctx.as_of)
            record_appointment(session, o.person_id, dt.datetime.combine(met_on, dt.time(10, 0)), "honoured",
                               kind="first", source="agent")
            record_contract(session, o.person_id, min(o.validated_on + dt.timedelta(days=14), ctx.as_of),
                            source="agent", objectives=[
                                {"theme": "employment", "text": "Définir un projet professionnel"},
                                {"theme": "mobility", "text": "Passer le permis B"}])
            walked.append(o.person_id)
        session.flush()
        for o in candidates:
            events = timeline(session, o.person_id)
            ctx.echo(f"[parcours] personne {o.person_id} (orientation {o.referent_type}): {len(events)} événements")
            for ev in events[-5:]:
                ctx.echo(f"    {ev['occurred_on']}  {ev['kind']:<22} {ev['summary']}")
        overdue = len(overdue_contracts(session, _system_user(), ctx.as_of))
        ctx.echo(f"[parcours] contrats d'engagement en retard au {ctx.as_of}: {overdue}")
    return {"walked": walked, "overdue_contracts": overdue}


def sync_path_sectors(session: Session, household_ids=None) -> int:
    """Copy each household's territory and MDS onto its paths (Path.territory_id / mds_id), for all
    households or only household_ids. Set-based; only paths whose copy differs are written. Returns
    their number. Every writer of Household.mds_id calls it; the nightly reconciliation of
    reports.service.refresh_path_outcomes calls it for everything."""
    from sqlalchemy import update

    h = Household
    differs = or_(PathModel.territory_id.is_distinct_from(h.territory_id), PathModel.mds_id.is_distinct_from(h.mds_id))
    stmt = (update(PathModel).where(PathModel.household_id == h.id, differs)
            .values(territory_id=h.territory_id, mds_id=h.mds_id))
    opts = {"synchronize_session": False}
    if household_ids is None:
        return session.execute(stmt, execution_options=opts).rowcount or 0
    ids, changed = sorted(set(household_ids)), 0
    for i in range(0, len(ids), 900):  # well under SQLite's bound-parameter limit
        changed += session.execute(stmt.where(h.id.in_(ids[i:i + 900])), execution_options=opts).rowcount or 0
    return changed


def apply_sectorisation(session: Session) -> int:
    """Recompute every household's denormalised MDS and territory from the current sectorisation
    (after `rsa referents load-sectorisation`). One UPDATE per distinct address key; returns the
    number of households whose sector changed."""
    from sqlalchemy import update

    from referents.service import SectorIndex

    index = SectorIndex(session)
    changed = 0
    keys = session.execute(select(Household.commune_insee, Household.postal_code, Household.mds_id,
                                  Household.territory_id).distinct()).all()
    for commune, postal_code, mds_id, territory_id in keys:
        sector = index.find(commune, postal_code).sector
        new = (sector.mds_id, sector.territory_id) if sector else (None, None)
        if new == (mds_id, territory_id):
            continue
        where = [Household.commune_insee.is_(None) if commune is None else Household.commune_insee == commune,
                 Household.postal_code.is_(None) if postal_code is None else Household.postal_code == postal_code,
                 Household.mds_id.is_(None) if mds_id is None else Household.mds_id == mds_id]
        result = session.execute(update(Household).where(*where).values(mds_id=new[0], territory_id=new[1]))
        changed += result.rowcount or 0
    if changed:
        sync_path_sectors(session)
    return changed
