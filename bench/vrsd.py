"""The VRSD0301 layout of the CNAF flow (issue 16) against VRSB0801 (issue 21, item 6): the same
10,000 generated households (2,000 with --quick) written in both layouts, each imported into a fresh
database on each backend. The VRSB0801 import of the same households is the reference: the new
layout reads its role and SDD flag from other blocks, it must not cost more than a few per cent.
"""

from __future__ import annotations

import time

from bench.harness import BenchContext, Row

NAME = "vrsd0301"
MAX_RATIO = 1.25  # VRSD0301 time / VRSB0801 time: the layouts carry the same data


def _import_once(url: str, path) -> tuple[float, dict]:
    from config.bootstrap import init_database
    from config.runtime import build_runtime
    from config.settings import Settings
    from imports.service import import_file

    rt = build_runtime(Settings.from_env(env={}).with_(database_url=url, secret_key="bench-secret"))
    try:
        init_database(rt)
        t0 = time.perf_counter()
        result = import_file(rt, path)
        return time.perf_counter() - t0, result
    finally:
        rt.dispose()


def run(ctx: BenchContext) -> list[Row]:
    from imports.generator import convert_to_vrsd, generate_monthly

    n = 2_000 if ctx.quick else 10_000
    vrsb = ctx.workdir / f"RSABEM_vrsb_{n}.xml"
    vrsd = ctx.workdir / f"RSABEM_vrsd_{n}.xml"
    generate_monthly(vrsb, households=n, seed=21, month="2026-09")
    convert_to_vrsd(vrsb, vrsd)
    tag = f"{n // 1000}k"
    rows: list[Row] = []
    for backend in ctx.backends:
        times = {}
        for label, path in (("VRSB0801", vrsb), ("VRSD0301", vrsd)):
            url, cleanup = ctx.fresh_database(backend)
            try:
                seconds, result = _import_once(url, path)
            finally:
                cleanup()
            if result["status"] != "imported" or result.get("rejected"):
                raise RuntimeError(f"{label}: {result['status']} ({result.get('rejected')} rejetés)")
            times[label] = (seconds, result["persons"])
        (ref_s, ref_p), (s, p) = times["VRSB0801"], times["VRSD0301"]
        ratio = s / ref_s
        rows += [
            Row(NAME, backend, f"VRSD0301 first import {tag}: persons/s", p / s, "persons/s", "", None,
                f"VRSB0801, same households: {ref_p / ref_s:,.0f} persons/s"),
            Row(NAME, backend, f"VRSD0301 first import {tag}: time", s, "s", f"<= {MAX_RATIO:g} x VRSB0801",
                ratio <= MAX_RATIO, f"VRSB0801: {ref_s:.2f} s ({ratio:.2f} x)"),
            Row(NAME, backend, f"VRSD0301 first import {tag}: persons", p, "persons", f"= {ref_p} (VRSB0801)",
                p == ref_p),
        ]
    return rows
