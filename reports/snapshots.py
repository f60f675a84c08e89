"""Stored reports (issue 21 item 5): the dashboards' reports are served from a snapshot in the
database instead of aggregating the whole population on every request (8–9 s of CPU at a million
persons). docs/reports.md, "Chiffres calculés le …", explains the design; in short:

- one row of `report_snapshot` per (report, scope of the caller, normalised parameters), shared by
  every gunicorn worker and host; the scope is in the key, so an MDS never reads another's figures;
- the snapshot caches the *result* of the one computation (reports.service): the API, the dashboard
  and the xlsx read the same payload, no indicator is written twice;
- a snapshot is fresh while it is younger than RSA_REPORT_CACHE_MINUTES (config.clock, injectable)
  and no bulk change (`data_changed`: an import, the orientation run, the nightly jobs) came after
  the one it reflects; `refresh` recomputes now;
- one request computes a missing or stale snapshot: it claims the row (insert-on-conflict, or a
  conditional update: the same on SQLite and PostgreSQL), the others wait for its result.

No Flask here: plain functions over a SQLAlchemy session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from config import clock
from config.db import utcnow
from referents.models import Role
from reports.indicators import ReportFilter
from reports.models import ReportDataChange, ReportSnapshot

log = logging.getLogger(__name__)

# A claim older than this is abandoned (a worker killed mid-computation): another request takes it.
LEASE = dt.timedelta(minutes=10)
# How long a request waits for another's computation of the same snapshot before computing it
# itself (without storing it): below gunicorn's 120 s timeout.
WAIT_SECONDS = 90.0
POLL_SECONDS = 0.1
DEPARTEMENT = "departement"  # the scope of whoever sees everybody (admin, manager, the system)
_T = ReportSnapshot.__table__


@dataclass(frozen=True)
class Snapshot:
    """A report's payload and what it reflects."""

    payload: dict
    computed_at: dt.datetime  # config.clock.now() when its computation started
    cached: bool  # read from the table (True) or computed for this request
    data_version: int  # the last bulk change it reflects (report_data_change.id, 0: none)
    data_changed_at: dt.datetime | None = None
    data_source: str | None = None

    @property
    def label(self) -> str:
        """The sentence the pages show."""
        return f"Chiffres calculés le {self.computed_at:%d/%m/%Y à %H:%M}"


def scope_key(user) -> str:
    """Whose eyes: everything about the user that a report depends on. The person scope
    (cases.scope.person_scope: role, structure, territory) and the kiosque and after-orientation
    sections (role, structure). Whoever sees everybody shares one key; every other user's key
    names role, structure and territory, so two MDS never share a snapshot."""
    if user is None or user.role in (Role.ADMIN, Role.MANAGER):
        return DEPARTEMENT
    return f"{user.role}:s{user.structure_id or '-'}:t{user.territory_id or '-'}"


def params_of(f: ReportFilter) -> dict:
    """The normalised parameters: the effective cohort period (an explicit default and no period
    give one key), as-of date, territory and MDS."""
    start, end = f.period
    return {"as_of": f.as_of.isoformat(), "from": start.isoformat(), "to": end.isoformat(),
            "territory_id": f.territory_id, "mds_id": f.mds_id}


