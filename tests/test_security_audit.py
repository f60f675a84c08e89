"""Audit log (issue 6): reads of a person's detail are recorded, admins query it, nobody changes it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, text, update

from referents.models import AuditLog, AuditLogIsAppendOnly
from tests.security_world import build_world


def test_reading_a_person_detail_is_audited_and_admin_can_query_it(app, client, rt):
    w = build_world(rt)
    pid = w.person_of["mds_worker"]
    r = client.get(f"/api/v1/persons/{pid}", headers=w.headers["mds_worker"])
    assert r.status_code == 200
    # out of scope: 404, and no read recorded for that person
    assert client.get(f"/api/v1/persons/{w.other}", headers=w.headers["mds_worker"]).status_code == 404
    r = client.get(f"/api/v1/audit?person_id={pid}&action=read", headers=w.headers["admin"])
    assert r.status_code == 200 and r.json["total"] == 1
    entry = r.json["items"][0]
    assert entry["user_email"] == "mds_worker@matrix.test" and entry["endpoint"] == f"GET /api/v1/persons/{pid}"
    assert entry["ip"] and entry["at"]
    r = client.get(f"/api/v1/audit?person_id={w.other}&action=read", headers=w.headers["admin"])
    assert r.json["total"] == 0


def test_audit_cli_lists_as_json(rt, client):
    from config.cli import main

    w = build_world(rt)
    client.get(f"/api/v1/persons/{w.person_of['provider']}", headers=w.headers["provider"])
    r = CliRunner().invoke(main, ["audit", "list", "--user", "provider@matrix.test", "--json"], obj={"runtime": rt})
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["total"] >= 1 and data["items"][0]["person_id"] == w.person_of["provider"]


def test_audit_log_cannot_be_changed_through_the_application(rt, app):
    with rt.session() as s:
        s.add(AuditLog(action="read", person_id=1, endpoint="GET /x"))
    s = rt.sessions()
    try:
        entry = s.scalar(select(AuditLog))
        entry.action = "nothing"
        with pytest.raises(AuditLogIsAppendOnly):
            s.flush()
        s.rollback()
        s.delete(s.scalar(select(AuditLog)))
        with pytest.raises(AuditLogIsAppendOnly):
            s.flush()
        s.rollback()
        with pytest.raises(AuditLogIsAppendOnly):
            s.execute(update(AuditLog).values(action="x"))
        with pytest.raises(AuditLogIsAppendOnly):
            s.execute(delete(AuditLog))
    finally:
        s.rollback()
        s.close()
    # no endpoint may change it: only GET on /api/v1/audit
    methods = {m for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/audit")
               for m in rule.methods}
    assert methods <= {"GET", "HEAD", "OPTIONS"}


def test_database_trigger_refuses_raw_sql_changes(rt):
    """Beyond the application guard, the database itself refuses raw UPDATE/DELETE of the audit log
    (a PL/pgSQL trigger on PostgreSQL, RAISE(ABORT) triggers on SQLite) — even to the schema owner
    (the application's role is refused earlier, by its privileges: test_security_dbroles.py)."""
    with rt.session() as s:
        s.add(AuditLog(action="read", person_id=1, endpoint="GET /x"))
    from sqlalchemy.exc import DBAPIError

    engine = getattr(rt, "owner_engine", rt.engine)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET action = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log"))


def test_logins_and_admin_actions_are_audited(client, make_user, rt):
    from referents.service import create_user

    _, headers = make_user("admin")
    with rt.session() as s:
        create_user(s, "x@test.local", "manager")
    r = client.get("/api/v1/users", headers=headers)
    uid = next(u["id"] for u in r.json if u["email"] == "x@test.local")
    client.post(f"/api/v1/users/{uid}/tokens", json={}, headers=headers)
    client.delete(f"/api/v1/users/{uid}", headers=headers)
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=headers).json["items"]]
    assert actions[:2] == ["user_disable", "token_issue"]


def _person_scoped_gets(app, client) -> list[str]:
    """Every GET of the OpenAPI document whose path holds a person id, plus the page rules (HTML
    screens are not in the document) that do: the reads of a person's record."""
    doc = client.get("/api/v1/openapi.json").json
    paths = [p for p, ops in doc["paths"].items() if "get" in ops and "{person_id}" in p]
    pages = [r.rule.replace("<int:person_id>", "{person_id}") for r in app.url_map.iter_rules()
             if "GET" in r.methods and "<int:person_id>" in r.rule and not r.rule.startswith("/api/")]
    return sorted(set(paths) | set(pages))


def test_every_person_scoped_read_writes_exactly_one_audit_row(app, client, rt):
    """Issue 22 item 3: appointments, contracts, reviews, diagnostics, sanctions… were read without a
    trace. Each person-scoped GET, called once in scope, adds exactly one `read` row naming the
    person, the user and the endpoint; a refused call (out of scope) adds none."""
    w = build_world(rt)
    paths = _person_scoped_gets(app, client)
    assert len(paths) >= 8, paths  # detail, timeline, appointments, contracts, reviews, diagnostics, sanctions, explain
    pid = w.person_of["manager"]

    def reads(person_id):
        with rt.session() as s:
            return s.scalars(select(AuditLog).where(AuditLog.person_id == person_id, AuditLog.action == "read")
                             .order_by(AuditLog.id)).all()

    for path in paths:
        url = path.replace("{person_id}", str(pid))
        before = len(reads(pid))
        r = client.get(url, headers=w.headers["manager"])
        assert r.status_code == 200, (url, r.status_code)
        after = reads(pid)
        assert len(after) == before + 1, f"{url}: {len(after) - before} audit rows"
        entry = after[-1]
        assert entry.user_id == w.users["manager"] and entry.endpoint == f"GET {url}" and entry.ip
    # out of scope: 404 and nothing written for that person
    for path in paths:
        url = path.replace("{person_id}", str(w.other))
        assert client.get(url, headers=w.headers["mds_worker"]).status_code == 404
    assert reads(w.other) == []
