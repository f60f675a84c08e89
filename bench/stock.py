"""Taking over the existing stock at go-live (issue 16): `rsa import stock` of a 30,000-row export
(3,000 with --quick) after the first flow, on SQLite and PostgreSQL, each into a fresh database.
The rows match by the three keys in thirds (NIR, matricule + role, name + birth date), a fifth of
them with a contract."""

from __future__ import annotations

import datetime as dt
import time

from bench.harness import BenchContext, Row

HEADERS = ["nir", "matricule", "role", "nom", "prenom", "date_naissance", "organisme", "structure", "referent",
           "date_orientation", "type_contrat", "date_contrat"]
FLOOR_ROWS_S = 500
ORGANISMES = ("france_travail", "actipro", "ati", "mds", "ccas", "mission_locale", "cap_emploi")


def _runtime(url):
    from config.db import Base
    from config.runtime import build_runtime
    from config.settings import Settings
    from referents.service import load_reference_data

    rt = build_runtime(Settings.from_env(env={}).with_(database_url=url, secret_key="bench"))
    Base.metadata.create_all(rt.engine)
    with rt.session() as s:
        load_reference_data(s)
    return rt


def _export(rt, path, n: int) -> int:
    """The previous system's export: one row per person with an open path (n at most)."""
    from sqlalchemy import select

    from cases.models import Household, Path, Person

    q = (select(Person.nir_encrypted, Household.matricule, Person.role, Person.last_name, Person.first_name,
                Person.birth_date)
         .join(Household, Household.id == Person.household_id)
         .join(Path, Path.person_id == Person.id).where(Path.closed_on.is_(None)).order_by(Person.id).limit(n))
    written = 0
    with rt.session() as s, open(path, "w", encoding="utf-8", newline="") as f:
        f.write(";".join(HEADERS) + "\n")
        for i, (enc, mat, role, last, first, birth) in enumerate(s.execute(q)):
            key = i % 3
            nir = rt.vault.decrypt(enc) if key == 0 and enc else ""
            oriented = dt.date(2019, 1, 1) + dt.timedelta(days=(i * 37) % 2000)
            contract = ("CER", "PPAE", "CE", "", "")[i % 5]
            cells = [nir, mat if key == 1 else "", role if key == 1 else "", last if key == 2 else "",
                     first if key == 2 else "", birth.strftime("%d/%m/%Y") if key == 2 else "",
                     ORGANISMES[i % len(ORGANISMES)], "", "", oriented.strftime("%d/%m/%Y"), contract,
                     (oriented + dt.timedelta(days=20)).strftime("%d/%m/%Y") if contract else ""]
            f.write(";".join(cells) + "\n")
            written += 1
    return written


def run(ctx: BenchContext) -> list[Row]:
    from imports.generator import generate_monthly
    from imports.service import import_file
    from imports.stock import import_stock

    n = 3_000 if ctx.quick else 30_000
    flow = ctx.workdir / "RSABEM_stock_base.xml"
    generate_monthly(flow, households=int(n * 1.1), seed=16, month="2026-08")
    rows: list[Row] = []
    for backend in ctx.backends:
        url, cleanup = ctx.fresh_database(backend)
        rt = _runtime(url)
        try:
            assert import_file(rt, flow)["status"] == "imported"
            export = ctx.workdir / f"reprise_{backend}.csv"
            written = _export(rt, export, n)
            label = f"{written // 1000}k" if written >= 1000 else str(written)
            t0 = time.perf_counter()
            dry = import_stock(rt, export, dry_run=True, as_of=dt.date(2026, 11, 20))
            rows.append(Row("stock", backend, f"reprise --dry-run {label} rows", written / (time.perf_counter() - t0),
                            "rows/s", "", dry["status"] == "dry_run"))
            t0 = time.perf_counter()
            report = import_stock(rt, export, as_of=dt.date(2026, 11, 20))
            seconds = time.perf_counter() - t0
            taken = report["counts"].get("taken_over", 0)
            rows.append(Row("stock", backend, f"reprise {label} rows (orientations + contracts)", written / seconds,
                            "rows/s", f">= {FLOOR_ROWS_S} rows/s (30,000 rows within a minute)",
                            report["status"] == "imported" and written / seconds >= FLOOR_ROWS_S))
            # A row keyed by name + birth date that two generated persons share (homonyms) must be
            # refused as ambiguous, never matched at random: every row is taken over or refused so.
            ambiguous = sum(1 for r in report.get("rejects", []) if "ambiguë" in (r.get("reason") or ""))
            rows.append(Row("stock", backend, f"reprise {label} rows: rows taken over", taken, "rows",
                            f"= {written} - ambiguous homonyms", taken + ambiguous == written and
                            report.get("rejected", 0) == ambiguous,
                            f"{ambiguous} refused as ambiguous (same name, first name, birth date)"))
            rows.append(Row("stock", backend, f"reprise {label} rows: total time", seconds, "s"))
        finally:
            rt.dispose()
            cleanup()
    return rows
