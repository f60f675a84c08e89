"""Identity matching for the list importers (France Travail, spreadsheets, provider returns).

Same order as the CAF/MSA flow: NIR (13 characters, keyed hash) + birth date first, then the
household (organism + matricule) + role, then exact last name + first name + birth date. The same
NIR with another birth date is a conflict: the row is rejected, never silently merged.

`IdentityIndex` holds the keys of every person in memory (a few tuples each) so that a
50,000-row file does not cost three queries per row; it learns the persons created on the way.
A reference in the index is a database id, or the ORM object itself for a person / household
created during the import and not flushed yet (no per-row flush).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Household, Person
from imports.values import normalise_name

UNIQUE_ROLES = ("DEM", "CJT")


@dataclass
class Match:
    person_id: int | None = None
    household_id: int | None = None
    via: str | None = None  # nir | household_role | household_names | names
    conflict: str | None = None  # reason when the identity contradicts a known person
    conflict_field: str | None = None  # which of our fields is contradicted (nir, birth_date…)


class IdentityIndex:
    def __init__(self, session: Session):
        self.session = session
        self.by_nir: dict[str, list[tuple[int, dt.date | None]]] = defaultdict(list)
        self.by_names: dict[tuple, list[tuple]] = defaultdict(list)
        self.by_household: dict[int, list[tuple[int, str | None, str | None, str | None]]] = defaultdict(list)
        self.households: dict[tuple[str, str], int] = {}
        rows = session.execute(select(Person.id, Person.household_id, Person.role, Person.nir_hash,
                                      Person.birth_date, Person.last_name, Person.first_name))
        for pid, hid, role, nir_hash, birth, last, first in rows:
            self._learn(pid, hid, role, nir_hash, birth, last, first)
        for hid, organism, matricule in session.execute(select(Household.id, Household.organism, Household.matricule)):
            self.households[(organism, matricule)] = hid

    def _learn(self, pid, hid, role, nir_hash, birth, last, first) -> None:
        if nir_hash:
            self.by_nir[nir_hash].append((pid, birth))
        nl, nf = normalise_name(last), normalise_name(first)
        if nl and nf and birth:
            self.by_names[(nl, nf, birth)].append((pid, hid))
        if hid is not None:
            self.by_household[hid].append((pid, role, nl, nf))

    def learn_person(self, person: Person, household_ref=None) -> None:
        """Register a person created during the import (the object is its reference)."""
        self._learn(person, household_ref if household_ref is not None else person.household_id, person.role,
                    person.nir_hash, person.birth_date, person.last_name, person.first_name)

    def learn_household(self, household: Household) -> None:
        self.households[(household.organism, household.matricule)] = household

    def household_id(self, organism: str | None, matricule: str | None) -> int | None:
        if not organism or not matricule:
            return None
        return self.households.get((organism, matricule))

    def match(self, *, nir_hash: str | None = None, birth_date: dt.date | None = None,
              organism: str | None = None, matricule: str | None = None, role: str | None = None,
              last_name: str | None = None, first_name: str | None = None) -> Match:
        hid = self.household_id(organism, matricule)
        if nir_hash and nir_hash in self.by_nir:
            candidates = self.by_nir[nir_hash]
            if birth_date is None:
                if len(candidates) == 1:
                    return Match(candidates[0][0], hid, "nir")
            else:
                same = [pid for pid, b in candidates if b == birth_date or b is None]
                if same:
                    return Match(same[0], hid, "nir")
                return Match(None, hid, None, "NIR déjà connu avec une autre date de naissance", "birth_date")
        nl, nf = normalise_name(last_name), normalise_name(first_name)
        if hid is not None:
            members = self.by_household.get(hid, [])
            if role in UNIQUE_ROLES:
                same_role = [pid for pid, r, _l, _f in members if r == role]
                if len(same_role) == 1:
                    return Match(same_role[0], hid, "household_role")
            if nl and nf:
                same_names = [pid for pid, _r, lname, fname in members if lname == nl and fname == nf]
                if len(same_names) == 1:
                    return Match(same_names[0], hid, "household_names")
        if nl and nf and birth_date:
            # Not a person of another known household: the row's own dossier number wins.
            has_dossier = bool(organism and matricule)
            found = [pid for pid, phid in self.by_names.get((nl, nf, birth_date), [])
                     if not has_dossier or phid is None or phid is hid or phid == hid]
            if len(found) == 1:
                return Match(found[0], hid, "names")
        return Match(None, hid)


def match_one(session: Session, **keys) -> Match:
    """One-off matching (API, small files) without loading the whole index."""
    nir_hash, birth_date = keys.get("nir_hash"), keys.get("birth_date")
    index = IdentityIndex.__new__(IdentityIndex)
    index.session = session
    index.by_nir, index.by_names, index.by_household, index.households = (
        defaultdict(list), defaultdict(list), defaultdict(list), {})
    conditions = []
    if nir_hash:
        conditions.append(Person.nir_hash == nir_hash)
    organism, matricule = keys.get("organism"), keys.get("matricule")
    if organism and matricule:
        hid = session.scalar(select(Household.id).where(Household.organism == organism,
                                                        Household.matricule == matricule))
        if hid is not None:
            index.households[(organism, matricule)] = hid
            conditions.append(Person.household_id == hid)
    if birth_date and keys.get("last_name"):
        conditions.append(Person.birth_date == birth_date)
    if conditions:
        from sqlalchemy import or_

        rows = session.execute(select(Person.id, Person.household_id, Person.role, Person.nir_hash,
                                      Person.birth_date, Person.last_name, Person.first_name).where(or_(*conditions)))
        for row in rows:
            index._learn(*row)
    return index.match(**keys)
