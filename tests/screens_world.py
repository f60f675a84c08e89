"""The small world of the screens tests: people of MDS Rangueil (Toulouse 31400) with proposals,
one oriented to ActiPro Toulouse Est (validated), a kiosque session with invitees."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.models import Person
from orientation import service as orientation
from orientation.models import Orientation
from referents.models import Structure
from tests.factories import make_person
from tests.rules_helpers import use_rules_v1

TODAY = dt.date.today()
PASSWORD = "écrans du lundi 2026!"


def structure_id(session, code: str) -> int:
    return session.scalar(select(Structure.id).where(Structure.code == code))


def build(rt) -> dict:
    """Three Rangueil people proposed by the rules (two to the MDS, one to ActiPro) and a
    job seeker validated to France Travail; one person oriented to ActiPro Toulouse Est."""
    start = TODAY - dt.timedelta(days=25)
    since = dt.date(2025, 1, 1)
    with rt.session() as s:
        use_rules_v1(s)  # the pages are tested on v1's proposals (SSA → ActiPro, MAL → MDS); v2: test_orientation_law
        ids = {
            "joelle": make_person(s, clock_start=start, last_name="JOËLLE-MARTIN", first_name="Joëlle",
                                  birth_date=dt.date(1979, 3, 14), phone="0612345678",
                                  activities=[("MAL", since, None)]).id,
            "ssa": make_person(s, clock_start=start - dt.timedelta(days=20), last_name="DURAND", first_name="Paul",
                               activities=[("SSA", since, None)]).id,
            "cho": make_person(s, clock_start=start, last_name="PETIT", first_name="Léa",
                               activities=[("CHO", dt.date(2026, 1, 1), None)]).id,
        }
        orientation.run(s, TODAY - dt.timedelta(days=1))
        actipro = structure_id(s, "ACTIPRO-TLS-EST")
        followed = make_person(s, clock_start=TODAY - dt.timedelta(days=40), last_name="BERNARD", first_name="Sam",
                               activities=[("SSA", since, None)])
        orientation.record_orientation(s, followed.id, "actipro", origin="agent",
                                       decided_on=TODAY - dt.timedelta(days=20), structure_id=actipro,
                                       status="validated")
        ids["followed"] = followed.id
        ids["session"], ids["invited"] = _kiosque(s)
        ids["proposals"] = list(s.scalars(select(Orientation.id).where(Orientation.status == "proposed")
                                          .order_by(Orientation.id)))
        s.commit()
    return ids


def names(rt, person_id: int) -> tuple[str, str]:
    with rt.session() as s:
        p = s.get(Person, person_id)
        return p.last_name, p.first_name


def _kiosque(s) -> tuple[int, list[int]]:
    """This morning's kiosque at MDS Rangueil (already begun: the roll call can be taken), with two
    people awaiting a kiosque invited to it."""
    from cases.models import Path
    from kiosque.models import Invitation, KiosqueSession

    rangueil = structure_id(s, "MDS-RANGUEIL")
    start = dt.datetime.combine(TODAY, dt.time(0, 5))
    ks = KiosqueSession(mds_id=rangueil, starts_at=start, ends_at=start + dt.timedelta(hours=2),
                        place="Salle du kiosque, MDS Rangueil", capacity=12, status="planned")
    s.add(ks)
    s.flush()
    invited = []
    for last, first in (("GARCIA", "Inès"), ("MOREAU", "Hugo")):
        p = make_person(s, clock_start=TODAY - dt.timedelta(days=15), last_name=last, first_name=first,
                        phone="0611223344")
        path = s.scalar(select(Path).where(Path.person_id == p.id))
        o = Orientation(person_id=p.id, path_id=path.id, referent_type="kiosque", status="kiosque", mode="kiosque",
                        origin="auto", decided_on=TODAY - dt.timedelta(days=14))
        s.add(o)
        s.flush()
        s.add(Invitation(person_id=p.id, path_id=path.id, orientation_id=o.id, session_id=ks.id, attempt=1,
                         invited_on=TODAY - dt.timedelta(days=10), status="pending"))
        invited.append(p.id)
    s.flush()
    return ks.id, invited
