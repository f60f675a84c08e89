"""Hand-built data for tests: a household with one SDD person, a path and activities, in one call."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.orm import Session

from cases.models import Activity, Household, Path, Person
from referents.service import find_sector

_seq = itertools.count(1)


def make_person(session: Session, *, role: str = "DEM", sdd: bool = True, right_state: str = "2",
                commune: str | None = "31555", postal_code: str | None = "31400",
                clock_start: dt.date | None = dt.date(2026, 10, 1), request_date: dt.date | None = None,
                birth_date: dt.date = dt.date(1985, 5, 17), activities=(), no_fixed_address: bool = False,
                household: Household | None = None, last_name: str | None = None, first_name: str = "Camille",
                email: str | None = None, phone: str | None = None, organism: str = "CAF",
                nir_hash: str | None = None) -> Person:
    """activities: iterable of (code, start, end) with dates or None."""
    n = next(_seq)
    if household is None:
        match = find_sector(session, commune, postal_code) if commune else None
        sector = match.sector if match else None
        household = Household(organism=organism, matricule=f"T{n:014d}"[:15], right_state=right_state,
                              dtdemrsa=request_date or clock_start, commune_insee=commune,
                              postal_code=postal_code, no_fixed_address=no_fixed_address,
                              mds_id=sector.mds_id if sector else None,
                              territory_id=sector.territory_id if sector else None)
        session.add(household)
        session.flush()
    person = Person(household_id=household.id, role=role, sdd=sdd, last_name=last_name or f"NOM{n}",
                    first_name=first_name, birth_date=birth_date, legal_clock_start=clock_start,
                    email=email, phone=phone, nir_hash=nir_hash)
    session.add(person)
    session.flush()
    for code, start, end in activities:
        session.add(Activity(person_id=person.id, code=code, start_on=start, end_on=end))
    if clock_start is not None:
        session.add(Path(person_id=person.id, household_id=household.id, clock_start=clock_start,
                         request_date=request_date or household.dtdemrsa, territory_id=household.territory_id,
                         mds_id=household.mds_id))
    session.flush()
    return person
