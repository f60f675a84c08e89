"""The delay forecast (issue 20): a year of Haute-Garonne inflow — about 13,600 SDD entrants spread
over the 30 MDS, 52 weeks of entrants and the 6 weeks that judge the last of them at 42 days —
replayed through the product's engine on a throwaway SQLite database (`rsa plan simulate --weeks 52`
with today's defaults: 20 kiosque seats per MDS, 150 validations a week). Target: < 2 min on SQLite.
The process CPU time is printed beside the wall time: on a shared machine the wall time also counts
the waits for a core. --quick: 4 weeks.
"""

from __future__ import annotations

import datetime as dt
import time

from bench.harness import BenchContext, Row
from config.db import Base
from config.modules import import_models
from config.runtime import build_runtime
from config.settings import Settings

START = dt.date(2026, 1, 5)  # a Monday
TARGET_S = 120.0


def run(ctx: BenchContext) -> list[Row]:
    from config.planning import DEFAULT_ENTRANTS_PER_YEAR, inputs_from_today, simulate
    from referents.service import load_reference_data

    weeks = 4 if ctx.quick else 52
    url, cleanup = ctx.fresh_database("sqlite")  # the "live" database: reference data only, read-only
    try:
        import_models()
        live = build_runtime(Settings.from_env(env={}).with_(database_url=url))
        Base.metadata.create_all(live.engine)
        with live.session() as s:
            load_reference_data(s)
        inputs, _today = inputs_from_today(live, START, weeks=weeks, entrants_per_week=DEFAULT_ENTRANTS_PER_YEAR / 52)
        t0, c0 = time.perf_counter(), time.process_time()
        result = simulate(live, inputs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        live.dispose()
    finally:
        cleanup()
    label = ("a year of Haute-Garonne inflow (~13,600 entrants, 30 MDS)" if not ctx.quick
             else f"{weeks} weeks of Haute-Garonne inflow (30 MDS)")
    phases = result["simulation"]["seconds"]
    rows = [
        Row("planning", "sqlite", label, wall, "s", f"< {TARGET_S:g} s" if not ctx.quick else "",
            wall < TARGET_S if not ctx.quick else None),
        Row("planning", "sqlite", "same, process CPU time", cpu, "s"),
        Row("planning", "sqlite", "entrants of the cohort", result["cohort_size"], "paths"),
        Row("planning", "sqlite", "forecast: median legal delay", result["median_legal_days"] or 0, "days"),
        Row("planning", "sqlite", "forecast: share within 42 days", 100 * (result["share_within_42"] or 0), "%"),
    ]
    for phase in ("import", "orientation_run", "validation", "kiosque_attendance", "kiosque_plan", "referents"):
        rows.append(Row("planning", "sqlite", f"  of which {phase.replace('_', ' ')}", phases.get(phase, 0.0), "s"))
    return rows
