"""The facts the rules read, built for many persons at once (a handful of queries per batch).

A person's facts are a flat dict keyed by the fact names of orientation.rules.FACTS, dates as
datetime.date. `snapshot` turns the facts a decision read into JSON for the Orientation row.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import (
    SDD_ROLES,
    Activity,
    Diagnostic,
    FranceTravailEvent,
    FranceTravailRecord,
    Household,
    Path,
    Person,
)
from orientation.rules import CONSTRAINT_KEYS, CONSTRAINT_LEVELS, FACTS, normalise_education

BATCH = 5000
FT_REGISTERED_KINDS = ("inscription", "stock")
# Every fact, unknown: each person's facts start as a copy (booleans false, counts zero).
_EMPTY = {name: None for name in FACTS}
_EMPTY.update({"sdd": False, "no_fixed_address": False, "activities.count": 0, "ft.registered": False,
               "ft.ppae": False, "ft.followed": False, "diagnostic.present": False, "household.adults": 0})


def chunks(ids: list[int], size: int = BATCH) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def id_filter(column, ids: list[int]):
    """`column IN ids`, or a BETWEEN when the sorted ids are dense (no long parameter list; rows
    outside `ids` are dropped by the callers)."""
    if ids and ids[-1] - ids[0] + 1 <= 2 * len(ids):
        return column.between(ids[0], ids[-1])
    return column.in_(ids)


def age_on(birth: dt.date | None, day: dt.date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def build_facts(session: Session, person_ids: Iterable[int], as_of: dt.date) -> dict[int, dict]:
    """Facts of every given person at the as-of date: {person_id: facts}."""
    ids = sorted(set(person_ids))
    out: dict[int, dict] = {}
    for chunk in chunks(ids):
        out.update(_build_chunk(session, chunk, as_of))
    return out


def _build_chunk(session: Session, ids: list[int], as_of: dt.date) -> dict[int, dict]:
    rows = session.execute(
        select(Person.id, Person.role, Person.sdd, Person.birth_date, Person.household_id,
               Household.right_state, Household.family_situation, Household.children_count,
               Household.benefit_nature, Household.no_fixed_address, Household.commune_insee,
               Household.postal_code)
        .outerjoin(Household, Household.id == Person.household_id)
        .where(id_filter(Person.id, ids))).all()
    wanted = set(ids)
    rows = [r for r in rows if r.id in wanted]
    household_ids = sorted({r.household_id for r in rows if r.household_id is not None})
    adults = dict(session.execute(
        select(Person.household_id, func.count(Person.id))
        .where(id_filter(Person.household_id, household_ids), Person.role.in_(SDD_ROLES))
        .group_by(Person.household_id)).all()) if household_ids else {}

    facts: dict[int, dict] = {}
    for r in rows:
        f = dict(_EMPTY)
        f.update(role=r.role, age=age_on(r.birth_date, as_of), sdd=bool(r.sdd), right_state=r.right_state,
                 no_fixed_address=bool(r.no_fixed_address), commune=r.commune_insee, postal_code=r.postal_code,
                 activities=[])
        f["household.adults"] = adults.get(r.household_id, 0)
        f["household.children_count"] = r.children_count
        f["household.family_situation"] = r.family_situation
        f["household.benefit_nature"] = r.benefit_nature
        facts[r.id] = f

    # Activities known at the as-of date; the current one: DDACT <= as_of and (DFACT empty or >= as_of),
    # latest DDACT first.
    for pid, code, start, end in session.execute(
            select(Activity.person_id, Activity.code, Activity.start_on, Activity.end_on)
            .where(id_filter(Activity.person_id, ids))
            .order_by(Activity.person_id, Activity.start_on, Activity.id)):
        f = facts.get(pid)
        if f is None or (start is not None and start > as_of):
            continue
        current = end is None or end >= as_of
        f["activities"].append({"code": code, "start_on": start, "end_on": end, "current": current})
        if current:
            best = f["current_activity.start_on"]
            if f["current_activity.code"] is None or (start or dt.date.min) >= (best or dt.date.min):
                f["current_activity.code"], f["current_activity.start_on"], f["current_activity.end_on"] = \
                    code, start, end
    for f in facts.values():
        f["activities.count"] = len(f["activities"])

    # France Travail: the latest event (by date, then id) says whether the person is registered.
    latest: dict[int, tuple] = {}
    for ev in session.execute(
            select(FranceTravailEvent.person_id, FranceTravailEvent.kind, FranceTravailEvent.event_on,
                   FranceTravailEvent.ppae_signed_on, FranceTravailEvent.ppae_modality)
            .where(id_filter(FranceTravailEvent.person_id, ids), FranceTravailEvent.event_on <= as_of)
            .order_by(FranceTravailEvent.person_id, FranceTravailEvent.event_on, FranceTravailEvent.id)):
        latest[ev.person_id] = ev
    for pid, ev in latest.items():
        f = facts.get(pid)
        if f is None or ev.kind not in FT_REGISTERED_KINDS:
            continue
        f["ft.registered"], f["ft.registered_on"] = True, ev.event_on
        if ev.ppae_signed_on is not None and ev.ppae_signed_on <= as_of:
            f["ft.ppae"], f["ft.ppae_signed_on"], f["ft.ppae_modality"] = True, ev.ppae_signed_on, ev.ppae_modality

    # France Travail's own records (partner API or daily file, imports/france_travail_orientation.py): the
    # latest préconisation is a fact; an orientation to France Travail or a contract signed with it
    # makes a registered person "already followed", as a PPAE did.
    followed = set()
    for rec in session.execute(
            select(FranceTravailRecord.person_id, FranceTravailRecord.kind, FranceTravailRecord.parcours,
                   FranceTravailRecord.organisme, FranceTravailRecord.state, FranceTravailRecord.effective_on)
            .where(id_filter(FranceTravailRecord.person_id, ids), FranceTravailRecord.effective_on <= as_of)
            .order_by(FranceTravailRecord.person_id, FranceTravailRecord.effective_on, FranceTravailRecord.id)):
        f = facts.get(rec.person_id)
        if f is None:
            continue
        if rec.kind == "preconisation" and rec.parcours:
            f["ft.preconisation"], f["ft.preconisation_on"] = rec.parcours, rec.effective_on
        elif rec.kind == "contract" or (rec.kind == "orientation" and rec.organisme == "france_travail"
                                         and rec.state != "CLOTURE"):
            followed.add(rec.person_id)
    for pid, f in facts.items():
        f["ft.followed"] = f["ft.registered"] and (f["ft.ppae"] or pid in followed)

    # The latest diagnostic recorded by an agent.
    diags: dict[int, Diagnostic] = {}
    for d in session.execute(
            select(Diagnostic.person_id, Diagnostic.recorded_on, Diagnostic.constraints,
                   Diagnostic.education_level, Diagnostic.can_seek_work)
            .where(id_filter(Diagnostic.person_id, ids), Diagnostic.recorded_on <= as_of)
            .order_by(Diagnostic.person_id, Diagnostic.recorded_on, Diagnostic.id)):
        diags[d.person_id] = d
    for pid, d in diags.items():
        f = facts.get(pid)
        if f is None:
            continue
        f["diagnostic.present"] = True
        f["diagnostic.recorded_on"] = d.recorded_on
        f["diagnostic.education_level"] = normalise_education(d.education_level)
        f["diagnostic.can_seek_work"] = d.can_seek_work
        constraints = d.constraints or {}
        for k in CONSTRAINT_KEYS:
            level = constraints.get(k)
            f[f"diagnostic.{k}"] = level if level in CONSTRAINT_LEVELS else None

    # The open path (the latest when several are open) gives the legal clock.
    for pid, clock in session.execute(
            select(Path.person_id, Path.clock_start)
            .where(id_filter(Path.person_id, ids), Path.closed_on.is_(None))
            .order_by(Path.person_id, Path.clock_start, Path.id)):
        if pid in facts:
            facts[pid]["path.clock_start"] = clock
    return facts


def _iso(value):
    return value.isoformat() if value is not None else None


def snapshot(facts: dict, names: Iterable[str]) -> dict:
    """The JSON snapshot of the named facts (what a decision read), plus the address used to assign."""
    out = {}
    for k in _snapshot_keys(tuple(names)):
        v = facts.get(k)
        if v.__class__ is dt.date:
            v = v.isoformat()
        elif v.__class__ is list:
            v = [{"code": a["code"], "start_on": _iso(a["start_on"]), "end_on": _iso(a["end_on"]),
                  "current": a["current"]} for a in v]
        out[k] = v
    return out


@functools.cache
def _snapshot_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in dict.fromkeys([*names, "commune", "postal_code"]) if k in FACTS)
