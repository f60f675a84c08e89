"""Alembic driven from code, so that `rsa db upgrade` needs no alembic.ini."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def collated_indexes() -> frozenset[str]:
    """The models' indexes whose key columns carry a collation (COLLATE "C" in cases/models.py):
    SQLAlchemy's reflection does not return an index column's collation, so a comparison with the
    models would see them differ on every run. Autogenerate leaves them alone; tests/test_foundation.py
    checks them in PostgreSQL's catalog instead."""
    return _collated_indexes()


@functools.cache
def _collated_indexes() -> frozenset[str]:
    from sqlalchemy.sql.elements import CollationClause
    from sqlalchemy.sql.visitors import iterate

    from config.db import Base
    from config.modules import import_models

    import_models()
    return frozenset(index.name for table in Base.metadata.tables.values() for index in table.indexes
                     if any(isinstance(e, CollationClause) for x in index.expressions for e in iterate(x)))


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's comparison filter: everything but the collated indexes."""
    return not (type_ == "index" and name in collated_indexes())


def alembic_config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine, target: str = "head") -> bool:
    """Upgrade to target; returns False when there was nothing to do."""
    if target == "head" and current_revision(engine) == head_revision():
        return False
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), target)
        # Database-level guard: the audit log is append-only.
        from sqlalchemy import text

        from referents.models import AUDIT_GUARD_SQL, AUDIT_GUARD_SQLITE
        for statement in (AUDIT_GUARD_SQL,) if conn.dialect.name == "postgresql" else AUDIT_GUARD_SQLITE:
            conn.execute(text(statement))
    return True


def downgrade(engine: Engine, target: str) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), target)


def revision(engine: Engine, message: str, autogenerate: bool = True) -> None:
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=autogenerate)


def regenerate_initial() -> Path:
    """Development only, before the first production deployment: rebuild 0001 from the models.

    Run by `make migrations`; afterwards, schema changes get ordinary new revisions.
    """
    import tempfile

    from config.db import make_engine

    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/empty.sqlite3")
        with engine.begin() as conn:
            command.revision(alembic_config(conn), message="initial schema", autogenerate=True, rev_id="0001")
        engine.dispose()
    return next(versions.glob("0001_*.py"))


if __name__ == "__main__":  # pragma: no cover
    import sys

    if sys.argv[1:] == ["regenerate"]:
        print(regenerate_initial())
    else:
        sys.exit("usage: python -m config.migrate regenerate")
