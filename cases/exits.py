"""Exits: the end of a person's path (flow closure, provider or referent exit), one per path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from cases import signals
from cases.batches import distinct_runs
from cases.models import Alert, CaseEvent, Contract, Exit
from cases.models import Path as PathModel
from cases.paths import _rows, current_orientations, open_paths
from cases.procedure import (
    TYPED_SOURCES,
    CaseValidationError,
    _check_source,
    _require_persons,
    check_not_future,
    exit_reasons,
)
from cases.signals import orientations
from cases.timeline import add_event

# The alerts an exit resolves: those raised for the person's contract and review (keys
# "<prefix><person id>:…", cases.followup.raise_daily_alerts).
_RESOLVED_BY_EXIT = ("contract_overdue:", "review_due:")
_RUN = 2000  # persons per run: a bounded number of statements for each


@dataclass(frozen=True)
class ExitIn:
    """One exit to record (record_exits): the arguments of record_exit."""

    person_id: int
    exit_on: dt.date
    reason: str
    structure_id: int | None = None
    details: str | None = None
    as_of: dt.date | None = None


def is_positive_exit(reason: str) -> bool:
    return bool(exit_reasons().get(reason, {}).get("positive", False))


def record_exit(session: Session, person_id: int, exit_on: dt.date, reason: str, *, source: str,
                structure_id: int | None = None, details: str | None = None,
                author_id: int | None = None, as_of: dt.date | None = None) -> Exit:
    """Record the exit of the person's path and close it (close_reason "exit:<reason>").

    One exit per path: a flow closure arriving after a provider or referent exit returns the
    existing exit (and notes the confirmation in the timeline) instead of creating a second one;
    a provider or referent exit arriving after the flow's qualifies it (reason, date, structure)."""
    return record_exits(session, [ExitIn(person_id, exit_on, reason, structure_id, details, as_of)],
                        source=source, author_id=author_id)[0]


def record_exits(session: Session, items, *, source: str, author_id: int | None = None,
                 take_ids: Callable[[int], list[int]] | None = None) -> list[Exit]:
    """record_exit for many exits (ExitIn), in the given order, with the same checks, rows, timeline
    events, ended orientations and contracts, resolved alerts and due-date hooks. The checks that
    need no path come first (nothing is written when one fails); then runs of distinct persons,
    each reading what it depends on (the persons' latest paths, their exits, current orientations,
    the structures of their paths, pending contracts, open alerts) in a bounded number of
    statements, checking its exits against the paths, then writing with one flush. A person given
    twice starts a new run, which reads what the previous one wrote: the result is that of calling
    record_exit for each item in turn. `take_ids(n)`: n primary keys for the new exits, given by a
    caller that holds the database's write lock (a flow import on SQLite): with their keys set, the
    exits are inserted by one executemany instead of one INSERT … RETURNING each (SQLite: the 19,550
    closures of a 1M-household re-import, 2.4 s of flush under the profiler)."""
    items = list(items)
    _check_source(source)
    reasons = exit_reasons()
    for it in items:
        if it.reason not in reasons:
            raise CaseValidationError({"reason": [f"motif de sortie inconnu {it.reason!r} "
                                                  f"(attendu: {', '.join(reasons)})"]})
    _require_persons(session, [it.person_id for it in items])
    for it in items:
        check_not_future("exit_on", "Date de sortie", it.exit_on, source, it.as_of)
    out: list[Exit] = []
    for run in distinct_runs(items, lambda it: it.person_id, _RUN):
        out += _record_exit_run(session, run, source, author_id, take_ids)
    return out


