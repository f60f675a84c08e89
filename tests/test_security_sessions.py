"""Sessions that end, shared login throttle, last-admin protection (issue 22, items 5 and 7)."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from config.runtime import build_runtime
from referents.models import AuditLog, LoginFailure, UserSession
from tests.test_security_auth import PASSWORD, _csrf, _login


def _cookie(client) -> str:
    return client.get_cookie("rsa_session").value


def test_logout_ends_the_session_server_side(app, client, make_user, rt):
    """Today a cookie saved before POST /logout kept working for 12 h."""
    user, _ = make_user("manager", password=PASSWORD)
    assert _login(client, user.email).status_code == 303
    saved = _cookie(client)
    token = _csrf(client.get("/compte").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    replay = app.test_client()
    replay.set_cookie("rsa_session", saved)
    assert replay.get("/api/v1/me").status_code == 401
    with rt.session() as s:
        row = s.scalar(select(UserSession).where(UserSession.user_id == user.id))
        assert row.revoked_at is not None


def test_admin_revokes_every_session_of_a_user(app, make_user, rt):
    _, admin = make_user("admin")
    user, _ = make_user("mds_worker", "MDS-MURET", password=PASSWORD)
    laptop, phone = app.test_client(), app.test_client()
    for c in (laptop, phone):
        assert _login(c, user.email).status_code == 303
        assert c.get("/api/v1/me").status_code == 200
    r = laptop.delete(f"/api/v1/users/{user.id}/sessions", headers=admin)
    assert r.status_code == 200 and r.json == {"revoked": 2}
    assert laptop.get("/api/v1/me").status_code == 401 and phone.get("/api/v1/me").status_code == 401
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "session_revoke")) == 1
    # the CLI ends them too (with the tokens)
    assert _login(laptop, user.email).status_code == 303
    from config.cli import main

    out = CliRunner().invoke(main, ["users", "revoke", user.email, "--json"], obj={"runtime": rt})
    assert out.exit_code == 0 and '"sessions_ended": 1' in out.output
    assert laptop.get("/api/v1/me").status_code == 401


def test_password_spraying_is_throttled_per_address(client, make_user, rt):
    """One address, many accounts: 40 tries were all answered before."""
    emails = [make_user("manager", password=PASSWORD)[0].email for _ in range(12)]
    emails += [f"nobody{i}@test.local" for i in range(28)]
    codes = [_login(client, e, "Printemps2026!").status_code for e in emails]
    assert codes.count(401) == 10 and codes.count(429) == 30, codes
    # the rightful owner at another address is not affected
    other = client.application.test_client()
    r = _login_from(other, emails[0], "10.9.8.7", PASSWORD)
    assert r.status_code == 303


def _login_from(client, email, address, password=PASSWORD):
    token = _csrf(client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def test_one_account_is_throttled_across_addresses(client, make_user):
    user, _ = make_user("manager", password=PASSWORD)
    codes = [_login_from(client, user.email, f"10.0.0.{i}", "wrong password!!").status_code for i in range(1, 7)]
    assert codes == [401] * 5 + [429]
    assert _login_from(client, user.email, "10.0.0.99").status_code == 429  # even with the right password


def test_throttle_is_shared_between_workers(rt, base_settings, make_user):
    """Two application processes (two apps, two engines, like two gunicorn workers) share the
    counters: they live in the database, not in a worker's memory."""
    from config.app import create_app

    other_rt = build_runtime(base_settings)
    try:
        worker_a = create_app(runtime=rt).test_client()
        worker_b = create_app(runtime=other_rt).test_client()
        user, _ = make_user("manager", password=PASSWORD)
        for i in range(5):
            worker = worker_a if i % 2 == 0 else worker_b
            assert _login(worker, user.email, "wrong password!!").status_code == 401
        assert _login(worker_b, user.email).status_code == 429
        assert _login(worker_a, user.email).status_code == 429
        with rt.session() as s:
            assert s.scalar(select(func.count()).select_from(LoginFailure)) == 5
    finally:
        other_rt.dispose()


# --- item 7: the last admin -----------------------------------------------------------------------

def test_admin_cannot_demote_or_disable_itself(client, make_user):
    me, headers = make_user("admin")
    r = client.patch(f"/api/v1/users/{me.id}", json={"role": "manager"}, headers=headers)
    assert r.status_code == 422 and "propre" in r.json["message"]
    r = client.patch(f"/api/v1/users/{me.id}", json={"active": False}, headers=headers)
    assert r.status_code == 422
    assert client.delete(f"/api/v1/users/{me.id}", headers=headers).status_code == 422
    assert client.get("/api/v1/me", headers=headers).json["role"] == "admin"


def test_last_active_admin_is_kept(client, make_user, rt):
    from config.cli import main

    first, first_headers = make_user("admin", email="first.admin@test.local")
    out = CliRunner().invoke(main, ["users", "disable", first.email], obj={"runtime": rt})
    assert out.exit_code == 1 and "dernier administrateur" in out.output
    assert client.get("/api/v1/me", headers=first_headers).status_code == 200
    second, second_headers = make_user("admin", email="second.admin@test.local")
    # with two admins, one may demote the other, but then the remaining one is the last
    r = client.patch(f"/api/v1/users/{first.id}", json={"role": "manager"}, headers=second_headers)
    assert r.status_code == 200 and r.json["role"] == "manager"
    out = CliRunner().invoke(main, ["users", "disable", second.email], obj={"runtime": rt})
    assert out.exit_code == 1 and "dernier administrateur" in out.output
    # a disabled admin does not count as the one that remains; an active one does
    from referents import security

    with rt.session() as s:
        third = security.add_user(s, "third.admin@test.local", "admin")
        third.active = False
    out = CliRunner().invoke(main, ["users", "disable", second.email], obj={"runtime": rt})
    assert out.exit_code == 1
    with rt.session() as s:
        security.add_user(s, "fourth.admin@test.local", "admin")
    out = CliRunner().invoke(main, ["users", "disable", second.email], obj={"runtime": rt})
    assert out.exit_code == 0, out.output
