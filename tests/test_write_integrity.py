"""Issue 18: write integrity in the services, so that the API and the pages refuse alike, in French,
naming the field: no contract signed or exit in the future, no exit before the path started, no
appointment honoured before its time, no kiosque session in the past or on a public holiday or
closure day, no presence at a session that has not happened."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from kiosque.models import Invitation
from tests.screens_world import build, structure_id

TODAY = dt.date.today()


def test_cases_refuse_dates_that_cannot_be(rt, client, make_user):
    ids = build(rt)
    pid = ids["followed"]
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    r = client.post(f"/api/v1/persons/{pid}/contracts", json={"signed_on": tomorrow}, headers=provider)
    assert r.status_code == 422 and "Date de signature du contrat" in r.json["errors"]["signed_on"][0]
    r = client.post(f"/api/v1/persons/{pid}/exit", json={"exit_on": tomorrow, "reason": "training"}, headers=provider)
    assert r.status_code == 422 and "dans le futur" in r.json["errors"]["exit_on"][0]
    r = client.post(f"/api/v1/persons/{pid}/exit", json={"exit_on": "2020-01-01", "reason": "training"},
                    headers=provider)
    assert r.status_code == 422 and "précède le début du parcours" in r.json["errors"]["exit_on"][0]
    r = client.post(f"/api/v1/persons/{pid}/appointments",
                    json={"scheduled_at": f"{tomorrow}T10:00:00", "status": "honoured"}, headers=provider)
    assert r.status_code == 422 and "n'a pas encore eu lieu" in r.json["errors"]["status"][0]
    r = client.post(f"/api/v1/persons/{pid}/appointments", json={"scheduled_at": f"{tomorrow}T10:00:00"},
                    headers=provider)
    assert r.status_code == 201  # planned: fine
    appt = r.json["id"]
    r = client.patch(f"/api/v1/persons/{pid}/appointments/{appt}", json={"status": "honoured"}, headers=provider)
    assert r.status_code == 422 and "n'a pas encore eu lieu" in r.json["errors"]["status"][0]
    assert client.patch(f"/api/v1/persons/{pid}/appointments/{appt}", json={"status": "excused"},
                        headers=provider).status_code == 200  # an excuse may come before


def test_kiosque_refuses_sessions_in_the_past_or_on_days_off_and_early_roll_calls(rt, client, make_user):
    ids = build(rt)
    _, worker = make_user("mds_worker", structure_code="MDS-RANGUEIL")
    with rt.session() as s:
        rangueil = structure_id(s, "MDS-RANGUEIL")
        inv = s.scalar(select(Invitation.id).where(Invitation.person_id == ids["invited"][0]))
    api = "/api/v1/kiosque"
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    r = client.post(f"{api}/sessions", json={"mds_id": rangueil, "starts_at": f"{yesterday}T09:30:00"}, headers=worker)
    assert r.status_code == 422 and r.json["message"].startswith("Date et heure de la session") \
        and "déjà passé" in r.json["message"]
    christmas = dt.date(TODAY.year + 1, 12, 25).isoformat()
    r = client.post(f"{api}/sessions", json={"mds_id": rangueil, "starts_at": f"{christmas}T09:30:00"}, headers=worker)
    assert r.status_code == 422 and "jour férié" in r.json["message"]
    closed = TODAY + dt.timedelta(days=20)
    while closed.weekday() >= 5:
        closed += dt.timedelta(days=1)
    r = client.post(f"{api}/closures", json={"mds_id": rangueil, "day": closed.isoformat(), "reason": "travaux"},
                    headers=worker)
    assert r.status_code == 201
    r = client.post(f"{api}/sessions", json={"mds_id": rangueil, "starts_at": f"{closed}T09:30:00"}, headers=worker)
    assert r.status_code == 422 and "fermeture" in r.json["message"] and "travaux" in r.json["message"]
    # the session of this morning, moved to tomorrow: nobody can be marked present there yet
    tomorrow = TODAY + dt.timedelta(days=1)
    while tomorrow.weekday() >= 5 or tomorrow == closed:
        tomorrow += dt.timedelta(days=1)
    r = client.patch(f"{api}/sessions/{ids['session']}", json={"starts_at": f"{tomorrow}T09:30:00"}, headers=worker)
    assert r.status_code == 200, r.json
    r = client.post(f"{api}/invitations/{inv}/attendance", json={"status": "present"}, headers=worker)
    assert r.status_code == 422 and "n'a pas encore eu lieu" in r.json["message"]
    r = client.patch(f"{api}/sessions/{ids['session']}", json={"starts_at": f"{yesterday}T09:30:00"}, headers=worker)
    assert r.status_code == 422 and "déjà passé" in r.json["message"]
