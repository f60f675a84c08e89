"""Login form, session cookie, CSRF, rate limit, tokens, /me, user administration (issue 6)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from referents.models import ApiToken, AuditLog
from referents.service import issue_token, user_for_token

PASSWORD = "correct horse battery staple"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf_token in the page"
    return m.group(1)


def _login(client, email, password=PASSWORD, next_=None):
    token = _csrf(client.get("/login").get_data(as_text=True))
    data = {"email": email, "password": password, "csrf_token": token}
    if next_ is not None:
        data["next"] = next_
    return client.post("/login", data=data)


def _actions(rt):
    with rt.session() as s:
        return [(a.action, a.user_id) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_login_page_is_french_accessible_and_carries_csrf(client):
    r = client.get("/login?next=/api/v1/me")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert '<html lang="fr">' in html and 'for="email"' in html and 'for="password"' in html
    assert 'autocomplete="current-password"' in html and 'name="next" value="/api/v1/me"' in html
    assert _csrf(html)


def test_login_sets_session_cookie_and_me_works_then_logout(client, make_user, rt):
    user, _ = make_user("manager", password=PASSWORD)
    r = _login(client, user.email, next_="/api/v1/me")
    assert r.status_code == 303 and r.headers["Location"].endswith("/api/v1/me")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json["email"] == user.email and me.json["role"] == "manager" and me.json["auth"] == "session"
    assert ("login", user.id) in _actions(rt)
    # logout needs the CSRF token too
    assert client.post("/logout").status_code == 400
    token = _csrf(client.get("/compte").get_data(as_text=True))
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    assert client.get("/api/v1/me").status_code == 401


def test_secure_cookie_flag_in_production_settings(base_settings, rt):
    from config.app import create_app

    app = create_app(runtime=rt)  # the runtime's settings have secure_cookies False (plain-HTTP tests)
    assert app.config["SESSION_COOKIE_SECURE"] is False
    from config.runtime import Runtime

    prod = Runtime(settings=base_settings.with_(secure_cookies=True), engine=rt.engine, sessions=rt.sessions,
                   vault=rt.vault)
    app2 = create_app(runtime=prod)
    assert app2.config["SESSION_COOKIE_SECURE"] is True and app2.config["SESSION_COOKIE_HTTPONLY"] is True
    assert "Strict-Transport-Security" in app2.test_client().get("/healthz").headers


def test_login_without_csrf_is_refused(client, make_user):
    user, _ = make_user("manager", password=PASSWORD)
    r = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert r.status_code == 400
    assert client.get("/api/v1/me").status_code == 401


def test_wrong_password_is_logged_and_rate_limited(client, make_user, rt, caplog):
    user, _ = make_user("mds_worker", "MDS-MURET", password=PASSWORD)
    for _ in range(5):
        r = _login(client, user.email, "wrong password!!")
        assert r.status_code == 401
        assert "incorrect" in r.get_data(as_text=True)
    r = _login(client, user.email, PASSWORD)  # even the right password is refused once blocked
    assert r.status_code == 429 and "Trop de tentatives" in r.get_data(as_text=True)
    actions = _actions(rt)
    assert actions.count(("login_failed", user.id)) == 5 and ("login_blocked", user.id) in actions
    assert "wrong password" not in caplog.text and PASSWORD not in caplog.text
    # another account from the same address is not blocked
    other, _ = make_user("manager", password=PASSWORD)
    assert _login(client, other.email).status_code == 303


def test_unknown_email_fails_like_a_wrong_password(client, rt):
    r = _login(client, "nobody@test.local", "whatever whatever")
    assert r.status_code == 401
    assert ("login_failed", None) in _actions(rt)


def test_open_redirect_is_refused(client, make_user):
    user, _ = make_user("manager", password=PASSWORD)
    r = _login(client, user.email, next_="//evil.example/x")
    assert r.status_code == 303 and "evil" not in r.headers["Location"]


def test_html_page_without_session_redirects_to_login(client):
    r = client.get("/compte")
    assert r.status_code == 303 and "/login?next=/compte" in r.headers["Location"]


def test_session_api_write_needs_csrf_header_but_bearer_does_not(client, make_user):
    admin, headers = make_user("admin", password=PASSWORD)
    body = {"email": "new.user@test.local", "role": "manager"}
    assert client.post("/api/v1/users", json=body, headers=headers).status_code == 201
    _login(client, admin.email)
    body2 = {"email": "other.user@test.local", "role": "manager"}
    assert client.post("/api/v1/users", json=body2).status_code == 400  # cookie without CSRF
    token = _csrf(client.get("/compte").get_data(as_text=True))
    assert client.post("/api/v1/users", json=body2, headers={"X-CSRFToken": token}).status_code == 201


def test_password_change_ends_other_sessions(client, make_user, rt):
    admin, headers = make_user("admin")
    user, _ = make_user("manager", password=PASSWORD)
    _login(client, user.email)
    assert client.get("/api/v1/me").status_code == 200
    r = client.patch(f"/api/v1/users/{user.id}", json={"password": "another long password"}, headers=headers)
    assert r.status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_disabled_user_token_and_session_stop_working(client, make_user, rt):
    admin, admin_headers = make_user("admin")
    user, headers = make_user("provider", "ACTIPRO-TLS-EST", password=PASSWORD)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    r = client.delete(f"/api/v1/users/{user.id}", headers=admin_headers)
    assert r.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert _login(client, user.email).status_code == 401
    with rt.session() as s:
        assert all(t.revoked_at is not None for t in s.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))


def test_token_expiry_revocation_and_hash_only_storage(rt):
    from referents.service import create_user, revoke_tokens

    with rt.session() as s:
        user = create_user(s, "tok@test.local", "manager")
        now = dt.datetime(2026, 11, 20, 8, 0)
        token = issue_token(s, user, ttl_hours=12, now=now)
        row = s.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
        assert token not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
        assert user_for_token(s, token, now=now + dt.timedelta(hours=11)) is not None
        assert user_for_token(s, token, now=now + dt.timedelta(hours=12)) is None  # expired
        token2 = issue_token(s, user, ttl_hours=12)
        assert user_for_token(s, token2) is not None
        revoke_tokens(s, user)
        assert user_for_token(s, token2) is None


def test_admin_users_and_tokens_api(client, make_user, rt):
    _, headers = make_user("admin")
    r = client.post("/api/v1/users", json={"email": "Agent.Muret@test.local", "role": "mds_worker",
                                           "structure": "MDS-MURET"}, headers=headers)
    assert r.status_code == 201 and r.json["email"] == "agent.muret@test.local"
    uid = r.json["id"]
    # a structure is required for the scoped roles; duplicates are refused
    assert client.post("/api/v1/users", json={"email": "p@test.local", "role": "provider"},
                       headers=headers).status_code == 422
    assert client.post("/api/v1/users", json={"email": "agent.muret@test.local", "role": "manager"},
                       headers=headers).status_code == 422
    r = client.post(f"/api/v1/users/{uid}/tokens", json={"ttl_hours": 2}, headers=headers)
    assert r.status_code == 201 and r.json["token"].startswith("rsa_")
    new_headers = {"Authorization": f"Bearer {r.json['token']}"}
    me = client.get("/api/v1/me", headers=new_headers).json
    assert me["structure"]["code"] == "MDS-MURET" and me["nir_access"] == "masked"
    listed = client.get(f"/api/v1/users/{uid}/tokens", headers=headers).json
    assert len(listed) == 1 and "token" not in listed[0]
    assert client.post(f"/api/v1/users/{uid}/tokens", json={"ttl_hours": 24 * 30},
                       headers=headers).status_code == 422  # no 30-day tokens
    r = client.delete(f"/api/v1/users/{uid}/tokens/{listed[0]['id']}", headers=headers)
    assert r.status_code == 200
    assert client.get("/api/v1/me", headers=new_headers).status_code == 401
    users = client.get("/api/v1/users?role=mds_worker", headers=headers).json
    assert [u["email"] for u in users] == ["agent.muret@test.local"]
    actions = [a for a, _ in _actions(rt)]
    assert {"user_create", "token_issue", "token_revoke"} <= set(actions)


@pytest.mark.parametrize("role", ["manager", "mds_worker", "provider", "ati"])
def test_only_admins_manage_users(client, make_user, role):
    structure = {"mds_worker": "MDS-MURET", "provider": "ACTIPRO-TLS-EST", "ati": "ATI-TOULOUSE"}.get(role)
    _, headers = make_user(role, structure)
    assert client.get("/api/v1/users", headers=headers).status_code == 403
    assert client.get("/api/v1/audit", headers=headers).status_code == 403


def test_login_over_https_with_secure_cookie(base_settings, rt, make_user):
    """In production (HTTPS, Secure cookie) the CSRF check also wants a same-site Referer, which
    the Referrer-Policy (same-origin) lets browsers send on our own forms."""
    from config.app import create_app
    from config.runtime import Runtime

    user, _ = make_user("manager", password=PASSWORD)
    prod = Runtime(settings=base_settings.with_(secure_cookies=True), engine=rt.engine, sessions=rt.sessions,
                   vault=rt.vault)
    app = create_app(runtime=prod)
    client = app.test_client()
    page = client.get("/login", base_url="https://rsa.haute-garonne.fr")
    assert page.headers["Referrer-Policy"] == "same-origin"
    data = {"email": user.email, "password": PASSWORD, "csrf_token": _csrf(page.get_data(as_text=True))}
    r = client.post("/login", data=data, base_url="https://rsa.haute-garonne.fr")
    assert r.status_code == 400  # no Referer: refused over HTTPS
    r = client.post("/login", data=data, base_url="https://rsa.haute-garonne.fr",
                    headers={"Referer": "https://rsa.haute-garonne.fr/login"})
    assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]
    me = client.get("/api/v1/me", base_url="https://rsa.haute-garonne.fr")
    assert me.status_code == 200 and me.json["auth"] == "session"
