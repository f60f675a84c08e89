"""SQLAlchemy 2 engine, session factory and the declarative base shared by every package.

Part of config's shared kernel: every layer imports it, so it imports no domain package (the model
registry, which does, is config.modules.import_models).
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Stable constraint names so that Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(), dict: JSONType, list: JSONType}


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA temp_store=MEMORY")  # report temp tables and big sorts: no temp files
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # JIT off for our sessions: its compile step (100–150 ms) is triggered by cost estimates that the
    # scoped queries' subplans inflate, and turned 40 ms searches into 200 ms ones; nothing here runs
    # long enough to repay it (the reports set it off again locally, for clarity).
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args["options"] = (connect_args.get("options", "") + " -c jit=off").strip()
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]):
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
