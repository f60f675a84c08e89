"""`report delays` on 1,000,000 persons with history, on SQLite and PostgreSQL.

The data is bulk-generated straight into a fresh database (executemany on SQLite, COPY on
PostgreSQL): households sectorised over the real MDS, one path per person (some closed), legal
clocks over two years, ~80 % oriented with a first decision later superseded for some. The
report runs over the whole two years, so every one of the million paths is in the cohort.
"""

from __future__ import annotations

import datetime as dt
import random
import time

from sqlalchemy import select

from bench.harness import BenchContext, Row, median_time
from config.db import Base, import_models
from config.runtime import build_runtime
from config.settings import Settings

AS_OF = dt.date(2026, 11, 20)
TARGETS = {"sqlite": 5.0, "postgresql": 2.0}
REFERENT_TYPES = ("pole_emploi", "actipro", "ati", "mds")
ORIGINS = ("auto", "auto", "auto", "agent", "kiosque", "default_mds")


def _rows(n: int, mds: list[tuple[int, int]], seed: int = 31):
    """Tuples for household, person, path, orientation (ids assigned here: 1..n)."""
    rnd = random.Random(seed)
    now = dt.datetime(2026, 11, 20, 8, 0)
    households, persons, paths, orientations = [], [], [], []
    oid = 0
    for i in range(1, n + 1):
        mds_id, territory_id = mds[i % len(mds)]
        start = AS_OF - dt.timedelta(days=rnd.randint(0, 729))
        request = start - dt.timedelta(days=rnd.randint(0, 40))
        closed = start + dt.timedelta(days=rnd.randint(60, 700)) if rnd.random() < 0.15 else None
        if closed is not None and closed > AS_OF:
            closed = None
        households.append((i, "CAF", f"B{i:014d}", "2", request, mds_id, territory_id, False, now, now))
        persons.append((i, i, "DEM", f"NOM{i}", "Camille", True, False, start, now, now))
        paths.append((i, i, i, start, request, "entry", closed, now))
        if rnd.random() < 0.8:
            delay = int(rnd.expovariate(1 / 35))
            decided = start + dt.timedelta(days=delay)
            if decided <= AS_OF:
                rt = REFERENT_TYPES[rnd.randrange(4)]
                origin = ORIGINS[rnd.randrange(len(ORIGINS))]
                if rnd.random() < 0.1:  # history: a first decision later superseded by a reorientation
                    oid += 1
                    orientations.append((oid, i, i, rt, "auto", origin, "superseded", True, decided, decided,
                                         f"R{rnd.randrange(12)}", now))
                    decided = min(decided + dt.timedelta(days=rnd.randint(30, 200)), AS_OF)
                    origin = "reorientation"
                oid += 1
                orientations.append((oid, i, i, rt, "auto", origin, "ended" if closed else "validated", True,
                                     decided, decided, f"R{rnd.randrange(12)}", now))
    return households, persons, paths, orientations


COLUMNS = {
    "household": ("id", "organism", "matricule", "right_state", "dtdemrsa", "mds_id", "territory_id",
                  "no_fixed_address", "created_at", "updated_at"),
    "person": ("id", "household_id", "role", "last_name", "first_name", "sdd", "pseudonymised",
               "legal_clock_start", "created_at", "updated_at"),
    "path": ("id", "person_id", "household_id", "clock_start", "request_date", "opening_reason", "closed_on",
             "created_at"),
    "orientation": ("id", "person_id", "path_id", "referent_type", "mode", "origin", "status", "algorithmic",
                    "decided_on", "validated_on", "rule_id", "created_at"),
}


def _load(rt, backend: str, tables: dict[str, list[tuple]]) -> None:
    raw = rt.engine.raw_connection()
    try:
        cur = raw.cursor()
        for name, rows in tables.items():
            cols = COLUMNS[name]
            if backend == "postgresql":
                with cur.copy(f'COPY "{name}" ({", ".join(cols)}) FROM STDIN') as copy:
                    for r in rows:
                        copy.write_row(r)
            else:
                cur.executemany(f'INSERT INTO "{name}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})',
                                [tuple(v.isoformat(" ") if isinstance(v, dt.datetime) else
                                       v.isoformat() if isinstance(v, dt.date) else v for v in r) for r in rows])
        if backend == "postgresql":  # statistics now, and no autovacuum worker holding the database
            for name in tables:
                cur.execute(f'ALTER TABLE "{name}" SET (autovacuum_enabled = false)')
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def run(ctx: BenchContext) -> list[Row]:
    from referents.models import Structure
    from referents.service import load_reference_data
    from reports.indicators import ReportFilter
    from reports.service import delays, refresh_path_outcomes

    n = 50_000 if ctx.quick else 1_000_000
    rows: list[Row] = []
    for backend in ctx.backends:
        url, cleanup = ctx.fresh_database(backend)
        rt = build_runtime(Settings.from_env(env={}).with_(database_url=url))
        try:
            import_models()
            Base.metadata.create_all(rt.engine)
            with rt.session() as s:
                load_reference_data(s)
                mds = [(i, t) for i, t in s.execute(select(Structure.id, Structure.territory_id)
                                                     .where(Structure.kind == "mds"))]
            t0 = time.perf_counter()
            households, persons, paths, orientations = _rows(n, mds)
            _load(rt, backend, {"household": households, "person": persons, "path": paths,
                                "orientation": orientations})
            load_s = time.perf_counter() - t0
            rows.append(Row("reports", backend, f"generate+load {n:,} persons", load_s, "s"))
            # The rows were written straight into the tables, bypassing orientation.service: the
            # nightly reconciliation fills the paths' outcome (Path.oriented_*), timed on its own.
            t0, c0 = time.perf_counter(), time.process_time()
            with rt.session() as s:
                changed = refresh_path_outcomes(s)
            refresh_s, refresh_cpu = time.perf_counter() - t0, time.process_time() - c0
            assert changed == len({o[2] for o in orientations}), changed
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
        finally:
            rt.dispose()
            cleanup()  # the harness retries while a background worker holds the database
    return rows


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

