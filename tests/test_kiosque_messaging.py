"""Outbox: real SMTP (aiosmtpd), SMS over HTTP (local http.server), files, retries, reminders, letters."""

from __future__ import annotations

import datetime as dt
import email
import io
import json
import socket
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from cases.models import CaseEvent
from kiosque import letters, messaging, phoning
from kiosque import service as ks
from kiosque.models import Invitation, Message
from orientation import notices
from orientation.messaging import outbox, templates
from orientation.models import Notification, Orientation
from tests.kiosque_helpers import AS_OF, awaiting, kiosque, mds_id

D = dt.timedelta
NOW = dt.datetime.combine(AS_OF, dt.time(8, 0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping what it receives; refuses one address with a 550."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("inconnu@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


class SmsHandler(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Authorization"], json.loads(body)))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": f"gw-{len(type(self).received)}"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def sms_server():
    SmsHandler.received, SmsHandler.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), SmsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, SmsHandler
    server.shutdown()
    server.server_close()


def plan_one(session, **contact):
    s = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1), hour=9, minute=30)
    p = awaiting(session, clock_start=AS_OF - D(10), **contact)
    ks.plan(session, AS_OF)
    return s, p


def test_invitation_email_through_real_smtp(session, rt, smtp_server):
    inbox, port = smtp_server
    s, p = plan_one(session, email="camille@exemple.fr")
    settings = rt.settings.with_(smtp_host="127.0.0.1", smtp_port=port)
    out = outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW)
    assert out["sent"] == 1
    mail_from, rcpt, msg = inbox.messages[0]
    assert rcpt == ["camille@exemple.fr"] and mail_from == settings.mail_from
    assert "Kiosque Insertion" in msg["Subject"] and "mardi 1er décembre 2026" in msg["Subject"]
    body = msg.get_content()
    assert "9 h 30" in body and s.place in body and "05 34 33 00 00" in body and "pièce d'identité" in body
    m = session.scalar(select(Message))
    assert (m.status, m.attempts, m.recipient) == ("sent", 1, "camille@exemple.fr") and m.body.strip() == body.replace("\r\n", "\n").strip()
    # Nothing left to send.
    assert outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW)["sent"] == 0


def test_refused_recipient_is_bounced(session, rt, smtp_server):
    inbox, port = smtp_server
    plan_one(session, email="inconnu@exemple.fr")
    out = outbox.process_outbox(session, rt.settings.with_(smtp_host="127.0.0.1", smtp_port=port), as_of=AS_OF,
                                   now=NOW)
    m = session.scalar(select(Message))
    assert out["bounced"] == 1 and m.status == "bounced" and "refusé" in m.last_error and not inbox.messages


def test_unreachable_smtp_retries_with_backoff_then_fails(session, rt):
    plan_one(session, email="camille@exemple.fr")
    settings = rt.settings.with_(smtp_host="127.0.0.1", smtp_port=free_port())
    config = ks.KiosqueConfig(max_send_attempts=3, backoff_minutes=5)
    assert outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW, config=config)["retry"] == 1
    m = session.scalar(select(Message))
    assert m.status == "queued" and m.attempts == 1 and m.next_attempt_at == NOW + D(minutes=5)
    assert "SMTP indisponible" in m.last_error
    # Not due yet: untouched.
    assert outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW + D(minutes=4), config=config) == \
        {"sent": 0, "retry": 0, "failed": 0, "bounced": 0, "cancelled": 0}
    outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW + D(minutes=5), config=config)
    assert m.attempts == 2 and m.next_attempt_at == NOW + D(minutes=15)  # doubled
    out = outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW + D(minutes=15), config=config)
    assert out["failed"] == 1 and m.status == "failed" and m.attempts == 3


def test_sms_http_gateway(session, rt, sms_server):
    server, handler = sms_server
    plan_one(session, phone="+33612345678")
    settings = rt.settings.with_(sms_url=f"http://127.0.0.1:{server.server_port}/send", sms_token="jeton")
    out = outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW)
    assert out["sent"] == 1
    auth, payload = handler.received[0]
    assert auth == "Bearer jeton" and payload["to"] == "+33612345678"
    assert "Kiosque Insertion" in payload["text"] and "9 h 30" in payload["text"] and "1er décembre" in payload["text"]
    assert session.scalar(select(Message)).status == "sent"


