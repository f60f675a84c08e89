"""Run the `rsa` CLI and kill -9 it (SIGKILL: no cleanup, no rollback, no atexit) in the middle of
an import.

    python tests/kill9.py TABLE ARGS…   (e.g. `python tests/kill9.py household import flux FILE`)

The fault is injected from the outside, not by a hook in the product: the statements the process
sends to the database are watched (SQLAlchemy's engine events; psycopg's COPY, which the importer
uses on PostgreSQL, by wrapping the driver's cursor), and as soon as rows have been written into
TABLE (inside the import's transaction, not yet committed) the process sends itself SIGKILL, after
saying so on stderr. The test then checks that nothing of the import is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MARK = "kill -9 after writing into"


def _kill(table: str, statement: str) -> None:
    print(f"{MARK} {table}: {statement.strip()[:60]}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install(table: str) -> None:
    writes = re.compile(rf'^\s*(INSERT\s+INTO|UPDATE|COPY)\s+"?{re.escape(table)}"?[\s(]', re.IGNORECASE)

    @event.listens_for(Engine, "after_cursor_execute")
    def _after_execute(conn, cursor, statement, parameters, context, executemany):
        if writes.match(statement):
            _kill(table, statement)

    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return
    copy = psycopg.Cursor.copy

    @contextlib.contextmanager
    def _copy(self, statement, *args, **kwargs):
        with copy(self, statement, *args, **kwargs) as stream:
            yield stream
        if isinstance(statement, str) and writes.match(statement):
            _kill(table, statement)

    psycopg.Cursor.copy = _copy


if __name__ == "__main__":
    install(sys.argv[1])
    from config.cli import main

    sys.exit(main(sys.argv[2:], prog_name="rsa"))
