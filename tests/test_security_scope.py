"""The single scoping function cases.service.person_scope against the roles of issue 6."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from cases.models import Household, Person
from cases.service import get_person_in_scope, person_scope, scoped_person_ids, scoped_persons
from orientation.models import Orientation
from referents.models import Structure, User
from tests.factories import make_person
from tests.security_world import build_world


def _user(s, world, role) -> User:
    return s.get(User, world.users[role])


def _visible(s, user) -> set[int]:
    """Who person_scope lets the user see; scoped_person_ids (the same rule as a set of ids, for the
    reports) must select exactly the same persons, in every scenario below."""
    visible = set(s.scalars(select(Person.id).where(person_scope(user))))
    assert set(s.scalars(scoped_person_ids(user))) == visible
    return visible


def test_each_role_sees_exactly_its_scope(rt):
    w = build_world(rt)
    everyone = set(w.person_of.values()) | {w.other}
    with rt.session() as s:
        assert _visible(s, _user(s, w, "admin")) == everyone
        assert _visible(s, _user(s, w, "manager")) == everyone
        assert _visible(s, _user(s, w, "mds_worker")) == {w.person_of["mds_worker"]}
        assert _visible(s, _user(s, w, "provider")) == {w.person_of["provider"]}
        assert _visible(s, _user(s, w, "ati")) == {w.person_of["ati"]}
        assert get_person_in_scope(s, _user(s, w, "provider"), w.other) is None


def test_provider_sees_current_orientations_only_and_mds_sees_people_oriented_to_it(rt):
    w = build_world(rt)
    with rt.session() as s:
        provider, mds = _user(s, w, "provider"), _user(s, w, "mds_worker")
        p = make_person(s, commune="31483", postal_code="31800")  # Saint-Gaudens: not Muret's sector
        s.add(Orientation(person_id=p.id, referent_type="actipro", structure_id=provider.structure_id,
                          status="proposed", decided_on=dt.date(2026, 11, 1), mode="propose", origin="auto"))
        s.flush()
        assert p.id not in _visible(s, provider)  # a proposal is not an orientation yet
        o = s.scalar(select(Orientation).where(Orientation.person_id == p.id))
        o.status = "validated"
        s.flush()
        assert p.id in _visible(s, provider)
        o.status = "ended"  # the path closed: the provider no longer follows the person
        s.flush()
        assert p.id not in _visible(s, provider)
        q = make_person(s, commune="31483", postal_code="31800")
        s.add(Orientation(person_id=q.id, referent_type="mds", structure_id=mds.structure_id, status="validated",
                          decided_on=dt.date(2026, 11, 1), validated_on=dt.date(2026, 11, 2), origin="agent"))
        s.flush()
        assert q.id in _visible(s, mds) and q.id not in _visible(s, provider)


def test_ati_sees_only_ati_orientations_of_its_territory(rt):
    w = build_world(rt)
    with rt.session() as s:
        ati = _user(s, w, "ati")
        other_ati = s.scalar(select(Structure.id).where(Structure.code == "ATI-COMMINGES"))
        p = make_person(s, commune="31483", postal_code="31800")
        s.add(Orientation(person_id=p.id, referent_type="ati", structure_id=other_ati, status="validated",
                          decided_on=dt.date(2026, 11, 1), validated_on=dt.date(2026, 11, 1), origin="auto"))
        s.flush()
        assert p.id not in _visible(s, ati)


def test_disabled_user_sees_nobody(rt):
    w = build_world(rt)
    with rt.session() as s:
        user = _user(s, w, "manager")
        user.active = False
        s.flush()
        assert _visible(s, user) == set()


def test_scope_means_the_same_inside_queries_over_orientation_and_household(rt):
    """Regression: without explicit correlation the EXISTS sub-queries auto-correlated to an outer
    orientation/household and either failed or silently tested the outer row."""
    w = build_world(rt)
    with rt.session() as s:
        for role in ("mds_worker", "provider", "ati"):
            user = _user(s, w, role)
            q = (select(func.count(func.distinct(Person.id))).select_from(Orientation)
                 .join(Person, Person.id == Orientation.person_id)
                 .join(Household, Household.id == Person.household_id)
                 .where(person_scope(user)))
            expected = s.scalar(select(func.count()).select_from(
                scoped_persons(user).join(Orientation, Orientation.person_id == Person.id).subquery()))
            assert s.scalar(q) == expected
