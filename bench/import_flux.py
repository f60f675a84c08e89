"""CAF/MSA flow import: throughput, memory, re-import times (issue 3, targets of issue 10).

For 10k and 100k generated households (2k with --quick; 1M added with --large), on each backend, in a fresh database and
in a subprocess (so that the peak RSS is the importer's own):
- the raw lxml iterparse throughput of the same file (iterparse + clear, nothing else);
- the first import: persons/s, MB/s, its share of the raw throughput in wall-clock time and in CPU
  time (importer + its reading process vs the raw parse: comparable on a loaded machine), peak RSS;
- an identical re-import (recognised by the file's SHA-256);
- the next monthly flow with 5% of the households changed (unchanged ones skipped by hash).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT, BenchContext, Row

NAME = "import_flux"


CACHE = Path(tempfile.gettempdir()) / "rsa-bench-import-flux"


def _cpu() -> float:
    """CPU time of this process and of its finished children (the importer's reading process):
    on a shared machine, the like-for-like comparison with the raw parse."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _rss_mb(reader_mb: float | None) -> float:
    """Peak RSS of the importer plus that of its reading process (an upper bound of their sum), each
    its own VmHWM. getrusage's ru_maxrss is not used: a child inherits it from the process it was
    forked from, so it counted the importer's memory at the reader's start a second time (and this
    worker's, the benchmark driver's)."""
    from imports.flux_worker import peak_rss_mb

    own = peak_rss_mb()
    if own is None:  # not Linux: the getrusage figures, an overestimate
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return own + (reader_mb or 0.0)


def _files(ctx: BenchContext, households: int) -> tuple[Path, Path]:
    """Generated once per machine (deterministic) and kept in CACHE: 100k households take minutes."""
    from imports.generator import derive_flux, generate_monthly

    CACHE.mkdir(exist_ok=True)
    base = CACHE / f"RSABEM_{households}.xml"
    changed = CACHE / f"RSABEM_{households}_5pct.xml"
    if not base.exists():
        generate_monthly(base, households=households, seed=31, month="2026-09")
    if not changed.exists():
        derive_flux([base], changed, seed=31, daily=False, month="2026-10", change_rate=0.05)
    return base, changed


def _worker(argv: list[str]) -> int:
    """`python -m bench.import_flux raw FILE` or `… import URL BASE CHANGED`: prints one JSON line."""
    if argv[0] == "raw":
        from lxml import etree

        path = Path(argv[1])
        t0, c0 = time.perf_counter(), _cpu()
        n = 0
        for _ev, el in etree.iterparse(str(path), events=("end",), tag="InfosFoyerRSA", resolve_entities=False,
                                       no_network=True, load_dtd=False):
            n += 1
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
        seconds = time.perf_counter() - t0
        print(json.dumps({"seconds": seconds, "cpu": _cpu() - c0, "households": n,
                          "rss_mb": _rss_mb(None)}))
        return 0
    from config.bootstrap import init_database
    from config.runtime import build_runtime
    from config.settings import Settings
    from imports.service import import_files

    url, base, changed = argv[1], Path(argv[2]), Path(argv[3])
    rt = build_runtime(Settings.from_env(env={}).with_(database_url=url, secret_key="bench-secret"))
    init_database(rt)
    out = {}
    for label, path in (("first", base), ("identical", base), ("changed", changed)):
        t0, c0 = time.perf_counter(), _cpu()
        (r,) = import_files(rt, [path])
        out[label] = {"seconds": time.perf_counter() - t0, "cpu": _cpu() - c0, "status": r["status"],
                      "persons": r["persons"],
                      "households": r["households"], "unchanged": r["unchanged"], "updated": r["updated"],
                      "rss_mb": _rss_mb(r.get("reader_peak_rss_mb"))}
    rt.dispose()
    print(json.dumps(out))
    return 0


def _run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.import_flux", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(ctx: BenchContext) -> list[Row]:
    sizes = [2_000] if ctx.quick else [10_000, 100_000] + ([1_000_000] if ctx.large else [])
    rows: list[Row] = []
    for n in sizes:
        base, changed = _files(ctx, n)
        mb = base.stat().st_size / 1e6
        raw = _run(["raw", str(base)])
        raw_mbs = mb / raw["seconds"]
        tag = f"{n // 1000}k"
        rows.append(Row(NAME, "-", f"raw iterparse {tag} ({mb:.0f} MB)", raw_mbs, "MB/s"))
        rows.append(Row(NAME, "-", f"raw iterparse {tag} peak RSS", raw["rss_mb"], "MB"))
        rows.append(Row(NAME, "-", f"raw iterparse {tag} time", raw["seconds"], "s"))
        rows.append(Row(NAME, "-", f"raw iterparse {tag} CPU time", raw["cpu"], "s"))
        for backend in ctx.backends:
            url, cleanup = ctx.fresh_database(backend)
            try:
                res = _run(["import", url, str(base), str(changed)])
            finally:
                cleanup()
            first, same, chg = res["first"], res["identical"], res["changed"]
            assert first["status"] == "imported" and same["status"] == "duplicate", res
            mbs = mb / first["seconds"]
            share = 100 * mbs / raw_mbs
            cpu_share = 100 * raw["cpu"] / first["cpu"]
            rows += [
                Row(NAME, backend, f"first import {tag}: persons/s", first["persons"] / first["seconds"], "persons/s"),
                Row(NAME, backend, f"first import {tag}: share of raw parse, CPU time (importer + reader)",
                    cpu_share, "%"),
                Row(NAME, backend, f"first import {tag}: CPU time (importer + reader)", first["cpu"], "s"),
                Row(NAME, backend, f"first import {tag}: MB/s", mbs, "MB/s"),
                Row(NAME, backend, f"first import {tag}: share of raw parse (wall clock)", share, "%", ">= 40",
                    share >= 40),
                Row(NAME, backend, f"first import {tag}: time", first["seconds"], "s"),
                Row(NAME, backend, f"first import {tag}: peak RSS", first["rss_mb"], "MB",
                    "< 300" if n >= 100_000 else "", first["rss_mb"] < 300 if n >= 100_000 else None),
                Row(NAME, backend, f"identical re-import {tag}", same["seconds"], "s", "< 1", same["seconds"] < 1),
                Row(NAME, backend, f"5%-changed monthly {tag} ({chg['updated']} changed)", chg["seconds"], "s"),
                Row(NAME, backend, f"5%-changed monthly {tag}: peak RSS (importer since the first import)",
                    chg["rss_mb"], "MB"),
                Row(NAME, backend, f"5%-changed monthly {tag}: speed-up", first["seconds"] / chg["seconds"], "x",
                    ">= 3", first["seconds"] / chg["seconds"] >= 3),
            ]
    return rows


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