@pytest.mark.parametrize(("status", "expected"), [(400, "bounced"), (503, "queued")])
def test_sms_http_gateway_errors(session, rt, sms_server, status, expected):
    server, handler = sms_server
    handler.status = status
    plan_one(session, phone="+33612345678")
    settings = rt.settings.with_(sms_url=f"http://127.0.0.1:{server.server_port}/send", sms_token="jeton")
    outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW)
    m = session.scalar(select(Message))
    assert m.status == expected and f"HTTP {status}" in m.last_error


def test_file_adapters_and_letter_in_outbox(session, rt, tmp_path):
    settings = rt.settings.with_(outbox_dir=str(tmp_path))
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    awaiting(session, clock_start=AS_OF - D(10), phone="+33612345678", email="a@exemple.fr")
    awaiting(session, clock_start=AS_OF - D(10), last_name="Aubert")
    awaiting(session, clock_start=AS_OF - D(10), last_name="Bastide")
    ks.plan(session, AS_OF)
    calls = []
    out = outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW, progress=lambda t, n: calls.append((t, n)),
                                   gateways=outbox.gateways_for(settings, email="file"))
    assert out["sent"] == 4 and calls[0] == (4, 0) and sum(n for _, n in calls) == 4
    sms = json.loads(next((tmp_path / "sms").glob("*.json")).read_text(encoding="utf-8"))
    assert sms["to"] == "+33612345678"
    eml = email.message_from_bytes(next((tmp_path / "email").glob("*.eml")).read_bytes(), policy=policy.default)
    assert eml["To"] == "a@exemple.fr" and "Kiosque" in eml["Subject"]
    # The letters of one run are one batch to print, a page per letter in message order.
    letters_sent = session.scalars(select(Message).where(Message.channel == "letter").order_by(Message.id)).all()
    assert [m.status for m in letters_sent] == ["sent", "sent"]
    assert letters_sent[0].document_path == letters_sent[1].document_path
    pages = PdfReader(letters_sent[0].document_path).pages
    assert len(pages) == 2 and "AUBERT" in pages[0].extract_text() and "BASTIDE" in pages[1].extract_text()
    assert all("1er décembre 2026" in p.extract_text() and "Salle du kiosque, MDS-RANGUEIL" in p.extract_text()
               for p in pages)
    assert "Kiosque Insertion" in letters_sent[0].body


def test_reminders_j3_j1_by_digital_channels_only(session):
    kiosque(session, "MDS-RANGUEIL", AS_OF + D(7))
    digital = awaiting(session, clock_start=AS_OF - D(10), email="a@exemple.fr", phone="+33612345678")
    awaiting(session, clock_start=AS_OF - D(10))  # letter only: no reminder
    ks.plan(session, AS_OF)
    assert messaging.queue_reminders(session, AS_OF + D(3)) == 0  # J-4
    assert messaging.queue_reminders(session, AS_OF + D(4)) == 2  # J-3: e-mail + SMS
    assert messaging.queue_reminders(session, AS_OF + D(4)) == 0  # idempotent
    assert messaging.queue_reminders(session, AS_OF + D(6)) == 2  # J-1
    kinds = sorted((m.kind, m.channel) for m in session.scalars(select(Message).where(Message.kind.like("reminder%"))))
    assert kinds == [("reminder_1", "email"), ("reminder_1", "sms"), ("reminder_3", "email"), ("reminder_3", "sms")]
    assert {m.person_id for m in session.scalars(select(Message).where(Message.kind.like("reminder%")))} == {digital.id}
    subject, body = templates.render("reminder_1", "sms", {**_ctx(), "days": 1})
    assert "demain" in body


def _ctx():
    return {"first_name": "A", "last_name": "B", "session_date": "mardi 1er décembre 2026", "session_time": "9 h 30",
            "place": "ici", "mds_name": "MDS", "phone": "05", "what_to_bring": ["x"], "days": 3, "invited_on": ""}


def test_orientation_notifications_are_queued_and_linked(session, rt, tmp_path):
    p = awaiting(session, clock_start=AS_OF - D(10), email="n@exemple.fr", status="validated")
    o = session.scalar(select(Orientation).where(Orientation.person_id == p.id))
    o.referent_type, o.structure_id, o.validated_on = "mds", mds_id(session, "MDS-RANGUEIL"), AS_OF
    n1 = Notification(orientation_id=o.id, channel="email", notified_on=AS_OF)
    n2 = Notification(orientation_id=o.id, channel="sms", notified_on=AS_OF)  # no mobile → letter
    session.add_all([n1, n2])
    session.flush()
    assert notices.queue_notifications(session, AS_OF) == 2 and notices.queue_notifications(session, AS_OF) == 0
    assert n1.message_id and n2.message_id
    settings = rt.settings.with_(outbox_dir=str(tmp_path))
    out = outbox.process_outbox(session, settings, as_of=AS_OF, now=NOW,
                                   gateways=outbox.gateways_for(settings, email="file"))
    assert out["sent"] == 2
    m1, m2 = session.get(Message, n1.message_id), session.get(Message, n2.message_id)
    assert (m1.channel, m2.channel) == ("email", "letter")
    assert "Maison des Solidarités" in m1.body and "MDS Rangueil" in m1.body
    text = "".join(pg.extract_text() for pg in PdfReader(m2.document_path).pages)
    assert "orientation" in text


