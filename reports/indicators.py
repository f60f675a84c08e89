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
    BigInteger,
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
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import True_

from cases.models import OPEN_RIGHT_STATES, Household, Path, Person
from orientation.models import Orientation
from referents.models import Structure, Territory, User
from referents.vocabulary import LEGAL_DAYS, ORGANISME_OF, OUTCOMES, TARGET_DAYS

CLOCKS = ("demande", "legal")
THRESHOLDS = (TARGET_DAYS, LEGAL_DAYS, 90)
# Backlog bands: (key, lowest age in days, highest age in days or None).
BANDS = (("0-14", 0, 14), ("15-29", 15, 29), ("30-41", 30, 41), ("42-89", 42, 89), ("90+", 90, None))
# Percentiles as exact fractions (numerator, denominator): integer arithmetic in SQL.
PERCENTILES = {"median_days": (1, 2), "p90_days": (9, 10)}
# Breakdown dimension → column of the facts table (per clock for the month).
DIMENSIONS = ("month", "territory", "mds", "referent_type", "origin", "rule")
SENIORITY_BANDS = (("<6m", 0, 182), ("6-12m", 183, 364), (">=1y", 365, None))
FIRST_APPOINTMENT_DAYS = 15
NATIONAL_REFERENCE = FsPath(__file__).resolve().parent / "data" / "national_reference.csv"
NULL_KEY = ""  # how a NULL breakdown key travels through SQL (codes are never empty)
OWN_SCOPE = object()  # "materialise the person scope yourself" (see person_scope_ids)


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
    if dialect == "sqlite":  # dates are stored as ISO text: the month is its first 7 characters
        return func.substr(day, 1, 7)
    return func.to_char(day, "YYYY-MM")


# --------------------------------------------------------------------------- the facts table

def _facts_columns() -> list[Column]:
    cols = [Column("path_id", Integer), Column("person_id", Integer), Column("decided", Date),
            Column("referent_type", String(20)), Column("origin", String(20)), Column("rule", String(60)),
            Column("territory", Integer), Column("mds", Integer),
            Column("open_sdd", Integer)]
    for clock in CLOCKS:
        cols += [Column(f"start_{clock}", Date), Column(f"delay_{clock}", Integer),
                 Column(f"age_{clock}", Integer), Column(f"month_{clock}", String(7)),
                 Column(f"cohort_{clock}", Integer)]
    return cols


class _Decision:
    """The path's first validated decision as seen on the as-of date, read from the path's own
    oriented_* columns (maintained by orientation.outcomes): a decision validated after
    as_of does not exist yet, and the first one validated by as_of is necessarily the path's first."""

    def __init__(self, as_of: dt.date):
        known = Path.oriented_on <= as_of
        self.decided = case((known, Path.oriented_on)).label("decided")
        self.referent_type = case((known, Path.oriented_referent_type)).label("referent_type")
        self.origin = case((known, Path.oriented_origin)).label("origin")
        self.rule = case((known, Path.oriented_rule)).label("rule")
        self.parcours = case((known, Path.oriented_parcours)).label("parcours")


def _facts_select(dialect: str, f: ReportFilter):
    as_of = literal(f.as_of, Date)
    open_sdd = case((_open_sdd(f.as_of), 1), else_=0)
    first = _Decision(f.as_of)
    columns = [Path.id, Path.person_id, first.decided, first.referent_type, first.origin,
               first.rule, Path.territory_id, Path.mds_id, open_sdd]
    clocks = {clock: _PathRows(dialect, f, clock) for clock in CLOCKS}
    for clock in CLOCKS:
        rows = clocks[clock]
        s = rows.start
        columns += [s, rows.delay, _days(dialect, as_of, s), _month(dialect, s),
                    case((rows.in_cohort(), 1), else_=0)]
    q = (select(*columns).select_from(clocks["demande"].source())
         .join(Person, Person.id == Path.person_id)  # the person scope is a condition on Person
         .where(or_(Path.clock_start <= f.as_of, Path.request_date <= f.as_of)))
    if f.territory_id is not None:
        q = q.where(Path.territory_id == f.territory_id)
    if f.mds_id is not None:
        q = q.where(Path.mds_id == f.mds_id)
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


# --------------------------------------------------------------------------- delay histograms

