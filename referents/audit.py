"""The one writer of the audit log (issue 22, item 3; issue 14 "one audit writer").

Every audit row of the product is built here, and nowhere else: reads and changes of a person's
record from the API, the pages and the command line, logins, account administration, exports,
purges. Callers in a request go through `config.auth.audit` (which adds the user, the endpoint and
the address of the request); callers outside a request (CLI, jobs) call `write` with a session.

The audit log is append-only (see referents.models: ORM guard and database triggers), and on
PostgreSQL the application's role may only INSERT into it (docs/security.md)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from referents.models import AuditLog

# Actions that mean "someone looked at a person's data" (what the read-audit test counts).
READ = "read"
ACTION_MAX = 40
ENDPOINT_MAX = 200


def write(session: Session, action: str, *, user_id: int | None = None, person_id: int | None = None,
          endpoint: str | None = None, ip: str | None = None, details: dict | None = None,
          note: str | None = None) -> AuditLog:
    """Append one audit row to the session's unit of work (the caller commits)."""
    entry = AuditLog(user_id=user_id, action=action[:ACTION_MAX], person_id=person_id,
                     endpoint=endpoint[:ENDPOINT_MAX] if endpoint else endpoint,
                     ip=ip[:45] if ip else ip, details=details, note=note)
    session.add(entry)
    return entry


def cli(session: Session, action: str, person_id: int | None = None, *, command: str = "",
        user_id: int | None = None, details: dict | None = None) -> AuditLog:
    """An action taken from the command line (`endpoint` = "cli <command>")."""
    return write(session, action, user_id=user_id, person_id=person_id,
                 endpoint=f"cli {command}".strip(), details=details)
