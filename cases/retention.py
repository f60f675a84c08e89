"""Retention purge (CNIL social-support frameworks: 2 years of active retention after the last
contact, then deletion or irreversible anonymisation).

A person is purged when every path of theirs ended more than `months` (RSA_RETENTION_MONTHS, 24)
before the as-of date and nothing happened since: no contact (Person.last_contact_on), no timeline
event, appointment, kiosque invitation or orientation, and their household absent from the flows.
Their identity is wiped (names, exact birth date → 1 January of the birth year, NIR hash and
ciphertext, contact details, address, identifiers) and the free text written about them is cleared,
while ids, dates, referent types, structures, territories and statuses stay: the indicators, which
are computed from those, give the same results before and after. Rejected import records and raw
XML fragments older than the retention are purged too. Idempotent; a dry run changes nothing.

The data of the higher packages (orientations, kiosque invitations and letters, import records) is
judged and scrubbed by those packages themselves, through the retention signals of cases/signals.py
(receivers in orientation/, kiosque/ and imports/receivers.py), in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path as FsPath

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, case, delete, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from cases import signals

log = logging.getLogger(__name__)
CHUNK = 500
# Keys of JSON documents (event data, orientation facts, alert data) that may carry identity.
PERSONAL_KEYS = frozenset({
    "nom", "prenom", "name", "last_name", "first_name", "birth_name", "nomnai", "prenom2", "prenom3",
    "nir", "nir13", "nir_hash", "email", "mail", "phone", "telephone", "tel", "mobile", "address",
    "adresse", "address_line", "street", "libvoie", "numvoie", "complideadr", "compladr", "recipient",
    "notes", "note", "comment", "commentaire", "text", "body", "summary", "observations", "details",
    "birth_date", "dtnai", "matricule", "numdemrsa", "idassedic", "ft_id", "identifiantpe",
})


@dataclass
class PurgeResult:
    as_of: dt.date
    cutoff: dt.date
    dry_run: bool
    persons: list[int] = field(default_factory=list)
    households: int = 0
    rejected_records: int = 0
    raw_records: int = 0
    france_travail_events: int = 0
    files: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["as_of"], d["cutoff"] = self.as_of.isoformat(), self.cutoff.isoformat()
        d["person_count"] = len(self.persons)
        return d


def cutoff_for(as_of: dt.date, months: int) -> dt.date:
    return as_of - relativedelta(months=months)


def eligible_persons(session: Session, as_of: dt.date, months: int) -> list[int]:
    """Ids of the persons whose data passed retention (see the module docstring)."""
    from cases.models import Appointment, CaseEvent, Household, Path, Person

    _require_receivers()
    elsewhere = [not_(condition) for _receiver, condition in
                 signals.retention_activity.send(None, person_id=Person.id, cutoff=cutoff_for(as_of, months))]
    cutoff = cutoff_for(as_of, months)
    cutoff_dt = dt.datetime.combine(cutoff, dt.time())
    paths = (select(Path.person_id.label("pid"), func.max(Path.closed_on).label("ended"),
                    func.sum(case((Path.closed_on.is_(None), 1), else_=0)).label("still_open"))
             .group_by(Path.person_id).subquery())
    ended = or_(
        and_(paths.c.pid.is_not(None), paths.c.still_open == 0, paths.c.ended < cutoff),
        # no path ever (a non-SDD member): the household's RSA right closed long enough ago
        and_(paths.c.pid.is_(None), Household.closure_on.is_not(None), Household.closure_on < cutoff),
    )
    q = (select(Person.id)
         .outerjoin(paths, paths.c.pid == Person.id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Person.pseudonymised.is_(False), ended,
                or_(Person.last_contact_on.is_(None), Person.last_contact_on < cutoff),
                or_(Household.id.is_(None), Household.last_flow_on.is_(None), Household.last_flow_on < cutoff),
                not_(exists(select(CaseEvent.id).where(CaseEvent.person_id == Person.id,
                                                       CaseEvent.occurred_on >= cutoff))),
                not_(exists(select(Appointment.id).where(Appointment.person_id == Person.id,
                                                         Appointment.scheduled_at >= cutoff_dt))),
                *elsewhere)
         .order_by(Person.id))
    return list(session.scalars(q))


def scrub(document):
    """A JSON document without the keys that may carry identity (recursively)."""
    if isinstance(document, dict):
        return {k: scrub(v) for k, v in document.items() if str(k).lower() not in PERSONAL_KEYS}
    if isinstance(document, list):
        return [scrub(v) for v in document]
    return document


def _chunks(ids: list[int]):
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


def _wipe_persons(session: Session, ids: list[int], files_root: FsPath | None) -> int:
    """Returns the number of letter files deleted."""
    from cases.models import (
        Alert,
        Appointment,
        CaseEvent,
        Contract,
        Diagnostic,
        Exit,
        FranceTravailEvent,
        Person,
        Review,
        Sanction,
    )
    files = 0
    for chunk in _chunks(ids):
        for p in session.scalars(select(Person).where(Person.id.in_(chunk))):
            p.last_name = p.first_name = p.birth_name = p.civility = None
            p.birth_date = dt.date(p.birth_date.year, 1, 1) if p.birth_date else None
            p.nir_hash = p.nir_encrypted = p.idassedic = None
            p.email = p.phone = p.phone_kind = None
            p.external_ids = None
            p.pseudonymised = True
        for ev in session.scalars(select(CaseEvent).where(CaseEvent.person_id.in_(chunk))):
            ev.summary = ""
            ev.data = scrub(ev.data) if ev.data else ev.data
        for a in session.scalars(select(Alert).where(Alert.person_id.in_(chunk))):
            a.message = f"({a.kind}: données personnelles purgées)"
            a.data = scrub(a.data) if a.data else a.data
        for c in session.scalars(select(Contract).where(Contract.person_id.in_(chunk))):
            c.objectives = [{k: v for k, v in o.items() if k != "text"} for o in c.objectives
                            if isinstance(o, dict)] if c.objectives else c.objectives
        for fte in session.scalars(select(FranceTravailEvent).where(FranceTravailEvent.person_id.in_(chunk))):
            fte.nir_hash = ""
            fte.ft_id = None
            fte.birth_date = dt.date(fte.birth_date.year, 1, 1) if fte.birth_date else None
        session.execute(update(Diagnostic).where(Diagnostic.person_id.in_(chunk)).values(notes=None))
        session.execute(update(Appointment).where(Appointment.person_id.in_(chunk)).values(notes=None))
        session.execute(update(Review).where(Review.person_id.in_(chunk)).values(notes=None))
        session.execute(update(Sanction).where(Sanction.person_id.in_(chunk))
                        .values(breach="", observations=None, ep_opinion=None))
        session.execute(update(Exit).where(Exit.person_id.in_(chunk)).values(details=None))
        files += sum(n or 0 for _receiver, n in signals.persons_purging.send(session, person_ids=chunk,
                                                                            files_root=files_root))
        session.flush()
    return files


def _require_receivers() -> None:
    """Without the higher packages' receivers the purge would keep their identifying data and ignore
    their recent activity: refuse to run rather than purge wrongly."""
    for signal in (signals.retention_activity, signals.persons_purging, signals.retention_sweep):
        if not signal.receivers:
            raise RuntimeError(f"purge: no receiver for {signal.name!r} (config/runtime.py imports the receivers)")


def delete_file(path: str, root: FsPath | None) -> int:
    """Delete a generated letter, only inside the product's own directory."""
    if root is None:
        return 0
    p = FsPath(path)
    p = p if p.is_absolute() else root / p
    try:
        p.resolve().relative_to(root.resolve())
    except ValueError:
        log.warning("purge: document outside %s left alone (message file)", root)
        return 0
    if p.is_file():
        p.unlink()
        return 1
    return 0


