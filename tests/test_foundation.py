"""Foundation: settings, migrations on the test database's engine, reference data, app factory, CLI."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from config import migrate
from config.db import Base
from config.modules import import_models
from config.settings import Settings
from referents.models import Commune, Sector, Structure, Territory


def test_settings_defaults_and_env():
    s = Settings.from_env(env={})
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/rsa.sqlite3")
    assert s.token_ttl_hours == 12 and s.retention_months == 24
    s2 = Settings.from_env(env={"RSA_DATABASE_URL": "postgresql://x/y", "RSA_SMTP_PORT": "2525",
                                "RSA_SMTP_STARTTLS": "yes"})
    assert s2.database_url == "postgresql://x/y" and s2.smtp_port == 2525 and s2.smtp_starttls is True
    assert ("RSA_INBOX", s.inbox) in s.documented()


def _fresh_db_url(database_url, tmp_path):
    """An empty database on the same kind of server as the suite's."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/migr.sqlite3", None
    url = make_url(database_url)
    name = f"rsa_migr_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), (admin, name)


def test_migrations_upgrade_from_empty_match_models_and_are_idempotent(database_url, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from config.db import make_engine

    import_models()
    url, cleanup = _fresh_db_url(database_url, tmp_path)
    engine = make_engine(url)
    try:
        assert migrate.upgrade(engine) is True
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.upgrade(engine) is False  # up to date: no-op
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(
                conn, opts={"compare_type": False, "include_object": migrate.include_object}), Base.metadata)
            if engine.dialect.name == "postgresql":  # what the comparison cannot see: the collation
                collated = dict(conn.execute(text(
                    "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relname = ANY(:names)"),
                    {"names": sorted(migrate.collated_indexes())}).all())
                assert set(collated) == migrate.collated_indexes()
                assert all('COLLATE "C"' in ddl for ddl in collated.values()), collated
                assert "INCLUDE (last_name, first_name, birth_name, household_id)" in collated["ix_person_name_order"]
                assert "WHERE ((birth_name)::text IS DISTINCT FROM (last_name)::text)" in collated[
                    "ix_person_folded_birth_name"]
        assert diff == [], f"models and migrations differ (run `make migrations`): {diff}"
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    finally:
        engine.dispose()
        if cleanup:
            admin, name = cleanup
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_reference_data_every_commune_has_one_mds_and_territory(session):
    assert session.scalar(select(func.count()).select_from(Commune)) == 586
    assert session.scalar(select(func.count()).select_from(Territory)) == 5
    assert session.scalar(select(func.count()).select_from(Structure).where(Structure.kind == "mds")) == 30
    sectors = session.scalars(select(Sector)).all()
    communes = {s.commune_insee for s in sectors}
    assert len(communes) == 586
    for s in sectors:
        assert s.mds.kind == "mds" and s.mds.territory_id == s.territory_id
        assert s.actipro is not None and s.pole_emploi is not None and s.ati is not None
    toulouse = [s for s in sectors if s.commune_insee == "31555"]
    assert sorted(s.postal_code for s in toulouse) == ["31000", "31100", "31200", "31300", "31400", "31500"]
    # every other commune has a single whole-commune sector
    assert all(s.postal_code == "" for s in sectors if s.commune_insee != "31555")
    total = session.scalar(select(func.sum(Structure.capacity)).where(Structure.kind == "actipro"))
    assert 4000 <= total <= 5800


def test_reference_data_load_is_idempotent(session):
    from referents.service import load_reference_data

    assert load_reference_data(session) == {"territories": 0, "communes": 0, "structures": 0, "sectors": 0}


def test_find_sector_toulouse_postal_code_and_outside_departement(session):
    from referents.service import SectorIndex, find_sector

    m = find_sector(session, "31555", "31400")
    assert m.sector.mds.code == "MDS-RANGUEIL"
    assert find_sector(session, "31069").sector.mds.code == "MDS-BLAGNAC"
    out = find_sector(session, "52121", "52000")
    assert out.sector is None and "hors sectorisation" in out.reason
    idx = SectorIndex(session)
    assert idx.find("31555", "31000").sector.mds.code == "MDS-CENTRE"
    assert idx.find("31555", None).sector is None