# Age buckets (days since the clock start): the lower bounds of the backlog bands. They also give the
# threshold classes of the shares: age >= 30 ⇔ bucket >= 30, same for 42 and 90.
BUCKETS = tuple(low for _key, low, _high in BANDS)
BAND_OF_BUCKET = {low: key for key, low, _high in BANDS}
# Histogram sources of the cohort figures, per clock: "month" (month of the clock start: the whole
# cohort and the trend), "geo" (territory, MDS and referent type of the decision), "origin", "rule".
# The backlog has its own rows (source "backlog").
SOURCES = ("month", "geo", "origin", "rule", "parcours")
_SOURCE_KEYS = {"month": ("month",), "geo": ("territory", "mds", "referent_type"), "origin": ("origin",),
                "rule": ("rule",), "parcours": ("parcours",)}
# The decision attributes a path carries (Path.oriented_*), the only text keys.
_TEXT_KEYS = ("referent_type", "origin", "rule", "parcours")
# Known referent types: on SQLite they are coded as small integers (see _packed); another value sends
# its histogram source through the plain GROUP BY instead.
KNOWN_REFERENT_TYPES = OUTCOMES


def _bucket(start, as_of: dt.date):
    """Age bucket of a clock start on the as-of date, by plain date comparisons (age >= N days ⇔
    start <= as_of − N): no date arithmetic per row."""
    return case(*[(start <= as_of - dt.timedelta(days=low), low) for low in sorted(BUCKETS, reverse=True)
                  if low > 0], else_=0)


class _PathRows:
    """The per-path expressions of one report, over the path table alone (its outcome and sector are
    copied onto it: Path.oriented_*, Path.territory_id / mds_id), for one clock."""

    def __init__(self, dialect: str, f: ReportFilter, clock: str, scope_ids: Table | None = None):
        self.dialect, self.f, self.clock, self.scope_ids = dialect, f, clock, scope_ids
        self.multi = None
        if clock == "legal":
            self.start = Path.clock_start
            # The start as compared in WHERE: on SQLite "+column", so that the planner scans the table once
            # instead of walking the date index and fetching most of the rows one by one (3× slower).
            self.start_filter = (literal_column(f"+{Path.__tablename__}.{self.start.key}", Date)
                                 if dialect == "sqlite" else self.start)
        else:  # DREES: the person's first RSA request (DTDEMRSA) known by as_of, on every path of theirs
            self.multi = _multi_path_persons(f.as_of)
            self.start = self.start_filter = func.coalesce(self.multi.c.first_request, Path.request_date)
        first = _Decision(f.as_of)
        self.columns = {"territory": Path.territory_id, "mds": Path.mds_id, "referent_type": first.referent_type,
                        "origin": first.origin, "rule": first.rule, "parcours": first.parcours}
        self.delay = _days(dialect, first.decided, self.start)
        self.bucket = _bucket(self.start, f.as_of)

    def month_group(self):
        """The month of the clock start as grouped: PostgreSQL groups on date_trunc (cheap) and
        formats the few grouped rows; SQLite reads the ISO text's first 7 characters."""
        if self.dialect == "postgresql":
            return func.date_trunc("month", self.start)
        return _month(self.dialect, self.start)

    def month_label(self, grouped):
        return func.to_char(grouped, "YYYY-MM") if self.dialect == "postgresql" else grouped

    def scoped(self, q):
        """Territory, MDS and person scope of the filter (the scope as materialised by person_scope_ids)."""
        f = self.f
        if f.territory_id is not None:
            q = q.where(Path.territory_id == f.territory_id)
        if f.mds_id is not None:
            q = q.where(Path.mds_id == f.mds_id)
        if self.scope_ids is not None:
            q = q.where(Path.person_id.in_(select(self.scope_ids.c.id)))
        return q

    def source(self):
        """The FROM of this clock's queries: the path table, joined for the DREES clock to the few
        persons with several paths (their first request date), once instead of a lookup per row."""
        if self.multi is None:
            return Path
        return Path.__table__.outerjoin(self.multi, self.multi.c.person_id == Path.person_id)

    def in_cohort(self):
        """The path counts in the cohort of this clock: its start in the period, not closed without
        orientation before the legal delay (closed_early: shown apart), and for the DREES clock the
        person's one representative path (_drees_path)."""
        start, end = self.f.period
        cond = and_(self.start_filter >= start, self.start_filter <= min(end, self.f.as_of),
                    ~self.closed_early())
        return and_(cond, self._drees()) if self.clock == "demande" else cond

    def _drees(self):
        """Single-path persons are their own DREES path; the others go through _drees_path."""
        return or_(self.multi.c.person_id.is_(None), _drees_path(self.f.as_of))

    def in_period(self):
        start, end = self.f.period
        cond = and_(self.start_filter >= start, self.start_filter <= min(end, self.f.as_of))
        return and_(cond, self._drees()) if self.clock == "demande" else cond

    def closed_early(self):
        """Closed (exit, transfer out, end of right) by as_of without an orientation, before the legal
        delay of 42 days since this clock's start: not a failure of the Département, counted apart."""
        as_of = self.f.as_of
        return and_(Path.closed_on.is_not(None), Path.closed_on <= as_of,
                    or_(Path.oriented_on.is_(None), Path.oriented_on > as_of),
                    _days(self.dialect, Path.closed_on, self.start) < LEGAL_DAYS)