def key_of(report: str, scope: str, params: dict) -> str:
    text = json.dumps([report, scope, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def data_version(session: Session) -> tuple[int, dt.datetime | None, str | None]:
    """The last bulk change: (id, when, source); (0, None, None) before the first one."""
    row = session.execute(select(ReportDataChange.id, ReportDataChange.changed_at, ReportDataChange.source)
                          .order_by(ReportDataChange.id.desc()).limit(1)).first()
    return (row[0], row[1], row[2]) if row else (0, None, None)


def data_changed(session: Session, source: str) -> int:
    """Record a bulk change of the data the reports summarise: every snapshot is stale from now on
    (and deleted: the next request computes it again). Commits. Returns the new data version."""
    change = ReportDataChange(source=source[:80], changed_at=clock.now())
    session.add(change)
    session.flush()
    # a computation still running keeps its claim row; it will be judged stale by its version
    session.execute(delete(ReportSnapshot).where(ReportSnapshot.computing_since.is_(None)))
    session.execute(delete(ReportDataChange).where(ReportDataChange.id < change.id - 1000))
    session.commit()
    log.info("reports: data changed (%s), snapshots invalidated", source)
    return change.id


def _fresh(row, version: int, max_age: dt.timedelta, now: dt.datetime) -> bool:
    return (row.payload is not None and row.data_version == version and row.computed_at is not None
            and row.computed_at <= now and now - row.computed_at < max_age)


def _snapshot(row, cached: bool, version: tuple) -> Snapshot:
    return Snapshot(payload=row.payload, computed_at=row.computed_at, cached=cached, data_version=row.data_version,
                    data_changed_at=version[1] if row.data_version == version[0] else None,
                    data_source=version[2] if row.data_version == version[0] else None)


def _insert(session: Session):
    # Core statements on the table (not ORM-enabled ones): their row count is the driver's.
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(_T)


def _claim(session: Session, key: str, row, report: str, scope: str, params: dict) -> str | None:
    """Take the computation of the snapshot `key`: a new row (insert-on-conflict-do-nothing), or the
    row as it was read (conditional update: nobody claimed it since, or the claim is abandoned).
    On both databases exactly one of concurrent claimers gets its row back. Commits."""
    token = uuid.uuid4().hex
    now = utcnow()
    if row is None:
        stmt = (_insert(session).values(key=key, report=report, scope=scope, params=params, computation=token,
                                        computing_since=now).on_conflict_do_nothing(index_elements=["key"]))
    else:
        stmt = (update(_T).where(_T.c.key == key, _T.c.computation == row.computation,
                                 or_(_T.c.computing_since.is_(None), _T.c.computing_since < now - LEASE))
                .values(computation=token, computing_since=now))
    # RETURNING rather than the row count (psycopg gives -1 for an INSERT … ON CONFLICT here)
    won = session.execute(stmt.returning(_T.c.key)).first() is not None
    session.commit()
    return token if won else None


def _json(payload: dict) -> dict:
    """What every reader gets, computed or stored: the payload through JSON (a cached answer and a
    fresh one are then the same objects, to the type)."""
    return json.loads(json.dumps(payload))


def cached(session: Session, report: str, f: ReportFilter, compute: Callable[[], dict], *,
           max_age: dt.timedelta, refresh: bool = False) -> Snapshot:
    """The report `report` for the filter `f` (its user's scope included): the stored snapshot when
    fresh, else computed by `compute()` (by this request, or by the one that claimed it first) and
    stored. `refresh`: a snapshot computed after this call, whatever the age of the stored one.

    Commits the session (the claim must be seen by the other workers before the computation):
    call it with no pending write you want to roll back."""
    if max_age <= dt.timedelta(0):  # snapshots switched off: every request computes
        return Snapshot(_json(compute()), clock.now(), False, data_version(session)[0])
    scope, params = scope_key(f.user), params_of(f)
    key = key_of(report, scope, params)
    session.commit()
    deadline = time.monotonic() + WAIT_SECONDS
    seen = None  # the computation of the row as first read: a refresh wants another one
    first = True
    while True:
        version = data_version(session)
        row = session.execute(select(_T).where(_T.c.key == key)).first()
        if first:  # a computation already running when we ask is as good as ours
            seen, first = (row.computation if row is not None and row.computing_since is None else None), False
        elif refresh and row is not None and row.computation != seen and row.computing_since is None:
            refresh = False  # another request recomputed it meanwhile: that is "now" for us too
        if row is not None and not refresh and _fresh(row, version[0], max_age, clock.now()):
            session.commit()
            return _snapshot(row, True, version)
        if row is None or row.computing_since is None or row.computing_since < utcnow() - LEASE:
            token = _claim(session, key, row, report, scope, params)
            if token is not None:
                return _compute_and_store(session, key, token, version, compute)
        else:
            session.commit()  # a new transaction for the next look (SQLite reads a snapshot per transaction)
        if time.monotonic() > deadline:
            log.warning("reports: %s (%s) still being computed elsewhere after %.0f s: computed here too",
                        report, scope, WAIT_SECONDS)
            return Snapshot(_json(compute()), clock.now(), False, version[0])
        time.sleep(POLL_SECONDS)


def _compute_and_store(session: Session, key: str, token: str, version: tuple, compute) -> Snapshot:
    started, t0 = clock.now(), time.perf_counter()
    try:
        payload = _json(compute())
    except BaseException:
        try:  # release the claim: the next request computes at once instead of waiting for the lease
            session.rollback()
            session.execute(update(_T).where(_T.c.key == key, _T.c.computation == token).values(computing_since=None))
            session.commit()
        except Exception:  # noqa: BLE001 - the computation's own error is the one to raise
            log.exception("reports: could not release the claim of %s", key)
        raise
    ms = int((time.perf_counter() - t0) * 1000)
    # Stored only if our claim still holds (a bulk change deletes the rows; an abandoned claim is
    # taken over): the payload is returned to our caller either way.
    session.execute(update(_T).where(_T.c.key == key, _T.c.computation == token)
                    .values(payload=payload, computed_at=started, data_version=version[0], compute_ms=ms,
                            computing_since=None))
    session.commit()
    return Snapshot(payload, started, False, version[0], version[1], version[2])


def prune(session: Session, older_than: dt.timedelta) -> int:
    """Delete the snapshots computed more than `older_than` ago (past as-of dates nobody asks for
    any more). Commits."""
    cutoff = clock.now() - older_than
    n = session.execute(delete(_T).where(_T.c.computing_since.is_(None),
                                         or_(_T.c.computed_at.is_(None), _T.c.computed_at < cutoff))).rowcount
    session.commit()
    return n


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ReportSnapshot)) or 0



