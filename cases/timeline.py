"""The person's timeline (dated events with source and author) and alerts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Alert, CaseEvent


def add_event(session: Session, person_id: int, kind: str, occurred_on: dt.date, source: str,
              summary: str = "", data: dict | None = None, path_id: int | None = None,
              author_id: int | None = None) -> CaseEvent:
    event = CaseEvent(person_id=person_id, path_id=path_id, kind=kind, occurred_on=occurred_on,
                      source=source, summary=summary, data=data, author_id=author_id)
    session.add(event)
    return event


def raise_alert(session: Session, key: str, kind: str, message: str, raised_on: dt.date,
                severity: str = "warning", person_id: int | None = None, structure_id: int | None = None,
                data: dict | None = None) -> tuple[Alert, bool]:
    """Idempotent by key: returns (alert, created)."""
    alert = session.scalar(select(Alert).where(Alert.key == key))
    if alert is not None:
        return alert, False
    alert = Alert(key=key, kind=kind, message=message, raised_on=raised_on, severity=severity,
                  person_id=person_id, structure_id=structure_id, data=data)
    session.add(alert)
    return alert, True


def _resolve_alerts(session: Session, key_prefix: str, on: dt.date, person_id: int | None = None) -> int:
    """Resolve the open alerts whose key starts with the prefix. With `person_id` (alerts raised for a
    person: contract_overdue:<id>:…, review_due:<id>:…), the person's index narrows the search: a prefix
    LIKE cannot use the key's index under a non-C collation, and read the whole alert table."""
    n = 0
    q = select(Alert).where(Alert.key.startswith(key_prefix, autoescape=True), Alert.resolved_on.is_(None))
    if person_id is not None:
        q = q.where(Alert.person_id == person_id)
    for alert in session.scalars(q):
        alert.resolved_on = on
        n += 1
    return n


def timeline(session: Session, person_id: int, *, path_id: int | None = None) -> list[dict]:
    """The person's events ordered by date then recording order, each with source and author."""
    from referents.models import User as UserModel

    query = (select(CaseEvent, UserModel.display_name, UserModel.email)
             .outerjoin(UserModel, UserModel.id == CaseEvent.author_id)
             .where(CaseEvent.person_id == person_id)
             .order_by(CaseEvent.occurred_on, CaseEvent.id))
    if path_id is not None:
        query = query.where(CaseEvent.path_id == path_id)
    return [{"id": ev.id, "occurred_on": ev.occurred_on.isoformat(), "kind": ev.kind, "source": ev.source,
             "author_id": ev.author_id, "author": (name or email) if ev.author_id else None,
             "summary": ev.summary, "path_id": ev.path_id, "data": ev.data or {}}
            for ev, name, email in session.execute(query)]