def _multi_path_persons(as_of: dt.date):
    """Persons with more than one path known by as_of, with their first RSA request date (DTDEMRSA):
    the DREES clock of every path of theirs (a transfer or a reopening does not restart it). A
    subquery joined once (_PathRows.source); the single-path majority keeps its own request date."""
    other = aliased(Path)
    return (select(other.person_id.label("person_id"), func.min(other.request_date).label("first_request"))
            .where(func.coalesce(other.request_date, other.clock_start) <= as_of)
            .group_by(other.person_id).having(func.count() > 1).subquery("multi_path"))


def _drees_path(as_of: dt.date):
    """The one path per person that the DREES delay counts (DTDEMRSA → first orientation, each
    person's first orientation once): the path that carries the person's first orientation validated
    by as_of (earliest oriented_on, then lowest id), else, for a person not oriented yet, their latest
    path (latest clock start, then highest id). Transfer and reopening paths are otherwise left out."""
    other = aliased(Path)
    oriented = and_(Path.oriented_on.is_not(None), Path.oriented_on <= as_of)
    other_oriented = and_(other.oriented_on.is_not(None), other.oriented_on <= as_of)
    before = or_(
        and_(other_oriented, ~oriented),
        and_(other_oriented, oriented, or_(other.oriented_on < Path.oriented_on,
                                           and_(other.oriented_on == Path.oriented_on, other.id < Path.id))),
        and_(~other_oriented, ~oriented, or_(other.clock_start > Path.clock_start,
                                             and_(other.clock_start == Path.clock_start, other.id > Path.id))))
    return ~(select(other.id).where(other.person_id == Path.person_id, other.id != Path.id,
                                    func.coalesce(other.request_date, other.clock_start) <= as_of, before)
             .correlate(Path).exists())


def closed_early_counts(session: Session, f: ReportFilter, scope_ids=OWN_SCOPE) -> dict[str, int]:
    """Per clock: paths of the cohort period closed without orientation before the legal delay
    (_PathRows.closed_early), shown apart from the delays instead of as failures."""
    dialect = _dialect(session)
    out = {}
    with _scope(session, f, scope_ids) as scope_ids:
        for clock in CLOCKS:
            rows = _PathRows(dialect, f, clock, scope_ids)
            q = rows.scoped(select(func.count()).select_from(rows.source())
                            .where(rows.in_period(), rows.closed_early()))
            out[clock] = int(session.scalar(q) or 0)
    return out


def _open_unoriented(as_of: dt.date):
    """Still to orient on the as-of date (with the clock started by then, see _backlog_select): an
    open path (not closed by as_of) of an SDD person whose household's right is open, with no
    decision validated by as_of.

    Household and person are checked as "no reason to exclude" (NOT EXISTS a closed or suspended
    household, a person no longer SDD): the database hashes those few rows rather than the whole
    person and household tables."""
    return and_(_open_sdd(as_of), or_(Path.oriented_on.is_(None), Path.oriented_on > as_of))