def test_session_letters_batch_and_no_nir(session, rt, tmp_path):
    s = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    people = [awaiting(session, clock_start=AS_OF - D(10), last_name=f"Dupré{i}", first_name="Élodie") for i in range(3)]
    people[0].nir_encrypted = rt.vault.encrypt("1850531555123")
    people[0].household.address_line, people[0].household.city = "12 rue des Lilas", "Toulouse"
    ks.plan(session, AS_OF)
    out = letters.write_session_letters(session, s.id, tmp_path)
    assert len(out["files"]) == 3
    batch = PdfReader(out["batch"])
    assert len(batch.pages) == 3
    text = "\n".join(pg.extract_text() for pg in batch.pages)
    assert text.count("mardi 1er décembre 2026") == 3 and text.count(s.place) == 3
    assert "DUPRÉ0" in text and "Élodie" in text and "12 rue des Lilas" in text and "05 34 33 00 00" in text
    assert "1850531555123" not in text and "185053" not in text
    single = PdfReader(out["files"][0])
    assert single.pdf_header.startswith("%PDF-") and "9 h 30" in single.pages[0].extract_text()


def test_phoning_list_and_results(session, tmp_path):
    s = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    a = awaiting(session, clock_start=AS_OF - D(10), phone="+33612345678", last_name="Abadie")
    b = awaiting(session, clock_start=AS_OF - D(10), phone="+33561000000", last_name="Bernard")
    awaiting(session, clock_start=AS_OF - D(10), last_name="Castex")
    ks.plan(session, AS_OF)
    path = tmp_path / "appels.xlsx"
    assert phoning.write_call_list(session, s.id, path)["rows"] == 3
    wb = load_workbook(path)
    ws = wb.active
    assert [c.value for c in ws[1]] == list(phoning.HEADERS)
    assert ws["B2"].value == "ABADIE" and ws["D2"].value == "06 12 34 56 78"
    dv = ws.data_validations.dataValidation[0]
    assert "Viendra" in dv.formula1 and "G2" in str(dv.sqref)
    ws["G2"], ws["H2"] = "Viendra", "garde d'enfant à prévoir"
    ws["G3"] = "Faux numéro"
    ws["G4"] = "peut-être"
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(buf.getvalue())
    out = phoning.read_call_results(session, path, on=AS_OF + D(2))
    assert out["recorded"] == 2 and out["errors"][0]["row"] == 4
    inv_a = session.scalar(select(Invitation).where(Invitation.person_id == a.id))
    inv_b = session.scalar(select(Invitation).where(Invitation.person_id == b.id))
    assert (inv_a.phoning_outcome, inv_a.phoning_notes) == ("will_come", "garde d'enfant à prévoir")
    assert inv_b.phoning_outcome == "wrong_number" and inv_b.phoned_on == AS_OF + D(2)
    assert session.scalar(select(CaseEvent).where(CaseEvent.kind == "kiosque.phoned",
                                                  CaseEvent.person_id == a.id)) is not None


def test_messages_of_past_or_settled_invitations_are_cancelled(session, rt, tmp_path):
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    awaiting(session, clock_start=AS_OF - D(10), email="late@exemple.fr")
    settled = awaiting(session, clock_start=AS_OF - D(10), phone="+33612345678")
    ks.plan(session, AS_OF)
    inv = session.scalar(select(Invitation).where(Invitation.person_id == settled.id))
    inv.status = "excused"
    settings = rt.settings.with_(outbox_dir=str(tmp_path))
    out = outbox.process_outbox(session, settings, as_of=dt.date(2026, 12, 2),
                                   now=dt.datetime(2026, 12, 2, 8, 0),
                                   gateways=outbox.gateways_for(settings, email="file"))
    assert out["cancelled"] == 2 and out["sent"] == 0
    reasons = sorted(m.last_error for m in session.scalars(select(Message)))
    assert reasons == ["invitation plus en attente", "session déjà commencée"]
    assert not (tmp_path / "email").exists()