def stored_report(session: Session, name: str, f: ReportFilter, *, max_age: dt.timedelta,
                  refresh: bool = False) -> Snapshot:
    """One of the reports of reports.service through its snapshot: `delays` (the API's delay report)
    or `full` (the dashboard, the /full report and the xlsx). The computation is the service's: a
    snapshot never has its own definition of an indicator."""
    from reports import service

    computations = {"delays": service.delays, "full": service.full_report}
    return cached(session, name, f, lambda: computations[name](session, f), max_age=max_age, refresh=refresh)


def warm(session: Session, as_of: dt.date, *, max_age: dt.timedelta, ahead: dt.timedelta = dt.timedelta(0)) -> dict:
    """Compute, before anyone asks, the reports the day's requests ask for most, with the default
    filters of the day: the dashboard (`full`) and the delay report of the whole Département, and
    the delay report of each scope that has an active user (one user stands for the scope: the key
    is the scope's, not the user's). A snapshot is recomputed when it is stale or would be within
    `ahead` (the time until the next warm-up): the users of these reports never wait for one."""
    from referents.models import User

    users = session.scalars(select(User).where(User.active, User.role.notin_((Role.ADMIN, Role.MANAGER)))
                            .order_by(User.id)).all()
    by_scope = {}
    for user in users:
        by_scope.setdefault(scope_key(user), user)
    soon = max_age - ahead if max_age - ahead > dt.timedelta(0) else max_age / 2
    done = {"computed": 0, "fresh": 0, "scopes": 1 + len(by_scope)}
    wanted = [("full", None), ("delays", None)] + [("delays", user) for user in by_scope.values()]
    for name, user in wanted:
        snap = stored_report(session, name, ReportFilter(as_of=as_of, user=user), max_age=soon)
        done["fresh" if snap.cached else "computed"] += 1
    return done
