"""Read views of a person: scoped search, the person file, the current orientation as shown."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases import signals
from cases.contracts import contract_deadline, needs_new_contract
from cases.diagnostics import latest_diagnostic
from cases.followup import _due_dates, _empty_due
from cases.models import Appointment, Contract, Diagnostic, Exit, Household, Person, Review, Sanction
from cases.models import Path as PathModel
from cases.paths import latest_path, open_path
from cases.procedure import _iso, exit_reasons
from cases.sanctions import ep_deemed_on, sanction_end
from cases.scope import scoped_persons
from referents.models import User


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
    ids = [p.id for p in persons]
    households = {h.id: h for h in session.execute(
        select(Household.id, Household.matricule, Household.organism, Household.commune_insee)
        .where(Household.id.in_({p.household_id for p in persons if p.household_id is not None} or {-1})))}
    open_paths = set(session.scalars(select(PathModel.person_id)
                                     .where(PathModel.person_id.in_(ids or [-1]), PathModel.closed_on.is_(None))))
    orientations, v = {}, signals.orientations().rows.subquery().c
    for o in session.execute(select(v.person_id, v.referent_type, v.structure_id)
                             .where(v.person_id.in_(ids or [-1]), v.status == "validated")
                             .order_by(v.validated_on, v.id)):
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
    """The current orientation as shown with a person, as the orientation package summarises it."""
    return signals.answer(signals.orientation_summary, session, person_id=person_id)


def next_due_dates(session: Session, person_id: int, as_of: dt.date) -> dict:
    """Contract deadline, review, next appointment, end of suspension, for one person."""
    return _due_dates(session, [person_id], as_of).get(person_id, _empty_due())


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


