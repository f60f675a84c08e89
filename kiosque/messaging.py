"""The outbox: messages rendered from editable Jinja2 templates and sent through gateways.

Every message is a `Message` row (queued → sent | failed | bounced; cancelled when its invitation is
no longer pending). E-mail goes through real SMTP (RSA_SMTP_*) or, without a server, to .eml files;
SMS through an HTTP gateway (RSA_SMS_URL + RSA_SMS_TOKEN) or to JSON files under RSA_OUTBOX_DIR;
letters become PDF files to print. Transient failures are retried with exponential backoff.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Household, Person
from config.db import utcnow
from config.settings import Settings
from kiosque.models import Invitation, KiosqueSession, Message
from kiosque.service import KiosqueConfig, KiosqueError, fill_recipients, is_mobile
from orientation.models import Notification, Orientation
from referents.models import Structure

log = logging.getLogger(__name__)
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
INVITATION_KINDS = ("invitation", "reinvitation")
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
REFERENT_LABELS = {"pole_emploi": "France Travail", "actipro": "un organisme ActiPro du Département",
                   "ati": "un agent territorial d'insertion (ATI) du Département",
                   "mds": "la Maison des Solidarités (MDS)"}


class SendError(Exception):
    """A delivery failure. permanent=True means retrying is useless (bounced)."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


def french_date(d: dt.date) -> str:
    return f"{WEEKDAYS[d.weekday()]} {d.day}{'er' if d.day == 1 else ''} {MONTHS[d.month - 1]} {d.year}"


def french_time(t: dt.time) -> str:
    return f"{t.hour} h {t.minute:02d}" if t.minute else f"{t.hour} h"


# --------------------------------------------------------------------------- templates

def template_env() -> Environment:
    """Templates of RSA_KIOSQUE_TEMPLATE_DIR (when set) override the bundled ones, file by file."""
    loaders = []
    override = os.environ.get("RSA_KIOSQUE_TEMPLATE_DIR")
    if override:
        loaders.append(FileSystemLoader(override))
    loaders.append(FileSystemLoader(str(TEMPLATE_DIR)))
    return Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False,
                       keep_trailing_newline=False)


def template_kind(kind: str) -> str:
    return "reminder" if kind.startswith("reminder") else kind


def render(kind: str, channel: str, context: dict, env: Environment | None = None) -> tuple[str | None, str]:
    """(subject, body). A first line "Objet: …" is the subject (e-mail) or stays in the body (letter)."""
    env = env or template_env()
    text = env.get_template(f"{template_kind(kind)}.{channel}.j2").render(**context).strip()
    subject = None
    if channel == "email" and text.lower().startswith("objet"):
        first, _, rest = text.partition("\n")
        subject, text = first.split(":", 1)[1].strip(), rest.strip()
    return subject, text + "\n"


def display_first_name(first_name: str | None) -> str:
    """Flows give first names in capitals: "SANDRINE" → "Sandrine" (mixed case is kept)."""
    first = (first_name or "").strip()
    return first.title() if first.isupper() else first


def _person_context(person: Person) -> dict:
    return {"first_name": display_first_name(person.first_name), "last_name": (person.last_name or "").upper()}


def invitation_context(session: Session, inv: Invitation, config: KiosqueConfig, kind: str = "invitation") -> dict:
    ks: KiosqueSession = inv.session
    mds = session.get(Structure, ks.mds_id)
    person = session.get(Person, inv.person_id)
    days = int(kind.split("_")[1]) if kind.startswith("reminder_") else None
    return {**_person_context(person), "session_date": french_date(ks.starts_at.date()),
            "session_time": french_time(ks.starts_at.time()), "place": ks.place, "mds_name": mds.name if mds else "",
            "phone": config.contact_phone or (mds.phone if mds and mds.phone else "votre Maison des Solidarités"),
            "what_to_bring": list(config.what_to_bring), "days": days, "invited_on": french_date(inv.invited_on)}


def notification_context(session: Session, orientation: Orientation, config: KiosqueConfig) -> dict:
    person = session.get(Person, orientation.person_id)
    structure = session.get(Structure, orientation.structure_id) if orientation.structure_id else None
    mds_id = session.scalar(select(Household.mds_id).where(Household.id == person.household_id))
    mds = session.get(Structure, mds_id) if mds_id else None
    return {**_person_context(person), "referent_label": REFERENT_LABELS.get(orientation.referent_type,
                                                                             orientation.referent_type),
            "structure_name": structure.name if structure else "",
            "structure_address": structure.address if structure and structure.address else "",
            "structure_phone": structure.phone if structure and structure.phone else "",
            "decided_on": french_date(orientation.validated_on or orientation.decided_on),
            "algorithmic": bool(orientation.algorithmic and orientation.origin == "auto"),
            "phone": config.contact_phone or (mds.phone if mds and mds.phone else "votre Maison des Solidarités")}


