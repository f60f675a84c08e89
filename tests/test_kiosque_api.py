"""Kiosque REST API (roles and MDS scope), the `rsa kiosque` commands, the jobs and the demo step."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from config import clock
from config.cli import main
from kiosque import jobs
from kiosque.models import Invitation, KiosqueSession, Message
from orientation.models import Orientation
from tests.kiosque_helpers import AS_OF, awaiting, kiosque, mds_id

D = dt.timedelta
API = "/api/v1/kiosque"


@pytest.fixture(autouse=True)
def _frozen_clock():
    """The sessions these tests create (December 2026) must stay in the future whatever the day the
    suite runs: the process clock is fixed on AS_OF, as a replay would (config/clock.py)."""
    clock.freeze(AS_OF)
    yield
    clock.freeze(None)


def seed(rt):
    with rt.session() as s:
        rangueil, muret = mds_id(s, "MDS-RANGUEIL"), mds_id(s, "MDS-MURET")
        k = kiosque(s, "MDS-RANGUEIL", dt.date(2026, 12, 1))
        p = awaiting(s, clock_start=AS_OF - D(10), email="a@x.fr", phone="+33612345678", last_name="Abadie")
        return rangueil, muret, k.id, p.id


def test_manager_runs_the_whole_kiosque(client, rt, make_user):
    rangueil, _, sid, pid = seed(rt)
    _, h = make_user("manager")
    r = client.post(f"{API}/sessions", json={"mds_id": rangueil, "starts_at": "2026-12-08T14:00:00", "capacity": 8},
                    headers=h)
    assert r.status_code == 201 and r.json["capacity"] == 8 and r.json["place"] == "Maison des Solidarités Rangueil"
    r = client.post(f"{API}/planning", json={"as_of": AS_OF.isoformat()}, headers=h)
    assert r.status_code == 200 and r.json["invited"] == 1
    r = client.get(f"{API}/sessions", query_string={"mds_id": rangueil}, headers=h)
    assert [(x["id"], x["booked"], x["free"]) for x in r.json][0] == (sid, 1, 19)
    (inv,) = client.get(f"{API}/sessions/{sid}/invitations", headers=h).json
    assert inv["last_name"] == "ABADIE" or inv["last_name"].upper() == "ABADIE"
    assert "nir" not in json.dumps(inv).lower()
    r = client.post(f"{API}/invitations/{inv['id']}/phoning", json={"outcome": "will_come", "on": "2026-11-25"},
                    headers=h)
    assert r.status_code == 200 and r.json["phoning_outcome"] == "will_come"
    r = client.post(f"{API}/invitations/{inv['id']}/phoning", json={"outcome": "maybe"}, headers=h)
    assert r.status_code == 422
    clock.freeze(dt.datetime(2026, 12, 1, 12, 0))  # the session of 01/12 has taken place
    r = client.post(f"{API}/invitations/{inv['id']}/attendance",
                    json={"status": "present", "referent_type": "pole_emploi",
                          "first_appointment_at": "2026-12-10T10:00:00"}, headers=h)
    assert r.status_code == 200, r.json
    with rt.session() as s:
        o = s.get(Orientation, r.json["orientation_id"])
        assert (o.origin, o.status) == ("kiosque", "validated")
    r = client.post(f"{API}/invitations/{inv['id']}/outcome", json={"referent_type": "mds"}, headers=h)
    assert r.status_code == 422  # already chosen
    r = client.get(f"{API}/funnel", query_string={"start": "2026-12-01", "end": "2026-12-31", "by": "mds"}, headers=h)
    assert r.json[0]["invited"] == 1 and r.json[0]["oriented"] == 1


def test_documents_downloads(client, rt, make_user):
    _, _, sid, _ = seed(rt)
    _, h = make_user("manager")
    client.post(f"{API}/planning", json={"as_of": AS_OF.isoformat()}, headers=h)
    r = client.get(f"{API}/sessions/{sid}/phoning.xlsx", headers=h)
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.data)).active
    assert ws["B2"].value == "ABADIE"
    r = client.get(f"{API}/sessions/{sid}/letters.pdf", headers=h)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "1er décembre 2026" in PdfReader(io.BytesIO(r.data)).pages[0].extract_text()


def test_mds_worker_only_for_their_mds(client, rt, make_user):
    rangueil, muret, sid, _ = seed(rt)
    _, manager = make_user("manager")
    client.post(f"{API}/planning", json={"as_of": AS_OF.isoformat()}, headers=manager)
    _, own = make_user("mds_worker", "MDS-RANGUEIL")
    _, other = make_user("mds_worker", "MDS-MURET")
    _, provider = make_user("provider", "ACTIPRO-TLS-EST")
    assert client.get(f"{API}/sessions", headers=provider).status_code == 403
    assert client.post(f"{API}/planning", json={}, headers=own).status_code == 403
    # Own MDS: sees and acts.
    assert [x["id"] for x in client.get(f"{API}/sessions", headers=own).json] == [sid]
    assert len(client.get(f"{API}/sessions/{sid}/invitations", headers=own).json) == 1
    r = client.post(f"{API}/sessions", json={"mds_id": rangueil, "starts_at": "2026-12-15T09:30:00"}, headers=own)
    assert r.status_code == 201
    # Another MDS: nothing seen, nothing done.
    assert client.get(f"{API}/sessions", headers=other).json == []
    assert client.get(f"{API}/sessions/{sid}", headers=other).status_code == 404
    assert client.get(f"{API}/sessions/{sid}/invitations", headers=other).status_code == 404
    r = client.post(f"{API}/sessions", json={"mds_id": rangueil, "starts_at": "2026-12-15T09:30:00"}, headers=other)
    assert r.status_code == 403
    with rt.session() as s:
        inv_id = s.scalar(select(Invitation.id))
    r = client.post(f"{API}/invitations/{inv_id}/attendance", json={"status": "absent"}, headers=other)
    assert r.status_code == 404
    assert client.get(f"{API}/funnel", query_string={"start": "2026-12-01", "end": "2026-12-31"},
                      headers=other).json == []
    assert client.get(f"{API}/sessions/{sid}").status_code == 401


def test_templates_generation_and_cancel_via_api(client, rt, make_user):
    rangueil, _, _, _ = seed(rt)
    _, h = make_user("manager")
    r = client.post(f"{API}/templates", json={"mds_id": rangueil, "weekday": 4, "start_time": "09:30:00"}, headers=h)
    assert r.status_code == 201
    client.post(f"{API}/closures", json={"day": "2026-12-18", "reason": "formation", "mds_id": rangueil}, headers=h)
    r = client.post(f"{API}/sessions/generate", json={"start": "2026-12-14", "end": "2026-12-31"}, headers=h)
    assert r.json["created"] == 0 and len(r.json["skipped"]) == 2  # 18 closed, 25 Noël
    r = client.post(f"{API}/sessions/generate", json={"start": "2026-12-01", "end": "2026-12-13"}, headers=h)
    assert r.json["created"] == 2
    new = r.json["session_ids"][0]
    r = client.delete(f"{API}/sessions/{new}", headers=h)
    assert r.status_code == 200 and r.json["status"] == "cancelled"
    r = client.patch(f"{API}/sessions/{new}", json={"capacity": 0}, headers=h)
    assert r.status_code == 422


def test_cli_plan_phoning_letters_send(rt, tmp_path):
    _, _, sid, pid = seed(rt)
    with rt.session() as s:
        awaiting(s, clock_start=AS_OF - D(12))  # letter only
    runner = CliRunner()
    rt_files = rt.__class__(settings=rt.settings.with_(outbox_dir=str(tmp_path / "outbox")), engine=rt.engine,
                            sessions=rt.sessions, vault=rt.vault)

    def run(*args):
        r = runner.invoke(main, list(args), obj={"runtime": rt_files})
        assert r.exit_code == 0, r.output
        return r.output

    out = json.loads(run("kiosque", "plan", "--as-of", AS_OF.isoformat(), "--json"))
    assert out["invited"] == 2
    assert json.loads(run("kiosque", "plan", "--as-of", AS_OF.isoformat(), "--json"))["invited"] == 0
    assert "personne(s) à inviter" in run("kiosque", "plan", "--as-of", AS_OF.isoformat())
    listed = json.loads(run("kiosque", "sessions", "list", "--mds", "MDS-RANGUEIL", "--json"))
    assert listed[0]["booked"] == 2
    xlsx = tmp_path / "appels.xlsx"
    run("kiosque", "phoning", "--session", str(sid), str(xlsx))
    wb = load_workbook(xlsx)
    wb.active["G2"] = "Joint(e)"
    wb.save(xlsx)
    res = json.loads(run("kiosque", "phoning-results", str(xlsx), "--as-of", "2026-11-25", "--json"))
    assert res["recorded"] == 1
    letters = json.loads(run("kiosque", "letters", "--session", str(sid), str(tmp_path / "letters"), "--json"))
    assert len(letters["files"]) == 2 and PdfReader(letters["batch"]).pages
    sent = json.loads(run("kiosque", "send", "--as-of", AS_OF.isoformat(), "--email", "file", "--json"))
    assert sent["sent"] == 3  # e-mail + SMS + letter
    assert list((tmp_path / "outbox" / "letters").glob("*.pdf"))
    with rt.session() as s:
        inv = s.scalar(select(Invitation).where(Invitation.person_id == pid))
    # The roll call is refused before the session (the clock is the day before it), then taken on the
    # day of the session with --as-of.
    clock.freeze(dt.datetime(2026, 11, 30, 12, 0))
    early = runner.invoke(main, ["kiosque", "attendance", "--invitation", str(inv.id), "--status", "absent"],
                          obj={"runtime": rt_files})
    assert early.exit_code != 0 and "pas encore eu lieu" in early.output, early.output
    att = json.loads(run("kiosque", "attendance", "--invitation", str(inv.id), "--status", "absent",
                         "--as-of", "2026-12-01", "--json"))
    assert att["status"] == "absent"
    gen = json.loads(run("kiosque", "sessions", "generate", "--from", "2026-12-01", "--to", "2026-12-31",
                         "--default-templates", "--json"))
    assert gen["templates_added"] == 30 and gen["created"] > 0


def test_jobs(rt):
    seed(rt)
    assert {j.id for j in jobs.JOBS} == {"kiosque.plan", "kiosque.reminders", "kiosque.outbox"}
    assert jobs.plan_job(rt, AS_OF)["invited"] == 1
    assert jobs.reminders_job(rt, dt.date(2026, 11, 28))["reminders_queued"] == 2
    with rt.session() as s:
        assert s.query(Message).count() == 4
        assert s.query(KiosqueSession).count() == 1
