"""Case logic over a session: scoping of persons for a user, timeline events, alerts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, exists, false, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cases.models import Alert, CaseEvent, Household, Person
from referents.models import Role, Structure, User


def person_scope(user: User) -> ColumnElement[bool]:
    """THE scoping rule: a SQL condition on Person selecting who this user may see.

    Every list, search, detail, export and report query goes through it.
    - admin, manager: everybody;
    - mds_worker: people living in the sector of their MDS, and people oriented to their MDS;
    - provider: people currently oriented to their structure;
    - ati: people currently oriented to an ATI team of their territory.
    """
    from orientation.models import Orientation

    if user is None or not user.active:
        return false()
    if user.role in (Role.ADMIN, Role.MANAGER):
        return true()
    current = and_(Orientation.person_id == Person.id, Orientation.status == "validated")
    if user.role == Role.MDS_WORKER:
        lives_in_sector = exists(select(Household.id).where(
            Household.id == Person.household_id, Household.mds_id == user.structure_id))
        oriented_here = exists(select(Orientation.id).where(current, Orientation.structure_id == user.structure_id))
        return lives_in_sector | oriented_here
    if user.role == Role.PROVIDER:
        return exists(select(Orientation.id).where(current, Orientation.structure_id == user.structure_id))
    if user.role == Role.ATI:
        ati_structures = select(Structure.id).where(Structure.kind == "ati",
                                                    Structure.territory_id == user.territory_id)
        return exists(select(Orientation.id).where(current, Orientation.referent_type == "ati",
                                                   Orientation.structure_id.in_(ati_structures)))
    return false()


def scoped_persons(user: User):
    """A select of Person restricted to the user's scope; callers add filters and paging."""
    return select(Person).where(person_scope(user))


def get_person_in_scope(session: Session, user: User, person_id: int) -> Person | None:
    """None when the person does not exist or is out of scope (the API answers 404 for both)."""
    return session.scalar(scoped_persons(user).where(Person.id == person_id))


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
