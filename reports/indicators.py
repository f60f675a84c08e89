"""The indicators: one function per indicator, one definition each (see docs/indicators.md).

Everything is aggregated in SQL. The per-path facts (clock starts, first validated decision,
territory, MDS, referent type…) are computed once per report into a temporary table, then every
indicator is a GROUP BY over it. Percentiles use ONE definition on both databases: linear
interpolation between the closest ranks (the definition of PostgreSQL `percentile_cont` and of
numpy's default), computed by the same portable SQL from the histogram of delays (delays are whole
days), with integer arithmetic up to the final division, so SQLite and PostgreSQL give identical
results.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path as FsPath

from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from cases.models import OPEN_RIGHT_STATES, Household, Path, Person
from orientation.models import Orientation
from referents.models import Structure, Territory, User

CLOCKS = ("demande", "legal")
THRESHOLDS = (30, 42, 90)
TARGET_DAYS = 30
LEGAL_LIMIT_DAYS = 42
# Backlog bands: (key, lowest age in days, highest age in days or None).
BANDS = (("0-14", 0, 14), ("15-29", 15, 29), ("30-41", 30, 41), ("42-89", 42, 89), ("90+", 90, None))
# Percentiles as exact fractions (numerator, denominator): integer arithmetic in SQL.
PERCENTILES = {"median_days": (1, 2), "p90_days": (9, 10)}
# Breakdown dimension → column of the facts table (per clock for the month).
DIMENSIONS = ("month", "territory", "mds", "referent_type", "origin", "rule")
SENIORITY_BANDS = (("<6m", 0, 182), ("6-12m", 183, 364), (">=1y", 365, None))
FIRST_APPOINTMENT_DAYS = 15
CONTRACT_DAYS = 30
NATIONAL_REFERENCE = FsPath(__file__).resolve().parent / "data" / "national_reference.csv"
NULL_KEY = ""  # how a NULL breakdown key travels through SQL (codes are never empty)


@dataclass(frozen=True)
class ReportFilter:
    """What a report looks at: the as-of date, the cohort period, the territory/MDS, and whose eyes.

    user None means the system itself (CLI, scheduled jobs): no person scope is applied.
    """

    as_of: dt.date
    start: dt.date | None = None
    end: dt.date | None = None
    territory_id: int | None = None
    mds_id: int | None = None
    user: User | None = None

    @property
    def period(self) -> tuple[dt.date, dt.date]:
        """The cohort period; by default the 12 calendar months ending on the as-of date."""
        end = min(self.end or self.as_of, self.as_of)
        if self.start is not None:
            return self.start, end
        month = self.as_of.month - 11
        year = self.as_of.year + (month - 1) // 12
        month = (month - 1) % 12 + 1
        return dt.date(year, month, 1), end

    def with_(self, **changes) -> ReportFilter:
        return replace(self, **changes)


# --------------------------------------------------------------------------- dialect helpers

def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _days(dialect: str, later, earlier):
    """Whole days from `earlier` to `later` (NULL when either is NULL)."""
    if dialect == "sqlite":
        return cast(func.julianday(later) - func.julianday(earlier), Integer)
    return later - earlier  # PostgreSQL: date - date is an integer number of days


def _month(dialect: str, day):
    if dialect == "sqlite":
        return func.strftime("%Y-%m", day)
    return func.to_char(day, "YYYY-MM")


# --------------------------------------------------------------------------- the facts table

def _facts_columns() -> list[Column]:
    cols = [Column("path_id", Integer), Column("person_id", Integer), Column("decided", Date),
            Column("referent_type", String(20)), Column("origin", String(20)), Column("rule", String(60)),
            Column("structure_id", Integer), Column("territory", Integer), Column("mds", Integer),
            Column("open_sdd", Integer)]
    for clock in CLOCKS:
        cols += [Column(f"start_{clock}", Date), Column(f"delay_{clock}", Integer),
                 Column(f"age_{clock}", Integer), Column(f"month_{clock}", String(7)),
                 Column(f"cohort_{clock}", Integer)]
    return cols


def first_validated_orientations(as_of: dt.date):
    """Per path, the first orientation that reached validation on or before as_of (rn = 1).

    Later statuses (ended, superseded) do not matter: what counts is that it was validated."""
    o = Orientation
    return (select(o.path_id, o.person_id, o.validated_on, o.referent_type, o.origin, o.rule_id,
                   o.structure_id,
                   func.row_number().over(partition_by=o.path_id, order_by=(o.validated_on, o.id)).label("rn"))
            .where(o.validated_on.is_not(None), o.validated_on <= as_of, o.path_id.is_not(None))
            .subquery("first_validated"))


def _facts_select(dialect: str, f: ReportFilter):
    first = first_validated_orientations(f.as_of)
    as_of = literal(f.as_of, Date)
    start, end = f.period
    starts = {"legal": Path.clock_start, "demande": Path.request_date}
    open_sdd = case((and_(or_(Path.closed_on.is_(None), Path.closed_on > f.as_of), Person.sdd.is_(True),
                          Household.right_state.in_(OPEN_RIGHT_STATES)), 1), else_=0)
    columns = [Path.id, Path.person_id, first.c.validated_on, first.c.referent_type, first.c.origin,
               first.c.rule_id, first.c.structure_id, Household.territory_id, Household.mds_id, open_sdd]
    for clock in CLOCKS:
        s = starts[clock]
        columns += [s, _days(dialect, first.c.validated_on, s), _days(dialect, as_of, s), _month(dialect, s),
                    case((and_(s >= start, s <= end, s <= f.as_of), 1), else_=0)]
    q = (select(*columns).select_from(Path)
         .join(Person, Person.id == Path.person_id)
         .outerjoin(Household, Household.id == Path.household_id)
         .outerjoin(first, and_(first.c.path_id == Path.id, first.c.rn == 1, first.c.person_id == Path.person_id))
         .where(or_(Path.clock_start <= f.as_of, Path.request_date <= f.as_of)))
    if f.territory_id is not None:
        q = q.where(Household.territory_id == f.territory_id)
    if f.mds_id is not None:
        q = q.where(Household.mds_id == f.mds_id)
    if f.user is not None:
        from cases.service import person_scope

        q = q.where(person_scope(f.user))
    return q


@contextmanager
def facts(session: Session, f: ReportFilter) -> Iterator[Table]:
    """Materialise the per-path facts of this filter into a temporary table, dropped after use."""
    table = Table(f"rpt_facts_{uuid.uuid4().hex[:10]}", MetaData(), *_facts_columns(),
                  prefixes=["TEMPORARY"])
    conn = session.connection()
    table.create(conn)
    try:
        conn.execute(insert(table).from_select([c.name for c in table.columns],
                                               _facts_select(_dialect(session), f)))
        yield table
    finally:
        table.drop(conn)


# --------------------------------------------------------------------------- delay statistics

def _dimension_key(dim: str, clock: str) -> str:
    if dim == "all":
        return "'*'"
    column = f"month_{clock}" if dim == "month" else dim
    return f"COALESCE(CAST({column} AS VARCHAR(80)), '{NULL_KEY}')"


def _age_class(clock: str) -> str:
    parts = " ".join(f"WHEN age_{clock} >= {n} THEN {n}" for n in sorted(THRESHOLDS, reverse=True))
    return f"CASE {parts} ELSE 0 END"


def delay_statistics(session: Session, facts_table: Table, clock: str,
                     dims: tuple[str, ...] = ("all",)) -> dict[tuple[str, str | None], dict]:
    """Cohort size, oriented, mean / median / p90 delay and shares within 30/42/90 days, for the
    cohort of `clock`, overall ("all") and per breakdown dimension. One SQL statement.

    Returns {(dim, key): stats}; key None for paths whose dimension value is NULL."""
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}")
    t = facts_table.name
    branches = " UNION ALL ".join(
        f"SELECT '{dim}' AS dim, {_dimension_key(dim, clock)} AS k, delay_{clock} AS delay, "
        f"{_age_class(clock)} AS age_class, COUNT(*) AS n FROM {t} WHERE cohort_{clock} = 1 "
        f"GROUP BY 2, 3, 4"
        for dim in dims)
    share_cols = ", ".join(
        f"CAST(SUM(CASE WHEN age_class >= {n} THEN n ELSE 0 END) AS BIGINT) AS den_{n}, "
        f"CAST(SUM(CASE WHEN age_class >= {n} AND delay <= {n} THEN n ELSE 0 END) AS BIGINT) AS num_{n}"
        for n in THRESHOLDS)
    pos_cols = ", ".join(
        f"({a} * (total - 1)) / {b} AS lo_{name}, ({a} * (total - 1)) % {b} AS rem_{name}"
        for name, (a, b) in PERCENTILES.items())
    pct_cols = ", ".join(
        f"MIN(CASE WHEN cum > lo_{name} THEN delay END) AS vlo_{name}, "
        f"MIN(CASE WHEN cum > lo_{name} + CASE WHEN rem_{name} > 0 THEN 1 ELSE 0 END THEN delay END) AS vhi_{name}, "
        f"MAX(rem_{name}) AS rem_{name}"
        for name in PERCENTILES)
    final_pct = ", ".join(
        f"CAST(pct.vlo_{name} * {b} + pct.rem_{name} * (pct.vhi_{name} - pct.vlo_{name}) AS DOUBLE PRECISION)"
        f" / {b} AS {name}"
        for name, (_a, b) in PERCENTILES.items())
    final_shares = ", ".join(
        f"agg.den_{n} AS den_{n}, agg.num_{n} AS num_{n}, "
        f"CAST(agg.num_{n} AS DOUBLE PRECISION) / NULLIF(agg.den_{n}, 0) AS share_within_{n}"
        for n in THRESHOLDS)
    sql = f"""
    WITH hist AS ({branches}),
    agg AS (
        SELECT dim, k, CAST(SUM(n) AS BIGINT) AS cohort_size,
               CAST(SUM(CASE WHEN delay IS NOT NULL THEN n ELSE 0 END) AS BIGINT) AS oriented,
               CAST(SUM(CASE WHEN delay IS NOT NULL THEN n * delay ELSE 0 END) AS BIGINT) AS delay_sum,
               {share_cols}
        FROM hist GROUP BY dim, k),
    dh AS (SELECT dim, k, delay, CAST(SUM(n) AS BIGINT) AS n FROM hist WHERE delay IS NOT NULL
           GROUP BY dim, k, delay),
    cum AS (SELECT dim, k, delay,
                   CAST(SUM(n) OVER (PARTITION BY dim, k ORDER BY delay
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS cum,
                   CAST(SUM(n) OVER (PARTITION BY dim, k) AS BIGINT) AS total
            FROM dh),
    pos AS (SELECT dim, k, delay, cum, {pos_cols} FROM cum),
    pct AS (SELECT dim, k, {pct_cols} FROM pos GROUP BY dim, k)
    SELECT agg.dim, agg.k, agg.cohort_size, agg.oriented,
           CAST(agg.delay_sum AS DOUBLE PRECISION) / NULLIF(agg.oriented, 0) AS mean_days,
           {final_pct}, {final_shares}
    FROM agg LEFT JOIN pct ON pct.dim = agg.dim AND pct.k = agg.k
    """
    out: dict[tuple[str, str | None], dict] = {}
    for row in session.execute(text(sql)).mappings():
        key = None if row["k"] == NULL_KEY else row["k"]
        out[(row["dim"], key)] = _stats_row(row)
    for dim in dims:  # an empty cohort still answers, with nulls
        if dim == "all" and ("all", "*") not in out:
            out[("all", "*")] = empty_stats()
    return out


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def _stats_row(row) -> dict:
    stats = {"cohort_size": int(row["cohort_size"]), "oriented": int(row["oriented"]),
             "mean_days": _round(row["mean_days"], 1)}
    for name in PERCENTILES:
        stats[name] = _round(row[name], 1)
    for n in THRESHOLDS:
        stats[f"share_within_{n}"] = _round(row[f"share_within_{n}"], 4)
    stats["denominators"] = {str(n): int(row[f"den_{n}"]) for n in THRESHOLDS}
    return stats


def empty_stats() -> dict:
    stats = {"cohort_size": 0, "oriented": 0, "mean_days": None}
    stats.update({name: None for name in PERCENTILES})
    stats.update({f"share_within_{n}": None for n in THRESHOLDS})
    stats["denominators"] = {str(n): 0 for n in THRESHOLDS}
    return stats


# --------------------------------------------------------------------------- backlog

def band_case(age_column: str) -> str:
    parts = " ".join(f"WHEN {age_column} >= {low} THEN '{key}'" for key, low, _high in reversed(BANDS))
    return f"CASE {parts} END"


def backlog(session: Session, facts_table: Table, clock: str) -> list[dict]:
    """Persons still to orient as of the as-of date, by age band of `clock`, per territory and MDS.

    A stock, not a cohort: every open path (not closed on as_of) of an SDD person whose household's
    right is open, with no orientation validated by as_of, whatever the period."""
    t = facts_table.name
    sql = (f"SELECT territory, mds, {band_case(f'age_{clock}')} AS band, COUNT(*) AS n FROM {t} "
           f"WHERE open_sdd = 1 AND decided IS NULL AND age_{clock} >= 0 GROUP BY 1, 2, 3")
    return [dict(r) for r in session.execute(text(sql)).mappings()]


def backlog_bands(rows: list[dict], by: str | None = None) -> dict:
    """Roll backlog rows (already aggregated by SQL) up to band → count, optionally per key."""
    def zero():
        return {key: 0 for key, _l, _h in BANDS}

    if by is None:
        total = zero()
        for r in rows:
            total[r["band"]] += r["n"]
        return total
    grouped: dict = {}
    for r in rows:
        grouped.setdefault(r[by], zero())[r["band"]] += r["n"]
    return grouped


# --------------------------------------------------------------------------- kiosque

def kiosque_funnel(session: Session, f: ReportFilter, by_mds: bool = False) -> list[dict]:
    """Invited → reached by phone → attended → oriented by the kiosque, in persons, over the
    invitations sent in the period (a person counts once per step, whatever the attempts)."""
    from kiosque.models import Invitation, KiosqueSession

    start, end = f.period
    oriented = (select(Orientation.id).where(
        Orientation.person_id == Invitation.person_id, Orientation.origin == "kiosque",
        Orientation.validated_on.is_not(None), Orientation.validated_on <= f.as_of,
        Orientation.validated_on >= Invitation.invited_on).exists())
    person = Invitation.person_id
    cols = [func.count(func.distinct(person)).label("invited"),
            func.count(func.distinct(case((Invitation.phoning_outcome.in_(("reached", "will_come")), person))))
            .label("reached"),
            func.count(func.distinct(case((and_(Invitation.status == "present",
                                                 KiosqueSession.starts_at < f.as_of + dt.timedelta(days=1)),
                                            person)))).label("attended"),
            func.count(func.distinct(case((oriented, person)))).label("oriented")]
    q = (select(KiosqueSession.mds_id, *cols) if by_mds else select(*cols))
    q = (q.select_from(Invitation).join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
         .join(Person, Person.id == Invitation.person_id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Invitation.invited_on >= start, Invitation.invited_on <= end))
    q = _common_filters(q, f, mds_column=KiosqueSession.mds_id)
    if by_mds:
        q = q.group_by(KiosqueSession.mds_id)
    rows = []
    for r in session.execute(q).mappings():
        row = {k: int(r[k]) for k in ("invited", "reached", "attended", "oriented")}
        row["rate_oriented"] = round(row["oriented"] / row["invited"], 4) if row["invited"] else None
        if by_mds:
            row["mds_id"] = r["mds_id"]
        rows.append(row)
    return rows


def capacity_shortfalls(session: Session, f: ReportFilter) -> dict:
    """Where capacity is short: decisions waiting for a seat (status awaiting_capacity) by referent
    type, and kiosque sessions of the period that were full (non-cancelled invitations ≥ capacity)."""
    from kiosque.models import Invitation, KiosqueSession

    start, end = f.period
    q = (select(Orientation.referent_type, func.count(Orientation.id)).select_from(Orientation)
         .join(Person, Person.id == Orientation.person_id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Orientation.status == "awaiting_capacity", Orientation.decided_on <= f.as_of)
         .group_by(Orientation.referent_type))
    waiting = {rt: int(n) for rt, n in session.execute(_common_filters(q, f))}
    seats = (select(func.count(Invitation.id)).where(Invitation.session_id == KiosqueSession.id,
                                                   Invitation.status != "cancelled")
             .correlate(KiosqueSession).scalar_subquery())
    sq = (select(func.count(KiosqueSession.id).label("sessions"),
                 func.coalesce(func.sum(case((seats >= KiosqueSession.capacity, 1), else_=0)), 0).label("full"))
          .where(KiosqueSession.status != "cancelled",
                 func.date(KiosqueSession.starts_at) >= start, func.date(KiosqueSession.starts_at) <= end))
    if f.mds_id is not None:
        sq = sq.where(KiosqueSession.mds_id == f.mds_id)
    if f.territory_id is not None:
        sq = sq.where(KiosqueSession.mds_id.in_(select(Structure.id).where(Structure.territory_id == f.territory_id)))
    sessions = session.execute(sq).one()
    return {"awaiting_capacity": waiting, "awaiting_capacity_total": sum(waiting.values()),
            "kiosque_sessions": int(sessions.sessions), "kiosque_sessions_full": int(sessions.full)}


def _common_filters(q, f: ReportFilter, mds_column=None):
    """Territory / MDS / person scope on a query that joins Person and Household."""
    if f.territory_id is not None:
        q = q.where(Household.territory_id == f.territory_id)
    if f.mds_id is not None:
        q = q.where((mds_column if mds_column is not None else Household.mds_id) == f.mds_id)
    if f.user is not None:
        from cases.service import person_scope

        q = q.where(person_scope(f.user))
    return q


# --------------------------------------------------------------------------- after orientation

def _within_share(session: Session, facts_table: Table, f: ReportFilter, days: int, exists_sql: str) -> dict:
    """Share of paths first oriented in the period (validated_on in it) with an event within `days`
    of the decision; denominator: decisions at least `days` old on the as-of date."""
    start, end = f.period
    t = facts_table.name
    dialect = _dialect(session)
    age = ("CAST(julianday(:as_of) - julianday(decided) AS INTEGER)" if dialect == "sqlite"
           else "(CAST(:as_of AS DATE) - decided)")
    sql = (f"SELECT COUNT(*) AS den, COALESCE(SUM(CASE WHEN EXISTS ({exists_sql}) THEN 1 ELSE 0 END), 0) AS num "
           f"FROM {t} WHERE decided IS NOT NULL AND decided >= :start AND decided <= :end AND {age} >= :days")
    row = session.execute(text(sql), {"as_of": f.as_of, "start": start, "end": end, "days": days}).one()
    den, num = int(row.den), int(row.num)
    return {"denominator": den, "numerator": num, "share": round(num / den, 4) if den else None, "days": days}


def _plus_days(dialect: str, column: str, days: int) -> str:
    return f"date({column}, '+{days} days')" if dialect == "sqlite" else f"({column} + {days})"


def first_appointment_within(session: Session, facts_table: Table, f: ReportFilter,
                             days: int = FIRST_APPOINTMENT_DAYS) -> dict:
    """First appointment with the referent honoured within 15 days of the decision (plan pauvreté)."""
    d = _dialect(session)
    t = facts_table.name
    day = "date(a.scheduled_at)" if d == "sqlite" else "CAST(a.scheduled_at AS DATE)"
    exists_sql = (f"SELECT 1 FROM appointment a WHERE a.person_id = {t}.person_id AND a.kind = 'first' "
                  f"AND a.status = 'honoured' AND {day} >= {t}.decided AND {day} <= {_plus_days(d, f'{t}.decided', days)}")
    return _within_share(session, facts_table, f, days, exists_sql)


def contract_within(session: Session, facts_table: Table, f: ReportFilter, days: int = CONTRACT_DAYS) -> dict:
    """Contract signed within one month (counted as 30 days, identical on both databases) of the decision."""
    d = _dialect(session)
    t = facts_table.name
    exists_sql = (f"SELECT 1 FROM contract c WHERE c.person_id = {t}.person_id AND c.signed_on IS NOT NULL "
                  f"AND c.signed_on >= {t}.decided AND c.signed_on <= {_plus_days(d, f'{t}.decided', days)}")
    return _within_share(session, facts_table, f, days, exists_sql)


def positive_exits_by_structure(session: Session, f: ReportFilter) -> list[dict]:
    """Exits recorded in the period by structure: count, positive ones, share positive."""
    from cases.models import Exit

    start, end = f.period
    q = (select(Exit.structure_id, func.count(Exit.id).label("exits"),
                func.coalesce(func.sum(case((Exit.positive.is_(True), 1), else_=0)), 0).label("positive"))
         .select_from(Exit).join(Person, Person.id == Exit.person_id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Exit.exit_on >= start, Exit.exit_on <= end, Exit.exit_on <= f.as_of)
         .group_by(Exit.structure_id))
    rows = []
    for r in session.execute(_common_filters(q, f)).mappings():
        exits, positive = int(r["exits"]), int(r["positive"])
        rows.append({"structure_id": r["structure_id"], "exits": exits, "positive": positive,
                     "share_positive": round(positive / exits, 4) if exits else None})
    return rows


def oriented_by_seniority(session: Session, facts_table: Table) -> list[dict]:
    """Share of SDD persons (open path, open right) oriented on the as-of date, by seniority in the
    RSA (days since DTDEMRSA, else since the legal clock start): < 6 months, 6–12 months, ≥ 1 year."""
    t = facts_table.name
    age = "COALESCE(age_demande, age_legal)"
    parts = " ".join(f"WHEN {age} >= {low} THEN '{key}'" for key, low, _h in reversed(SENIORITY_BANDS))
    sql = (f"SELECT CASE {parts} END AS band, COUNT(*) AS sdd, "
           f"SUM(CASE WHEN decided IS NOT NULL THEN 1 ELSE 0 END) AS oriented "
           f"FROM {t} WHERE open_sdd = 1 AND {age} >= 0 GROUP BY 1")
    found = {r["band"]: r for r in session.execute(text(sql)).mappings()}
    out = []
    for key, _low, _high in SENIORITY_BANDS:
        r = found.get(key)
        sdd, oriented = (int(r["sdd"]), int(r["oriented"])) if r else (0, 0)
        out.append({"key": key, "sdd": sdd, "oriented": oriented,
                    "share_oriented": round(oriented / sdd, 4) if sdd else None})
    return out


# --------------------------------------------------------------------------- persons behind a number

def persons_behind(session: Session, f: ReportFilter, what: str, clock: str = "legal",
                   band: str | None = None, limit: int = 500) -> list[dict]:
    """The persons behind a number of the dashboard, scoped like the number itself.

    what: "backlog" (optionally one band), "cohort", "not_oriented" (cohort not yet oriented),
    "late" (cohort not oriented within 42 days and old enough to be judged)."""
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}")
    with facts(session, f) as t:
        c = t.c
        q = select(c.person_id, c.path_id, c[f"start_{clock}"].label("start"), c[f"age_{clock}"].label("age"),
                   c.decided, c[f"delay_{clock}"].label("delay"), c.mds, c.referent_type)
        if what == "backlog":
            q = q.where(c.open_sdd == 1, c.decided.is_(None), c[f"age_{clock}"] >= 0)
            if band is not None:
                spec = {k: (lo, hi) for k, lo, hi in BANDS}.get(band)
                if spec is None:
                    raise ValueError(f"unknown band {band!r}")
                q = q.where(c[f"age_{clock}"] >= spec[0])
                if spec[1] is not None:
                    q = q.where(c[f"age_{clock}"] <= spec[1])
        elif what == "cohort":
            q = q.where(c[f"cohort_{clock}"] == 1)
        elif what == "not_oriented":
            q = q.where(c[f"cohort_{clock}"] == 1, c.decided.is_(None))
        elif what == "late":
            q = q.where(c[f"cohort_{clock}"] == 1, c[f"age_{clock}"] >= LEGAL_LIMIT_DAYS,
                        or_(c.decided.is_(None), c[f"delay_{clock}"] > LEGAL_LIMIT_DAYS))
        else:
            raise ValueError(f"unknown list {what!r}")
        sub = q.order_by(c[f"age_{clock}"].desc(), c.person_id).limit(limit).subquery()
        rows = session.execute(
            select(sub, Person.last_name, Person.first_name, Structure.name.label("mds_name"))
            .join(Person, Person.id == sub.c.person_id)
            .outerjoin(Structure, Structure.id == sub.c.mds)
            .order_by(sub.c.age.desc(), sub.c.person_id)).mappings().all()
    return [{"person_id": r["person_id"], "path_id": r["path_id"], "last_name": r["last_name"],
             "first_name": r["first_name"], "mds": r["mds_name"], "clock_start": r["start"],
             "age_days": r["age"], "decided_on": r["decided"], "delay_days": r["delay"],
             "referent_type": r["referent_type"]} for r in rows]


# --------------------------------------------------------------------------- labels and reference

def labels(session: Session) -> dict[str, dict[str, tuple[str, str]]]:
    """id (as text) → (code, name) for territories and structures: keys of breakdowns."""
    territories = {str(i): (code, name) for i, code, name in
                   session.execute(select(Territory.id, Territory.code, Territory.name))}
    structures = {str(i): (code, name) for i, code, name in
                  session.execute(select(Structure.id, Structure.code, Structure.name))}
    return {"territory": territories, "mds": structures}


def national_reference(path: FsPath = NATIONAL_REFERENCE) -> list[dict]:
    """The national figures of DOMAIN.md §6, shipped as data, to show beside ours."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"])
    return rows
