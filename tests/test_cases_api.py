"""The persons / path API (issue 8): scope, audit of reads, NIR per role, domain refusals, and the
same timeline events as the services the provider-return importer calls."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases import service as cs
from cases.models import Person
from referents.models import AuditLog
from tests.factories import make_person
from tests.test_cases import orient

D = dt.date
NIR = "1850575123456"


def _world(rt):
    """Two persons: one oriented to ActiPro Toulouse Est (with a NIR), one to the MDS of Muret."""
    with rt.session() as s:
        est = make_person(s, commune="31555", postal_code="31500", last_name="MARTIN", first_name="Léa",
                          nir_hash=rt.vault.hash(NIR))
        est.nir_encrypted = rt.vault.encrypt(NIR)
        muret = make_person(s, commune="31395", postal_code="31600", last_name="MARTY")
        orient(s, est, "ACTIPRO-TLS-EST", "actipro", D(2026, 10, 20), notified_on=D(2026, 10, 22))
        orient(s, muret, "MDS-MURET", "mds", D(2026, 10, 20))
        return est.id, muret.id


def test_detail_nir_per_role_and_audit(rt, client, make_user):
    est, _ = _world(rt)
    expected = {"manager": NIR, "mds_worker": NIR[:5] + "•" * 8, "provider": None}
    users = {"manager": make_user("manager"), "mds_worker": make_user("mds_worker", "MDS-SOUPETARD"),
             "provider": make_user("provider", "ACTIPRO-TLS-EST")}
    for role, (_user, headers) in users.items():
        r = client.get(f"/api/v1/persons/{est}?as_of=2026-11-20", headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        assert body["identity"]["nir"] == expected[role], role
        assert body["orientation"]["referent_type"] == "actipro"
        assert body["due"]["contract_due_on"] == "2026-11-22"
        assert NIR not in r.get_data(as_text=True) or role == "manager"
    with rt.session() as s:
        reads = s.scalars(select(AuditLog.user_id).where(AuditLog.action == "read", AuditLog.person_id == est)).all()
        assert sorted(reads) == sorted(u.id for u, _ in users.values())


def test_scope_search_and_404(rt, client, make_user):
    est, muret = _world(rt)
    _, provider = make_user("provider", "ACTIPRO-TLS-EST")
    r = client.get("/api/v1/persons?q=mar", headers=provider)
    assert [p["id"] for p in r.get_json()["items"]] == [est]
    _, manager = make_user("manager")
    assert client.get("/api/v1/persons?q=mar", headers=manager).get_json()["total"] == 2
    # The total travels with every page, and past the last page too.
    for page, n in ((1, 1), (2, 1), (3, 0)):
        body = client.get(f"/api/v1/persons?q=mar&per_page=1&page={page}", headers=manager).get_json()
        assert (len(body["items"]), body["total"]) == (n, 2)
    assert client.get("/api/v1/persons?q=zzz", headers=manager).get_json()["total"] == 0
    body = client.get("/api/v1/persons?q=mar", headers=manager).get_json()
    assert body["total_capped"] is False
    for url in (f"/api/v1/persons/{muret}", f"/api/v1/persons/{muret}/timeline",
                f"/api/v1/persons/{muret}/contracts"):
        assert client.get(url, headers=provider).status_code == 404
    r = client.post(f"/api/v1/persons/{muret}/exit", json={"exit_on": "2026-11-10", "reason": "training"},
                    headers=provider)
    assert r.status_code == 404
    with rt.session() as s:
        assert cs.open_path(s, muret) is not None


def test_path_steps_through_the_api(rt, client, make_user):
    est, _ = _world(rt)
    user, h = make_user("provider", "ACTIPRO-TLS-EST")
    base = f"/api/v1/persons/{est}"
    r = client.post(f"{base}/appointments", json={"scheduled_at": "2026-10-28T10:00:00"}, headers=h)
    assert r.status_code == 201, r.get_data(as_text=True)
    appt = r.get_json()
    r = client.patch(f"{base}/appointments/{appt['id']}", json={"status": "honoured"}, headers=h)
    assert r.get_json()["status"] == "honoured"
    r = client.post(f"{base}/contracts", json={"signed_on": "2026-11-05", "weekly_hours": 8}, headers=h)
    assert r.status_code == 422 and "weekly_hours" in r.get_json()["errors"]
    r = client.post(f"{base}/contracts", json={"signed_on": "2026-11-05", "weekly_hours": 8,
                                               "hours_reduction_reason": "disability",
                                               "objectives": [{"theme": "employment", "text": "CV"}]}, headers=h)
    assert r.status_code == 201 and r.get_json()["due_on"] == "2026-11-22"
    r = client.post(f"{base}/diagnostics", json={"recorded_on": "2026-11-06", "constraints": {"digital": "strong"},
                                                 "can_seek_work": True}, headers=h)
    assert r.status_code == 201
    r = client.get("/api/v1/cases/lists/my-people?as_of=2026-11-20", headers=h)
    assert r.get_json()["items"][0]["person_id"] == est
    r = client.post(f"{base}/exit", json={"exit_on": "2026-11-15", "reason": "employment_fixed_term"}, headers=h)
    assert r.status_code == 201 and r.get_json()["positive"] is True
    # The provider saw its person until the exit; the orientation ended, so the person left its scope.
    assert client.get(f"{base}/timeline", headers=h).status_code == 404
    _, manager = make_user("manager")
    events = client.get(f"{base}/timeline", headers=manager).get_json()
    assert [e["kind"] for e in events] == [
        "orientation.validated", "orientation.notified", "appointment.planned", "appointment.honoured",
        "contract.signed", "diagnostic.recorded", "exit.recorded"]
    assert {e["source"] for e in events[2:]} == {"provider"}
    assert {e["author_id"] for e in events[2:]} == {user.id}
    assert events[2]["author"] == user.email or events[2]["author"] == user.display_name


def test_api_and_service_write_the_same_events(rt, client, make_user):
    """What a provider return records (services, source provider) equals what the API records."""
    est, _ = _world(rt)
    with rt.session() as s:
        twin = make_person(s, commune="31555", postal_code="31500", last_name="JUMEAU")
        orient(s, twin, "ACTIPRO-TLS-EST", "actipro", D(2026, 10, 20), notified_on=D(2026, 10, 22))
        twin_id = twin.id
    _, h = make_user("provider", "ACTIPRO-TLS-EST")
    client.post(f"/api/v1/persons/{est}/appointments",
                json={"scheduled_at": "2026-10-28T10:00:00", "status": "honoured"}, headers=h)
    client.post(f"/api/v1/persons/{est}/contracts", json={"signed_on": "2026-11-05"}, headers=h)
    client.post(f"/api/v1/persons/{est}/exit", json={"exit_on": "2026-11-15", "reason": "training"}, headers=h)
    with rt.session() as s:
        cs.record_appointment(s, twin_id, dt.datetime(2026, 10, 28, 10), "honoured", source="provider")
        cs.record_contract(s, twin_id, D(2026, 11, 5), source="provider")
        cs.record_exit(s, twin_id, D(2026, 11, 15), "training", source="provider")
    with rt.session() as s:
        def shape(pid):
            return [(e["occurred_on"], e["kind"], e["source"], e["summary"],
                     {k: v for k, v in e["data"].items() if not k.endswith("_id")})
                    for e in cs.timeline(s, pid)]
        assert shape(est) == shape(twin_id)


def test_sanction_decisions_reserved_to_the_departement(rt, client, make_user):
    _, muret = _world(rt)
    _, mds = make_user("mds_worker", "MDS-MURET")
    _, manager = make_user("manager")
    base = f"/api/v1/persons/{muret}/sanctions"
    r = client.post(base, json={"breach_on": "2026-11-02", "breach": "Contrat refusé"}, headers=mds)
    sid = r.get_json()["id"]
    client.post(f"{base}/{sid}/observations", json={"observations_on": "2026-11-09", "observations": "—"},
                headers=mds)
    decision = {"decided_on": "2026-11-12", "rate_percent": 30, "duration_months": 2}
    assert client.post(f"{base}/{sid}/decision", json=decision, headers=mds).status_code == 403
    r = client.post(f"{base}/{sid}/decision", json={**decision, "duration_months": 3}, headers=manager)
    assert r.status_code == 422 and "duration_months" in r.get_json()["errors"]
    r = client.post(f"{base}/{sid}/decision", json=decision, headers=manager)
    assert r.status_code == 200 and r.get_json()["ends_on"] == "2027-01-12"
    r = client.get(base, headers=mds)
    assert [x["status"] for x in r.get_json()] == ["decided"]


def test_working_lists_endpoint(rt, client, make_user):
    est, muret = _world(rt)
    _, manager = make_user("manager")
    r = client.get("/api/v1/cases/lists/overdue-contracts?as_of=2026-11-23", headers=manager)
    assert [x["person_id"] for x in r.get_json()["items"]] == [muret, est]  # earliest deadline first
    r = client.get("/api/v1/cases/lists/overdue-contracts?as_of=2026-11-21", headers=manager)
    assert [x["person_id"] for x in r.get_json()["items"]] == [muret]  # never notified: validated 20 Oct + 1 month
    r = client.get("/api/v1/cases/lists/overdue-contracts?as_of=2026-11-20", headers=manager)
    assert r.get_json()["count"] == 0  # est: notified 22 Oct → due 22 Nov
    assert client.get("/api/v1/cases/lists/everything", headers=manager).status_code == 404
    reasons = client.get("/api/v1/cases/exit-reasons", headers=manager).get_json()
    assert {"reason": "employment_permanent", "label": "Emploi durable (CDI)", "positive": True} in reasons
    with rt.session() as s:
        assert s.get(Person, est) is not None


def test_provider_return_file_and_api_produce_the_same_events(rt, client, make_user, tmp_path):
    """Acceptance: the provider's xlsx return (imports issue) and the API write the same timeline."""
    from openpyxl import Workbook

    from imports.provider_returns import import_file

    est, _ = _world(rt)
    with rt.session() as s:
        twin = make_person(s, commune="31555", postal_code="31500", last_name="JUMEAU")
        orient(s, twin, "ACTIPRO-TLS-EST", "actipro", D(2026, 10, 20), notified_on=D(2026, 10, 22))
        twin_id = twin.id
    _, h = make_user("provider", "ACTIPRO-TLS-EST")
    client.post(f"/api/v1/persons/{est}/appointments",
                json={"scheduled_at": "2026-10-28T10:00:00", "status": "honoured"}, headers=h)
    client.post(f"/api/v1/persons/{est}/contracts", json={"signed_on": "2026-11-05"}, headers=h)
    client.post(f"/api/v1/persons/{est}/exit", json={"exit_on": "2026-11-15", "reason": "training"}, headers=h)

    wb = Workbook()
    ws = wb.active
    ws.append(["Identifiant RSA31", "Date du 1er rendez-vous", "Statut du 1er rendez-vous",
               "Date de signature du contrat", "Date de sortie", "Motif de sortie"])
    ws.append([twin_id, dt.datetime(2026, 10, 28, 10, 0), "Honoré", dt.datetime(2026, 11, 5), dt.datetime(2026, 11, 15),
               "Formation qualifiante"])
    path = tmp_path / "retour-actipro.xlsx"
    wb.save(path)
    result = import_file(rt, path, "ACTIPRO-TLS-EST", as_of=D(2026, 11, 20))
    assert result["status"] == "imported", result

    with rt.session() as s:
        def shape(pid):
            return [(e["occurred_on"], e["kind"], e["source"], e["summary"],
                     {k: v for k, v in e["data"].items() if not k.endswith("_id")})
                    for e in cs.timeline(s, pid)]
        assert shape(est) == shape(twin_id)
        assert [k for _, k, *_ in shape(twin_id)][-4:] == ["appointment.planned", "appointment.honoured",
                                                          "contract.signed", "exit.recorded"]


def test_working_lists_are_paged_with_the_total_count(client, session, make_user):
    ids = [make_person(session, clock_start=dt.date(2026, 10, 1) + dt.timedelta(days=k)).id for k in range(7)]
    session.commit()
    _, manager = make_user("manager")
    url = "/api/v1/cases/lists/my-people?as_of=2026-11-20"
    full = client.get(url + "&limit=1000", headers=manager).get_json()
    assert full["count"] == 7 and sorted(r["person_id"] for r in full["items"]) == sorted(ids)
    pages = [client.get(f"{url}&limit=3&offset={o}", headers=manager).get_json() for o in (0, 3, 6)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert all(p["count"] == 7 and p["limit"] == 3 for p in pages)
    assert [r["person_id"] for p in pages for r in p["items"]] == [r["person_id"] for r in full["items"]]
    assert client.get(url + "&limit=0", headers=manager).status_code == 422
    assert client.get(url + "&limit=5000", headers=manager).status_code == 422
