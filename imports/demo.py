"""`rsa demo`, step 1: generated Haute-Garonne flows (4 monthly + 1 daily, deterministic), then the
public sample, imported as the inbox job would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from imports.generator import derive_flux, generate_monthly, month_bounds
from imports.service import import_files

ORDER = 10  # first: every other step works on the imported households
DEMO_SEED = 31
SAMPLE = Path(__file__).resolve().parent / "data" / "RSABEM.xml"


def demo(ctx) -> dict:
    """Generated Haute-Garonne flows (4 monthly + 1 daily, deterministic), then the public sample."""
    folder = ctx.workdir / "flux"
    folder.mkdir(parents=True, exist_ok=True)
    months = []
    first_of_month = ctx.as_of.replace(day=1)
    for back in range(4, 0, -1):
        d = first_of_month
        for _ in range(back):
            d = (d - dt.timedelta(days=1)).replace(day=1)
        months.append(f"{d.year}-{d.month:02d}")
    files = []
    first = folder / f"RSABEM_{months[0].replace('-', '')}.xml"
    generate_monthly(first, households=200, seed=DEMO_SEED, month=months[0])
    files.append(first)
    for month in months[1:]:
        out = folder / f"RSABEM_{month.replace('-', '')}.xml"
        derive_flux(files, out, seed=DEMO_SEED, daily=False, month=month, change_rate=0.03, new_households=35)
        files.append(out)
    last = files[-1]
    daily = folder / f"RSABEI_{months[-1].replace('-', '')}_quotidien.xml"
    last_ref = month_bounds(months[-1])[1]
    derive_flux([last], daily, seed=DEMO_SEED, daily=True, change_rate=0.04, new_households=6,
                day=max(1, min(25, (ctx.as_of - last_ref).days - 2)))
    results = import_files(ctx.runtime, [*files, daily])
    results += import_files(ctx.runtime, [SAMPLE])
    for r in results:
        warn = f" — {'; '.join(r['warnings'])}" if r["warnings"] else ""
        if r["status"] == "failed":
            ctx.echo(f"[import] {Path(r['path']).name}: ÉCHEC {r['error']}")
        else:
            ctx.echo(f"[import] {Path(r['path']).name}: {r['households']} foyers, {r['persons']} personnes, "
                     f"{r['created']} créés, {r['updated']} modifiés, {r['unchanged']} inchangés, "
                     f"{r['rejected']} rejetés{warn}")
    return {"files": [{k: r[k] for k in ("path", "status", "households", "persons", "created", "updated",
                                          "unchanged", "rejected", "warnings")} for r in results]}