def _open_sdd(as_of: dt.date):
    """An open path (not closed by as_of) of an SDD person whose household's right is open, as
    `NOT EXISTS` the few rows that exclude it (see _open_unoriented). THE definition, used by the
    backlog, the seniority series and the person lists. Aliases correlated to Path only: the
    condition means the same inside a query that already selects from person or household."""
    h, p = aliased(Household), aliased(Person)
    closed_household = (select(h.id).where(h.id == Path.household_id,
                                           or_(h.right_state.is_(None), h.right_state.not_in(OPEN_RIGHT_STATES)))
                        .correlate(Path).exists())
    not_sdd = (select(p.id).where(p.id == Path.person_id, or_(p.sdd.is_(None), p.sdd.is_(False)))
               .correlate(Path).exists())
    return and_(or_(Path.closed_on.is_(None), Path.closed_on > as_of), Path.household_id.is_not(None),
                ~closed_household, ~not_sdd)


def _hist_table() -> Table:
    return Table(f"rpt_hist_{uuid.uuid4().hex[:10]}", MetaData(),
                 Column("clock", String(8)), Column("src", String(16)), Column("territory", Integer),
                 Column("mds", Integer), Column("month", String(7)), Column("k", String(60)),
                 Column("delay", Integer), Column("bucket", Integer), Column("n", Integer), prefixes=["TEMPORARY"])


HIST_COLUMNS = ("clock", "src", "territory", "mds", "month", "k", "delay", "bucket", "n")


@contextmanager
def histogram(session: Session, f: ReportFilter, sources: tuple[str, ...] = SOURCES,
              packed: bool = True, scope_ids=OWN_SCOPE) -> Iterator[Table]:
    """The delay histogram of the filter, in a temporary table dropped after use.

    Rows (clock, source, territory, MDS, month, k, delay, age bucket) with their number of paths: the
    cohort of each clock per source (k is the referent type, origin or rule of the decision), and the
    backlog (source "backlog"): everything the delay indicators need, a few ten thousand rows instead
    of one per path. Each (clock, source) is one aggregate over the path table alone: PostgreSQL
    hashes it, in parallel; SQLite, whose GROUP BY sorts every row, folds the rows into an
    integer-keyed table instead (_packed), twice as fast (packed=False: the plain GROUP BY, which the
    tests compare it with). scope_ids: a person_scope_ids table shared with other indicators of the
    same report, else the histogram materialises its own."""
    with _scope(session, f, scope_ids) as scope_ids:
        yield from _histogram(session, f, sources, packed, scope_ids)


def _histogram(session: Session, f: ReportFilter, sources, packed: bool, scope_ids: Table | None):
    dialect = _dialect(session)
    conn = session.connection()
    if dialect == "postgresql":
        # Room to hash the aggregates in memory; JIT compiling costs more than it saves here.
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    hist = _hist_table()
    hist.create(conn)
    if scope_ids is not None and dialect == "postgresql":
        # A scoped report (one MDS, one provider) is small: it runs on one core and leaves the others
        # to the agents' requests instead of taking every core with parallel workers.
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    try:
        for clock in CLOCKS:
            rows = _PathRows(dialect, f, clock, scope_ids)
            for src in sources:
                if dialect == "sqlite" and packed and _packed(conn, hist, rows, src):
                    continue
                conn.execute(insert(hist).from_select(HIST_COLUMNS, _cohort_select(rows, src)))
        conn.execute(insert(hist).from_select(HIST_COLUMNS, _backlog_select(dialect, f, scope_ids)))
        yield hist
    finally:
        hist.drop(conn)


@contextmanager
def person_scope_ids(session: Session, f: ReportFilter) -> Iterator[Table | None]:
    """The ids of the persons the filter's user may see (cases.service.scoped_person_ids, the set
    form of person_scope), evaluated once into a temporary table that the report's aggregates join:
    the scope's look-ups cost as much as an aggregate, five times otherwise. None when the user sees
    everybody (no filter at all). Dropped after use."""
    from cases.service import person_scope, scoped_person_ids

    if f.user is None or isinstance(person_scope(f.user), True_):
        yield None
        return
    conn = session.connection()
    table = Table(f"rpt_scope_{uuid.uuid4().hex[:10]}", MetaData(), Column("id", Integer, primary_key=True),
                  prefixes=["TEMPORARY"])
    table.create(conn)
    try:
        conn.execute(insert(table).from_select(["id"], scoped_person_ids(f.user)))
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"ANALYZE {table.name}"))  # temporary tables get no statistics otherwise
        yield table
    finally:
        table.drop(conn)


