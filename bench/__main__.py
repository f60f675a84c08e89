"""python -m bench [--only NAME] [--large] [--quick] [--sqlite-only]"""

from __future__ import annotations

import argparse
import datetime as dt

from bench.harness import ROOT, BenchContext, Row, postgres_url, print_table, write_json
from config.modules import optional_module

# Module names under bench/, in the order of the pipeline.
BENCHES = ("import_flux", "national", "vrsd", "spreadsheets", "stock", "orientation", "kiosque", "reports", "api_load", "planning")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    p.add_argument("--large", action="store_true", help="add the 1M-household import")
    p.add_argument("--quick", action="store_true", help="small sizes, one run: checks the scripts work")
    p.add_argument("--sqlite-only", action="store_true")
    args = p.parse_args(argv)
    pg = None if args.sqlite_only else postgres_url()
    ctx = BenchContext(backends=["sqlite"] + (["postgresql"] if pg else []), pg_server_url=pg,
                       large=args.large, quick=args.quick, repeat=1 if args.quick else 3)
    rows = []
    for name in BENCHES:
        if args.only and name not in args.only:
            continue
        module = optional_module(f"bench.{name}")
        if module is None:
            continue
        print(f"… {name}", flush=True)
        try:
            rows.extend(module.run(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            import traceback

            traceback.print_exc()
            rows.append(Row(name, "-", f"benchmark failed: {type(exc).__name__}: {exc}"[:120], 0, "", "runs", False))
    print_table(rows)
    out = ROOT / "bench" / "results" / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    write_json(rows, out)
    print(f"\n(written to {out.relative_to(ROOT)})")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
