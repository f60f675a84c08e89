"""Orientation notices: the message telling a person their orientation (e-mail, SMS or letter),
written to the outbox (orientation.messaging) for every Notification the decisions create.

The notice says truthfully how the decision was taken (rule 5 of the house): by the algorithm alone,
proposed by the algorithm and validated by an agent, or taken by a person; and it carries the legal
mentions of orientation.legal_notice (contract, rights on the algorithm, new orientation, appeals).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Household, Person
from orientation.legal_notice import legal_context
from orientation.messaging import outbox
from orientation.messaging.letters import Letter, recipient_lines, sender_lines
from orientation.messaging.models import Message
from orientation.messaging.templates import add_template_dir, render
from orientation.messaging.text import french_date, person_context
from orientation.models import Notification, Orientation
from referents.models import Structure
from referents.vocabulary import OUTCOMES, Outcome

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates" / "notices"
MDS_PHONE_FALLBACK = "votre Maison des Solidarités"
NOTICE_SERVICE = "Décision d'orientation RSA - service Insertion"  # the letter's heading (not the Kiosque)


def _contact_phone(config) -> str:
    if config is None:
        from config.settings import Settings

        return Settings.from_env().kiosque_contact_phone
    return getattr(config, "contact_phone", "")


def _phrase(referent_type: str) -> str:
    return Outcome(referent_type).phrase if referent_type in OUTCOMES else referent_type


def _mds(session: Session, person: Person) -> Structure | None:
    mds_id = session.scalar(select(Household.mds_id).where(Household.id == person.household_id))
    return session.get(Structure, mds_id) if mds_id else None


def notification_context(session: Session, orientation: Orientation, config=None, channel: str = "letter") -> dict:
    """The template variables of a notice: the person, the decision's legal content (legal_notice), the
    structure that will follow them and the phone to call."""
    person = session.get(Person, orientation.person_id)
    structure = session.get(Structure, orientation.structure_id) if orientation.structure_id else None
    mds = _mds(session, person)
    decided = orientation.validated_on or orientation.decided_on
    return {**person_context(person), **legal_context(orientation),
            "referent_label": _phrase(orientation.referent_type),
            "structure_name": structure.name if structure else "",
            "structure_address": structure.address if structure and structure.address else "",
            "structure_phone": structure.phone if structure and structure.phone else "",
            "decided_on": french_date(decided), "decided_on_short": f"{decided:%d/%m/%Y}",
            "channel": channel, "channel_followup": "email" if person.email else "letter",
            "phone": _contact_phone(config) or (mds.phone if mds and mds.phone else MDS_PHONE_FALLBACK)}


def notification_letter(session: Session, orientation: Orientation, config=None,
                        dated: dt.date | None = None) -> Letter:
    ctx = notification_context(session, orientation, config)
    _, body = render("notification", "letter", ctx)
    person = session.get(Person, orientation.person_id)
    return Letter(sender_lines(_mds(session, person), ctx["phone"], service=NOTICE_SERVICE),
                  recipient_lines(session, person),
                  f"Le {french_date(dated or orientation.validated_on or orientation.decided_on)}", body)


class NoticeComposer:
    """Messages about an orientation (Message.orientation_id, kind "notification")."""

    def owns(self, m: Message) -> bool:
        return bool(m.orientation_id) and not m.invitation_id

    def cancel_reason(self, session: Session, m: Message, now: dt.datetime) -> str | None:
        return None

    def _orientation(self, session: Session, m: Message) -> Orientation:
        o = session.get(Orientation, m.orientation_id)
        if o is None:
            raise outbox.SendError(f"orientation {m.orientation_id} inconnue", permanent=True)
        return o

    def context(self, session: Session, m: Message, config) -> dict:
        return notification_context(session, self._orientation(session, m), config, channel=m.channel)

    def letter(self, session: Session, m: Message, config) -> Letter:
        return notification_letter(session, self._orientation(session, m), config, dated=m.send_on)

    def sent(self, session: Session, m: Message, now: dt.datetime) -> None:
        if m.kind == "notification":
            o = session.get(Orientation, m.orientation_id)
            if o is not None and o.notified_on is None:
                o.notified_on = now.date()


add_template_dir(TEMPLATE_DIR)
outbox.register(NoticeComposer())


def queue_notifications(session: Session, as_of: dt.date | None = None) -> int:
    """A Message for every orientation Notification not yet linked to one (message_id NULL)."""
    notes = list(session.scalars(select(Notification).where(Notification.message_id.is_(None))
                                 .order_by(Notification.id)))
    created = []
    for n in notes:
        o = session.get(Orientation, n.orientation_id)
        if o is None:
            continue
        person = session.get(Person, o.person_id)
        channel = n.channel
        if (channel == "email" and not person.email) or (channel == "sms" and not outbox.is_mobile(
                person.phone, person.phone_kind)):
            channel = "letter"  # the requested channel cannot reach the person
        m = Message(person_id=o.person_id, orientation_id=o.id, kind="notification", channel=channel,
                    status="queued", send_on=n.notified_on)
        session.add(m)
        created.append((n, m))
    session.flush()
    outbox.fill_recipients(session, [m for _, m in created])
    for n, m in created:
        n.message_id = m.id
    session.flush()
    return len(created)
