"""Least-privilege database roles on PostgreSQL (issue 22, item 4).

Two roles, two URLs:
- the **owner** role (`RSA_MIGRATE_DATABASE_URL`) owns the schema: `rsa db upgrade` and `rsa init`
  run as it (DDL, triggers, reference data);
- the **application** role (`RSA_DATABASE_URL`: `rsa serve`, `rsa scheduler`, every other
  command) may only read and write rows: no TRUNCATE, no ALTER (so no `DISABLE TRIGGER`), no DDL on
  the schema, and on the audit log only SELECT and INSERT — it cannot change or erase the trail.

`grant_app_role` is run by the owner after each upgrade (and by the test harness); it is
idempotent and recomputes the grants of every table, so new tables are covered. SQLite has no
roles: there the append-only triggers and the application guard stay the protection."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY = {"audit_log": "SELECT, INSERT"}
READ_ONLY = {"alembic_version": "SELECT"}


def app_role_of(app_url: str | None, migrate_url: str | None) -> str | None:
    """The application's role when it differs from the owner's (PostgreSQL URLs only)."""
    if not app_url or not migrate_url or not app_url.startswith("postgresql"):
        return None
    app, owner = make_url(app_url), make_url(migrate_url)
    if not app.username or app.username == owner.username:
        return None
    return app.username


def grant_app_role(conn: Connection, role: str) -> list[str]:
    """Give `role` exactly the rights the application needs on the current database and schema.
    Returns the statements run (for the log and the tests)."""
    if conn.dialect.name != "postgresql":
        return []
    q = conn.dialect.identifier_preparer.quote
    database = conn.execute(text("SELECT current_database()")).scalar()
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    tables = [r[0] for r in conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"))]
    r = q(role)
    statements = [f"GRANT CONNECT, TEMPORARY ON DATABASE {q(database)} TO {r}",
                  f"GRANT USAGE ON SCHEMA {q(schema)} TO {r}",
                  f"REVOKE CREATE ON SCHEMA {q(schema)} FROM {r}"]
    for table in tables:
        rights = APPEND_ONLY.get(table) or READ_ONLY.get(table) or READ_WRITE
        statements += [f"REVOKE ALL ON TABLE {q(table)} FROM {r}", f"GRANT {rights} ON TABLE {q(table)} TO {r}"]
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q(schema)} TO {r}")
    # setval after bulk loads with explicit ids (orientation.population); never on the audit log's.
    sequences = [row[0] for row in conn.execute(text(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() ORDER BY sequencename"))]
    for sequence in sequences:
        if not sequence.startswith("audit_log"):
            statements.append(f"GRANT UPDATE ON SEQUENCE {q(sequence)} TO {r}")
    for statement in statements:
        conn.execute(text(statement))
    return statements
