"""Shared fixtures.

The suite runs against SQLite by default, and against PostgreSQL when RSA_TEST_DATABASE_URL
points to a server (`make test` does both): a fresh database is created for the run and dropped
after, so that several runs never share state. On PostgreSQL the schema is created by the owner
role of that URL, and the application under test runs as the least-privileged role `rsa_app`
(RSA_TEST_APP_DATABASE_URL to name another), as in production (config.roles, docs/security.md). Between tests every non-reference table is emptied;
reference data (territories, communes, structures, sectors) is reloaded only when a test changed it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from config.db import Base
from config.modules import import_models
from config.runtime import build_runtime
from config.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REFERENCE_TABLES = ("territory", "commune", "structure", "sector")
AS_OF = dt.date(2026, 11, 20)


def _server_admin_url(url):
    return url.set(drivername="postgresql+psycopg")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    server = os.environ.get("RSA_TEST_DATABASE_URL")
    if not server:
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        yield f"sqlite:///{path}"
        return
    base = _server_admin_url(make_url(server))
    name = f"rsa_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


APP_ROLE = "rsa_app"


@pytest.fixture(scope="session")
def app_database_url(database_url):
    """The application's URL: on PostgreSQL the role `rsa_app` made by .ci/postgres.sh (rows only,
    INSERT-only audit log); the owner's URL when that role does not exist (an older server setup)."""
    if database_url.startswith("sqlite"):
        return database_url
    explicit = os.environ.get("RSA_TEST_APP_DATABASE_URL")
    if explicit:
        return make_url(explicit).set(drivername="postgresql+psycopg",
                                      database=make_url(database_url).database).render_as_string(hide_password=False)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).scalar()
    engine.dispose()
    if not exists:
        return database_url
    return make_url(database_url).set(username=APP_ROLE, password=APP_ROLE).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def base_settings(app_database_url, database_url, tmp_path_factory) -> Settings:
    var = tmp_path_factory.mktemp("var")
    return Settings.from_env(env={}).with_(
        database_url=app_database_url,
        migrate_database_url=database_url,
        secret_key="test-secret",
        inbox=str(var / "inbox"),
        archive=str(var / "archive"),
        quarantine=str(var / "quarantine"),
        reports_dir=str(var / "reports"),
        outbox_dir=str(var / "outbox"),
        secure_cookies=False,
        scheduler_enabled=False,
    )


def _reference_fingerprint(conn) -> tuple:
    from referents.models import Sector, Structure

    s = conn.execute(select(func.count(Structure.id), func.coalesce(func.sum(Structure.capacity), 0),
                            func.coalesce(func.max(Structure.id), 0))).one()
    sec = conn.execute(select(func.count(Sector.id),
                              func.coalesce(func.sum(Sector.mds_id + func.coalesce(Sector.actipro_id, 0)
                                                     + func.coalesce(Sector.pole_emploi_id, 0)
                                                     + func.coalesce(Sector.ati_id, 0)
                                                     + func.coalesce(Sector.ccas_id, 0)
                                                     + Sector.territory_id), 0))).one()
    return tuple(s) + tuple(sec)


@pytest.fixture(scope="session")
def _owner(base_settings):
    """The schema owner's runtime: creates the schema, grants the application's role, and empties
    the tables between tests (the application's role may not disable the audit log's trigger)."""
    import_models()
    owner = build_runtime(base_settings.with_(database_url=base_settings.migrate_database_url))
    yield owner
    owner.dispose()


@pytest.fixture(scope="session")
def _schema(base_settings, _owner):
    from config.roles import app_role_of, grant_app_role

    Base.metadata.create_all(_owner.engine)
    role = app_role_of(base_settings.database_url, base_settings.migrate_database_url)
    if role:
        with _owner.engine.begin() as conn:
            grant_app_role(conn, role)
    rt = build_runtime(base_settings)
    rt.owner_engine = _owner.engine
    _reload_reference(rt)
    with rt.engine.connect() as conn:
        fingerprint = _reference_fingerprint(conn)
    yield rt, fingerprint
    rt.dispose()