def _record_exit_run(session: Session, run: list[ExitIn], source: str, author_id: int | None,
                     take_ids: Callable[[int], list[int]] | None) -> list[Exit]:
    """record_exits for items of distinct persons."""
    reasons = exit_reasons()
    ids = [it.person_id for it in run]
    path_of = _latest_paths(session, ids)
    existing = _first_exits(session, {pid: p.id for pid, p in path_of.items()})
    # A new exit typed by a person never precedes the path (a flow's closure being qualified keeps
    # the referent's date: the flow only knew that the right closed).
    if source in TYPED_SOURCES:
        for it in run:
            path = path_of.get(it.person_id)
            if it.person_id not in existing and path is not None and it.exit_on < path.clock_start:
                raise CaseValidationError({"exit_on": [
                    f"Date de sortie: le {it.exit_on:%d/%m/%Y} précède le début du parcours "
                    f"({path.clock_start:%d/%m/%Y})"]})
    new = [it for it in run if it.person_id not in existing]
    orientation_of = current_orientations(session, [it.person_id for it in new]) if new else {}
    structure_of = _path_structures(session, [
        path_of[it.person_id].id for it in new
        if it.structure_id is None and it.person_id in path_of
        and getattr(orientation_of.get(it.person_id), "structure_id", None) is None] + [
        ex.path_id for ex in existing.values()
        if ex.source == "flow" and source != "flow" and ex.structure_id is None])
    confirmed = _confirmed(session, [ex for ex in existing.values() if ex.source != "flow"]) if source == "flow" else set()

    # plan: per item, ("exit", Exit, structure) to create, or ("existing", Exit) to qualify or confirm
    plan: list[tuple] = []
    ends: list[tuple[int, dt.date]] = []
    new_ids = iter(take_ids(len(new))) if take_ids else None
    for it in run:
        ex = existing.get(it.person_id)
        if ex is not None:
            plan.append(("existing", it, ex))
            continue
        path = path_of.get(it.person_id)
        orientation = orientation_of.get(it.person_id)
        structure_id = it.structure_id
        if structure_id is None and orientation is not None:
            structure_id = orientation.structure_id
        if structure_id is None and path is not None:
            structure_id = structure_of.get(path.id)
        ex = Exit(id=next(new_ids) if new_ids else None,
                  person_id=it.person_id, path_id=path.id if path else None, structure_id=structure_id,
                  exit_on=it.exit_on, reason=it.reason, positive=is_positive_exit(it.reason), source=source,
                  details=it.details)
        session.add(ex)
        if path is not None and path.closed_on is None:
            path.closed_on = it.exit_on
            path.close_reason = f"exit:{it.reason}"
        if orientation is not None:
            ends.append((orientation.id, it.exit_on))
        plan.append(("new", it, ex))
    if ends:  # the orientation package ends them (same transaction)
        signals.answer(signals.exits_recorded, session, ends=ends)
    ending = {it.person_id: it for kind, it, _ in plan if kind == "new"}
    if ending:
        for contract in session.scalars(select(Contract).where(Contract.person_id.in_(list(ending)),
                                                               Contract.status.in_(("pending", "signed")))):
            contract.status = "ended"
    session.flush()

    # The "exit.recorded" events as bulk INSERTs (no ids to read back, no unit of work): on a re-import's
    # 1,900 closures the unit of work inserted them one statement at a time on SQLite (no batch with
    # RETURNING without a sentinel column), about 1 s of a 10 s 5 %-changed re-import at 100k. Those
    # pending are written before any other event (add_event below): the timeline keeps the items' order.
    recorded: list[dict] = []

    def write_recorded():
        if recorded:
            session.execute(insert(CaseEvent), recorded)  # (its autoflush writes the earlier add_event first)
            recorded.clear()

    for kind, it, ex in plan:
        if kind == "new":
            recorded.append({
                "person_id": it.person_id, "path_id": ex.path_id, "kind": "exit.recorded", "occurred_on": it.exit_on,
                "source": source, "author_id": author_id,
                "summary": f"Sortie: {reasons[it.reason]['label']}" + (" (sortie positive)" if ex.positive else ""),
                "data": {"exit_id": ex.id, "reason": it.reason, "positive": ex.positive,
                         "structure_id": ex.structure_id, "details": it.details}})
            continue
        write_recorded()
        if ex.source == "flow" and source != "flow":
            _qualify_flow_exit(session, ex, it.exit_on, it.reason, source, it.structure_id, it.details, author_id,
                               structure_of)
        elif source == "flow" and ex.source != "flow" and (ex.person_id, ex.path_id) not in confirmed:
            add_event(session, it.person_id, "exit.confirmed", it.exit_on, source,
                      summary=f"Fin de droit confirmée par le flux ({reasons[it.reason]['label']})",
                      data={"exit_id": ex.id, "reason": it.reason}, path_id=ex.path_id, author_id=author_id)
    write_recorded()
    if ending:
        _resolve_exit_alerts(session, ending)
    return [ex for _kind, _it, ex in plan]


