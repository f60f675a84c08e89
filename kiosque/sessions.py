"""Kiosque sessions: weekly templates, closures and public holidays, the generation of sessions over
a period, and the edits of one session (capacity, cancellation). Session start times are naive
local times (Europe/Paris), as shown to the people invited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import holidays
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import clock
from kiosque.errors import KiosqueError
from kiosque.models import Closure, Invitation, KiosqueSession, SessionTemplate
from kiosque.vocabulary import InvitationStatus, SessionStatus
from orientation.messaging.models import Message
from referents.models import Structure


def check_session_date(session: Session, mds_id: int, starts_at: dt.datetime, now: dt.datetime | None = None) -> None:
    """A session is held in the future, on a working day: not in the past, not on a public holiday,
    not on a closure day of its MDS (or of every MDS). KiosqueError naming the field otherwise."""
    now = now or clock.now()
    field = "Date et heure de la session"
    if starts_at < now:
        raise KiosqueError(f"{field}: le {starts_at:%d/%m/%Y à %H h %M} est déjà passé")
    day = starts_at.date()
    holiday = french_holidays(day, day).get(day)
    if holiday:
        raise KiosqueError(f"{field}: le {day:%d/%m/%Y} est un jour férié ({holiday})")
    closure = session.scalar(select(Closure).where(Closure.day == day, (Closure.mds_id == mds_id)
                                                   | Closure.mds_id.is_(None)).limit(1))
    if closure is not None:
        raise KiosqueError(f"{field}: le {day:%d/%m/%Y} est un jour de fermeture"
                           + (f" ({closure.reason})" if closure.reason else ""))


def create_session(session: Session, *, mds_id: int, starts_at: dt.datetime, place: str | None = None,
                   capacity: int = 20, duration_minutes: int = 150, partner_ids=(),
                   template_id: int | None = None, now: dt.datetime | None = None) -> KiosqueSession:
    """A new session; `now` (default: the clock) decides what is past."""
    mds = session.get(Structure, mds_id)
    if mds is None or mds.kind != "mds":
        raise KiosqueError(f"structure {mds_id} inconnue ou qui n'est pas une MDS")
    if capacity < 1:
        raise KiosqueError("Nombre de places: la capacité doit être d'au moins une place")
    check_session_date(session, mds_id, starts_at, now)
    ks = KiosqueSession(mds_id=mds_id, starts_at=starts_at, ends_at=starts_at + dt.timedelta(minutes=duration_minutes),
                        place=place or mds.address or mds.name, capacity=capacity, status=SessionStatus.PLANNED,
                        template_id=template_id)
    if partner_ids:
        ks.partners = list(session.scalars(select(Structure).where(Structure.id.in_(list(partner_ids)))))
    session.add(ks)
    session.flush()
    return ks


def booked_seats(session: Session, session_id: int) -> int:
    return session.scalar(select(func.count(Invitation.id)).where(
        Invitation.session_id == session_id, Invitation.status != InvitationStatus.CANCELLED)) or 0


def update_session(session: Session, ks: KiosqueSession, *, now: dt.datetime | None = None,
                   **changes) -> KiosqueSession:
    """Change capacity, place, time, partners or status; capacity never below the seats given; a
    session moved goes to a future working day (check_session_date)."""
    if changes.get("starts_at") is not None and changes["starts_at"] != ks.starts_at:
        check_session_date(session, ks.mds_id, changes["starts_at"], now)
    if "capacity" in changes and changes["capacity"] is not None:
        taken = booked_seats(session, ks.id)
        if changes["capacity"] < taken:
            raise KiosqueError(f"capacité {changes['capacity']} inférieure aux {taken} places déjà attribuées")
    if changes.get("status") == SessionStatus.CANCELLED:
        cancel_session(session, ks)
        changes.pop("status")
    for key in ("capacity", "place", "starts_at", "ends_at", "status"):
        if changes.get(key) is not None:
            setattr(ks, key, changes[key])
    if changes.get("partner_ids") is not None:
        ks.partners = list(session.scalars(select(Structure).where(Structure.id.in_(changes["partner_ids"]))))
    session.flush()
    return ks


def cancel_session(session: Session, ks: KiosqueSession) -> int:
    """Cancel a session: its pending invitations are cancelled (the next planning re-seats them)."""
    ks.status = SessionStatus.CANCELLED
    pending = list(session.scalars(select(Invitation).where(
        Invitation.session_id == ks.id, Invitation.status == InvitationStatus.PENDING)))
    for inv in pending:
        inv.status = InvitationStatus.CANCELLED
    if pending:
        for m in session.scalars(select(Message).where(
                Message.invitation_id.in_([i.id for i in pending]), Message.status == "queued")):
            m.status = "cancelled"
            m.last_error = "session annulée"
    session.flush()
    return len(pending)


@dataclass(frozen=True)
class SessionSeats:
    """A session with its MDS's name and the seats given (kiosque.schemas.SessionSchema formats it)."""

    session: KiosqueSession
    mds_name: str | None = None
    booked: int | None = None

    @property
    def free(self) -> int | None:
        return None if self.booked is None else max(self.session.capacity - self.booked, 0)

    @property
    def partner_ids(self) -> list[int]:
        return [p.id for p in self.session.partners]

    def __getattr__(self, name):  # the session's own columns (id, starts_at, capacity, status…)
        if name == "session":
            raise AttributeError(name)
        return getattr(self.session, name)


