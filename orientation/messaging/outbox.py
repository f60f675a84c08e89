"""The outbox: queued messages sent through the transports, retried with exponential backoff.

Every message is a `Message` row (queued → sent | failed | bounced; cancelled when what it is about
no longer needs it). The outbox does not know what a message says: the Composer registered for it
(orientation's notices, kiosque's invitations) renders its text and its letter, may cancel it, and
is told once it is sent.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import Household, Person
from config import clock
from config.db import utcnow
from config.settings import Settings
from orientation.messaging.letters import Letter, write_pdf
from orientation.messaging.models import Message
from orientation.messaging.templates import render, template_env
from orientation.messaging.transports import LetterGateway, SendError, gateways_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxConfig:
    """Retry rules (RSA_KIOSQUE_MAX_SEND_ATTEMPTS, RSA_KIOSQUE_BACKOFF_MINUTES) and the phone number
    printed on messages (RSA_KIOSQUE_CONTACT_PHONE, default the MDS's)."""

    max_send_attempts: int = 5
    backoff_minutes: int = 5  # first retry delay, doubled at each attempt
    contact_phone: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxConfig:
        s = settings
        return cls(max_send_attempts=int(s.kiosque_max_send_attempts or cls.max_send_attempts),
                   backoff_minutes=int(s.kiosque_backoff_minutes or cls.backoff_minutes),
                   contact_phone=s.kiosque_contact_phone)


class Composer(Protocol):
    """What a module that writes messages tells the outbox about its messages."""

    def owns(self, m: Message) -> bool: ...

    def cancel_reason(self, session: Session, m: Message, now: dt.datetime) -> str | None:
        """Why the message is no longer to be sent (None: send it)."""

    def context(self, session: Session, m: Message, config) -> dict:
        """The template variables of an e-mail or SMS."""

    def letter(self, session: Session, m: Message, config) -> Letter:
        """The printed letter of the message."""

    def sent(self, session: Session, m: Message, now: dt.datetime) -> None:
        """Called once the message is sent."""


COMPOSERS: list[Composer] = []


def register(composer: Composer) -> Composer:
    if all(type(c) is not type(composer) for c in COMPOSERS):
        COMPOSERS.append(composer)
    return composer


def composer_for(m: Message) -> Composer:
    for c in COMPOSERS:
        if c.owns(m):
            return c
    raise SendError("message sans invitation ni orientation", permanent=True)


# --------------------------------------------------------------------------- contact details

def is_mobile(phone: str | None, phone_kind: str | None = None) -> bool:
    """A number an SMS can reach: declared mobile, or a French 06/07 number."""
    if not phone:
        return False
    if phone_kind:
        return phone_kind == "mobile"
    digits = phone.replace(" ", "").replace(".", "")
    return digits.startswith(("+336", "+337", "06", "07", "00336", "00337"))


def postal_address(addr, pc, city) -> str | None:
    return ", ".join(x for x in (addr, " ".join(x for x in (pc, city) if x)) if x) or None


def fill_recipients(session: Session, messages: list[Message]) -> None:
    """Recipient of each message from the person's contact details (postal address for letters)."""
    pids = sorted({m.person_id for m in messages if m.person_id})
    info = {}
    for i in range(0, len(pids), 5000):
        for pid, email, phone, addr, pc, city in session.execute(
                select(Person.id, Person.email, Person.phone,
                       Household.address_line, Household.postal_code, Household.city)
                .outerjoin(Household, Household.id == Person.household_id).where(Person.id.in_(pids[i:i + 5000]))):
            info[pid] = {"email": email, "sms": phone, "letter": postal_address(addr, pc, city)}
    for m in messages:
        if m.recipient is None and m.person_id in info:
            m.recipient = info[m.person_id].get(m.channel)


# --------------------------------------------------------------------------- letters

def letter_for_message(session: Session, m: Message, config=None) -> Letter:
    """The letter of one outbox message; the message keeps its text (subject = first line, body)."""
    letter = composer_for(m).letter(session, m, config)
    m.subject, m.body = letter.body.split("\n", 1)[0], letter.body
    return letter


def write_message_letter(session: Session, m: Message, path: Path, config=None) -> Path:
    """The PDF of one outbox letter alone."""
    return write_pdf(path, [letter_for_message(session, m, config)])


# --------------------------------------------------------------------------- sending

def process_outbox(session: Session, settings: Settings, *, as_of: dt.date, now: dt.datetime | None = None,
                   gateways: dict | None = None, config=None, limit: int | None = None,
                   commit: bool = False, progress=None) -> dict:
    """Send the queued messages due (send_on ≤ as_of, next attempt ≤ now). With commit=True each message's
    outcome is committed at once, so that a crash never sends a message twice. progress(total, step) is
    called once with step 0, then once per message (the CLI's progress bar). `config` carries the
    retry rules (OutboxConfig, or a composer's richer config such as KiosqueConfig)."""
    rules = config or OutboxConfig.from_settings(settings)
    # A replayed day (as_of before the process clock's today) sends as at the end of that day.
    now = now or (utcnow() if as_of >= clock.today() and not clock.frozen() else
                  dt.datetime.combine(as_of, dt.time(23, 59)))
    gateways = gateways or gateways_for(settings)
    letter = gateways.get("letter")
    if isinstance(letter, LetterGateway):
        letter.compose = lambda m: letter_for_message(session, m, config)
    env = template_env(settings.kiosque_template_dir)
    q = (select(Message).where(Message.status == "queued",
                               (Message.send_on.is_(None)) | (Message.send_on <= as_of),
                               (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
         .order_by(Message.id))
    if limit:
        q = q.limit(limit)
    counts = {"sent": 0, "retry": 0, "failed": 0, "bounced": 0, "cancelled": 0}
    try:
        due = session.scalars(q).all()
        if progress is not None:
            progress(len(due), 0)
        for m in due:
            outcome = _send_one(session, m, gateways, env, config, rules, now)
            if progress is not None:
                progress(len(due), 1)
            if outcome == "batched":
                continue
            counts[outcome] += 1
            session.flush()
            if commit:
                session.commit()
        if isinstance(letter, LetterGateway) and letter.pending:
            batched = [m for m, _ in letter.pending]
            try:
                letter.flush(now)
            except SendError as exc:
                for m in batched:
                    counts[_failed(m, exc, rules, now)] += 1
            else:
                for m in batched:
                    _mark_sent(session, m, now)
                    counts["sent"] += 1
            session.flush()
            if commit:
                session.commit()
    finally:
        for g in gateways.values():
            g.close()
    return counts


def _send_one(session, m: Message, gateways, env, config, rules, now: dt.datetime) -> str:
    composer = next((c for c in COMPOSERS if c.owns(m)), None)
    reason = composer.cancel_reason(session, m, now) if composer is not None else None
    if reason:
        m.status, m.last_error = "cancelled", reason
        return "cancelled"
    if not m.recipient:
        fill_recipients(session, [m])
    if not m.recipient:
        m.status, m.last_error = "failed", f"aucune coordonnée pour le canal {m.channel}"
        return "failed"
    gateway = gateways.get(m.channel)
    if gateway is None:
        m.status, m.last_error = "failed", f"canal inconnu {m.channel}"
        return "failed"
    m.attempts = (m.attempts or 0) + 1
    try:
        if composer is None:
            raise SendError("message sans invitation ni orientation", permanent=True)
        if m.channel != "letter":
            m.subject, m.body = render(m.kind, m.channel, composer.context(session, m, config), env)
        gateway.send(m)
    except SendError as exc:
        return _failed(m, exc, rules, now)
    except ValueError as exc:  # the message cannot be built (KiosqueError, LetterError: what it is about is gone)
        return _failed(m, SendError(str(exc), permanent=True), rules, now)
    if isinstance(gateway, LetterGateway):
        return "batched"
    _mark_sent(session, m, now)
    return "sent"


def _mark_sent(session: Session, m: Message, now: dt.datetime) -> None:
    m.status, m.sent_at, m.next_attempt_at, m.last_error = "sent", now, None, None
    composer_for(m).sent(session, m, now)


def _failed(m: Message, exc: SendError, rules, now: dt.datetime) -> str:
    """Permanent → bounced; transient → retry later (exponential backoff) or failed after the last attempt."""
    m.last_error = str(exc)[:2000]
    if exc.permanent:
        m.status = "bounced"
        return "bounced"
    if m.attempts >= rules.max_send_attempts:
        m.status, m.next_attempt_at = "failed", None
        return "failed"
    m.next_attempt_at = now + dt.timedelta(minutes=rules.backoff_minutes * 2 ** (m.attempts - 1))
    log.warning("message %s: attempt %s failed (%s), retry at %s", m.id, m.attempts, exc, m.next_attempt_at)
    return "retry"


def mark_bounced(session: Session, message_id: int, reason: str) -> Message:
    """A bounce reported after sending (DSN, gateway callback)."""
    m = session.get(Message, message_id)
    if m is None:
        raise ValueError(f"message {message_id} inconnu")
    m.status, m.last_error = "bounced", reason[:2000]
    session.flush()
    return m


def outbox_summary(session: Session) -> dict:
    return {f"{ch}:{st}": n for ch, st, n in session.execute(
        select(Message.channel, Message.status, func.count(Message.id)).group_by(Message.channel, Message.status))}