@contextmanager
def _scope(session: Session, f: ReportFilter, given) -> Iterator[Table | None]:
    """The scope table given by the caller, or one of our own for the time of the call."""
    if given is not OWN_SCOPE:
        yield given
        return
    with person_scope_ids(session, f) as own:
        yield own


def _cohort_select(rows: _PathRows, src: str):
    """INSERT source of one (clock, source) histogram: a plain GROUP BY over the cohort's paths."""
    keys = {name: None for name in ("territory", "mds", "month", "k")}
    group = []
    for name in _SOURCE_KEYS[src]:
        if name == "month":
            grouped = rows.month_group()
            keys["month"] = rows.month_label(grouped)
        else:
            grouped = rows.columns[name]
            keys["k" if name in _TEXT_KEYS else name] = cast(grouped, String) if name in _TEXT_KEYS else grouped
        group.append(grouped)
    values = [literal(None, Integer if n in ("territory", "mds") else String) if v is None else v
              for n, v in keys.items()]
    q = (select(literal(rows.clock, String), literal(src, String), *values, rows.delay, rows.bucket, func.count())
         .select_from(rows.source()).where(rows.in_cohort()).group_by(*group, rows.delay, rows.bucket))
    return rows.scoped(q)


def _backlog_select(dialect: str, f: ReportFilter, scope_ids: Table | None = None):
    """INSERT source of the backlog of both clocks, by territory, MDS and age bucket: one pass over the
    paths still open and unoriented (_open_unoriented), grouped by both clocks' buckets at once, then each group counted for every clock whose start is
    known and reached by as_of."""
    legal, demande = (_PathRows(dialect, f, clock, scope_ids) for clock in ("legal", "demande"))
    inner = (select(Path.territory_id.label("territory"), Path.mds_id.label("mds"),
                    legal.bucket.label("bucket_legal"), demande.bucket.label("bucket_demande"),
                    (legal.start <= f.as_of).label("started_legal"),  # NULL when the start is unknown
                    (demande.start <= f.as_of).label("started_demande"),
                    func.count().label("n"))
             .select_from(demande.source()).where(_open_unoriented(f.as_of))
             .group_by(Path.territory_id, Path.mds_id, legal.bucket, demande.bucket, "started_legal",
                       "started_demande"))
    g = legal.scoped(inner).subquery("per_buckets")
    clocks = union_all(*[select(literal(c, String).label("clock")) for c in CLOCKS]).subquery("clocks")
    bucket = case(*[(clocks.c.clock == c, g.c[f"bucket_{c}"]) for c in CLOCKS])
    started = or_(*[and_(clocks.c.clock == c, g.c[f"started_{c}"]) for c in CLOCKS])
    null_str = literal(None, String)
    return (select(clocks.c.clock, literal("backlog", String), g.c.territory, g.c.mds, null_str, null_str,
                   literal(None, Integer), bucket, func.sum(g.c.n))
            .select_from(g).join(clocks, true()).where(started)
            .group_by(clocks.c.clock, g.c.territory, g.c.mds, bucket))


# SQLite: the fields of a histogram source packed into one integer (name, bits). Codes are 0 for NULL:
# ids + 1, delays offset by 2**20 (clamped: ±2,870 years), bucket and referent type by index.
_DELAY_OFFSET = 2**20
_PACKING = {"geo": (("territory", 14), ("mds", 18), ("referent_type", 4), ("delay", 21), ("bucket", 3)),
            "month": (("month", 18), ("delay", 21), ("bucket", 3))}