def _reload_reference(rt):
    from referents.service import load_reference_data

    _empty(rt, tables=None)
    with rt.session() as s:
        load_reference_data(s)


def _empty(rt, tables):
    """Empty the given tables (None: all) and rewind their id sequences on PostgreSQL (as the owner)."""
    names = [t.name for t in Base.metadata.sorted_tables if tables is None or t.name in tables]
    with getattr(rt, "owner_engine", rt.engine).begin() as conn:
        if rt.engine.dialect.name == "postgresql":
            # DELETE only the tables holding rows (a TRUNCATE costs ~0.5 s whatever the data), in
            # dependency order, the audit log's append-only trigger set aside; then rewind sequences.
            probe = " UNION ALL ".join(f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")" for n in names)
            full = {r[0] for r in conn.execute(text(probe))}
            for name in reversed(names):
                if name not in full:
                    continue
                if name == "audit_log":
                    conn.execute(text('ALTER TABLE "audit_log" DISABLE TRIGGER USER'))
                conn.execute(text(f'DELETE FROM "{name}"'))
                if name == "audit_log":
                    conn.execute(text('ALTER TABLE "audit_log" ENABLE TRIGGER USER'))
            wanted = {f"{n}_id_seq" for n in names}
            for (seq,) in conn.execute(text("SELECT sequencename FROM pg_sequences WHERE last_value IS NOT NULL "
                                            "AND schemaname = current_schema()")):
                if seq in wanted:
                    conn.execute(text(f"SELECT setval('\"{seq}\"', 1, false)"))
        else:
            from referents.models import AUDIT_GUARD_SQLITE

            # SQLite cannot disable a trigger: the audit log's guards are dropped, then put back.
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only_delete"))
            for name in reversed(names):
                conn.execute(text(f'DELETE FROM "{name}"'))
            for statement in AUDIT_GUARD_SQLITE:
                conn.execute(text(statement))


@pytest.fixture
def rt(_schema):
    """The Runtime bound to the test database, emptied of everything but reference data after the test."""
    runtime, fingerprint = _schema
    yield runtime
    non_ref = {t.name for t in Base.metadata.sorted_tables} - set(REFERENCE_TABLES)
    _empty(runtime, non_ref)
    with runtime.engine.connect() as conn:
        changed = _reference_fingerprint(conn) != fingerprint
    if changed:
        _reload_reference(runtime)
    _empty_folders(runtime.settings)


def _empty_folders(settings):
    """The inbox, archive, quarantine, outbox and reports folders are per-run too: empty them."""
    import shutil

    for folder in (settings.inbox, settings.archive, settings.quarantine, settings.outbox_dir,
                   settings.reports_dir):
        path = Path(folder)
        if path.is_dir():
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()


@pytest.fixture
def session(rt):
    s = rt.sessions()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def as_of():
    return AS_OF


@pytest.fixture(scope="session")
def _app(_schema):
    from config.app import create_app

    runtime, _ = _schema
    app = create_app(runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(_app, rt):
    return _app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(rt):
    """make_user(role, structure_code=None) -> (user, {"Authorization": "Bearer …"})."""
    from referents.service import create_user, issue_token

    def _make(role: str, structure_code: str | None = None, email: str | None = None, password: str | None = None):
        with rt.session() as s:
            user = create_user(s, email or f"{role}-{uuid.uuid4().hex[:8]}@test.local", role,
                               password=password, structure_code=structure_code)
            token = issue_token(s, user, ttl_hours=1)
            s.expunge(user)
        return user, {"Authorization": f"Bearer {token}"}

    return _make


@pytest.fixture
def counter(rt):
    """The SQL statements the application sends while the test runs (the token's once-a-minute touch
    left out): the statement-count tests of the hot requests share it."""
    from sqlalchemy import event

    statements: list[str] = []

    def _count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", _count)
    yield statements
    event.remove(rt.engine, "before_cursor_execute", _count)


@pytest.fixture
def today(request):
    """The process clock frozen at the test module's TODAY for the test's duration."""
    from config import clock

    day = request.module.TODAY
    clock.freeze(day)
    yield day
    clock.freeze(None)