def _wipe_households(session: Session, person_ids: list[int]) -> tuple[int, int]:
    """Households whose members are all pseudonymised lose address, identifiers and raw XML.
    Returns (households wiped, raw fragments deleted)."""
    from cases.models import Household, Person

    hh_ids = set()
    for chunk in _chunks(person_ids):
        hh_ids |= set(session.scalars(select(Person.household_id).where(Person.id.in_(chunk),
                                                                          Person.household_id.is_not(None))))
    done = raw = 0
    for chunk in _chunks(sorted(hh_ids)):
        still_named = set(session.scalars(select(Person.household_id).where(
            Person.household_id.in_(chunk), Person.pseudonymised.is_(False))))
        for h in session.scalars(select(Household).where(Household.id.in_(chunk))):
            anonymous = f"X{h.id:014d}"[:15]
            if h.id in still_named or h.matricule == anonymous:
                continue
            h.matricule = anonymous
            h.numdemrsa = None
            h.address_line = None
            h.rsa_amount = None
            done += 1
        raw += sum(n or 0 for _receiver, n in signals.households_purging.send(
            session, household_ids=sorted(set(chunk) - still_named)))
    session.flush()
    return done, raw


def purge(session: Session, as_of: dt.date, months: int = 24, dry_run: bool = False,
          files_root: FsPath | str | None = None) -> PurgeResult:
    """Run (or, with dry_run, only list) the retention purge. The caller commits."""
    from cases.models import FranceTravailEvent

    _require_receivers()
    cutoff = cutoff_for(as_of, months)
    cutoff_dt = dt.datetime.combine(cutoff, dt.time())
    result = PurgeResult(as_of=as_of, cutoff=cutoff, dry_run=dry_run)
    result.persons = eligible_persons(session, as_of, months)
    ft_orphans = (FranceTravailEvent.person_id.is_(None), FranceTravailEvent.recorded_at < cutoff_dt)
    count = lambda model, cond: session.scalar(select(func.count()).select_from(model).where(*cond))  # noqa: E731
    if dry_run:
        _sweep(session, cutoff_dt, result, dry_run=True)
        result.france_travail_events = count(FranceTravailEvent, ft_orphans)
        return result
    result.files = _wipe_persons(session, result.persons, FsPath(files_root) if files_root else None)
    result.households, household_raw = _wipe_households(session, result.persons)
    _sweep(session, cutoff_dt, result, dry_run=False)
    result.raw_records += household_raw
    result.france_travail_events = session.execute(delete(FranceTravailEvent).where(*ft_orphans)).rowcount
    session.flush()
    log.info("retention purge as of %s: %d persons, %d households, %d rejected records, %d raw records",
             as_of, len(result.persons), result.households, result.rejected_records, result.raw_records)
    return result


def _sweep(session: Session, cutoff: dt.datetime, result: PurgeResult, dry_run: bool) -> None:
    """Records older than the cutoff that belong to no person (the imports' rejected and raw records),
    counted (dry run) or purged by their owners; their counters are added to the result."""
    for _receiver, counts in signals.retention_sweep.send(session, cutoff=cutoff, dry_run=dry_run):
        for key, n in (counts or {}).items():
            setattr(result, key, getattr(result, key) + (n or 0))
