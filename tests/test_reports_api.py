"""Reports over REST, in xlsx (openpyxl and pandas), on the command line, as a job and in the demo."""

from __future__ import annotations

import datetime as dt
import io
import json

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cases.models import Person
from config.cli import main
from config.demo import DemoContext
from orientation.models import Orientation
from referents.models import Structure
from reports import export, jobs, service
from reports.indicators import ReportFilter
from tests.reports_world import build_world
from tests.test_reports_indicators import AS_OF, D, orient, person

Q = "as_of=2026-11-20&from=2026-01-01"


@pytest.fixture
def world(rt):
    return build_world(rt)


def test_delays_json_equals_service_and_is_scoped(client, make_user, rt, world):
    _, headers = make_user("manager")
    r = client.get(f"/api/v1/reports/delays?{Q}", headers=headers)
    assert r.status_code == 200
    with rt.session() as s:
        expected = service.delays(s, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    assert r.json["clocks"]["legal"]["median_days"] == expected["clocks"]["legal"]["median_days"] == 20.0
    assert r.json == json.loads(json.dumps(expected))
    assert set(r.json["clocks"]) == {"demande", "legal"}
    for key in ("cohort_size", "oriented", "mean_days", "median_days", "p90_days", "share_within_30",
                "share_within_42", "share_within_90", "backlog", "by_month", "by_territory", "by_mds",
                "by_referent_type"):
        assert key in r.json["clocks"]["demande"], key
    # a provider with nobody oriented to its structure sees an empty cohort
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")
    scoped = client.get(f"/api/v1/reports/delays?{Q}", headers=provider).json
    assert scoped["clocks"]["legal"]["cohort_size"] == 0 and scoped["clocks"]["legal"]["backlog_total"] == 0
    assert client.get(f"/api/v1/reports/delays?{Q}").status_code == 401
    assert client.get(f"/api/v1/reports/delays?{Q}&mds=NOPE", headers=headers).status_code == 422
    bad = client.get("/api/v1/reports/delays?from=2026-05-01&to=2026-01-01", headers=headers)
    assert bad.status_code == 422


def test_person_list_api_is_audited(client, make_user, rt, world):
    from referents.models import AuditLog

    user, headers = make_user("manager")
    r = client.get(f"/api/v1/reports/persons?{Q}&list=backlog&band=15-29", headers=headers)
    assert r.status_code == 200 and [p["person_id"] for p in r.json] == [world["evil"]]
    assert "nir" not in json.dumps(r.json).lower()
    with rt.session() as s:
        assert s.scalar(select(AuditLog).where(AuditLog.action == "report_person_list",
                                               AuditLog.user_id == user.id)) is not None


def _workbook(client, headers, query=Q):
    r = client.get(f"/api/v1/reports/export.xlsx?{query}", headers=headers)
    assert r.status_code == 200 and r.mimetype == export_mimetype()
    return r.data


def export_mimetype():
    from reports.api import XLSX

    return XLSX


def test_xlsx_has_views_charts_and_the_json_numbers(client, make_user, world):
    _, headers = make_user("manager")
    data = _workbook(client, headers)
    report = client.get(f"/api/v1/reports/delays?{Q}", headers=headers).json
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for title in ("Synthèse", "Par mois", "Stock à orienter", "Par territoire", "Par MDS", "Par type de référent",
                  "Par origine", "Par règle", "Kiosque", "Après orientation", "Référence nationale",
                  "Personnes à orienter"):
        assert title in wb.sheetnames, title
        assert wb[title].freeze_panes == "A2", title
    assert len(wb["Par mois"]._charts) == 1 and len(wb["Stock à orienter"]._charts) == 1
    assert len(wb["Par type de référent"]._charts) == 1
    assert wb["Synthèse"]["B5"].number_format == "0.0"  # median, days
    assert wb["Synthèse"]["B7"].number_format == "0.0%"  # share within 42
    # the same numbers as the JSON, read back with pandas
    months = pd.read_excel(io.BytesIO(data), sheet_name="Par mois")
    legal = report["clocks"]["legal"]
    json_medians = [m["median_days"] for m in legal["by_month"]]
    xlsx_medians = [None if pd.isna(v) else float(v) for v in months["Médiane légale (j)"]]
    assert xlsx_medians == json_medians and list(months["Mois"]) == [m["key"] for m in legal["by_month"]]
    summary = pd.read_excel(io.BytesIO(data), sheet_name="Synthèse", nrows=9).set_index("Indicateur")
    assert summary.loc["Délai médian", "Délai légal"] == legal["median_days"] == 20.0
    assert summary.loc["Délai au 90e centile", "Depuis la demande (DREES)"] == report["clocks"]["demande"]["p90_days"]
    assert summary.loc["Part orientée sous 42 jours", "Délai légal"] == pytest.approx(legal["share_within_42"])
    backlog = pd.read_excel(io.BytesIO(data), sheet_name="Stock à orienter", nrows=5)
    assert dict(zip(backlog["Ancienneté (jours)"], backlog["Horloge légale"], strict=True)) == legal["backlog"]
    by_rt = pd.read_excel(io.BytesIO(data), sheet_name="Par type de référent")
    actipro = by_rt[(by_rt["Clé"] == "actipro") & (by_rt["Horloge"] == "Délai légal")].iloc[0]
    assert actipro["Délai médian (j)"] == 30.0 and actipro["Orientés"] == 5
    # formula injection: data never becomes a formula
    persons = wb["Personnes à orienter"]
    names = {persons.cell(row=r, column=2).value: persons.cell(row=r, column=2) for r in range(2, persons.max_row + 1)}
    evil = names["'=HYPERLINK(\"http://x\",\"clic\")"]
    assert evil.data_type == "s"
    assert all(not str(c.value).startswith("=") for row in persons.iter_rows() for c in row if c.value is not None)


def test_xlsx_person_sheet_only_for_managers(client, make_user, world):
    _, mds_worker = make_user("mds_worker", structure_code="MDS-MURET")
    wb = openpyxl.load_workbook(io.BytesIO(_workbook(client, mds_worker)))
    assert "Personnes à orienter" not in wb.sheetnames and "Synthèse" in wb.sheetnames


def test_safe_text_guards_every_formula_prefix():
    for bad in ("=1+1", "+33 6", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert export.safe_text(bad) == "'" + bad
    assert export.safe_text("Dupont") == "Dupont" and export.safe_text(3) == 3


def test_dashboard_roles_and_person_list(client, make_user, world):
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")
    assert client.get("/dashboard", headers=provider).status_code == 403
    assert client.get("/dashboard/personnes", headers=provider).status_code == 403
    anonymous = client.get("/dashboard")
    assert anonymous.status_code in (303, 401)
    _, manager = make_user("manager")
    page = client.get(f"/dashboard?{Q}", headers=manager)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="fr">' in html
    assert 'id="median-legal" data-value="20.0"' in html and "<svg" in html and "cdn" not in html.lower()
    assert "objectif 30 j" in html and "limite légale 42 j" in html
    lst = client.get(f"/dashboard/personnes?{Q}&list=backlog&band=15-29", headers=manager)
    assert lst.status_code == 200 and "HYPERLINK" in lst.get_data(as_text=True)
    assert "<script" not in lst.get_data(as_text=True)
    assert client.get("/dashboard/personnes?list=everyone", headers=manager).status_code == 400


def test_cli_delays_json_and_export(rt, world, database_url, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["--database-url", database_url, "report", "delays", "--as-of", "2026-11-20",
                             "--from", "2026-01-01", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["as_of"] == "2026-11-20" and data["clocks"]["legal"]["median_days"] == 20.0
    human = runner.invoke(main, ["--database-url", database_url, "report", "delays", "--as-of", "2026-11-20",
                                 "--from", "2026-01-01"])
    assert human.exit_code == 0 and "médiane 20.0 j" in human.output
    out = tmp_path / "r.xlsx"
    r = runner.invoke(main, ["--database-url", database_url, "report", "export", str(out), "--as-of", "2026-11-20",
                             "--from", "2026-01-01", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["headline"]["median_legal_days"] == 20.0
    assert "Par mois" in openpyxl.load_workbook(out).sheetnames
    for cmd in ("kiosque", "after"):
        r = runner.invoke(main, ["--database-url", database_url, "report", cmd, "--as-of", "2026-11-20", "--json"])
        assert r.exit_code == 0, r.output
    bad = runner.invoke(main, ["--database-url", database_url, "report", "delays", "--mds", "NOPE"])
    assert bad.exit_code != 0 and "MDS inconnue" in bad.output


def test_monthly_job_writes_previous_month(rt, world):
    with rt.session() as s:
        p = person(s, D(2026, 10, 5))
        orient(s, p, D(2026, 10, 25))
    result = jobs.monthly_workbook(rt, D(2026, 11, 1))
    assert result["month"] == "2026-10" and result["path"].endswith("indicateurs-2026-10.xlsx")
    wb = openpyxl.load_workbook(result["path"])
    assert wb["Synthèse"]["B2"].value == 2  # the October cohort: this person and the one of 10-15
    assert jobs.JOBS[0].cron == {"day": 1, "hour": 6, "minute": 30}


def test_demo_step_prints_headline_and_writes_workbook(rt, world, tmp_path):
    lines = []
    ctx = DemoContext(runtime=rt, as_of=AS_OF, workdir=tmp_path, echo=lines.append)
    from reports import demo

    result = demo.demo(ctx)
    assert any("délai médian légal" in line for line in lines)
    assert any("classeur écrit" in line for line in lines)
    assert openpyxl.load_workbook(result["workbook"])["Synthèse"]["A1"].value == "Indicateur"


def test_kiosque_section_uses_the_kiosque_definition(session, world):
    from kiosque.models import Invitation, KiosqueSession

    mds = session.scalar(select(Structure).where(Structure.code == "MDS-MURET"))
    ks = KiosqueSession(mds_id=mds.id, starts_at=dt.datetime(2026, 10, 6, 9, 30), place="MDS", capacity=2)
    session.add(ks)
    session.flush()
    people = session.scalars(select(Person).order_by(Person.id).limit(3)).all()
    statuses = [("present", "will_come", "mds"), ("present", "reached", None), ("absent", "no_answer", None)]
    for p, (status, phoning, chosen) in zip(people, statuses, strict=True):
        session.add(Invitation(person_id=p.id, session_id=ks.id, invited_on=D(2026, 9, 20), status=status,
                               phoning_outcome=phoning, chosen_referent_type=chosen))
    session.flush()
    k = service.kiosque(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    assert k["funnel"] == {"invited": 3, "reached": 2, "attended": 2, "oriented": 1, "rate_oriented": 0.333}
    assert [m["key"] for m in k["by_mds"]] == ["MDS-MURET"]
    assert k["capacity"]["kiosque_sessions"] == 1 and k["capacity"]["kiosque_sessions_full"] == 1
    session.add(Orientation(person_id=people[0].id, referent_type="actipro", status="awaiting_capacity",
                            decided_on=D(2026, 11, 2)))
    session.flush()
    assert service.kiosque(session, ReportFilter(as_of=AS_OF))["capacity"]["awaiting_capacity"] == {"actipro": 1}
