"""`rsa demo`, the main job: the whole pipeline on a fresh SQLite database, end to end."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from openpyxl import load_workbook

from config.cli import main


def test_demo_runs_the_whole_pipeline_and_reports(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--as-of", "2026-11-20", "--json", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)  # --json: machine output only
    steps = out["steps"]
    assert list(steps) == ["init", "imports", "replay", "orientation", "kiosque", "cases", "reports"]
    assert all(f["status"] == "imported" for f in steps["imports"]["files"])
    replay = steps["replay"]
    assert replay["weeks"] >= 10 and replay["auto_validated"] > 0 and replay["agent_validated"] > 0
    assert replay["present"] > 0 and replay["first_appointments"] > 0 and replay["contracts"] > 0
    headline = steps["reports"]["headline"]
    assert headline["median_legal_days"] is not None and headline["median_legal_days"] <= 30
    assert headline["share_legal_within_42"] > 0.8
    workbook = tmp_path / "indicateurs-2026-11-20.xlsx"
    assert len(load_workbook(workbook).sheetnames) >= 3
    letters = list(tmp_path.rglob("session-*-lot.pdf"))
    assert letters and letters[0].read_bytes().startswith(b"%PDF")
    assert dt.date.fromisoformat(out["as_of"]) == dt.date(2026, 11, 20)