def _latest_paths(session: Session, person_ids: list[int]) -> dict[int, PathModel]:
    """cases.paths.latest_path of many persons: the open path, else the most recently started one."""
    out = open_paths(session, person_ids)
    rest = sorted(set(person_ids) - set(out))
    if rest:
        for path in session.scalars(select(PathModel).where(PathModel.person_id.in_(rest))
                                    .order_by(PathModel.person_id, PathModel.clock_start.desc(), PathModel.id.desc())):
            out.setdefault(path.person_id, path)
    return out


def _first_exits(session: Session, path_of: dict[int, int]) -> dict[int, Exit]:
    """person id -> the first exit recorded on that person's given path (one exit per path)."""
    if not path_of:
        return {}
    out: dict[int, Exit] = {}
    for ex in session.scalars(select(Exit).where(Exit.person_id.in_(list(path_of)),
                                                 Exit.path_id.in_(list(path_of.values()))).order_by(Exit.id)):
        if path_of.get(ex.person_id) == ex.path_id:
            out.setdefault(ex.person_id, ex)
    return out


def _confirmed(session: Session, exits: list[Exit]) -> set[tuple[int, int]]:
    """(person, path) of these exits whose confirmation by the flow is already in the timeline."""
    if not exits:
        return set()
    return set(session.execute(select(CaseEvent.person_id, CaseEvent.path_id).distinct().where(
        CaseEvent.person_id.in_([ex.person_id for ex in exits]), CaseEvent.kind == "exit.confirmed",
        CaseEvent.path_id.in_([ex.path_id for ex in exits]))).all())


def _path_structures(session: Session, path_ids: list[int]) -> dict[int, int | None]:
    """path id -> the structure of the path's last validated orientation (paths without one absent)."""
    ids = sorted(set(path_ids))
    if not ids:
        return {}
    o = _rows(orientations())
    out: dict[int, int | None] = {}
    for path_id, structure_id in session.execute(
            select(o.c.path_id, o.c.structure_id).where(o.c.path_id.in_(ids), o.c.validated_on.is_not(None))
            .order_by(o.c.path_id, o.c.validated_on.desc(), o.c.id.desc())):
        out.setdefault(path_id, structure_id)
    return out


def _resolve_exit_alerts(session: Session, ending: dict[int, ExitIn]) -> None:
    """The open contract and review alerts of the persons who exit are resolved on their exit day
    (their keys "<prefix><person id>:…"; the person's index narrows the search, cases.timeline)."""
    for alert in session.scalars(select(Alert).where(
            Alert.person_id.in_(list(ending)), Alert.resolved_on.is_(None),
            or_(*(Alert.key.startswith(p, autoescape=True) for p in _RESOLVED_BY_EXIT)))):
        if alert.key.startswith(tuple(f"{p}{alert.person_id}:" for p in _RESOLVED_BY_EXIT)):
            alert.resolved_on = ending[alert.person_id].exit_on


def _qualify_flow_exit(session: Session, ex: Exit, exit_on: dt.date, reason: str, source: str,
                       structure_id: int | None, details: str | None, author_id: int | None,
                       structure_of: dict[int, int | None]) -> Exit:
    """A referent or provider qualifies an exit the flow recorded first (the flow only knows that the
    right closed; the referent knows it was, say, a job): the reason, date and structure become theirs."""
    if structure_id is None:
        structure_id = ex.structure_id or structure_of.get(ex.path_id)
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
