"""Kiosque Insertion: the invitation planner, phoning, attendance and outcome, the funnel. Sessions
and their templates are kiosque.sessions (re-exported here for the callers of kiosque.service).

Plain functions over a SQLAlchemy session (no Flask). Dates are injected (`as_of`); session
start times are naive local times (Europe/Paris), as shown to the people invited.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import String, and_, case, cast, distinct, exists, func, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

import cases.service as cs
from cases.models import CaseEvent, Household, Path, Person
from cases.service import add_event, raise_alert
from config import clock
from config.db import utcnow
from config.settings import Settings
from kiosque.errors import KiosqueError
from kiosque.models import Invitation, KiosqueSession
from kiosque.sessions import (
    add_closure,
    booked_seats,
    cancel_session,
    create_session,
    create_template,
    ensure_default_templates,
    generate_sessions,
    list_sessions,
    update_session,
)
from kiosque.vocabulary import (
    ATTENDANCE,
    PHONING_OUTCOMES,
    REACHED_OUTCOMES,
    Attendance,
    InvitationStatus,
    PhoningOutcome,
    SessionStatus,
)
from orientation.messaging.models import Message
from orientation.messaging.outbox import is_mobile, postal_address
from orientation.models import Orientation
from referents.models import Structure
from referents.vocabulary import LEGAL_DAYS, REFERENT_TYPES, OrientationStatus, Origin


def _int(raw: str, default: int) -> int:
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class KiosqueConfig:
    """Tunable rules (environment variables RSA_KIOSQUE_*; see docs/kiosque.md)."""

    propose_days: int = 7  # a "proposed" decision left unvalidated this long goes to the kiosque
    notice_letter_days: int = 5  # notice when only a letter reaches the person
    notice_digital_days: int = 2  # notice when an e-mail or SMS reaches the person
    deadline_days: int = LEGAL_DAYS  # legal deadline from the clock start
    reminder_days: tuple[int, ...] = (3, 1)  # J-3 and J-1
    max_reinvitations: int = 1  # after that many no-shows re-invited, the person goes to the MDS
    max_send_attempts: int = 5
    backoff_minutes: int = 5  # first retry delay, doubled at each attempt
    contact_phone: str = ""  # phone number printed on letters (default: the MDS's)
    what_to_bring: tuple[str, ...] = (
        "une pièce d'identité",
        "votre numéro d'allocataire CAF ou MSA",
        "votre CV si vous en avez un",
        "ce courrier",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> KiosqueConfig:
        """The rules as configured (RSA_KIOSQUE_* settings of config.settings; empty = default)."""
        s, reminders = settings, settings.kiosque_reminder_days
        return cls(
            propose_days=_int(s.kiosque_propose_days, cls.propose_days),
            notice_letter_days=_int(s.kiosque_notice_letter_days, cls.notice_letter_days),
            notice_digital_days=_int(s.kiosque_notice_digital_days, cls.notice_digital_days),
            deadline_days=_int(s.kiosque_deadline_days, cls.deadline_days),
            reminder_days=tuple(int(x) for x in reminders.split(",") if x.strip()) if reminders
            else cls.reminder_days,
            max_reinvitations=_int(s.kiosque_max_reinvitations, cls.max_reinvitations),
            max_send_attempts=_int(s.kiosque_max_send_attempts, cls.max_send_attempts),
            backoff_minutes=_int(s.kiosque_backoff_minutes, cls.backoff_minutes),
            contact_phone=s.kiosque_contact_phone,
        )

    @classmethod
    def from_env(cls) -> KiosqueConfig:
        return cls.from_settings(Settings.from_env())


# --------------------------------------------------------------------------- contact channels

def channels_for(person: Person, *, letter_fallback: bool = True) -> list[str]:
    """Channels that reach the person: e-mail and SMS when known, else a postal letter."""
    out = []
    if person.email:
        out.append("email")
    if is_mobile(person.phone, person.phone_kind):
        out.append("sms")
    if not out and letter_fallback:
        out.append("letter")
    return out


def notice_days(person_or_channels, config: KiosqueConfig) -> int:
    chans = person_or_channels if isinstance(person_or_channels, list) else channels_for(person_or_channels)
    return config.notice_digital_days if ("email" in chans or "sms" in chans) else config.notice_letter_days


# --------------------------------------------------------------------------- the planner

@dataclass
class _Seat:
    id: int
    mds_id: int
    starts_at: dt.datetime
    capacity: int
    booked: int

    @property
    def day(self) -> dt.date:
        return self.starts_at.date()


@dataclass
class _Candidate:
    person_id: int
    path_id: int
    orientation_id: int
    clock_start: dt.date
    mds_id: int | None
    territory_id: int | None
    channels: list[str]
    recipients: dict = field(default_factory=dict)
    absences: int = 0
    previous: int = 0


def latest_orientation_subquery(person_ids=None):
    """Each person's latest decision (decided_on, then id); of the given persons only, when given (the
    window then numbers their decisions alone: a re-planning reads a few rows, not every decision).
    `person_ids`: ids, or a SELECT of person ids."""
    rn = func.row_number().over(partition_by=Orientation.person_id,
                                order_by=(Orientation.decided_on.desc(), Orientation.id.desc())).label("rn")
    q = select(Orientation.id, Orientation.person_id, Orientation.status, Orientation.origin, Orientation.decided_on, rn)
    if person_ids is not None:
        q = q.where(Orientation.person_id.in_(person_ids if isinstance(person_ids, Select) else list(person_ids)))
    return q.subquery()


def candidates(session: Session, as_of: dt.date, config: KiosqueConfig, person_ids=None) -> list[_Candidate]:
    """Who is to invite: latest decision "kiosque" (or "proposed" left unvalidated too long, except the
    MDS default after no-shows), an open path, and no pending invitation.

    Only persons with a decision "kiosque" or "proposed" can have one as their latest: the window
    numbers their decisions alone (the daily planning reads the waiting persons' rows, not every
    decision ever taken), with the same result."""
    among = person_ids if person_ids is not None else (
        select(Orientation.person_id).where(Orientation.status.in_((OrientationStatus.KIOSQUE,
                                                                    OrientationStatus.PROPOSED))))
    latest = latest_orientation_subquery(among)
    open_path = select(Path.person_id, func.max(Path.id).label("path_id")).where(Path.closed_on.is_(None))
    open_path = open_path.where(Path.person_id.in_(among if isinstance(among, Select) else list(among)))
    open_path = open_path.group_by(Path.person_id).subquery()
    stale = as_of - dt.timedelta(days=config.propose_days)
    pending = exists(select(Invitation.id).where(Invitation.person_id == Person.id, Invitation.status == InvitationStatus.PENDING))
    q = (select(Person.id, Person.email, Person.phone, Person.phone_kind, latest.c.id, Path.id, Path.clock_start,
                Household.mds_id, Structure.territory_id, Household.address_line, Household.postal_code,
                Household.city)
         .join(latest, and_(latest.c.person_id == Person.id, latest.c.rn == 1))
         .join(open_path, open_path.c.person_id == Person.id)
         .join(Path, Path.id == open_path.c.path_id)
         .outerjoin(Household, Household.id == Person.household_id)
         .outerjoin(Structure, Structure.id == Household.mds_id)
         .where(or_(latest.c.status == OrientationStatus.KIOSQUE,
                    and_(latest.c.status == OrientationStatus.PROPOSED, latest.c.decided_on <= stale,
                         latest.c.origin != Origin.DEFAULT_MDS)),
                ~pending)
         .order_by(Path.clock_start, Person.id))
    if person_ids is not None:
        q = q.where(Person.id.in_(list(person_ids)))
    out = []
    for pid, email, phone, kind, oid, path_id, clock_start, mds_id, terr, addr, pc, city in session.execute(q):
        chans = []
        if email:
            chans.append("email")
        if is_mobile(phone, kind):
            chans.append("sms")
        recipients = {"email": email, "sms": phone, "letter": postal_address(addr, pc, city)}
        out.append(_Candidate(pid, path_id, oid, clock_start, mds_id, terr, chans or ["letter"], recipients))
    if out:
        by_key = {(c.person_id, c.path_id): c for c in out}
        ids = [c.person_id for c in out]
        for chunk in range(0, len(ids), 5000):
            rows = session.execute(
                select(Invitation.person_id, Invitation.path_id,
                       func.count(Invitation.id),
                       func.sum(case((Invitation.status == InvitationStatus.ABSENT, 1), else_=0)))
                .where(Invitation.person_id.in_(ids[chunk:chunk + 5000]), Invitation.status != InvitationStatus.CANCELLED)
                .group_by(Invitation.person_id, Invitation.path_id))
            for pid, path_id, n, absent in rows:
                c = by_key.get((pid, path_id))
                if c is not None:
                    c.previous, c.absences = int(n or 0), int(absent or 0)
    return out


@dataclass
class PlanResult:
    as_of: dt.date
    candidates: int = 0
    invited: int = 0
    reinvited: int = 0
    own_mds: int = 0
    neighbour_mds: int = 0
    after_deadline: int = 0
    unplanned: int = 0
    exhausted: int = 0
    no_mds: int = 0
    overdue: int = 0  # deadline already unreachable when planned (not a capacity shortfall)
    shortfalls: dict = field(default_factory=dict)  # mds_id -> seats missing before deadlines
    alerts_raised: int = 0
    invitation_ids: list = field(default_factory=list)
    invitation_of: dict = field(default_factory=dict)  # person id -> the invitation written for them

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("invitation_ids", "invitation_of")}
        d["as_of"] = self.as_of.isoformat()
        d["shortfalls"] = {str(k): v for k, v in self.shortfalls.items()}
        return d


def _pick(seats: list[_Seat], earliest: dt.date, latest: dt.date | None) -> _Seat | None:
    for s in seats:
        if s.day < earliest or s.booked >= s.capacity:
            continue
        if latest is not None and s.day > latest:
            return None  # sorted by time: nothing later can fit the deadline
        return s
    return None


def plan(session: Session, as_of: dt.date, *, config: KiosqueConfig | None = None, person_ids=None,
         in_given_order: bool = False) -> PlanResult:
    """Give every person to invite a seat: earliest session of their MDS with a free seat that leaves the
    notice period and is held by their deadline; else a neighbouring MDS of the same territory before
    the deadline; else the earliest session of their MDS (or territory) after the deadline. Persons who
    found no seat in their own MDS before their deadline are the MDS's capacity shortfall.

    Deterministic (persons by clock start then id; sessions by start then id) and idempotent (a person
    with a pending invitation is not a candidate). `in_given_order`: the persons of `person_ids` take
    their seats in that order (a roll call's absents, in the order they were marked: replan)."""
    config = config or KiosqueConfig.from_env()
    result = PlanResult(as_of=as_of)
    person_ids = list(person_ids) if person_ids is not None else None
    cands = candidates(session, as_of, config, person_ids)
    result.candidates = len(cands)
    if not cands:
        return result
    if in_given_order:
        rank = {pid: i for i, pid in enumerate(person_ids)}  # a person given twice: their last place
        cands.sort(key=lambda c: rank[c.person_id])
    first_day = as_of + dt.timedelta(days=min(config.notice_digital_days, config.notice_letter_days))
    from_day = dt.datetime.combine(first_day, dt.time())
    # The bookings of the sessions that can still be offered only (not of every session ever held).
    booked = (select(Invitation.session_id, func.count(Invitation.id).label("n"))
              .join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
              .where(Invitation.status != InvitationStatus.CANCELLED, KiosqueSession.starts_at >= from_day)
              .group_by(Invitation.session_id).subquery())
    by_mds: dict[int, list[_Seat]] = defaultdict(list)
    for sid, mds_id, starts_at, cap, n in session.execute(
            select(KiosqueSession.id, KiosqueSession.mds_id, KiosqueSession.starts_at, KiosqueSession.capacity,
                   func.coalesce(booked.c.n, 0))
            .outerjoin(booked, booked.c.session_id == KiosqueSession.id)
            .where(KiosqueSession.status == SessionStatus.PLANNED, KiosqueSession.starts_at >= from_day)
            .order_by(KiosqueSession.starts_at, KiosqueSession.id)):
        by_mds[mds_id].append(_Seat(sid, mds_id, starts_at, cap, int(n)))
    territory_of = {sid: tid for sid, tid in session.execute(
        select(Structure.id, Structure.territory_id).where(Structure.kind == "mds"))}
    by_territory: dict[int, list[_Seat]] = defaultdict(list)
    for mds_id, seats in by_mds.items():
        by_territory[territory_of.get(mds_id)].extend(seats)
    for seats in by_territory.values():
        seats.sort(key=lambda s: (s.starts_at, s.id))

    new_invitations: list[tuple[dict, _Candidate, str]] = []
    shortfall_deadlines: dict[int, dt.date] = {}
    for c in cands:
        if c.absences > config.max_reinvitations:
            result.exhausted += 1
            continue
        if c.mds_id is None:
            result.no_mds += 1
            continue
        earliest = as_of + dt.timedelta(days=notice_days(c.channels, config))
        deadline = c.clock_start + dt.timedelta(days=config.deadline_days)
        own = by_mds.get(c.mds_id, [])
        if deadline < earliest:
            # Already too late for any notice: no capacity could have helped; invite at once.
            result.overdue += 1
            seat, where = _pick(own, earliest, None), "late"
            if seat is None:
                neighbours = [s for s in by_territory.get(territory_of.get(c.mds_id), []) if s.mds_id != c.mds_id]
                seat = _pick(neighbours, earliest, None)
        else:
            seat, where = _pick(own, earliest, deadline), "own"
        if seat is None and deadline >= earliest:
            result.shortfalls[c.mds_id] = result.shortfalls.get(c.mds_id, 0) + 1
            shortfall_deadlines[c.mds_id] = min(deadline, shortfall_deadlines.get(c.mds_id, deadline))
            neighbours = [s for s in by_territory.get(territory_of.get(c.mds_id), []) if s.mds_id != c.mds_id]
            seat, where = _pick(neighbours, earliest, deadline), "neighbour"
            if seat is None:
                seat, where = _pick(own, earliest, None), "late"
            if seat is None:
                seat, where = _pick(neighbours, earliest, None), "late"
        if seat is None:
            result.unplanned += 1
            continue
        seat.booked += 1
        kind = "reinvitation" if c.absences else "invitation"
        inv = {"person_id": c.person_id, "path_id": c.path_id, "orientation_id": c.orientation_id,
               "session_id": seat.id, "attempt": c.absences + 1, "invited_on": as_of, "status": InvitationStatus.PENDING}
        new_invitations.append((inv, c, kind))
        result.own_mds += where == "own"
        result.neighbour_mds += where == "neighbour"
        result.after_deadline += where == "late"
        if kind == "reinvitation":
            result.reinvited += 1
        else:
            result.invited += 1
    if new_invitations:
        _write_invitations(session, as_of, new_invitations, result)
    names = {sid: name for sid, name in session.execute(
        select(Structure.id, Structure.name).where(Structure.id.in_(list(result.shortfalls))))}
    for mds_id, missing in sorted(result.shortfalls.items()):
        key = f"kiosque.shortfall:{mds_id}:{as_of.isoformat()}"
        message = (f"Kiosque {names.get(mds_id, mds_id)}: {missing} place(s) manquante(s) pour inviter "
                   f"avant l'échéance légale des {config.deadline_days} jours")
        data = {"missing": missing, "as_of": as_of.isoformat(),
                "earliest_deadline": shortfall_deadlines[mds_id].isoformat()}
        alert, created = raise_alert(session, key, "kiosque.capacity_shortfall", message, as_of,
                                     structure_id=mds_id, data=data)
        if created:
            result.alerts_raised += 1
        elif (alert.data or {}).get("missing", 0) < missing:
            alert.data, alert.message = data, message
    session.flush()
    return result


def _write_invitations(session: Session, as_of: dt.date, new: list, result: PlanResult) -> None:
    """Bulk inserts (invitations with their ids, then timeline events and outbox rows): the planner
    writes tens of thousands of rows on a busy day."""
    now = utcnow()
    rows = [{**inv, "created_at": now} for inv, _, _ in new]
    ids = session.scalars(insert(Invitation).returning(Invitation.id, sort_by_parameter_order=True), rows).all()
    events, messages = [], []
    for inv_id, (inv, c, kind) in zip(ids, new, strict=True):
        result.invitation_ids.append(inv_id)
        result.invitation_of[c.person_id] = inv_id
        events.append({"person_id": c.person_id, "path_id": c.path_id, "occurred_on": as_of,
                       "kind": "kiosque.reinvited" if kind == "reinvitation" else "kiosque.invited",
                       "source": "kiosque", "author_id": None, "recorded_at": now,
                       "summary": "Invitation au Kiosque Insertion"
                       + (" (nouvelle invitation après absence)" if kind == "reinvitation" else ""),
                       "data": {"invitation_id": inv_id, "session_id": inv["session_id"], "attempt": inv["attempt"],
                                "channels": c.channels}})
        for channel in c.channels:
            messages.append({"person_id": c.person_id, "invitation_id": inv_id, "orientation_id": None,
                             "kind": kind, "channel": channel, "recipient": c.recipients.get(channel),
                             "status": "queued", "attempts": 0, "send_on": as_of, "created_at": now})
    for chunk in _chunks(events, 5000):
        session.execute(insert(CaseEvent), chunk)
    for chunk in _chunks(messages, 5000):
        session.execute(insert(Message), chunk)


def _chunks(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# --------------------------------------------------------------------------- phoning, attendance, outcome

def get_invitation(session: Session, invitation_id: int) -> Invitation:
    inv = session.get(Invitation, invitation_id)
    if inv is None:
        raise KiosqueError(f"invitation {invitation_id} inconnue")
    return inv


def record_phoning(session: Session, invitation_id: int, outcome: str, *, on: dt.date, notes: str | None = None,
                   user_id: int | None = None) -> Invitation:
    return record_phonings(session, [PhoningMark(invitation_id, outcome, on, notes)], user_id=user_id)[0]


@dataclass(frozen=True)
class PhoningMark:
    """One call before the kiosque (record_phonings): the invitation, the outcome, the day, notes."""
    invitation_id: int
    outcome: str
    on: dt.date
    notes: str | None = None


def record_phonings(session: Session, marks: Iterable[PhoningMark], *, user_id: int | None = None) -> list[Invitation]:
    """The calls before the kiosque (one or a day's list), in the given order: each invitation's
    outcome and a timeline event per call; the invitations read at once and one flush."""
    marks = list(marks)
    for m in marks:
        if m.outcome not in PHONING_OUTCOMES:
            raise KiosqueError(f"résultat d'appel inconnu: {m.outcome!r} (attendu: {', '.join(PHONING_OUTCOMES)})")
    ids = sorted({m.invitation_id for m in marks})
    found = {inv.id: inv for i in range(0, len(ids), 5000)
             for inv in session.scalars(select(Invitation).where(Invitation.id.in_(ids[i:i + 5000])))}
    out = []
    for m in marks:
        inv = found.get(m.invitation_id)
        if inv is None:
            raise KiosqueError(f"invitation {m.invitation_id} inconnue")
        out.append(inv)
    for m, inv in zip(marks, out, strict=True):
        inv.phoning_outcome, inv.phoned_on = m.outcome, m.on
        if m.notes is not None:
            inv.phoning_notes = m.notes
        add_event(session, inv.person_id, "kiosque.phoned", m.on, "kiosque",
                  summary=f"Appel avant le kiosque: {PhoningOutcome.label_of(m.outcome)}",
                  data={"invitation_id": inv.id, "outcome": m.outcome}, path_id=inv.path_id, author_id=user_id)
    session.flush()
    return out


def record_attendance(session: Session, invitation_id: int, status: str, *, referent_type: str | None = None,
                      structure_id: int | None = None, first_appointment_at: dt.datetime | None = None,
                      user_id: int | None = None, config: KiosqueConfig | None = None,
                      now: dt.datetime | None = None, assigner=None, replans: list | None = None,
                      decisions: list | None = None, absences_of=None) -> dict:
    """Present (optionally with the chosen referent), absent (re-invited once, then proposed to the
    MDS: the law's default) or excused (re-invited, not counted as a no-show). Present or absent
    only once the session has begun (`now`, default the clock); an excuse may come before.

    `assigner` (an orientation.assignment.Assigner) is reused for the decision instead of building one
    (structures, loads, the whole sectorisation index): record_attendances passes one for a batch.
    `replans` (a list): the re-invitation is left to the caller, which re-plans a whole roll call's
    absent and excused persons at once with `replan` (one planning instead of one per person; same
    seats, in the same order); out["reinvitation_ids"] is filled then. `decisions` (a list): the
    orientation the line makes (the present person's choice, the MDS default after too many no-shows)
    is left to the caller, which records a roll call's decisions at once with `decide` (one
    orientation.service.record_orientations; the same rows, in the same order); out["orientation_id"]
    or out["default_mds_orientation_id"] is filled then. `absences_of(invitation)`: the person's no-shows
    on the path, counted by the caller's batch instead of a query."""
    config = config or KiosqueConfig.from_env()
    if status not in ATTENDANCE:
        raise KiosqueError(f"présence inconnue: {status!r} (attendu: present, absent, excused)")
    inv = get_invitation(session, invitation_id)
    if status in (InvitationStatus.PRESENT, InvitationStatus.ABSENT) \
            and inv.session.starts_at > (now or clock.now()):
        raise KiosqueError(f"Présence: la session du {inv.session.starts_at:%d/%m/%Y à %H h %M} n'a pas encore "
                           "eu lieu")
    if inv.status == status and status != InvitationStatus.PRESENT:
        return {"invitation_id": inv.id, "status": status, "unchanged": True}
    if inv.status != InvitationStatus.PENDING:
        raise KiosqueError(f"présence déjà enregistrée ({inv.status}) pour l'invitation {inv.id}")
    ks = inv.session
    on = ks.starts_at.date()
    inv.status = status
    if ks.status == SessionStatus.PLANNED:
        ks.status = SessionStatus.HELD
    kinds = {"present": "kiosque.attended", "absent": "kiosque.absent", "excused": "kiosque.excused"}
    add_event(session, inv.person_id, kinds[status], on, "kiosque", summary=Attendance(status).phrase,
              data={"invitation_id": inv.id, "session_id": ks.id}, path_id=inv.path_id, author_id=user_id)
    if decisions is None:
        session.flush()  # a batch flushes once, with its decisions
    out: dict = {"invitation_id": inv.id, "status": status}
    if status == InvitationStatus.PRESENT:
        if referent_type:
            d = _outcome_decision(session, inv.id, referent_type, structure_id, first_appointment_at, out)
            if decisions is not None:
                decisions.append(d)
            else:
                decide(session, [d], user_id=user_id, assigner=assigner)
        return out
    absences = absences_of(inv) if absences_of is not None else _absences(session, inv)
    if status == InvitationStatus.ABSENT and absences > config.max_reinvitations:
        d = _default_decision(inv, on, absences, out)
        if decisions is not None:
            decisions.append(d)
        else:
            decide(session, [d], user_id=user_id, assigner=assigner)
        return out
    out["reinvitation_ids"] = []
    item = Replan(on, inv.person_id, out["reinvitation_ids"])
    if replans is not None:
        replans.append(item)
    else:
        replan(session, [item], config=config)
    return out


@dataclass(frozen=True)
class Replan:
    """A person to re-invite after a roll call (absent, excused), planned as of the session's day;
    their new invitation id goes into `reinvitation_ids` (the roll call's answer for that line)."""
    on: dt.date
    person_id: int
    reinvitation_ids: list


def replan(session: Session, items: Iterable[Replan], *, config: KiosqueConfig | None = None) -> list[int]:
    """Re-invite the absent and excused persons of a roll call: one planning per session day for all
    of them (candidates and free seats read once), the persons taking their seats in the order they
    were marked, exactly as one planning per person in that order would have given them. Returns the
    new invitation ids."""
    config = config or KiosqueConfig.from_env()
    items = list(items)
    out: list[int] = []
    start = 0
    while start < len(items):  # runs of the same day, in the given order
        end = start
        while end < len(items) and items[end].on == items[start].on:
            end += 1
        run = items[start:end]
        result = plan(session, run[0].on, config=config, person_ids=[i.person_id for i in run], in_given_order=True)
        last = {i.person_id: n for n, i in enumerate(run)}  # a person marked twice is re-invited on the last line
        for n, i in enumerate(run):
            if last[i.person_id] == n and i.person_id in result.invitation_of:
                i.reinvitation_ids.append(result.invitation_of[i.person_id])
        out.extend(result.invitation_ids)
        start = end
    return out


@dataclass(frozen=True)
class AttendanceMark:
    """One line of a session's attendance sheet: the invitation, present/absent/excused and, for the
    present, the referent type chosen (optional)."""
    invitation_id: int
    status: str
    referent_type: str | None = None


def record_attendances(session: Session, marks: Iterable[AttendanceMark], *, user_id: int | None = None,
                       config: KiosqueConfig | None = None, now: dt.datetime | None = None,
                       assigner=None) -> list[dict]:
    """A batch of attendances (a session's sheet, a day of kiosques), in the given order, each exactly
    as record_attendance records it, with one Assigner for all the decisions (the caller's, when a
    day's work shares one), the invitations and their sessions read at once, the decisions (choices,
    MDS defaults) recorded together with one orientation.service.record_orientations, and one refresh
    of the decided paths' outcomes at the end (same transaction, same columns). The decisions and the
    re-invitations wait for the end of the batch, in the order of the sheet; a line that could change
    what a waiting re-invitation would find records them first."""
    from orientation.assignment import Assigner
    from orientation.outcomes import mark_path_oriented

    marks = list(marks)
    if not marks:
        return []
    config = config or KiosqueConfig.from_env()
    assigner = assigner or Assigner(session)
    outer_deferral = assigner.deferred_paths
    if outer_deferral is None:
        assigner.deferred_paths = set()  # the paths' outcomes refreshed once, at the end of the batch
    # The sheet's invitations and their sessions, read once and held for the batch (the session's
    # identity map keeps unchanged rows only weakly).
    held = _invitations_with_sessions(session, [m.invitation_id for m in marks])
    absences_of = _absence_counter(session, held)
    replans: list[Replan] = []
    decisions: list[_Decision] = []
    gap = dt.timedelta(days=min(config.notice_digital_days, config.notice_letter_days))
    out = []
    for m in marks:
        if replans:
            # The re-invitations wait for the end of the batch unless this line could change what they
            # would have found: another day's session, or (with no notice period) a session of the
            # day that this line marks held, which a re-invitation could otherwise still have taken.
            ks = get_invitation(session, m.invitation_id).session
            on = replans[-1].on
            if ks.starts_at.date() != on or (ks.status == SessionStatus.PLANNED
                                              and ks.starts_at >= dt.datetime.combine(on + gap, dt.time())):
                decide(session, decisions, user_id=user_id, assigner=assigner)
                decisions = []
                replan(session, replans, config=config)
                replans = []
        out.append(record_attendance(session, m.invitation_id, m.status, referent_type=m.referent_type,
                                     user_id=user_id, config=config, now=now, assigner=assigner, replans=replans,
                                     decisions=decisions, absences_of=absences_of))
    decide(session, decisions, user_id=user_id, assigner=assigner)
    session.flush()
    replan(session, replans, config=config)
    if outer_deferral is None:
        mark_path_oriented(session, sorted(p for p in assigner.deferred_paths if p is not None))
        assigner.deferred_paths = None
    del held
    return out


def _absences(session: Session, inv: Invitation) -> int:
    """The person's no-shows on the invitation's path."""
    return session.scalar(select(func.count(Invitation.id)).where(
        Invitation.person_id == inv.person_id, Invitation.path_id == inv.path_id,
        Invitation.status == InvitationStatus.ABSENT)) or 0


def _absence_counter(session: Session, held: dict[int, Invitation]):
    """A person's no-shows on a path while a sheet is recorded: those outside the sheet, counted once
    (one query for the sheet), plus the sheet's own invitations marked absent so far."""
    by_key: dict[tuple, list[Invitation]] = defaultdict(list)
    for inv in held.values():
        by_key[(inv.person_id, inv.path_id)].append(inv)
    outside: dict[tuple, int] = defaultdict(int)
    persons = sorted({pid for pid, _path in by_key})
    for chunk in _chunks(persons, 5000):
        for pid, path_id, n in session.execute(
                select(Invitation.person_id, Invitation.path_id, func.count(Invitation.id))
                .where(Invitation.person_id.in_(chunk), Invitation.status == InvitationStatus.ABSENT)
                .group_by(Invitation.person_id, Invitation.path_id)):
            outside[(pid, path_id)] += n
    for key, invs in by_key.items():  # the sheet's invitations already absent are counted below
        outside[key] -= sum(1 for inv in invs if inv.status == InvitationStatus.ABSENT)

    def absences_of(inv: Invitation) -> int:
        key = (inv.person_id, inv.path_id)
        if inv.id not in held:  # not read with the sheet (written since): counted by a query
            return _absences(session, inv)
        return outside[key] + sum(1 for i in by_key[key] if i.status == InvitationStatus.ABSENT)

    return absences_of


def _invitations_with_sessions(session: Session, ids: Iterable[int]) -> dict[int, Invitation]:
    from sqlalchemy.orm import joinedload

    wanted, out = sorted(set(ids)), {}
    for chunk in _chunks(wanted, 5000):
        out.update((inv.id, inv) for inv in session.scalars(
            select(Invitation).options(joinedload(Invitation.session)).where(Invitation.id.in_(chunk))))
    return out


@dataclass
class _Decision:
    """An orientation a kiosque line makes, waiting for `decide`: the present person's choice (origin
    kiosque, validated) or the MDS default after too many no-shows (origin default_mds, proposed)."""
    inv: Invitation
    referent_type: str
    origin: str
    on: dt.date
    status: str
    reason: str
    structure_id: int | None = None
    first_appointment_at: dt.datetime | None = None
    out: dict | None = None  # the roll-call line answered with the orientation's id
    orientation_id: int | None = None


def _outcome_decision(session: Session, invitation_id: int, referent_type: str, structure_id: int | None,
                      first_appointment_at: dt.datetime | None, out: dict | None = None) -> _Decision:
    """The checks of a present person's choice, and the decision to record."""
    if referent_type not in REFERENT_TYPES:
        raise KiosqueError(f"type de référent inconnu: {referent_type!r}")
    inv = get_invitation(session, invitation_id)
    if inv.status != InvitationStatus.PRESENT:
        raise KiosqueError("le choix du référent suppose la présence au kiosque")
    if inv.chosen_referent_type:
        raise KiosqueError(f"le choix a déjà été enregistré pour l'invitation {inv.id}")
    if structure_id is not None:
        s = session.get(Structure, structure_id)
        if s is None:
            raise KiosqueError(f"structure {structure_id} inconnue")
    return _Decision(inv, referent_type, Origin.KIOSQUE, inv.session.starts_at.date(), OrientationStatus.VALIDATED,
                     "Choix de la personne au Kiosque Insertion", structure_id, first_appointment_at, out)


def _default_decision(inv: Invitation, on: dt.date, absences: int, out: dict | None = None) -> _Decision:
    return _Decision(inv, "mds", Origin.DEFAULT_MDS, on, OrientationStatus.PROPOSED,
                     f"Absent(e) à {absences} Kiosque(s) Insertion: orientation par défaut vers "
                     "la MDS (informations manquantes du fait de la personne)", out=out)


def decide(session: Session, decisions: list[_Decision], *, user_id: int | None = None, assigner=None) -> list[int]:
    """Record kiosque decisions in the given order with one orientation.service.record_orientations:
    a choice becomes a validated orientation (origin kiosque, decided on the session date) with, when
    given, the first appointment; an MDS default a proposal to the person's MDS. Returns the ids."""
    from orientation.service import OrientationIn, record_orientations

    if not decisions:
        return []
    defaults = [d.inv.person_id for d in decisions if d.origin == Origin.DEFAULT_MDS]
    mds_of = dict(session.execute(select(Person.id, Household.mds_id).join(Household, Person.household_id == Household.id)
                                  .where(Person.id.in_(defaults))).all()) if defaults else {}
    items = [OrientationIn(d.inv.person_id, d.referent_type, d.origin, d.on,
                           structure_id=mds_of.get(d.inv.person_id) if d.origin == Origin.DEFAULT_MDS else d.structure_id,
                           reason=d.reason, status=d.status, path_id=d.inv.path_id) for d in decisions]
    orientations = record_orientations(session, items, user_id=user_id, assigner=assigner)
    for d, o in zip(decisions, orientations, strict=True):
        d.orientation_id = o.id
        if d.origin == Origin.KIOSQUE:
            inv = d.inv
            inv.chosen_referent_type, inv.chosen_structure_id = d.referent_type, d.structure_id
            inv.first_appointment_at = d.first_appointment_at
            if d.first_appointment_at is not None:
                _first_appointment(session, inv, d.first_appointment_at, d.structure_id, user_id)
        if d.out is not None:
            d.out["orientation_id" if d.origin == Origin.KIOSQUE else "default_mds_orientation_id"] = o.id
    session.flush()
    return [d.orientation_id for d in decisions]


def record_outcome(session: Session, invitation_id: int, referent_type: str, *, structure_id: int | None = None,
                   first_appointment_at: dt.datetime | None = None, user_id: int | None = None,
                   assigner=None) -> int:
    """The present person's choice → a validated orientation (origin kiosque, decided on the session
    date) and, when given, the first appointment with the referent. Returns the orientation id.
    `assigner`: as for record_attendance."""
    d = _outcome_decision(session, invitation_id, referent_type, structure_id, first_appointment_at)
    return decide(session, [d], user_id=user_id, assigner=assigner)[0]


def _first_appointment(session, inv, at, structure_id, user_id):
    """The first appointment fixed at the kiosque, recorded as any appointment is (cases)."""
    return cs.record_appointment(session, inv.person_id, at, "planned", kind="first", structure_id=structure_id,
                                 source="kiosque", author_id=user_id)


@dataclass(frozen=True)
class InvitedPerson:
    """An invitation with the invited person's name and contact, never the NIR (InvitationSchema)."""

    invitation: Invitation
    first_name: str | None
    last_name: str | None
    phone: str | None
    email: str | None

    def __getattr__(self, name):  # the invitation's own columns (id, status, phoning_outcome…)
        if name == "invitation":
            raise AttributeError(name)
        return getattr(self.invitation, name)


def session_invitations(session: Session, session_id: int, scope=None) -> list[InvitedPerson]:
    """The invitations of a session with the person's name and phone (never the NIR)."""
    q = (select(Invitation, Person.first_name, Person.last_name, Person.phone, Person.email)
         .join(Person, Person.id == Invitation.person_id)
         .where(Invitation.session_id == session_id, Invitation.status != InvitationStatus.CANCELLED)
         .order_by(Person.last_name, Person.first_name, Invitation.id))
    if scope is not None:
        q = q.where(scope)
    return [InvitedPerson(*row) for row in session.execute(q)]


# --------------------------------------------------------------------------- funnel

def funnel(session: Session, *, start: dt.date, end: dt.date, mds_id: int | None = None,
           by: str = "session") -> list[dict]:
    """Invited → reached by phone → attended → oriented, over sessions held in [start, end].

    Counts are distinct persons per group (see docs/kiosque.md): invited = a non-cancelled invitation;
    reached = a phoning outcome reached / declined / will_come; attended = present; oriented = present
    and a referent chosen (the kiosque orientation was recorded). `by`: session, mds, month or total."""
    if by not in ("session", "mds", "month", "total"):
        raise KiosqueError("regroupement attendu: session, mds, month ou total")
    month = func.substr(cast(func.date(KiosqueSession.starts_at), String), 1, 7)
    groups = {"session": [KiosqueSession.id, KiosqueSession.starts_at, KiosqueSession.mds_id, Structure.name],
              "mds": [KiosqueSession.mds_id, Structure.name], "month": [month], "total": []}[by]
    pid = Invitation.person_id
    q = (select(*groups,
                func.count(distinct(pid)),
                func.count(distinct(case((Invitation.phoning_outcome.in_(REACHED_OUTCOMES), pid)))),
                func.count(distinct(case((Invitation.status == InvitationStatus.PRESENT, pid)))),
                func.count(distinct(case((and_(Invitation.status == InvitationStatus.PRESENT,
                                               Invitation.chosen_referent_type.is_not(None)), pid)))))
         .select_from(Invitation).join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
         .join(Structure, Structure.id == KiosqueSession.mds_id)
         .where(Invitation.status != InvitationStatus.CANCELLED,
                KiosqueSession.starts_at >= dt.datetime.combine(start, dt.time()),
                KiosqueSession.starts_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time())))
    if mds_id:
        q = q.where(KiosqueSession.mds_id == mds_id)
    if groups:
        q = q.group_by(*groups).order_by(*groups)
    rows = []
    for r in session.execute(q):
        *keys, invited, reached, attended, oriented = r
        row: dict = {}
        if by == "session":
            row = {"session_id": keys[0], "date": keys[1].date().isoformat(), "mds_id": keys[2], "mds_name": keys[3]}
        elif by == "mds":
            row = {"mds_id": keys[0], "mds_name": keys[1]}
        elif by == "month":
            row = {"month": keys[0]}
        row.update(invited=invited, reached=reached, attended=attended, oriented=oriented,
                   oriented_rate=round(oriented / invited, 3) if invited else None)
        rows.append(row)
    return rows


__all__ = ["AttendanceMark", "KiosqueConfig", "KiosqueError", "PlanResult", "add_closure", "booked_seats",
           "cancel_session", "channels_for", "create_session", "create_template", "ensure_default_templates",
           "funnel", "generate_sessions", "get_invitation", "list_sessions", "notice_days", "plan",
           "record_attendance", "record_attendances", "record_outcome", "record_phoning", "record_phonings",
           "PhoningMark", "replan", "Replan",
           "session_invitations",
           "update_session"]
