"""A path's decision (Path.oriented_on, oriented_referent_type, oriented_origin, oriented_rule): the
denormalised copy of its first validated orientation, maintained here because it is orientation's
data. Every writer that validates an orientation calls mark_path_oriented in its own transaction;
the nightly reconciliation (refresh_path_outcomes, job `orientation.refresh_path_outcomes`) repairs
writes that bypassed the service. The reports only read these columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import BigInteger, Date, Integer, case, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from cases.followup import touch_due
from cases.models import Path
from cases.service import sync_path_sectors
from orientation.models import Orientation

TIE_BREAK = 2**32  # ids stay far below: (day, id) packed into one sortable integer
OUTCOME_CHUNK = 2000  # paths per statement: well under SQLite's bound-parameter limit
OUTCOME_COLUMNS = {"oriented_on": "decided", "oriented_referent_type": "referent_type",
                   "oriented_origin": "origin", "oriented_rule": "rule", "oriented_parcours": "parcours"}


def _days_since_epoch(dialect: str, day):
    epoch = literal(dt.date(1970, 1, 1), Date)
    if dialect == "sqlite":
        return cast(func.julianday(day) - func.julianday(epoch), Integer)
    return day - epoch  # PostgreSQL: date - date is an integer number of days


def first_validated_orientations(dialect: str, as_of: dt.date | None = None, path_ids=None):
    """Per path, the first orientation that reached validation (on or before as_of when given): the
    earliest validated_on, ties broken by the lowest id. Later statuses (ended, superseded) do not
    matter: what counts is that it was validated. THE definition of a path's decision: the reports
    read it from the path's oriented_* columns, written from this query by path_outcome_updates.

    (validated_on, id) is packed into one integer so that a plain MIN … GROUP BY path_id finds
    it, then the row is fetched by primary key: the same result on both databases, without a
    window over every orientation. path_ids restricts it to a few paths (index on path_id)."""
    o = Orientation
    day = _days_since_epoch(dialect, o.validated_on)
    key = cast(day, BigInteger) * literal(TIE_BREAK, BigInteger) + o.id
    firsts = select(o.path_id.label("path_id"), func.min(key).label("k")).where(o.path_id.is_not(None))
    if as_of is not None:
        # The date condition is on the computed day number: one sequential pass over the orientations
        # rather than a walk of the validated_on index fetching rows one by one.
        firsts = firsts.where(day <= (as_of - dt.date(1970, 1, 1)).days)
    else:
        firsts = firsts.where(o.validated_on.is_not(None))
    if path_ids is not None:
        firsts = firsts.where(o.path_id.in_(path_ids))
    firsts = firsts.group_by(o.path_id).subquery("firsts")
    return (select(firsts.c.path_id, o.person_id, o.validated_on.label("decided"), o.referent_type, o.origin,
                   o.rule_id.label("rule"), o.parcours, o.structure_id)
            .select_from(firsts).join(o, o.id == firsts.c.k % literal(TIE_BREAK, BigInteger)))


def path_outcome_updates(dialect: str, path_ids=None) -> list:
    """The statements that write each path's oriented_* columns from first_validated_orientations
    (all paths, or only path_ids): an UPDATE … FROM setting the decision where it differs (a first
    orientation recorded for another person than the path's counts as none, as in the reports), then
    one clearing paths left with no validated orientation at all. Runs on SQLite and PostgreSQL."""
    first = first_validated_orientations(dialect, path_ids=path_ids).subquery("first_decision")
    same_person = first.c.person_id == Path.person_id
    values = {col: case((same_person, first.c[src]), else_=None) for col, src in OUTCOME_COLUMNS.items()}
    changed = or_(*[getattr(Path, col).is_distinct_from(v) for col, v in values.items()])
    set_first = update(Path).where(Path.id == first.c.path_id, changed).values(**values)
    validated = (select(Orientation.id).where(Orientation.path_id == Path.id, Orientation.validated_on.is_not(None))
                 .exists())
    clear = update(Path).where(Path.oriented_on.is_not(None), ~validated).values(**dict.fromkeys(OUTCOME_COLUMNS))
    if path_ids is not None:
        set_first = set_first.where(Path.id.in_(path_ids))
        clear = clear.where(Path.id.in_(path_ids))
    return [set_first, clear]


def update_path_outcomes(session: Session, path_ids=None) -> int:
    """Write the oriented_* columns of the given paths (all when None) from their first validated
    orientation. Returns the number of paths changed."""
    dialect = session.get_bind().dialect.name
    # Set-based statements: no per-row synchronisation of the session (Path objects already loaded
    # keep their old values until expired).
    opts = {"synchronize_session": False}
    if path_ids is None:
        return sum(session.execute(stmt, execution_options=opts).rowcount
                   for stmt in path_outcome_updates(dialect))
    ids, changed = sorted(set(path_ids)), 0
    for i in range(0, len(ids), OUTCOME_CHUNK):
        chunk = ids[i:i + OUTCOME_CHUNK]
        changed += sum(session.execute(stmt, execution_options=opts).rowcount
                       for stmt in path_outcome_updates(dialect, chunk))
    return changed


def mark_path_oriented(session: Session, path_ids: Iterable[int | None]) -> int:
    """Keep the paths' outcome in step with their first validated orientation: called wherever an
    orientation becomes validated, in the same transaction. The columns are recomputed from the
    orientations of these paths, so a later validation never overwrites the first one. Returns the
    number of paths changed."""
    ids = [i for i in path_ids if i is not None]
    if not ids:
        return 0
    # A validation starts the contract's month: the persons' stored due dates follow (cases.followup).
    for k in range(0, len(ids), OUTCOME_CHUNK):
        touch_due(session, session.scalars(select(Path.person_id).where(Path.id.in_(ids[k:k + OUTCOME_CHUNK]))))
    return update_path_outcomes(session, ids)


def refresh_path_outcomes(session: Session) -> int:
    """Full recompute of every path's outcome and sector: the reconciliation of any write to the
    orientations or to the households' sectors that bypassed orientation and
    cases.service.sync_path_sectors (hand-made rows, SQL fixes). Set-based, only changed rows are
    rewritten; returns their number (0 when everything was already maintained)."""
    return update_path_outcomes(session) + sync_path_sectors(session)
