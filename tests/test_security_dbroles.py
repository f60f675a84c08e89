"""Least-privilege database role (issue 22, item 4): the application's role could TRUNCATE the
audit log and disable its trigger. Migrations now run as the owner; the application's role has
row rights only, and on the audit log only SELECT and INSERT. The whole suite runs as that role on
PostgreSQL (tests/conftest.py), which shows it is enough for the product."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from config.roles import app_role_of
from referents.models import AuditLog


def _is_postgres(rt) -> bool:
    return rt.engine.dialect.name == "postgresql"


def _postgres_app_role(rt):
    role = app_role_of(rt.settings.database_url, rt.settings.migrate_database_url)
    assert role, "the suite must run as the application's role on PostgreSQL (bash .ci/postgres.sh creates rsa_app)"
    return role


# What the application may not do. PostgreSQL refuses it by privileges (the app's role); SQLite has no
# roles, so its guard is the append-only triggers of the audit log: the rewrites of the log are refused.
REFUSED = {
    "postgresql": ("TRUNCATE audit_log", "ALTER TABLE audit_log DISABLE TRIGGER USER",
                   "UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "DROP TABLE audit_log",
                   "CREATE TABLE intruder (id integer)", "TRUNCATE person CASCADE",
                   "ALTER TABLE person DISABLE TRIGGER ALL"),
    "sqlite": ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"),
}


def test_application_is_refused_rewriting_the_audit_log_or_the_schema(rt):
    if _is_postgres(rt):
        _postgres_app_role(rt)
    with rt.session() as s:
        s.add(AuditLog(action="read", person_id=1, endpoint="GET /x"))
    for statement in REFUSED[rt.engine.dialect.name]:
        with pytest.raises(DBAPIError) as exc:
            with rt.engine.begin() as conn:
                conn.execute(text(statement))
        if _is_postgres(rt):
            assert exc.value.orig.sqlstate in ("42501",), exc.value  # insufficient_privilege / must be owner
        with rt.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1, statement


def test_application_role_reads_and_appends(rt):
    with rt.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (at, action) VALUES (CURRENT_TIMESTAMP, 'probe')"))
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'probe'")).scalar() == 1
    if not _is_postgres(rt):
        return  # SQLite: no roles to inspect; appending and reading is what the application needs
    role = _postgres_app_role(rt)
    with rt.engine.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == role
        privileges = conn.execute(text(
            "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) FROM information_schema.table_privileges "
            "WHERE grantee = :r AND table_name = 'audit_log'"), {"r": role}).scalar()
    assert privileges == "INSERT,SELECT"


def test_db_upgrade_runs_as_owner_and_grants_the_app_role(rt, base_settings, tmp_path):
    """`rsa db upgrade` with RSA_MIGRATE_DATABASE_URL: the owner migrates a fresh database, then the
    application's role can work in it but not alter it."""
    import uuid

    from config.cli import main

    if not _is_postgres(rt):
        # SQLite: one file, no roles; the upgraded database already carries the audit log's guard.
        url = f"sqlite:///{tmp_path / 'upgraded.sqlite3'}"
        out = CliRunner().invoke(main, ["db", "upgrade", "--json"], env={"RSA_DATABASE_URL": url})
        assert out.exit_code == 0, out.output
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_log (at, action) VALUES (CURRENT_TIMESTAMP, 'probe')"))
        with pytest.raises(DBAPIError):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_log"))
        engine.dispose()
        return
    role = _postgres_app_role(rt)
    owner_url = make_url(base_settings.migrate_database_url)
    name = f"rsa_roles_{uuid.uuid4().hex[:8]}"
    admin = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        owner_db = owner_url.set(database=name).render_as_string(hide_password=False)
        app_db = make_url(base_settings.database_url).set(database=name).render_as_string(hide_password=False)
        env = {"RSA_DATABASE_URL": app_db, "RSA_MIGRATE_DATABASE_URL": owner_db}
        out = CliRunner().invoke(main, ["db", "upgrade", "--json"], env=env)
        assert out.exit_code == 0, out.output
        app_engine = create_engine(make_url(app_db).set(drivername="postgresql+psycopg"))
        with app_engine.begin() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == role
            conn.execute(text("INSERT INTO territory (code, name) VALUES ('T', 'Test')"))
            conn.execute(text("INSERT INTO audit_log (at, action) VALUES (now(), 'probe')"))
        for statement in ("TRUNCATE audit_log", "ALTER TABLE audit_log DISABLE TRIGGER USER", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError):
                with app_engine.begin() as conn:
                    conn.execute(text(statement))
        app_engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
