"""SQLAlchemy 2 engine, session factory and the declarative base shared by every package.

Part of config's shared kernel: every layer imports it, so it imports no domain package (the model
registry, which does, is config.modules.import_models).
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import sqltypes

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


# --- id and key lists as ONE bound parameter (shared by the import's look-ups and the working lists) ---

def array_literal(values, integer: bool) -> str:
    """A PostgreSQL array literal (one text parameter, cast): psycopg's list dumper inspects every
    element in Python. None is NULL; other items are written as their str() (dates as ISO)."""
    if integer:
        return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"
    return "{" + ",".join("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def unnest_rows(columns: list[list], types: list):
    """`unnest(CAST(:a AS t1[]), CAST(:b AS t2[]), …) AS anon(c0, c1, …)`: lists zipped into rows.
    String items are cast to plain varchar[] (no length: a cast to varchar(n) would truncate)."""
    args = [cast(bindparam(None, array_literal(v, isinstance(t, sqltypes.Integer)), type_=sqltypes.Text), ARRAY(t))
            for v, t in zip(columns, types, strict=True)]
    return func.unnest(*args).table_valued(*(f"c{i}" for i in range(len(args)))).render_derived()


def update_rows(session: Session, table, rows: list[dict], *, key: str = "id", values: dict | None = None) -> None:
    """Each row's new values, written by its key: one `UPDATE … FROM unnest(arrays)` on PostgreSQL
    (an UPDATE per row was minutes for a million rows, and a VALUES list of hundreds of tuples cost
    more to compile than to run), an executemany on SQLite (in-process). Every row carries the same
    keys. `values`: further SET clauses as expressions of `new`, the unnested row (its columns named
    as the rows' keys), for values computed in SQL from the old and the new ones."""
    if not rows:
        return
    table = getattr(table, "__table__", table)
    names = [k for k in rows[0] if k != key]
    if session.get_bind().dialect.name == "postgresql":
        cols = [key, *names]
        types = [sqltypes.String() if isinstance(table.c[c].type, sqltypes.String) else table.c[c].type for c in cols]
        new = unnest_rows([[r[c] for r in rows] for c in cols], types)
        by = dict(zip(cols, new.c, strict=True))
        sets = {c: by[c] for c in names}
        sets.update({c: fn(by) for c, fn in (values or {}).items()})
        session.execute(table.update().where(table.c[key] == by[key]).values(sets),
                        execution_options={"synchronize_session": False})
    else:
        sets = {c: bindparam("_u_" + c) for c in names}
        sets.update({c: fn({c2: bindparam("_u_" + c2) for c2 in [key, *names]}) for c, fn in (values or {}).items()})
        session.connection().execute(table.update().where(table.c[key] == bindparam("_u_" + key)).values(sets),
                                     [{"_u_" + c: v for c, v in r.items()} for r in rows])


def one_of(col, values, pg: bool):
    """`col IN values` as one bound parameter, whatever the number of values, joined against the
    column's index: `IN (SELECT v FROM unnest(CAST(:p AS type[])))` on PostgreSQL, `IN (SELECT value
    FROM json_each(?))` on SQLite. The statement text no longer depends on the count, so SQLAlchemy's
    compiled cache and psycopg's query cache hit instead of rendering and parsing 900 placeholders
    per look-up, and no 900-value chunking is needed. On PostgreSQL, a semi-join rather than
    `= ANY(:array)`: a prepared (generic) plan compares each row with every element of a parameter
    array, and a sequential scan planned while the table was small then cost seconds a chunk."""
    values = list(values)
    if pg:
        item = col.type if isinstance(col.type, sqltypes.Integer) else sqltypes.String()
        return col.in_(select(*unnest_rows([values], [item]).c))
    return col.in_(select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(values), type_=sqltypes.String))))