def message_context(session: Session, m: Message, config: KiosqueConfig) -> dict:
    if m.invitation_id:
        return invitation_context(session, session.get(Invitation, m.invitation_id), config, m.kind)
    if m.orientation_id:
        return notification_context(session, session.get(Orientation, m.orientation_id), config)
    raise SendError("message sans invitation ni orientation", permanent=True)


# --------------------------------------------------------------------------- gateways

class SmtpEmailGateway:
    """Real SMTP (RSA_SMTP_HOST/PORT/USER/PASSWORD/STARTTLS); one connection per outbox run."""

    channel = "email"

    def __init__(self, settings: Settings, timeout: float = 30):
        self.settings, self.timeout, self._smtp = settings, timeout, None

    def _connect(self):
        if self._smtp is None:
            s = self.settings
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            self._smtp = smtp
        return self._smtp

    def send(self, m: Message) -> str | None:
        email = EmailMessage()
        email["From"] = self.settings.mail_from
        email["To"] = m.recipient
        email["Subject"] = m.subject or "Département de la Haute-Garonne"
        email["Date"] = formatdate(localtime=True)
        email["Message-ID"] = make_msgid(idstring=f"rsa-{m.id}")
        email.set_content(m.body or "")
        try:
            self._connect().send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"destinataire refusé: {exc.recipients}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SendError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=500 <= exc.smtp_code < 600) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SendError(f"SMTP indisponible: {exc.__class__.__name__}: {exc}") from exc
        return email["Message-ID"]

    def close(self):
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._smtp = None


class FileEmailGateway:
    """Writes each e-mail as a real .eml file under OUTBOX/email (demo, or no SMTP server)."""

    channel = "email"

    def __init__(self, settings: Settings):
        self.settings, self.dir = settings, Path(settings.outbox_dir) / "email"

    def send(self, m: Message) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        email = EmailMessage()
        email["From"], email["To"] = self.settings.mail_from, m.recipient
        email["Subject"] = m.subject or ""
        email.set_content(m.body or "")
        path = self.dir / f"message-{m.id}.eml"
        path.write_bytes(bytes(email))
        return str(path)

    def close(self):
        pass


class HttpSmsGateway:
    """POST {"to", "text", "reference"} as JSON with a bearer token to RSA_SMS_URL."""

    channel = "sms"

    def __init__(self, url: str, token: str, timeout: float = 20):
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, m: Message) -> str | None:
        data = json.dumps({"to": m.recipient, "text": m.body, "reference": f"rsa-{m.id}"}).encode()
        req = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                body = resp.read(4096)
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise SendError(f"passerelle SMS: HTTP {exc.code}", permanent=permanent) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SendError(f"passerelle SMS injoignable: {exc}") from exc
        try:
            return str(json.loads(body or b"{}").get("id") or "") or None
        except (ValueError, AttributeError):
            return None

    def close(self):
        pass


class FileSmsGateway:
    """The default SMS gateway: one JSON file per SMS under OUTBOX/sms, for a later upload."""

    channel = "sms"

    def __init__(self, settings: Settings):
        self.dir = Path(settings.outbox_dir) / "sms"

    def send(self, m: Message) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"sms-{m.id}.json"
        path.write_text(json.dumps({"to": m.recipient, "text": m.body, "reference": f"rsa-{m.id}"},
                                   ensure_ascii=False), encoding="utf-8")
        return str(path)

    def close(self):
        pass


class LetterGateway:
    """Letters due in one outbox run are printed together: one batch PDF under OUTBOX/letters
    (pages in message id order); a letter is "sent" once the batch is written."""

    channel = "letter"

    def __init__(self, settings: Settings, session: Session | None = None, config: KiosqueConfig | None = None):
        self.dir, self.session, self.config = Path(settings.outbox_dir) / "letters", session, config
        self.pending: list = []

    def send(self, m: Message) -> None:
        from kiosque import letters

        self.pending.append((m, letters.letter_for_message(self.session, m, self.config)))

    def flush(self, now: dt.datetime) -> Path | None:
        """Write the batch PDF of the pending letters; returns its path (None when nothing was due)."""
        from kiosque import letters

        if not self.pending:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        first, last = self.pending[0][0].id, self.pending[-1][0].id
        path = self.dir / f"courriers-{now:%Y%m%d-%H%M%S}-{first}-{last}.pdf"
        try:
            path.write_bytes(letters.render_pdf([letter for _, letter in self.pending]))
        except OSError as exc:
            raise SendError(f"écriture du lot de courriers impossible: {exc}") from exc
        for m, _ in self.pending:
            m.document_path = str(path)
        return path

    def close(self):
        self.pending = []


