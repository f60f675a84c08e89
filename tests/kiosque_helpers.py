"""Shared builders for the kiosque tests: persons awaiting a kiosque, MDS ids, sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.models import Path
from kiosque import service as ks
from orientation.models import Orientation
from referents.models import Structure
from tests.factories import make_person

AS_OF = dt.date(2026, 11, 20)  # a Friday


def mds_id(session, code: str) -> int:
    return session.scalar(select(Structure.id).where(Structure.code == code))


def awaiting(session, *, clock_start: dt.date, postal_code: str = "31400", email: str | None = None,
             phone: str | None = None, status: str = "kiosque", decided_on: dt.date | None = None,
             origin: str = "auto", last_name: str | None = None, first_name: str = "Camille"):
    """A person whose latest decision sends them to the kiosque (Rangueil for 31400)."""
    person = make_person(session, clock_start=clock_start, postal_code=postal_code, email=email, phone=phone,
                         last_name=last_name, first_name=first_name)
    path = session.scalar(select(Path).where(Path.person_id == person.id))
    session.add(Orientation(person_id=person.id, path_id=path.id, referent_type="kiosque", status=status,
                            mode="kiosque", origin=origin, decided_on=decided_on or clock_start + dt.timedelta(days=1)))
    session.flush()
    return person


def kiosque(session, code: str, day: dt.date, capacity: int = 20, hour: int = 9, minute: int = 30):
    # The tests' clock is AS_OF (a session may be created for any day from then on).
    return ks.create_session(session, mds_id=mds_id(session, code), capacity=capacity,
                             now=dt.datetime.combine(min(day, AS_OF), dt.time()),
                             starts_at=dt.datetime.combine(day, dt.time(hour, minute)),
                             place=f"Salle du kiosque, {code}")
