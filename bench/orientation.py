"""Orientation benchmark: rule evaluation speed, then a full `orient run` on 100,000 SDD persons
bulk-inserted into a fresh database (5,000 with --quick), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

from bench.harness import BenchContext, Row, median_time

AS_OF = dt.date(2026, 11, 20)
TARGET_RUN_S = 20.0


def run(ctx: BenchContext) -> list[Row]:
    from config import migrate
    from config.modules import import_models
    from config.runtime import build_runtime
    from config.settings import Settings
    from orientation.facts import build_facts
    from orientation.population import insert_population
    from orientation.service import active_rule_set
    from orientation.service import run as orient_run
    from referents.service import load_reference_data

    import_models()
    n = 5_000 if ctx.quick else 100_000
    rows: list[Row] = []
    for backend in ctx.backends:
        url, cleanup = ctx.fresh_database(backend)
        rt = build_runtime(Settings.from_env().with_(database_url=url))
        try:
            migrate.upgrade(rt.engine)
            with rt.session() as s:
                load_reference_data(s)
            t0 = time.perf_counter()
            with rt.session() as s:
                insert_population(s, n, AS_OF, seed=2026, unsectorised_share=0.01)
            rows.append(Row("orientation", backend, f"bulk insert of {n:,} persons", time.perf_counter() - t0, "s"))

            with rt.session() as s:
                _, spec = active_rule_set(s)
                ids = list(range(1, n + 1))
                t_facts, facts = median_time(lambda s=s, ids=ids: build_facts(s, ids, AS_OF), 1)
            rows.append(Row("orientation", backend, "facts built (bulk queries)", n / t_facts, "persons/s"))
            evaluator = spec.compile(AS_OF)
            values = list(facts.values())
            t_eval, _ = median_time(lambda ev=evaluator, vs=values: [ev.evaluate(f) for f in vs], ctx.repeat)
            rows.append(Row("orientation", backend, "rule evaluation", n / t_eval, "persons/s"))

            t0, c0 = time.perf_counter(), time.process_time()
            with rt.session() as s:
                result = orient_run(s, AS_OF)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            ok = result["considered"] == n and (backend != "sqlite" or ctx.quick or elapsed < TARGET_RUN_S)
            rows.append(Row("orientation", backend, f"full orient run, {n:,} persons", elapsed, "s",
                            target=f"< {TARGET_RUN_S:.0f} s (SQLite)" if backend == "sqlite" else "",
                            ok=ok))
            # CPU of this process (with SQLite: nearly all the work), to read the wall time on a busy machine.
            rows.append(Row("orientation", backend, "  of which CPU time of the Python process", cpu, "s"))
            t0 = time.perf_counter()
            with rt.session() as s:
                again = orient_run(s, AS_OF)
            rows.append(Row("orientation", backend, "second run (nothing changes)", time.perf_counter() - t0, "s",
                            ok=sum(again["decisions"].values()) == 0))
        finally:
            rt.dispose()
            cleanup()
    return rows
