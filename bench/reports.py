"""`report delays` on 1,000,000 persons with history, on SQLite and PostgreSQL.

The population is the shared bulk one (`bench/population.py`: COPY on PostgreSQL, executemany on
SQLite): households sectorised over the real MDS, one path per person (some closed), legal clocks
over two years, ~80 % oriented with a first decision later superseded for some, timeline events
and appointments. The report runs over the whole two years, so every path is in the cohort.
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import distinct, func, select, update

from bench import population
from bench.harness import BenchContext, Row, median_time
from cases.models import Path
from config.runtime import build_runtime
from config.settings import Settings
from orientation.models import Orientation

AS_OF = population.AS_OF
TARGETS = {"sqlite": 5.0, "postgresql": 2.0}


def run(ctx: BenchContext) -> list[Row]:
    from orientation.outcomes import refresh_path_outcomes
    from reports.indicators import ReportFilter
    from reports.service import delays, full_report

    n = 50_000 if ctx.quick else 1_000_000
    rows: list[Row] = []
    for backend in ctx.backends:
        url, cleanup = ctx.fresh_database(backend)
        rt = build_runtime(Settings.from_env(env={}).with_(database_url=url))
        try:
            _by_kind, _counts, load_s = population.create(rt, backend, n)
            rows.append(Row("reports", backend, f"generate+load {n:,} persons", load_s, "s"))
            # The nightly reconciliation of Path.oriented_* as on a database loaded without the
            # orientation service: outcomes cleared, then rebuilt from the orientations, timed alone.
            with rt.session() as s:
                s.execute(update(Path).values(oriented_on=None, oriented_referent_type=None,
                                              oriented_origin=None, oriented_rule=None))
                oriented_paths = s.scalar(select(func.count(distinct(Orientation.path_id)))
                                          .where(Orientation.validated_on.is_not(None)))
            t0, c0 = time.perf_counter(), time.process_time()
            with rt.session() as s:
                changed = refresh_path_outcomes(s)
            refresh_s, refresh_cpu = time.perf_counter() - t0, time.process_time() - c0
            assert changed == oriented_paths, (changed, oriented_paths)
            rows.append(Row("reports", backend, f"refresh path outcomes ({changed:,} paths)", refresh_s, "s"))
            rows.append(Row("reports", backend, "refresh path outcomes, CPU of this process", refresh_cpu, "s"))
            _analyze(rt, backend)
            f = ReportFilter(as_of=AS_OF, start=AS_OF - dt.timedelta(days=729))

            def report(rt=rt, f=f):
                with rt.sessions() as s:
                    return delays(s, f)

            c0 = time.process_time()
            elapsed, result = median_time(report, ctx.repeat)
            report_cpu = (time.process_time() - c0) / ctx.repeat
            legal = result["clocks"]["legal"]
            assert legal["cohort_size"] == n, legal["cohort_size"]
            target = TARGETS[backend]
            rows.append(Row("reports", backend, f"report delays, {n:,} persons (2 clocks, 4 breakdowns)",
                            elapsed, "s", f"< {target:g} s", elapsed < target if not ctx.quick else None))
            # SQLite runs in this process (its CPU is all of it); PostgreSQL's work is in the server.
            rows.append(Row("reports", backend, "report delays, CPU of this process (mean)", report_cpu, "s"))
            rows.append(Row("reports", backend, "median legal delay (check)", legal["median_days"] or 0, "days"))

            def dashboard(rt=rt, f=f):
                with rt.sessions() as s:
                    return full_report(s, f)

            # The dashboard and the workbook: the six breakdowns, kiosque, after-orientation indicators
            # and the seniority series. Once: it is the page a manager opens, not the nightly budget.
            elapsed, _ = median_time(dashboard, 1)
            rows.append(Row("reports", backend, f"dashboard (full report), {n:,} persons", elapsed, "s"))
            rows += _snapshots(rt, backend, f, elapsed, ctx.quick)
        finally:
            rt.dispose()
            cleanup()  # the harness retries while a background worker holds the database
    return rows


def _snapshots(rt, backend: str, f, cold_s: float, quick: bool) -> list[Row]:
    """The dashboard served from its stored snapshot (reports/snapshots.py, issue 21 item 5): what
    every request after the first (or after the morning's warm-up) costs, beside the computation."""
    from reports.snapshots import stored_report

    age = dt.timedelta(minutes=15)

    def stored(rt=rt, f=f):
        with rt.sessions() as s:
            snap = stored_report(s, "full", f, max_age=age)
            assert snap.cached
            return snap

    with rt.sessions() as s:  # the first request computes and stores it
        stored_report(s, "full", f, max_age=age)
    elapsed, _ = median_time(stored, 5)
    return [Row("reports", backend, "dashboard (full report) from its snapshot", elapsed * 1000, "ms", "< 1000 ms",
                elapsed < 1.0 if not quick else None, f"computed: {cold_s:.1f} s")]


def _analyze(rt, backend: str) -> None:
    """Fresh statistics (and, on PostgreSQL, a vacuumed path table) after the refresh rewrote the paths."""
    raw = rt.engine.raw_connection()
    try:
        if backend == "postgresql":
            raw.driver_connection.autocommit = True  # VACUUM runs outside a transaction
            raw.cursor().execute('VACUUM ANALYZE "path"')
            raw.driver_connection.autocommit = False
        else:
            raw.cursor().execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()

