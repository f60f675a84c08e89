"""Kiosque's messages: invitations, re-invitations and reminders J-N, rendered from the templates
of kiosque/templates and sent by the outbox (orientation.messaging). The outbox cancels a message
whose invitation is no longer pending or whose session has begun.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Person
from kiosque.models import Invitation, KiosqueSession
from kiosque.service import KiosqueConfig, KiosqueError
from kiosque.vocabulary import InvitationStatus, SessionStatus
from orientation import notices  # noqa: F401  (the outbox kiosque runs also sends orientation's notices)
from orientation.messaging import outbox
from orientation.messaging.letters import Letter, recipient_lines, sender_lines
from orientation.messaging.models import Message
from orientation.messaging.templates import add_template_dir, render
from orientation.messaging.text import french_date, french_time, person_context
from referents.models import Structure

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
INVITATION_KINDS = ("invitation", "reinvitation")


def _config(config) -> KiosqueConfig:
    return config if isinstance(config, KiosqueConfig) else KiosqueConfig.from_env()


def invitation_context(session: Session, inv: Invitation, config: KiosqueConfig, kind: str = "invitation") -> dict:
    ks: KiosqueSession = inv.session
    mds = session.get(Structure, ks.mds_id)
    person = session.get(Person, inv.person_id)
    days = int(kind.split("_")[1]) if kind.startswith("reminder_") else None
    return {**person_context(person), "session_date": french_date(ks.starts_at.date()),
            "session_time": french_time(ks.starts_at.time()), "place": ks.place, "mds_name": mds.name if mds else "",
            "phone": config.contact_phone or (mds.phone if mds and mds.phone else "votre Maison des Solidarités"),
            "what_to_bring": list(config.what_to_bring), "days": days, "invited_on": french_date(inv.invited_on)}


def invitation_letter(session: Session, inv: Invitation, config: KiosqueConfig, kind: str | None = None,
                      dated: dt.date | None = None) -> Letter:
    kind = kind or ("reinvitation" if inv.attempt > 1 else "invitation")
    ctx = invitation_context(session, inv, config, kind)
    _, body = render(kind, "letter", ctx)
    mds = session.get(Structure, inv.session.mds_id)
    person = session.get(Person, inv.person_id)
    return Letter(sender_lines(mds, ctx["phone"]), recipient_lines(session, person),
                  f"Le {french_date(dated or inv.invited_on)}", body)


class InvitationComposer:
    """Messages about a kiosque invitation (Message.invitation_id)."""

    def owns(self, m: Message) -> bool:
        return bool(m.invitation_id)

    def _invitation(self, session: Session, m: Message) -> Invitation:
        inv = session.get(Invitation, m.invitation_id)
        if inv is None:
            raise KiosqueError(f"invitation {m.invitation_id} inconnue")
        return inv

    def cancel_reason(self, session: Session, m: Message, now: dt.datetime) -> str | None:
        inv = session.get(Invitation, m.invitation_id)
        # a cancellation notice (session cancelled, invitation cancelled) is about an invitation that
        # is no longer pending, by design
        if inv is not None and m.kind in ("session_cancelled", "invitation_cancelled"):
            return None
        if inv is None or inv.status != InvitationStatus.PENDING:
            return "invitation plus en attente"
        if inv.session.starts_at <= now:
            return "session déjà commencée"
        return None

    def context(self, session: Session, m: Message, config) -> dict:
        return invitation_context(session, self._invitation(session, m), _config(config), m.kind)

    def letter(self, session: Session, m: Message, config) -> Letter:
        return invitation_letter(session, self._invitation(session, m), _config(config), m.kind, dated=m.send_on)

    def sent(self, session: Session, m: Message, now: dt.datetime) -> None:
        pass


add_template_dir(TEMPLATE_DIR)
outbox.register(InvitationComposer())


def queue_reminders(session: Session, as_of: dt.date, config: KiosqueConfig | None = None) -> int:
    """Reminders J-N (config.reminder_days) by e-mail/SMS for pending invitations; idempotent. A later
    run catches up a missed day; a reminder is skipped when a closer one is already due, or when
    the invitation itself came inside its window."""
    config = config or KiosqueConfig.from_env()
    days = sorted(set(config.reminder_days))
    if not days:
        return 0
    horizon = as_of + dt.timedelta(days=max(days))
    rows = session.execute(
        select(Invitation, KiosqueSession.starts_at, Person.email, Person.phone, Person.phone_kind)
        .join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
        .join(Person, Person.id == Invitation.person_id)
        .where(Invitation.status == InvitationStatus.PENDING, KiosqueSession.status == SessionStatus.PLANNED,
               KiosqueSession.starts_at >= dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()),
               KiosqueSession.starts_at < dt.datetime.combine(horizon + dt.timedelta(days=1), dt.time()))).all()
    if not rows:
        return 0
    have = set(session.execute(select(Message.invitation_id, Message.kind).where(
        Message.invitation_id.in_([r[0].id for r in rows]), Message.kind.like("reminder_%"))))
    created = []
    for inv, starts_at, email, phone, kind in rows:
        left = (starts_at.date() - as_of).days
        due = [n for n in days if left <= n]
        if not due:
            continue
        n = min(due)  # the closest reminder whose window is open
        if (inv.id, f"reminder_{n}") in have or (starts_at.date() - inv.invited_on).days <= n:
            continue
        chans = (["email"] if email else []) + (["sms"] if outbox.is_mobile(phone, kind) else [])
        for ch in chans:
            created.append(Message(person_id=inv.person_id, invitation_id=inv.id, kind=f"reminder_{n}", channel=ch,
                                   status="queued", send_on=as_of))
    session.add_all(created)
    session.flush()
    outbox.fill_recipients(session, created)
    return len(created)