def _packed(conn, hist: Table, rows: _PathRows, src: str) -> bool:
    """SQLite: fill one (clock, source) histogram by folding the cohort's paths into a temporary table
    keyed by one packed integer (INSERT … ON CONFLICT DO UPDATE SET n = n + 1), then unpacking its few
    rows. SQLite's GROUP BY sorts every row; this keeps one small in-memory b-tree instead.

    False when the source cannot be packed (text keys other than the referent type, ids too large, an
    unknown referent type met): the caller then runs the plain GROUP BY."""
    fields = _PACKING.get(src)
    if fields is None:
        return False
    bits = dict(fields)
    for name, table in (("territory", Territory), ("mds", Structure)):
        if name in bits and (conn.scalar(select(func.max(table.id))) or 0) >= 2 ** bits[name] - 1:
            return False
    shifts, total = {}, 0
    for name, width in reversed(fields):
        shifts[name] = total
        total += width
    other = len(KNOWN_REFERENT_TYPES) + 1  # the code of an unknown referent type
    codes = {
        "territory": func.coalesce(rows.columns["territory"] + 1, 0),
        "mds": func.coalesce(rows.columns["mds"] + 1, 0),
        "referent_type": case({rt: i + 1 for i, rt in enumerate(KNOWN_REFERENT_TYPES)},
                              value=rows.columns["referent_type"], else_=case(
                                  (rows.columns["referent_type"].is_(None), 0), else_=other)),
        "delay": func.coalesce(func.max(1, func.min(2 * _DELAY_OFFSET - 1, rows.delay + _DELAY_OFFSET)), 0),
        "bucket": case({low: i for i, low in enumerate(BUCKETS)}, value=rows.bucket),
        "month": (cast(func.substr(rows.start, 1, 4), Integer) * 12 + cast(func.substr(rows.start, 6, 2), Integer)),
    }
    key = None
    for name, _width in fields:
        term = codes[name] * literal(2 ** shifts[name], BigInteger) if shifts[name] else codes[name]
        key = term if key is None else key + term
    # "INTEGER PRIMARY KEY" is SQLite's rowid (64 bits): one b-tree; BIGINT would add an index beside it.
    fold = Table(f"rpt_fold_{uuid.uuid4().hex[:10]}", MetaData(), Column("key", Integer, primary_key=True),
                 Column("n", Integer, nullable=False), prefixes=["TEMPORARY"])
    fold.create(conn)
    try:
        # The cohort condition is always there: SQLite needs a WHERE before ON CONFLICT in INSERT …
        # SELECT (otherwise ON reads as a join constraint).
        source = rows.scoped(select(key, literal(1, Integer)).select_from(rows.source()).where(rows.in_cohort()))
        conn.execute(text(f"INSERT INTO {fold.name} (key, n) {_sql(conn, source)} "
                          f"ON CONFLICT(key) DO UPDATE SET n = n + 1"))

        def field(name):
            # Floor division ("/" between integers): SQLAlchemy's "/" would divide in floating point,
            # whose 53 bits are fewer than the key's.
            return (fold.c.key // literal(2 ** shifts[name], BigInteger)) % (2 ** bits[name])

        if "referent_type" in bits and conn.scalar(select(fold.c.key).where(field("referent_type") == other)
                                                   .limit(1)) is not None:
            return False
        null_int, null_str = literal(None, Integer), literal(None, String)
        out = {"territory": null_int, "mds": null_int, "month": null_str, "k": null_str}
        for name in ("territory", "mds"):
            if name in bits:
                out[name] = case((field(name) > 0, field(name) - 1))
        if "referent_type" in bits:
            out["k"] = case({i + 1: rt for i, rt in enumerate(KNOWN_REFERENT_TYPES)}, value=field("referent_type"))
        if "month" in bits:
            m = field("month") - 1
            out["month"] = func.printf("%04d-%02d", m // 12, m % 12 + 1)
        delay = case((field("delay") > 0, field("delay") - _DELAY_OFFSET))
        bucket = case({i: low for i, low in enumerate(BUCKETS)}, value=field("bucket"))
        conn.execute(insert(hist).from_select(HIST_COLUMNS, select(
            literal(rows.clock, String), literal(src, String), *out.values(), delay, bucket, fold.c.n)))
        return True
    finally:
        fold.drop(conn)


def _sql(conn, statement) -> str:
    """A statement as SQLite text with its parameters inlined (all are dates, numbers and codes of
    this module, never user input)."""
    return str(statement.compile(conn, compile_kwargs={"literal_binds": True}))


# --------------------------------------------------------------------------- delay statistics

DIM_SOURCE = {"all": "month", "month": "month", "territory": "geo", "mds": "geo", "referent_type": "geo",
              "origin": "origin", "rule": "rule", "parcours": "parcours", "organisme": "geo"}


def _dimension_key(dim: str) -> str:
    if dim == "all":
        return "'*'"
    if dim == "organisme":  # the organisme of the referent type: one definition, referents.vocabulary
        whens = " ".join(f"WHEN '{rt}' THEN '{org.value}'" for rt, org in ORGANISME_OF.items())
        return f"COALESCE(CASE k {whens} END, '{NULL_KEY}')"
    column = {"month": "month", "territory": "territory", "mds": "mds"}.get(dim, "k")
    return f"COALESCE(CAST({column} AS VARCHAR(80)), '{NULL_KEY}')"


def delay_statistics(session: Session, hist: Table, clock: str,
                     dims: tuple[str, ...] = ("all",)) -> dict[tuple[str, str | None], dict]:
    """Cohort size, oriented, mean / median / p90 delay and shares within 30/42/90 days, for the
    cohort of `clock`, overall ("all") and per breakdown dimension. One SQL statement over the
    histogram: the percentiles are read off the cumulative counts (see the module docstring).

    Returns {(dim, key): stats}; key None for paths whose dimension value is NULL."""
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}")
    t = hist.name
    branches = " UNION ALL ".join(
        f"SELECT '{dim}' AS dim, {_dimension_key(dim)} AS k, delay, bucket AS age_class, "
        f"CAST(SUM(n) AS BIGINT) AS n FROM {t} WHERE clock = '{clock}' AND src = '{DIM_SOURCE[dim]}' "
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
    if "all" in dims and ("all", "*") not in out:  # an empty cohort still answers, with nulls
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

def backlog(session: Session, hist: Table, clock: str) -> list[dict]:
    """Persons still to orient on the as-of date, by age band of `clock`, per territory and MDS.

    A stock, not a cohort: every open path (not closed on as_of) of an SDD person whose household's
    right is open, whose clock started by as_of, with no orientation validated by as_of, whatever
    the period."""
    h = hist.c
    q = (select(h.territory, h.mds, h.bucket, func.sum(h.n).label("n"))
         .where(h.clock == clock, h.src == "backlog").group_by(h.territory, h.mds, h.bucket))
    return [{"territory": r.territory, "mds": r.mds, "band": BAND_OF_BUCKET[r.bucket], "n": int(r.n)}
            for r in session.execute(q)]


def backlog_bands(rows: list[dict], by: str | None = None) -> dict:
    """Roll backlog rows (already aggregated by SQL, one per territory × MDS × band) up to
    band → count, optionally per territory or MDS."""
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


# --------------------------------------------------------------------------- kiosque capacity

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

def oriented_by_seniority(session: Session, f: ReportFilter, scope_ids=OWN_SCOPE) -> list[dict]:
    """Share of SDD persons (open path, open right: _open_sdd) oriented on the as-of date, by
    seniority in the RSA (days since DTDEMRSA, else since the legal clock start): < 6 months,
    6–12 months, ≥ 1 year. One aggregate over the paths, within the filters and the person scope."""
    as_of = f.as_of
    with _scope(session, f, scope_ids) as scope_ids:
        start = func.coalesce(Path.request_date, Path.clock_start)
        band = case(*[(start <= as_of - dt.timedelta(days=low), key)
                      for key, low, _high in reversed(SENIORITY_BANDS) if low > 0], else_=SENIORITY_BANDS[0][0])
        oriented = func.sum(case((Path.oriented_on <= as_of, 1), else_=0))
        q = (select(band.label("band"), func.count().label("sdd"), oriented.label("oriented"))
             .where(_open_sdd(as_of), start <= as_of).group_by(band))
        q = _PathRows(_dialect(session), f, "legal", scope_ids).scoped(q)
        found = {r.band: r for r in session.execute(q)}
    out = []
    for key, _low, _high in SENIORITY_BANDS:
        r = found.get(key)
        sdd, oriented = (int(r.sdd), int(r.oriented or 0)) if r else (0, 0)
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
            q = q.where(c[f"cohort_{clock}"] == 1, c[f"age_{clock}"] >= LEGAL_DAYS,
                        or_(c.decided.is_(None), c[f"delay_{clock}"] > LEGAL_DAYS))
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
