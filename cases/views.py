"""Read views of a person: scoped search, the person file (typed; cases/schemas.py formats it), the
current orientation as shown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import false, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from cases import signals
from cases.contracts import _UNREAD, contract_deadline, needs_new_contract
from cases.diagnostics import latest_diagnostic
from cases.followup import _due_dates, _empty_due, due_pending, stored_due
from cases.models import Contract, Diagnostic, Exit, Household, Person, Sanction
from cases.models import Path as PathModel
from cases.nir import nir_view
from cases.paths import current_orientations, has_open_path, latest_path, open_path
from cases.procedure import _iso
from cases.scope import person_scope
from referents.models import User
from referents.text import name_key, name_starts_with

# The count of a search stops here: "plus de 200 personnes" says what an exact 33,499 would (add the
# first name or the birth date), and a broad name's count was what cost (issue 21 item 5). In an MDS
# worker's scope each candidate of the name is tested against the scope (~5 µs): counting to 500 of
# them read ~15,000 candidates of a common surname (75 ms), to 200 ~6,000 (30 ms); four pages of 50
# are more than anyone browses before adding the first name.
SEARCH_COUNT_CAP = 200


@dataclass(frozen=True)
class SearchPage:
    """A page of search results; `total` is exact up to SEARCH_COUNT_CAP, else the cap and `capped`."""

    rows: list[dict]
    total: int
    capped: bool


def search_persons(session: Session, user: User, *, q: str | None = None, birth_date: dt.date | None = None,
                   caf_number: str | None = None, page: int = 1, per_page: int = 50) -> SearchPage:
    """Scoped search by name (last, birth or first name, prefix), birth date and CAF/MSA number, in
    the order of the folded last name, the folded first name, then id.

    The first word typed splits the matches in three disjoint branches: its last name starts with the
    word; else its birth name does (when it differs from the last name); else its first name does.
    On PostgreSQL the first branch comes in order from one index (ix_person_name_order, which also
    carries the names and the household the other words and the scope test): a page is the first rows
    of each branch merged, and the count stops at SEARCH_COUNT_CAP, so a broad name ("MARTIN", 33,499
    persons at 1M: 157 ms before) reads a few hundred index entries. Each further word must start one
    of the three names. One statement for the page and the count (the scope's look-ups built once)."""
    words = q.split() if q else []
    filters = [person_scope(user)]
    for word in words[1:]:
        filters.append(_any_name_starts(session, word))
    if birth_date:
        filters.append(Person.birth_date == birth_date)
    if caf_number:
        filters.append(Person.household_id.in_(select(Household.id).where(Household.matricule == caf_number.strip())))
    branches = _branches(session, words[0]) if words else [(true(), True)]  # a birth date, a CAF number
    page, per_page = max(1, int(page)), max(1, min(200, int(per_page)))
    offset = (page - 1) * per_page
    # Each branch gives its first `enough` matches in order: enough for the page and for the count up
    # to the cap. One statement: the scope's look-ups (an MDS's households) are built once.
    enough = max(SEARCH_COUNT_CAP, offset + per_page) + 1
    postgresql = session.get_bind().dialect.name == "postgresql"
    last_key, first_key = name_key(session, Person.last_name), name_key(session, Person.first_name)
    ordered = []
    for condition, apart in branches:
        rows = select(Person.id.label("pid"), last_key.label("k1"), first_key.label("k2")).where(condition, *filters)
        if (apart or len(words) > 1) and postgresql:
            # planned on its own (OFFSET 0): its matches gathered through the indexes then sorted, not
            # an index walk in order that tests every row of the first word against the others
            rows = rows.offset(0)
        rows = rows.subquery()
        ordered.append(select(rows).order_by(rows.c.k1, rows.c.k2, rows.c.pid).limit(enough).subquery())
    found = (union_all(*[select(b) for b in ordered]) if len(ordered) > 1 else select(ordered[0])).cte("found")
    # the page's ids first, then their persons: a join before the LIMIT would read every match's row
    # (SEARCH_COUNT_CAP + 1 for a broad name: ~8 ms at 501) to keep 50
    shown = select(found).order_by(found.c.k1, found.c.k2, found.c.pid).offset(offset).limit(per_page).subquery()
    persons = session.execute(
        select(*_SEARCH_COLUMNS, select(func.count()).select_from(found).scalar_subquery().label("total"))
        .join_from(shown, Person, Person.id == shown.c.pid)
        .outerjoin(Household, Household.id == Person.household_id)
        .order_by(shown.c.k1, shown.c.k2, shown.c.pid)).all()
    if persons:
        total = persons[0].total
    else:  # nothing matched, or the page is past the end
        total = 0 if page == 1 else session.scalar(select(func.count()).select_from(found))
    return SearchPage(_person_rows(session, persons), min(total, SEARCH_COUNT_CAP), total > SEARCH_COUNT_CAP)


def _name_parts(session: Session, word: str) -> tuple:
    """The three ways a person matches the word, each served by its index: the last name starts with
    it; the birth name does and differs from the last name (the partial index's rows: a birth name
    equal to the last name matches exactly when the last name does); the first name does."""
    return (name_starts_with(session, Person.last_name, word),
            Person.birth_name.is_distinct_from(Person.last_name) & name_starts_with(session, Person.birth_name, word),
            name_starts_with(session, Person.first_name, word))


def _branches(session: Session, word: str) -> list[tuple]:
    """(condition, sorted apart) of the three ways made disjoint (see search_persons). NULL-safe: a
    person without a last name still matches by the other two."""
    last, other_birth, first = _name_parts(session, word)
    not_last = ~func.coalesce(last, false())
    return [(last, False), (other_birth & not_last, True),
            (first & not_last & ~func.coalesce(other_birth, false()), True)]


def _any_name_starts(session: Session, word: str):
    """One of the three names starts with the word."""
    return or_(*_name_parts(session, word))


# A result row: the person, their household's numbers (outer join: a person may have none) and
# whether a path is open, in the page's statement; the current orientation by one more query.
_SEARCH_COLUMNS = (Person.id, Person.last_name, Person.first_name, Person.birth_date, Person.role, Person.sdd,
                   Household.matricule, Household.organism, Household.commune_insee,
                   has_open_path().correlate(Person).label("path_open"))


def _person_rows(session: Session, persons: list) -> list[dict]:
    """Rows of a page of persons (_SEARCH_COLUMNS) with their current orientation: one query for the
    whole page, not one per person."""
    orientations = current_orientations(session, [p.id for p in persons])
    rows = []
    for person in persons:
        orientation = orientations.get(person.id)
        rows.append({"id": person.id, "last_name": person.last_name, "first_name": person.first_name,
                     "birth_date": _iso(person.birth_date), "role": person.role, "sdd": person.sdd,
                     "caf_number": person.matricule, "organism": person.organism,
                     "commune_insee": person.commune_insee, "path_open": bool(person.path_open),
                     "referent_type": orientation.referent_type if orientation else None,
                     "structure_id": orientation.structure_id if orientation else None})
    return rows


def orientation_summary(session: Session, person_id: int) -> dict | None:
    """The current orientation as shown with a person, as the orientation package summarises it."""
    return signals.answer(signals.orientation_summary, session, person_id=person_id)


def next_due_dates(session: Session, person_id: int, as_of: dt.date, path=_UNREAD) -> dict:
    """Contract deadline, review, next appointment, end of suspension, for one person.
    path: the person's open path (None: none) when the caller has already read it."""
    if path is not _UNREAD and path is not None and not due_pending(session):
        # the values stored on the path when they hold for as_of (no write of this session pending)
        stored = stored_due(path, as_of)
        if stored is not None:
            return stored
    known = None if path is _UNREAD else {person_id: path}
    return _due_dates(session, [person_id], as_of, open_paths=known).get(person_id, _empty_due())


def reopening_status(session: Session, person_id: int, path=_UNREAD) -> dict:
    """What a referent needs to know about a reopened path: previous exit and whether a contract is due.
    path: the person's open path (None: none) when the caller has already read it."""
    if path is _UNREAD:
        path = open_path(session, person_id)
    reopened = path is not None and path.opening_reason == "reopening"
    previous_exit = None
    if reopened:
        ex = session.scalar(select(Exit).join(PathModel, PathModel.id == Exit.path_id)
                            .where(Exit.person_id == person_id, PathModel.id != path.id)
                            .order_by(Exit.exit_on.desc(), Exit.id.desc()).limit(1))
        if ex is not None:
            previous_exit = {"exit_on": ex.exit_on.isoformat(), "reason": ex.reason, "source": ex.source}
    return {"reopened": reopened, "reopened_on": _iso(path.clock_start) if reopened else None,
            "previous_exit": previous_exit, "needs_contract": needs_new_contract(session, person_id, path),
            "contract_due_on": _iso(contract_deadline(session, person_id)) if reopened else None}


@dataclass(frozen=True)
class Identity:
    """The person's identity as this role may see it (the NIR only through cases.nir.nir_view)."""

    civility: str | None
    last_name: str | None
    birth_name: str | None
    first_name: str | None
    birth_date: dt.date | None
    sex: str | None
    nir: str | None
    email: str | None
    phone: str | None
    role: str | None
    sdd: bool


@dataclass(frozen=True)
class HouseholdView:
    """The household as this role may see it: family situation, amount and the other members are
    the Département staff's need-to-know only (None / empty for providers and ATI)."""

    id: int
    organism: str
    caf_number: str
    right_state: str | None
    right_state_on: dt.date | None
    commune_insee: str | None
    postal_code: str | None
    city: str | None
    mds_id: int | None
    territory_id: int | None
    family_situation: str | None
    children_count: int | None
    rsa_amount: float | None
    members: list[Person] = field(default_factory=list)


@dataclass(frozen=True)
class PersonFile:
    """Everything a referent needs on one screen (cases.schemas.PersonDetailSchema formats it)."""

    id: int
    identity: Identity
    household: HouseholdView | None
    path: PathModel | None
    orientation: dict | None
    contract: Contract | None
    diagnostic: Diagnostic | None
    open_sanctions: list[Sanction]
    exit: Exit | None
    reopening: dict
    due: dict


STAFF_ROLES = ("admin", "manager", "mds_worker")


def person_contracts(session: Session, person_id: int) -> list[Contract]:
    """All the person's contracts, the latest first."""
    return list(session.scalars(select(Contract).where(Contract.person_id == person_id).order_by(Contract.id.desc())))


def person_sanctions(session: Session, person_id: int) -> list[Sanction]:
    """All the person's sanctions, in the order of their breaches."""
    return list(session.scalars(select(Sanction).where(Sanction.person_id == person_id)
                                .order_by(Sanction.breach_on, Sanction.id)))


def person_detail(session: Session, person: Person, *, role: str, vault, as_of: dt.date,
                  contracts=_UNREAD, sanctions=_UNREAD, orientation=_UNREAD) -> PersonFile:
    """The person file for this role; identity per role (NIR only through nir_view).
    contracts, sanctions: all the person's (person_contracts, person_sanctions), read here unless the
    caller has them for its own lists: the latest contract and the open sanctions come from them.
    orientation: the current orientation's summary when the caller has it (orientation_summary)."""
    household = person.household
    opened = open_path(session, person.id)  # read once: the file, the reopening and the due dates use it
    path = opened or latest_path(session, person.id)
    contracts = person_contracts(session, person.id) if contracts is _UNREAD else contracts
    sanctions = person_sanctions(session, person.id) if sanctions is _UNREAD else sanctions
    exit_row = session.scalar(select(Exit).where(Exit.person_id == person.id, Exit.path_id == path.id)
                              .limit(1)) if path else None
    staff = role in STAFF_ROLES
    identity = Identity(civility=person.civility, last_name=person.last_name, birth_name=person.birth_name,
                        first_name=person.first_name, birth_date=person.birth_date, sex=person.sex,
                        nir=nir_view(role, vault.decrypt(person.nir_encrypted)), email=person.email,
                        phone=person.phone, role=person.role, sdd=person.sdd)
    household_view = None
    if household is not None:
        household_view = HouseholdView(
            id=household.id, organism=household.organism, caf_number=household.matricule,
            right_state=household.right_state, right_state_on=household.right_state_on,
            commune_insee=household.commune_insee, postal_code=household.postal_code, city=household.city,
            mds_id=household.mds_id, territory_id=household.territory_id,
            family_situation=household.family_situation if staff else None,
            children_count=household.children_count,
            rsa_amount=float(household.rsa_amount) if staff and household.rsa_amount is not None else None,
            # the rest of the household: not a provider's need-to-know
            members=[m for m in household.persons if m.id != person.id] if staff else [])
    return PersonFile(id=person.id, identity=identity, household=household_view, path=path,
                      orientation=orientation_summary(session, person.id) if orientation is _UNREAD else orientation,
                      contract=contracts[0] if contracts else None,
                      diagnostic=latest_diagnostic(session, person.id),
                      open_sanctions=[x for x in sanctions if x.lifted_on is None],
                      exit=exit_row, reopening=reopening_status(session, person.id, opened),
                      due=next_due_dates(session, person.id, as_of, opened))
