"""`rsa users …` (issue 6): create, token shown once, list, disable; tokens stop with the account."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from config.cli import main
from referents.models import ApiToken, AuditLog


def _rsa(rt, *args, input=None):
    return CliRunner().invoke(main, list(args), obj={"runtime": rt}, input=input)


def test_users_create_token_list_disable(rt, client):
    r = _rsa(rt, "users", "create", "Agent@Muret.fr", "--role", "mds_worker", "--structure", "MDS-MURET",
             "--password-stdin", "--json", input="un mot de passe solide\n")
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["email"] == "agent@muret.fr" and created["structure"] == "MDS-MURET"

    r = _rsa(rt, "users", "token", "agent@muret.fr", "--ttl-hours", "2", "--json")
    assert r.exit_code == 0, r.output
    token = json.loads(r.output)["token"]
    with rt.session() as s:
        stored = s.scalar(select(ApiToken))
        assert stored.token_hash != token and token not in (stored.prefix + stored.token_hash)
        assert round((stored.expires_at - stored.created_at).total_seconds()) == 2 * 3600
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).json["role"] == "mds_worker"

    r = _rsa(rt, "users", "list", "--json")
    assert [u["email"] for u in json.loads(r.output)] == ["agent@muret.fr"]
    assert "mot de passe" not in r.output and "password" not in r.output

    r = _rsa(rt, "users", "disable", "agent@muret.fr")
    assert r.exit_code == 0 and "désactivé" in r.output
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    r = _rsa(rt, "users", "token", "agent@muret.fr")
    assert r.exit_code == 1 and "désactivé" in r.output
    with rt.session() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions[:3] == ["user_create", "token_issue", "user_disable"]


def test_default_token_ttl_and_limits(rt):
    _rsa(rt, "users", "create", "m@test.local", "--role", "manager")
    r = _rsa(rt, "users", "token", "m@test.local", "--json")
    with rt.session() as s:
        t = s.scalar(select(ApiToken))
        assert round((t.expires_at - t.created_at).total_seconds()) == rt.settings.token_ttl_hours * 3600 == 12 * 3600
    r = _rsa(rt, "users", "token", "m@test.local", "--ttl-hours", str(24 * 30))
    assert r.exit_code == 1 and "durée de validité" in r.output


def test_users_create_refuses_bad_input(rt):
    r = _rsa(rt, "users", "create", "p@test.local", "--role", "provider")
    assert r.exit_code == 1 and "exige une structure" in r.output
    r = _rsa(rt, "users", "create", "p@test.local", "--role", "provider", "--structure", "NOPE")
    assert r.exit_code == 1 and "structure inconnue" in r.output
    r = _rsa(rt, "users", "create", "p@test.local", "--role", "manager", "--password-stdin", input="court\n")
    assert r.exit_code == 1 and "trop court" in r.output
    r = _rsa(rt, "users", "disable", "personne@test.local")
    assert r.exit_code == 1
