"""The delay forecast (issue 20): a year of Haute-Garonne inflow — about 13,600 SDD entrants spread
over the 30 MDS, 52 weeks of entrants and the 6 weeks that judge the last of them at 42 days —
replayed through the product's engine on a throwaway SQLite database (`rsa plan simulate --weeks 52`
with today's defaults: 20 kiosque seats per MDS, 150 validations a week). Target: < 2 min on SQLite.
The process CPU time is printed beside the wall time: on a shared machine the wall time also counts
the waits for a core (aim: < 100 s of CPU, for the wall target to hold with a margin). The year's rows
carry, as their reference, the last quiet-machine measurement before the batch kiosque decisions and
validations and the day's shared assigner (docs/planning.md, bench-20261206-093204) and each phase's
share of the CPU. --quick: 4 weeks.
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
CPU_AIM_S = 100.0  # CPU time to aim at for the wall target to hold on a quiet machine (margin)
# The year on a quiet machine before the batch kiosque decisions and validations (6 December 2026,
# 09:32, bench/results/bench-20261206-093204.json; docs/planning.md): process CPU time of the run and
# of each phase, printed as the reference of the year's rows.
BEFORE_CPU_S = {"run": 195.4, "import": 31.7, "orientation_run": 42.6, "validation": 18.2,
                "kiosque_attendance": 61.4, "kiosque_plan": 21.9, "referents": 8.5}
BEFORE_WALL_S = 200.4


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
    phases, cpu_phases = result["simulation"]["seconds"], result["simulation"].get("cpu_seconds", {})
    year = not ctx.quick

    def before(key: str, wall: bool = False) -> str:
        if not year:
            return ""
        ref = f"before: {BEFORE_CPU_S[key]:g} s CPU"
        return ref + (f" / {BEFORE_WALL_S:,.0f} s wall" if wall else "")

    rows = [
        Row("planning", "sqlite", label, wall, "s", f"< {TARGET_S:g} s" if year else "",
            wall < TARGET_S if year else None, before("run", wall=True)),
        Row("planning", "sqlite", "same, process CPU time", cpu, "s", f"< {CPU_AIM_S:g} s" if year else "",
            cpu < CPU_AIM_S if year else None, before("run")),
        Row("planning", "sqlite", "entrants of the cohort", result["cohort_size"], "paths"),
        Row("planning", "sqlite", "forecast: median legal delay", result["median_legal_days"] or 0, "days"),
        Row("planning", "sqlite", "forecast: share within 42 days", 100 * (result["share_within_42"] or 0), "%"),
    ]
    total_cpu = sum(cpu_phases.values()) or 1.0
    for phase in ("import", "orientation_run", "validation", "kiosque_attendance", "kiosque_plan", "referents"):
        rows.append(Row("planning", "sqlite", f"  of which {phase.replace('_', ' ')}", phases.get(phase, 0.0), "s"))
        share = f"{100 * cpu_phases.get(phase, 0.0) / total_cpu:.0f} % of the CPU"
        rows.append(Row("planning", "sqlite", "    (its CPU time)", cpu_phases.get(phase, 0.0), "s",
                        reference=f"{share}; {before(phase)}" if year else share))
    return rows
