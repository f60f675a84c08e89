"""Transports of the outbox: e-mail through real SMTP (RSA_SMTP_*) or, without a server, to .eml
files; SMS through an HTTP gateway (RSA_SMS_URL + RSA_SMS_TOKEN) or to JSON files under
RSA_OUTBOX_DIR; letters printed together as one batch PDF per outbox run."""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from config.settings import Settings
from orientation.messaging.letters import render_pdf
from orientation.messaging.models import Message


class SendError(Exception):
    """A delivery failure. permanent=True means retrying is useless (bounced)."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


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
    (pages in message id order); a letter is "sent" once the batch is written. `compose(m)` gives
    a message's Letter (set by the outbox run)."""

    channel = "letter"

    def __init__(self, settings: Settings, compose=None):
        self.dir, self.compose = Path(settings.outbox_dir) / "letters", compose
        self.pending: list = []

    def send(self, m: Message) -> None:
        self.pending.append((m, self.compose(m)))

    def flush(self, now: dt.datetime) -> Path | None:
        """Write the batch PDF of the pending letters; returns its path (None when nothing was due)."""
        if not self.pending:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        first, last = self.pending[0][0].id, self.pending[-1][0].id
        path = self.dir / f"courriers-{now:%Y%m%d-%H%M%S}-{first}-{last}.pdf"
        try:
            path.write_bytes(render_pdf([letter for _, letter in self.pending]))
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