def gateways_for(settings: Settings, *, email: str = "smtp", sms: str | None = None) -> dict:
    """email: "smtp" or "file"; sms: "http" when RSA_SMS_URL is set, else "file" (default)."""
    sms = sms or ("http" if settings.sms_url else "file")
    return {
        "email": SmtpEmailGateway(settings) if email == "smtp" else FileEmailGateway(settings),
        "sms": HttpSmsGateway(settings.sms_url, settings.sms_token) if sms == "http" else FileSmsGateway(settings),
        "letter": LetterGateway(settings),
    }


# --------------------------------------------------------------------------- queueing

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
        .where(Invitation.status == "pending", KiosqueSession.status == "planned",
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
        chans = (["email"] if email else []) + (["sms"] if is_mobile(phone, kind) else [])
        for ch in chans:
            created.append(Message(person_id=inv.person_id, invitation_id=inv.id, kind=f"reminder_{n}", channel=ch,
                                   status="queued", send_on=as_of))
    session.add_all(created)
    session.flush()
    fill_recipients(session, created)
    return len(created)


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
        if (channel == "email" and not person.email) or (channel == "sms" and not is_mobile(person.phone,
                                                                                          person.phone_kind)):
            channel = "letter"  # the requested channel cannot reach the person
        m = Message(person_id=o.person_id, orientation_id=o.id, kind="notification", channel=channel,
                    status="queued", send_on=n.notified_on)
        session.add(m)
        created.append((n, m))
    session.flush()
    fill_recipients(session, [m for _, m in created])
    for n, m in created:
        n.message_id = m.id
    session.flush()
    return len(created)


# --------------------------------------------------------------------------- sending

def process_outbox(session: Session, settings: Settings, *, as_of: dt.date, now: dt.datetime | None = None,
                   gateways: dict | None = None, config: KiosqueConfig | None = None, limit: int | None = None,
                   commit: bool = False, progress=None) -> dict:
    """Send the queued messages due (send_on ≤ as_of, next attempt ≤ now). With commit=True each message's
    outcome is committed at once, so that a crash never sends a message twice. progress(total, step) is
    called once with step 0, then once per message (the CLI's progress bar)."""
    config = config or KiosqueConfig.from_env()
    now = now or (utcnow() if as_of >= dt.date.today() else dt.datetime.combine(as_of, dt.time(23, 59)))
    gateways = gateways or gateways_for(settings)
    letter = gateways.get("letter")
    if isinstance(letter, LetterGateway):
        letter.session, letter.config = session, config
    env = template_env()
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
            outcome = _send_one(session, m, gateways, env, config, now)
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
                    counts[_failed(m, exc, config, now)] += 1
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


def _send_one(session, m: Message, gateways, env, config: KiosqueConfig, now: dt.datetime) -> str:
    if m.invitation_id:
        inv = session.get(Invitation, m.invitation_id)
        # (a cancellation notice is about an invitation that is no longer pending)
        if inv is None or (inv.status != "pending" and m.kind != "invitation_cancelled"):
            m.status, m.last_error = "cancelled", "invitation plus en attente"
            return "cancelled"
        if inv.session.starts_at <= now:
            m.status, m.last_error = "cancelled", "session déjà commencée"
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
        if m.channel != "letter":
            m.subject, m.body = render(m.kind, m.channel, message_context(session, m, config), env)
        gateway.send(m)
    except SendError as exc:
        return _failed(m, exc, config, now)
    except KiosqueError as exc:  # the message cannot be built (its invitation or orientation is gone)
        return _failed(m, SendError(str(exc), permanent=True), config, now)
    if isinstance(gateway, LetterGateway):
        return "batched"
    _mark_sent(session, m, now)
    return "sent"


def _mark_sent(session: Session, m: Message, now: dt.datetime) -> None:
    m.status, m.sent_at, m.next_attempt_at, m.last_error = "sent", now, None, None
    if m.kind == "notification" and m.orientation_id:
        o = session.get(Orientation, m.orientation_id)
        if o is not None and o.notified_on is None:
            o.notified_on = now.date()


def _failed(m: Message, exc: SendError, config: KiosqueConfig, now: dt.datetime) -> str:
    """Permanent → bounced; transient → retry later (exponential backoff) or failed after the last attempt."""
    m.last_error = str(exc)[:2000]
    if exc.permanent:
        m.status = "bounced"
        return "bounced"
    if m.attempts >= config.max_send_attempts:
        m.status, m.next_attempt_at = "failed", None
        return "failed"
    m.next_attempt_at = now + dt.timedelta(minutes=config.backoff_minutes * 2 ** (m.attempts - 1))
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
    from sqlalchemy import func

    return {f"{ch}:{st}": n for ch, st, n in session.execute(
        select(Message.channel, Message.status, func.count(Message.id)).group_by(Message.channel, Message.status))}