def test_sector_index_is_shared_within_a_transaction_and_dropped_on_sector_writes(session):
    from sqlalchemy import update

    from referents.models import Structure
    from referents.service import SectorIndex

    first = SectorIndex.of(session)
    assert SectorIndex.of(session) is first  # one build for the transaction's batch work
    blagnac = session.scalar(select(Structure).where(Structure.code == "MDS-BLAGNAC"))
    sector = session.scalar(select(Sector).where(Sector.commune_insee == "31555", Sector.postal_code == "31400"))
    old_mds = sector.mds_id
    sector.mds_id = blagnac.id  # an ORM write of a sector: the next index sees it
    session.flush()
    second = SectorIndex.of(session)
    assert second is not first and second.find("31555", "31400").sector.mds_id == blagnac.id
    session.execute(update(Sector).where(Sector.id == sector.id).values(mds_id=old_mds))  # a bulk write too
    third = SectorIndex.of(session)
    assert third is not second
    session.rollback()  # the transaction's end drops it
    assert SectorIndex.of(session) is not third


def test_a_lent_sector_index_serves_later_transactions_until_a_sector_is_written(session):
    from sqlalchemy import update

    from referents.service import SectorIndex

    lent = SectorIndex(session)
    session.rollback()  # the index outlives the transaction it was read in
    assert SectorIndex.adopt(session, lent) is lent and SectorIndex.of(session) is lent
    assert lent.find("31555", "31400").sector.mds_id is not None
    session.rollback()
    assert SectorIndex.of(session) is not lent and not lent.stale  # a transaction's end only drops it
    session.rollback()
    SectorIndex.adopt(session, lent)
    session.execute(text("PRAGMA cache_size" if session.bind.dialect.name == "sqlite" else "SELECT 1"))
    assert SectorIndex.of(session) is lent  # raw SQL that does not name the sector table keeps it
    session.execute(text("UPDATE sector SET postal_code = postal_code WHERE id = -1"))
    assert lent.stale and SectorIndex.of(session) is not lent  # raw SQL naming it: stale
    lent = SectorIndex(session)
    session.rollback()
    SectorIndex.adopt(session, lent)
    sector = session.scalar(select(Sector).where(Sector.commune_insee == "31069"))
    session.execute(update(Sector).where(Sector.id == sector.id).values(postal_code="31700"))
    assert lent.stale and SectorIndex.of(session) is not lent  # a sector written: stale, never lent again
    with pytest.raises(ValueError):
        SectorIndex.adopt(session, lent)
    session.rollback()


def test_load_sectorisation_rejects_unknown_structure_and_changes_nothing(session, tmp_path):
    from referents.service import DATA, ReferenceDataError, load_sectorisation

    bad = tmp_path / "s.csv"
    lines = (DATA / "sectorisation.csv").read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace("MDS-", "MDS-NOPE-", 1)
    bad.write_text("\n".join(lines), encoding="utf-8")
    before = session.scalar(select(func.count()).select_from(Sector))
    try:
        load_sectorisation(session, bad, replace=True)
        raise AssertionError("should have failed")
    except ReferenceDataError as exc:
        assert "ligne 6" in str(exc)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Sector)) == before


def test_app_factory_health_openapi_and_json_errors(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok", "database": "ok"}
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200 and spec.get_json()["info"]["version"] == "v1"
    r = client.get("/api/v1/does-not-exist")
    assert r.status_code == 404 and r.get_json()["code"] == 404
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()


def test_cli_init_twice_is_a_noop(tmp_path, monkeypatch, database_url):
    from config.cli import main

    if not database_url.startswith("sqlite"):
        url, cleanup = _fresh_db_url(database_url, tmp_path)
    else:
        url, cleanup = f"sqlite:///{tmp_path}/cli.sqlite3", None
    try:
        runner = CliRunner()
        first = runner.invoke(main, ["--database-url", url, "init", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.output)["changed"] is True
        second = runner.invoke(main, ["--database-url", url, "init", "--json"])
        assert second.exit_code == 0, second.output
        out = json.loads(second.output)
        assert out["changed"] is False and out["migrated"] is False
        up = runner.invoke(main, ["--database-url", url, "db", "upgrade", "--json"])
        assert up.exit_code == 0 and json.loads(up.output)["changed"] is False
    finally:
        if cleanup:
            admin, name = cleanup
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_every_endpoint_declares_a_permission(app):
    from config.auth import declared_roles

    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api-docs."):
            continue
        view = app.view_functions[rule.endpoint]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if declared_roles(view, method) is None:
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_sessions_carry_the_settings_of_their_database(rt):
    """config.db.make_engine sets each database up for this workload. PostgreSQL: JIT off (its
    compile step cost more than the short scoped queries it was triggered for). SQLite: foreign
    keys enforced, WAL, temporary tables in memory (the reports' folds and sorts)."""
    with rt.session() as s:
        if rt.engine.dialect.name == "postgresql":
            assert s.execute(text("SHOW jit")).scalar() == "off"
        else:
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert s.execute(text("PRAGMA temp_store")).scalar() == 2  # MEMORY
