"""Uploads bounded by content, not only by size (issue 22, item 1): spreadsheets are read row by
row under limits (declared dimensions, rows, columns, cell length, decompressed size) and a hostile
file is refused with a French reason and a failed batch — under a memory limit, in a subprocess,
as a worker would run it. The peaks and times are printed (pytest -s) and recorded in docs/security.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import select

from imports import spreadsheets as sp
from imports.models import ImportBatch
from imports.tabular import FileError
from tests import sheet_bombs as bombs
from tests.conftest import REPO
from tests.test_imports_spreadsheets import SAMPLES

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of the child: the old reader needed 5.5–5.8 GB
PEAK_CEILING_KB = 250 * 1024  # resident peak allowed for a refusal (the interpreter and libraries alone: ~115 MB)

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from config.runtime import build_runtime
    from config.settings import Settings
    from imports.spreadsheets import import_file
    rt = build_runtime(Settings.from_env(env={{}}).with_(database_url=sys.argv[1], secret_key="test-secret"))
    t0 = time.perf_counter()
    try:
        report = import_file(rt, sys.argv[2], "rdvi-usagers")
    except MemoryError:
        report = {{"status": "MemoryError"}}
    seconds = time.perf_counter() - t0
    # VmHWM: this process's own resident peak (ru_maxrss would include the parent's, inherited at fork)
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({{"report": report, "seconds": seconds, "peak_kb": peak}}, default=str))
    rt.dispose()
""")


def _import_in_child(rt, path) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", CHILD.format(limit=MEMORY_LIMIT), rt.settings.database_url, str(path)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _failed_batch(rt, name):
    with rt.session() as s:
        return s.scalars(select(ImportBatch).where(ImportBatch.file_name == name)).all()


HOSTILE = {
    # name: (builder, words of the French reason)
    "coin_declare.xlsx": (lambda p: bombs.sparse_corner(p), "déclarée de 1\u202f048\u202f576 lignes"),
    "coin_sans_dimension.xlsx": (lambda p: bombs.sparse_corner(p, declared=False), "plus de 200\u202f000 lignes"),
    "cellule_600_Mo.xlsx": (lambda p: bombs.huge_cell(p, 600 * 1024 * 1024), "décompressé"),
    "un_million_de_lignes.xlsx": (lambda p: bombs.many_rows(p, 1_000_000, declared=True), "1\u202f000\u202f001 lignes"),
    "repetitions.ods": (bombs.ods_repeated, "16\u202f384 colonnes"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spreadsheet_is_refused_cleanly_under_a_memory_limit(rt, tmp_path, name, capsys):
    build, reason = HOSTILE[name]
    path = build(tmp_path / name)
    result = _import_in_child(rt, path)
    report = result["report"]
    assert report["status"] == "failed", report
    assert report["error"].startswith("fichier refusé") and reason in report["error"], report["error"]
    assert result["peak_kb"] < PEAK_CEILING_KB, result
    (batch,) = _failed_batch(rt, name)
    assert batch.status == "failed" and reason in (batch.error or "")
    with capsys.disabled():
        print(f"\n  {name}: {path.stat().st_size / 1024:.0f} KB, refused in {result['seconds']:.2f} s, "
              f"peak RSS {result['peak_kb'] / 1024:.0f} MB")


def test_rows_without_a_declared_dimension_are_counted_as_they_stream(tmp_path):
    """A sheet that declares nothing is refused at the first row over the limit, without reading
    the rest (a small limit here keeps the test short; the default is 200,000 rows)."""
    path = bombs.many_rows(tmp_path / "lignes.xlsx", 30_000)
    rows, _detected = sp.open_sheet(path, sp.SheetLimits(max_rows=1_000))
    seen = 0
    t0 = time.perf_counter()
    with pytest.raises(FileError, match="plus de 1\u202f000 lignes"):
        for _ in rows:
            seen += 1
    assert seen == 1_000 and time.perf_counter() - t0 < 30


@pytest.mark.parametrize("name,build,reason", [
    ("large.csv", lambda p: bombs.wide_csv(p, 300), "304 colonnes"),
    ("longue.csv", lambda p: bombs.long_cell_csv(p, 40_000), "40\u202f000 caractères"),
    ("longue.xlsx", lambda p: bombs.huge_cell(p, 40_000), "40\u202f000 caractères"),
])
def test_columns_and_cell_length_are_bounded_in_every_format(rt, tmp_path, name, build, reason):
    path = build(tmp_path / name)
    report = sp.import_file(rt, path, "rdvi-usagers")
    assert report["status"] == "failed" and reason in report["error"], report
    assert _failed_batch(rt, name)[0].status == "failed"


def test_every_format_still_imports(rt):
    """xlsx, xls, ods and csv keep working through the streaming reader (the samples of issue 9)."""
    for name in ("fichier_usager_test.xlsx", "fichier_contact_test.csv", "liste_usagers_legacy.xls"):
        rows, detected = sp.read_sheet(SAMPLES / name)
        assert len(rows) >= 2 and detected["engine"] in ("openpyxl", "csv", "xlrd"), name


def test_upload_through_the_api_is_refused_with_its_reason(client, make_user, rt, tmp_path):
    _, headers = make_user("manager")
    path = bombs.sparse_corner(tmp_path / "coin.xlsx")
    with path.open("rb") as fh:
        r = client.post("/api/v1/imports/spreadsheets?mapping=rdvi-usagers", headers=headers,
                        data={"file": (fh, "coin.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["status"] == "failed", r.json
    assert "1\u202f048\u202f576 lignes" in r.json["error"]
