"""Paths: the open path, the current referent (validated orientation), exits and reopening."""

from __future__ import annotations

import datetime as dt
import functools

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases import signals
from cases.models import CaseEvent, Contract, Exit
from cases.models import Path as PathModel
from cases.procedure import (
    TYPED_SOURCES,
    CaseValidationError,
    _check_source,
    _require_person,
    check_not_future,
    exit_reasons,
    procedure,
)
from cases.signals import orientations
from cases.timeline import _resolve_alerts, add_event
from referents.vocabulary import OrientationStatus


def open_path(session: Session, person_id: int) -> PathModel | None:
    """The person's current (not closed) path, the most recent when several are open."""
    return open_paths(session, [person_id]).get(person_id)


def open_paths(session: Session, person_ids) -> dict[int, PathModel]:
    """open_path of many persons at once (person id -> path; none for a person without an open path)."""
    out: dict[int, PathModel] = {}
    ids = sorted(set(person_ids))
    for i in range(0, len(ids), 5000):
        for path in session.scalars(select(PathModel).where(PathModel.person_id.in_(ids[i:i + 5000]),
                                                            PathModel.closed_on.is_(None))
                                    .order_by(PathModel.person_id, PathModel.clock_start.desc(), PathModel.id.desc())):
            out.setdefault(path.person_id, path)
    return out


def latest_path(session: Session, person_id: int) -> PathModel | None:
    """The open path, else the most recently started one."""
    return open_path(session, person_id) or session.scalar(
        select(PathModel).where(PathModel.person_id == person_id)
        .order_by(PathModel.clock_start.desc(), PathModel.id.desc()).limit(1))


@functools.cache
def _rows(view):
    """The read model's rows as a subquery, built once per view (the receiver answers the same one):
    making it and its column collection cost milliseconds on every call, every appointment and contract."""
    return view.rows.subquery()


def current_orientation(session: Session, person_id: int):
    """The person's current validated orientation as a row of the orientation read model (id,
    referent_type, structure_id, agent_id, validated_on, notified_on…; cases/signals.py) or None."""
    return current_orientations(session, [person_id]).get(person_id)


def current_orientations(session: Session, person_ids) -> dict:
    """current_orientation of many persons at once (person id -> row; none for a person without one)."""
    o = _rows(orientations())
    out: dict = {}
    ids = sorted(set(person_ids))
    for i in range(0, len(ids), 5000):
        for row in session.execute(select(o).where(o.c.person_id.in_(ids[i:i + 5000]),
                                                   o.c.status == OrientationStatus.VALIDATED)
                                   .order_by(o.c.person_id, o.c.validated_on.desc(), o.c.id.desc())):
            out.setdefault(row.person_id, row)
    return out


def is_positive_exit(reason: str) -> bool:
    return bool(exit_reasons().get(reason, {}).get("positive", False))


def record_exit(session: Session, person_id: int, exit_on: dt.date, reason: str, *, source: str,
                structure_id: int | None = None, details: str | None = None,
                author_id: int | None = None, as_of: dt.date | None = None) -> Exit:
    """Record the exit of the person's path and close it (close_reason "exit:<reason>").

    One exit per path: a flow closure arriving after a provider or referent exit returns the
    existing exit (and notes the confirmation in the timeline) instead of creating a second one;
    a provider or referent exit arriving after the flow's qualifies it (reason, date, structure)."""
    _check_source(source)
    reasons = exit_reasons()
    if reason not in reasons:
        raise CaseValidationError({"reason": [f"motif de sortie inconnu {reason!r} (attendu: {', '.join(reasons)})"]})
    _require_person(session, person_id)
    check_not_future("exit_on", "Date de sortie", exit_on, source, as_of)
    path = latest_path(session, person_id)
    existing = session.scalar(select(Exit).where(Exit.person_id == person_id, Exit.path_id == path.id)
                              .order_by(Exit.id).limit(1)) if path is not None else None
    # A new exit typed by a person never precedes the path (a flow's closure being qualified keeps
    # the referent's date: the flow only knew that the right closed).
    if existing is None and source in TYPED_SOURCES and path is not None and exit_on < path.clock_start:
        raise CaseValidationError({"exit_on": [f"Date de sortie: le {exit_on:%d/%m/%Y} précède le début du parcours "
                                               f"({path.clock_start:%d/%m/%Y})"]})
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
    if orientation is not None:  # the orientation package ends it (same transaction)
        signals.answer(signals.exit_recorded, session, person_id=person_id, orientation_id=orientation.id,
                       exit_on=exit_on)
    for contract in session.scalars(select(Contract).where(Contract.person_id == person_id,
                                                           Contract.status.in_(("pending", "signed")))):
        contract.status = "ended"
    session.flush()
    add_event(session, person_id, "exit.recorded", exit_on, source,
              summary=f"Sortie: {reasons[reason]['label']}" + (" (sortie positive)" if positive else ""),
              data={"exit_id": ex.id, "reason": reason, "positive": positive, "structure_id": structure_id,
                    "details": details}, path_id=ex.path_id, author_id=author_id)
    _resolve_alerts(session, f"contract_overdue:{person_id}:", exit_on, person_id)
    _resolve_alerts(session, f"review_due:{person_id}:", exit_on, person_id)
    return ex


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
    if path_id is None:
        return None
    o = _rows(orientations())
    return session.scalar(select(o.c.structure_id).where(o.c.path_id == path_id, o.c.validated_on.is_not(None))
                          .order_by(o.c.validated_on.desc(), o.c.id.desc()).limit(1))


def reopening_applies(session: Session, person_id: int, reopened_on: dt.date) -> bool:
    """True when the person's last path was closed less than 12 months (procedure.yaml) before
    `reopened_on`: the flow importer then opens the new path with opening_reason "reopening"."""
    last_closed = session.scalar(select(func.max(PathModel.closed_on)).where(
        PathModel.person_id == person_id, PathModel.closed_on.is_not(None), PathModel.closed_on <= reopened_on))
    if last_closed is None:
        return False
    return reopened_on <= last_closed + relativedelta(months=procedure()["reopening"]["within_months"])