def list_sessions(session: Session, *, start: dt.date | None = None, end: dt.date | None = None,
                  mds_id: int | None = None, status: str | None = None) -> list[SessionSeats]:
    booked = (select(Invitation.session_id, func.count(Invitation.id).label("n"))
              .where(Invitation.status != InvitationStatus.CANCELLED).group_by(Invitation.session_id).subquery())
    q = (select(KiosqueSession, Structure.name, func.coalesce(booked.c.n, 0))
         .join(Structure, Structure.id == KiosqueSession.mds_id)
         .outerjoin(booked, booked.c.session_id == KiosqueSession.id)
         .order_by(KiosqueSession.starts_at, KiosqueSession.id))
    if start:
        q = q.where(KiosqueSession.starts_at >= dt.datetime.combine(start, dt.time()))
    if end:
        q = q.where(KiosqueSession.starts_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
    if mds_id:
        q = q.where(KiosqueSession.mds_id == mds_id)
    if status:
        q = q.where(KiosqueSession.status == status)
    return [SessionSeats(ks, mds_name=name, booked=n) for ks, name, n in session.execute(q)]


def create_template(session: Session, *, mds_id: int, weekday: int, start_time: dt.time, capacity: int = 20,
                    place: str | None = None, duration_minutes: int = 150, valid_from: dt.date | None = None,
                    valid_until: dt.date | None = None) -> SessionTemplate:
    mds = session.get(Structure, mds_id)
    if mds is None or mds.kind != "mds":
        raise KiosqueError(f"structure {mds_id} inconnue ou qui n'est pas une MDS")
    if not 0 <= weekday <= 6:
        raise KiosqueError("jour de la semaine entre 0 (lundi) et 6 (dimanche)")
    t = SessionTemplate(mds_id=mds_id, weekday=weekday, start_time=start_time, capacity=capacity,
                        place=place or mds.address or mds.name, duration_minutes=duration_minutes,
                        valid_from=valid_from, valid_until=valid_until, active=True)
    session.add(t)
    session.flush()
    return t


def ensure_default_templates(session: Session, *, weekday: int = 1, start_time: dt.time = dt.time(9, 30),
                             capacity: int = 20) -> int:
    """One weekly kiosque per MDS that has no template yet (default: Tuesday 9:30, 20 seats)."""
    have = set(session.scalars(select(SessionTemplate.mds_id)))
    added = 0
    for mds in session.scalars(select(Structure).where(Structure.kind == "mds", Structure.active.is_(True))
                               .order_by(Structure.id)):
        if mds.id not in have:
            create_template(session, mds_id=mds.id, weekday=weekday, start_time=start_time, capacity=capacity)
            added += 1
    return added


def french_holidays(start: dt.date, end: dt.date) -> dict[dt.date, str]:
    return dict(holidays.France(years=range(start.year, end.year + 1)))


def add_closure(session: Session, day: dt.date, reason: str = "", mds_id: int | None = None) -> Closure:
    c = Closure(day=day, reason=reason, mds_id=mds_id)
    session.add(c)
    session.flush()
    return c


def generate_sessions(session: Session, start: dt.date, end: dt.date, *, mds_id: int | None = None) -> dict:
    """Sessions from the active templates over [start, end], skipping French public holidays and
    declared closures. Idempotent: a template never gets two sessions on the same day."""
    if end < start:
        raise KiosqueError("la fin précède le début")
    if (end - start).days > 400:
        raise KiosqueError("période trop longue: au plus 400 jours à la fois")
    q = select(SessionTemplate).where(SessionTemplate.active.is_(True)).order_by(SessionTemplate.id)
    if mds_id:
        q = q.where(SessionTemplate.mds_id == mds_id)
    templates = list(session.scalars(q))
    public = french_holidays(start, end)
    closures: dict[tuple[int | None, dt.date], str] = {
        (c.mds_id, c.day): c.reason for c in session.scalars(
            select(Closure).where(Closure.day >= start, Closure.day <= end))}
    existing = {(tid, starts.date()) for tid, starts in session.execute(
        select(KiosqueSession.template_id, KiosqueSession.starts_at).where(
            KiosqueSession.template_id.in_([t.id for t in templates]),
            KiosqueSession.starts_at >= dt.datetime.combine(start, dt.time()),
            KiosqueSession.starts_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time())))}
    created, skipped = [], []
    for t in templates:
        day = start + dt.timedelta(days=(t.weekday - start.weekday()) % 7)
        while day <= end:
            if (t.valid_from and day < t.valid_from) or (t.valid_until and day > t.valid_until):
                pass
            elif day in public:
                skipped.append({"template_id": t.id, "day": day, "reason": f"jour férié: {public[day]}"})
            elif (None, day) in closures or (t.mds_id, day) in closures:
                reason = closures.get((t.mds_id, day), closures.get((None, day)))
                skipped.append({"template_id": t.id, "day": day, "reason": f"fermeture: {reason}"})
            elif (t.id, day) not in existing:
                ks = KiosqueSession(mds_id=t.mds_id, template_id=t.id, place=t.place, capacity=t.capacity,
                                    starts_at=dt.datetime.combine(day, t.start_time),
                                    ends_at=dt.datetime.combine(day, t.start_time)
                                    + dt.timedelta(minutes=t.duration_minutes), status=SessionStatus.PLANNED)
                session.add(ks)
                created.append(ks)
            day += dt.timedelta(days=7)
    session.flush()
    return {"created": len(created), "session_ids": [ks.id for ks in created], "skipped": skipped}
