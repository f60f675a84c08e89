"""Who may see whom: THE scoping rule, as a SQL condition on Person, used by every query."""

from __future__ import annotations

import functools

from sqlalchemy import and_, exists, false, select, true, union
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from cases.models import Household, Person
from cases.signals import orientations
from referents.models import Role, Structure, User
from referents.vocabulary import OrientationStatus, ReferentType, StructureKind


def person_scope(user: User) -> ColumnElement[bool]:
    """THE scoping rule: a SQL condition on Person selecting who this user may see.

    Every list, search, detail, export and report query goes through it.
    - admin, manager: everybody;
    - mds_worker: people living in the sector of their MDS, and people oriented to their MDS;
    - provider: people currently oriented to their structure;
    - ati: people currently oriented to an ATI team of their territory.
    """
    if user is None or not user.active:
        return false()
    if user.role in (Role.ADMIN, Role.MANAGER):
        return true()
    # Aliases correlated to Person only: the condition means the same inside any outer query,
    # even one that already selects from household or orientation (no silent auto-correlation).
    o, h, st = _scope_aliases(orientations())
    o = o.c
    current = and_(o.person_id == Person.id, o.status == OrientationStatus.VALIDATED)
    if user.role == Role.MDS_WORKER:
        lives_in_sector = exists(select(h.id).where(
            h.id == Person.household_id, h.mds_id == user.structure_id).correlate(Person))
        oriented_here = exists(select(o.id).where(current, o.structure_id == user.structure_id).correlate(Person))
        return lives_in_sector | oriented_here
    if user.role == Role.PROVIDER:
        return exists(select(o.id).where(current, o.structure_id == user.structure_id).correlate(Person))
    if user.role == Role.ATI:
        ati_structures = select(st.id).where(st.kind == StructureKind.ATI.value, st.territory_id == user.territory_id)
        return exists(select(o.id).where(current, o.referent_type == ReferentType.ATI.value,
                                         o.structure_id.in_(ati_structures)).correlate(Person))
    return false()


def scoped_person_ids(user: User):
    """person_scope(user) as a set of ids: a SELECT of person ids (a UNION of index look-ups)
    instead of a condition evaluated on every person. The same rule, for the reports that
    materialise a scope once: an MDS worker's 35,000 persons come from the household and orientation
    indexes instead of a test of a million persons. tests/test_security_scope.py checks that both
    select the same persons in every scenario."""
    if user is None or not user.active:
        return select(Person.id).where(false())
    if user.role in (Role.ADMIN, Role.MANAGER):
        return select(Person.id)
    o = _scope_aliases(orientations())[0].c
    validated = o.status == OrientationStatus.VALIDATED
    if user.role == Role.MDS_WORKER:
        lives_in_sector = (select(Person.id).join(Household, Household.id == Person.household_id)
                           .where(Household.mds_id == user.structure_id))
        oriented_here = select(o.person_id).where(validated, o.structure_id == user.structure_id)
        return select(union(lives_in_sector, oriented_here).subquery().c[0].label("id"))
    if user.role == Role.PROVIDER:
        return select(o.person_id.label("id")).distinct().where(validated, o.structure_id == user.structure_id)
    if user.role == Role.ATI:
        ati_structures = select(Structure.id).where(Structure.kind == StructureKind.ATI.value, Structure.territory_id == user.territory_id)
        return (select(o.person_id.label("id")).distinct()
                .where(validated, o.referent_type == ReferentType.ATI.value, o.structure_id.in_(ati_structures)))
    return select(Person.id).where(false())


@functools.cache
def _scope_aliases(view):
    """Built once per orientation read model (the receiver answers the same one every time): making
    the aliases and adapting their columns cost ~7 ms on every request."""
    return view.rows.subquery(), aliased(Household), aliased(Structure)


def scoped_persons(user: User):
    """A select of Person restricted to the user's scope; callers add filters and paging."""
    return select(Person).where(person_scope(user))


def get_person_in_scope(session: Session, user: User, person_id: int) -> Person | None:
    """None when the person does not exist or is out of scope (the API answers 404 for both)."""
    return session.scalar(scoped_persons(user).where(Person.id == person_id))


def _system_user() -> User:
    """An in-memory (never saved) manager used by jobs to see everybody through person_scope."""
    return User(id=None, email="job@local", role=Role.MANAGER.value, active=True)


