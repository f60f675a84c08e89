"""`rsa cases …` commands, the daily job and the demo step (issue 8)."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from sqlalchemy import func, select

from cases import service as cs
from cases.models import Alert
from config.cli import main
from config.demo import DemoContext
from referents.models import AuditLog
from tests.factories import make_person
from tests.test_cases import orient

D = dt.date
NIR = "2860931555123"


def _rsa(database_url, *args):
    result = CliRunner().invoke(main, ["--database-url", database_url, "cases", *args],
                                env={"RSA_SECRET_KEY": "test-secret", "RSA_NIR_KEY": ""})
    assert result.exit_code == 0, result.output
    return result.output


def _person(rt):
    with rt.session() as s:
        p = make_person(s, commune="31555", postal_code="31500", last_name="LEGRAND", nir_hash=rt.vault.hash(NIR))
        p.nir_encrypted = rt.vault.encrypt(NIR)
        orient(s, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 9, 1), notified_on=D(2026, 9, 3))
        cs.record_appointment(s, p.id, dt.datetime(2026, 9, 8, 9), "honoured", source="provider")
        return p.id


def test_timeline_and_show(rt, database_url):
    pid = _person(rt)
    events = json.loads(_rsa(database_url, "timeline", "--person", str(pid), "--json"))
    assert [e["kind"] for e in events] == ["orientation.validated", "orientation.notified", "appointment.planned",
                                           "appointment.honoured"]
    human = _rsa(database_url, "timeline", "--person", str(pid))
    assert "appointment.honoured" in human and "[provider]" in human
    shown = json.loads(_rsa(database_url, "show", "--nir", "2 86 09 31 555 123 45", "--json", "--as-of", "2026-10-10"))
    assert shown["id"] == pid and shown["identity"]["nir"] == NIR
    orientation = shown["orientation"]
    assert {"referent_type", "rule", "status", "origin", "decided_on", "structure"} <= set(orientation)
    assert orientation["referent_type"] == "actipro" and orientation["status"] == "validated"
    assert shown["due"]["contract_due_on"] == "2026-10-03" and shown["due"]["contract_overdue"] is True
    with rt.session() as s:
        assert s.scalar(select(func.count(AuditLog.id)).where(AuditLog.person_id == pid,
                                                              AuditLog.endpoint.like("cli %"))) == 3  # 2 timelines, 1 show
    bad = CliRunner().invoke(main, ["--database-url", database_url, "cases", "show", "--nir", "1234"])
    assert bad.exit_code != 0


def test_lists_alerts_and_exits(rt, database_url):
    pid = _person(rt)
    out = json.loads(_rsa(database_url, "list", "overdue-contracts", "--as-of", "2026-10-04", "--json"))
    assert [r["person_id"] for r in out["items"]] == [pid]
    out = json.loads(_rsa(database_url, "list", "overdue-contracts", "--as-of", "2026-10-03", "--json"))
    assert out["count"] == 0
    out = json.loads(_rsa(database_url, "list", "without-appointment", "--as-of", "2026-11-20", "--json"))
    assert [r["person_id"] for r in out["items"]] == [pid]
    assert "my-people au 2026-11-20: 1" in _rsa(database_url, "list", "my-people", "--as-of", "2026-11-20")
    first = json.loads(_rsa(database_url, "alerts", "--as-of", "2026-10-04", "--json"))
    again = json.loads(_rsa(database_url, "alerts", "--as-of", "2026-10-05", "--json"))
    assert (first["contract_overdue"], again["contract_overdue"]) == (1, 0)
    with rt.session() as s:
        assert s.scalar(select(func.count(Alert.id))) == 1
        cs.record_exit(s, pid, D(2026, 10, 20), "business_creation", source="provider")
    out = json.loads(_rsa(database_url, "exits", "--start", "2026-10-01", "--end", "2026-10-31", "--json"))
    assert out["by_reason"][0]["reason"] == "business_creation"
    assert out["by_structure"][0]["structure_code"] == "ACTIPRO-TLS-EST" and out["by_structure"][0]["rate"] == 1.0


def test_daily_job_is_registered_and_idempotent(rt):
    from cases.jobs import JOBS

    _person(rt)
    job = next(j for j in JOBS if j.id == "cases.daily_alerts")
    assert job.func(rt, D(2026, 10, 10)) == {"contract_overdue": 1, "review_due": 0}
    assert job.func(rt, D(2026, 10, 10)) == {"contract_overdue": 0, "review_due": 0}


def test_demo_step_walks_oriented_people(rt, tmp_path):
    _person(rt)  # already met: the demo leaves people with an appointment alone
    with rt.session() as s:
        social = make_person(s, commune="31395", postal_code="31600", last_name="SOCIAL")
        orient(s, social, "MDS-MURET", "mds", D(2026, 11, 2))
        social_id = social.id
    lines = []
    ctx = DemoContext(runtime=rt, as_of=D(2026, 11, 20), workdir=tmp_path, echo=lines.append)
    from cases.demo import demo as cases_demo
    result = cases_demo(ctx)
    assert result["walked"] == [social_id]
    assert any("contract.signed" in line for line in lines)
    with rt.session() as s:
        kinds = [e["kind"] for e in cs.timeline(s, social_id)]
        assert kinds[-4:] == ["appointment.planned", "appointment.honoured", "contract.signed", "review.scheduled"]
        assert cs.next_due_dates(s, social_id, D(2026, 11, 20))["review_due_on"] == "2027-05-16"


def test_refresh_next_due_rewrites_the_stored_due_dates_cleared_by_an_upgrade(rt, database_url):
    """`rsa cases refresh-next-due`: after the upgrade to 0007 has cleared next_due_as_of, the command
    computes every open path's due date and terms again (then has nothing left to do)."""
    from sqlalchemy import update

    from cases.models import Path

    pid = _person(rt)
    with rt.session() as s:
        s.execute(update(Path).values(next_due_as_of=None, contract_due_on=None))  # what 0007 leaves
        s.commit()
    out = json.loads(_rsa(database_url, "refresh-next-due", "--as-of", "2026-10-10", "--json"))
    assert out == {"as_of": "2026-10-10", "paths_changed": 1}
    with rt.session() as s:
        path = s.scalar(select(Path).where(Path.person_id == pid))
        assert path.next_due_as_of == D(2026, 10, 10) and path.contract_due_on == D(2026, 10, 3)
    assert "0 parcours réécrit(s)" in _rsa(database_url, "refresh-next-due", "--as-of", "2026-10-10")
