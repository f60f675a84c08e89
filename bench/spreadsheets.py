"""Spreadsheet import throughput: rows/s for a 50,000-row xlsx and CSV beneficiary list
(5,000 with --quick), on SQLite and PostgreSQL, each into a fresh database (every row creates a
household and a person). Also the read-only rate of each format (pandas/openpyxl, csv) to show
where the time goes."""

from __future__ import annotations

import csv
import datetime as dt
import random
import time

from bench.harness import BenchContext, Row

HEADERS = ["Civilité", "Prénom bénéficiaire", "Nom bénéficiaire", "Adresses Mails", "N° Téléphones",
           "Date de Naissance", "CP Ville", "N° CAF", "ID Iodas", "Référent", "Role"]
FIRST = ["Paul", "Inès", "Julie", "Marie", "Éric", "Léa", "Hugo", "Chloé", "Nathan", "Zoé", "Karim", "Aïcha"]
LAST = ["Durand", "Dupont", "Lefebvre", "Robert", "Martin", "Bernard", "Petit", "Garcia", "Roux", "Fournier"]
PLACES = ["31000 Toulouse", "31300 Toulouse", "31700 Blagnac", "31600 Muret", "31800 Saint-Gaudens"]


def _rows(n: int, seed: int = 31):
    rnd = random.Random(seed)
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rnd.randrange(0, 365 * 55))
        yield [rnd.choice(["Monsieur", "Madame"]), first, last, f"{first.lower()}.{last.lower()}{i}@exemple.fr",
               f"06{rnd.randrange(10**8):08d}", birth.strftime("%d/%m/%Y"), rnd.choice(PLACES),
               f"CAF{i:010d}", f"IODAS{i}", "referent@haute-garonne.fr", rnd.choice(["DEM", "CJT", ""])]


def write_csv(path, n):
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(HEADERS)
        w.writerows(_rows(n))
    return path


def write_xlsx(path, n):
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Usagers")
    ws.append(HEADERS)
    for r in _rows(n):
        ws.append(r)
    wb.save(path)
    return path


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


def run(ctx: BenchContext) -> list[Row]:
    from imports.spreadsheets import import_file, read_sheet

    n = 5_000 if ctx.quick else 50_000
    label = f"{n // 1000}k"
    files = {"csv": write_csv(ctx.workdir / f"liste_{n}.csv", n),
             "xlsx": write_xlsx(ctx.workdir / f"liste_{n}.xlsx", n)}
    rows: list[Row] = []
    for fmt, path in files.items():
        t0 = time.perf_counter()
        read_sheet(path)
        rows.append(Row("spreadsheets", "-", f"read only {fmt} {label} rows", n / (time.perf_counter() - t0),
                        "rows/s"))
    for backend in ctx.backends:
        for fmt, path in files.items():
            url, cleanup = ctx.fresh_database(backend)
            rt = _runtime(url)
            try:
                t0 = time.perf_counter()
                report = import_file(rt, path, "rdvi-usagers")
                seconds = time.perf_counter() - t0
                ok = report["status"] == "imported" and report["counts"]["created"] == n
                rows.append(Row("spreadsheets", backend, f"import {fmt} {label} rows (new persons)", n / seconds,
                                "rows/s", "all rows created", ok))
                t0 = time.perf_counter()
                again = import_file(rt, path, "rdvi-usagers")
                rows.append(Row("spreadsheets", backend, f"re-import {fmt} {label} (recognised)",
                                time.perf_counter() - t0, "s", "duplicate", again["status"] == "duplicate"))
            finally:
                rt.dispose()
                cleanup()
    return rows
