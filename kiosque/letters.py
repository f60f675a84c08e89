"""Postal letters (PDF, fpdf2): one per person and one batch per session for printing.

Plain French, the date, the place, what to bring and a phone number — never the NIR (a letter is
built only from the name, the postal address and the session). The font is the vendored DejaVu Sans
(kiosque/fonts, Bitstream Vera licence) so that printing never depends on system fonts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Household, Person
from kiosque.models import Invitation, KiosqueSession, Message
from kiosque.service import KiosqueConfig, KiosqueError
from orientation.models import Orientation
from referents.models import Structure

FONT_DIR = Path(__file__).resolve().parent / "fonts"
SENDER = "Département de la Haute-Garonne"


@dataclass
class Letter:
    sender_lines: list[str]
    recipient_lines: list[str]
    dated: str
    body: str  # rendered template text: "Objet …" first, blank lines between paragraphs, "- " bullets


class _Pdf(FPDF):
    def __init__(self):
        super().__init__(format="A4")
        self.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans-Latin.ttf"))
        self.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold-Latin.ttf"))
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(True, margin=18)
        self.set_title("Courrier du Département de la Haute-Garonne")
        self.set_author(SENDER)
        self.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # reproducible bytes


def _write_letter(pdf: _Pdf, letter: Letter) -> None:
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 11)
    for i, line in enumerate(letter.sender_lines):
        pdf.set_font("DejaVu", "B" if i == 0 else "", 11 if i == 0 else 9)
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("DejaVu", "", 11)
    for line in letter.recipient_lines:
        pdf.set_x(110)
        pdf.cell(80, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_x(110)
    pdf.cell(80, 5.5, letter.dated, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for block in letter.body.strip().split("\n\n"):
        for line in block.strip().split("\n"):
            line = line.rstrip()
            if not line:
                continue
            bold = line.startswith(("Objet", "Date :", "Lieu :"))
            pdf.set_font("DejaVu", "B" if bold else "", 11)
            if line.startswith("- "):
                pdf.set_x(pdf.l_margin + 6)
                pdf.multi_cell(width - 6, 5.5, "• " + line[2:], new_x="LMARGIN", new_y="NEXT", align="L")
            else:
                pdf.multi_cell(width, 5.5, line, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(3.5)
    pdf.ln(4)
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(width, 5.5, "Le Président du Conseil départemental,\npar délégation, le service Insertion",
                   new_x="LMARGIN", new_y="NEXT")


def render_pdf(letters: list[Letter]) -> bytes:
    if not letters:
        raise KiosqueError("aucun courrier à produire")
    pdf = _Pdf()
    for letter in letters:
        _write_letter(pdf, letter)
    return bytes(pdf.output())


def _recipient(session: Session, person: Person) -> list[str]:
    h = session.get(Household, person.household_id) if person.household_id else None
    from kiosque.messaging import display_first_name

    lines = [" ".join(x for x in (display_first_name(person.first_name), (person.last_name or "").upper()) if x)]
    if h is not None:
        if h.address_line:
            lines.extend(part.strip() for part in h.address_line.split("\n") if part.strip())
        town = " ".join(x for x in (h.postal_code, (h.city or "").upper()) if x)
        if town:
            lines.append(town)
    return lines


def _sender(mds: Structure | None, phone: str) -> list[str]:
    lines = [SENDER, "Kiosque Insertion"]
    if mds is not None:
        lines.append(mds.name)
        if mds.address and mds.address != mds.name:
            lines.append(mds.address)
    lines.append(f"Téléphone : {phone}")
    return lines


def invitation_letter(session: Session, inv: Invitation, config: KiosqueConfig, kind: str | None = None,
                      dated: dt.date | None = None) -> Letter:
    from kiosque.messaging import french_date, invitation_context, render

    kind = kind or ("reinvitation" if inv.attempt > 1 else "invitation")
    ctx = invitation_context(session, inv, config, kind)
    _, body = render(kind, "letter", ctx)
    mds = session.get(Structure, inv.session.mds_id)
    person = session.get(Person, inv.person_id)
    return Letter(_sender(mds, ctx["phone"]), _recipient(session, person),
                  f"Le {french_date(dated or inv.invited_on)}", body)


def notification_letter(session: Session, orientation: Orientation, config: KiosqueConfig,
                        dated: dt.date | None = None) -> Letter:
    from kiosque.messaging import french_date, notification_context, render

    ctx = notification_context(session, orientation, config)
    _, body = render("notification", "letter", ctx)
    person = session.get(Person, orientation.person_id)
    mds_id = session.scalar(select(Household.mds_id).where(Household.id == person.household_id))
    mds = session.get(Structure, mds_id) if mds_id else None
    return Letter(_sender(mds, ctx["phone"]), _recipient(session, person),
                  f"Le {french_date(dated or orientation.validated_on or orientation.decided_on)}", body)


def letter_for_message(session: Session, m: Message, config: KiosqueConfig | None = None) -> Letter:
    """The letter of one outbox message (invitation, re-invitation or orientation notification);
    the message keeps its text (subject = first line, body)."""
    config = config or KiosqueConfig.from_env()
    if m.invitation_id:
        letter = invitation_letter(session, session.get(Invitation, m.invitation_id), config, m.kind,
                                   dated=m.send_on)
    elif m.orientation_id:
        letter = notification_letter(session, session.get(Orientation, m.orientation_id), config, dated=m.send_on)
    else:
        raise KiosqueError(f"message {m.id}: ni invitation ni orientation")
    m.subject, m.body = letter.body.split("\n", 1)[0], letter.body
    return letter


def write_message_letter(session: Session, m: Message, path: Path, config: KiosqueConfig | None = None) -> Path:
    """The PDF of one outbox letter alone."""
    letter = letter_for_message(session, m, config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_pdf([letter]))
    return path


def _session_letters(session: Session, session_id: int, config: KiosqueConfig) -> tuple[KiosqueSession, list]:
    ks = session.get(KiosqueSession, session_id)
    if ks is None:
        raise KiosqueError(f"session {session_id} inconnue")
    invitations = list(session.scalars(
        select(Invitation).join(Person, Person.id == Invitation.person_id)
        .where(Invitation.session_id == session_id, Invitation.status == "pending")
        .order_by(Person.last_name, Person.first_name, Invitation.id)))
    if not invitations:
        raise KiosqueError(f"aucune invitation en attente pour la session {session_id}")
    return ks, [(inv, invitation_letter(session, inv, config)) for inv in invitations]


def session_batch_pdf(session: Session, session_id: int, config: KiosqueConfig | None = None) -> bytes:
    """The batch PDF of a session (one page per invited person), for printing."""
    _, pairs = _session_letters(session, session_id, config or KiosqueConfig.from_env())
    return render_pdf([letter for _, letter in pairs])


def write_session_letters(session: Session, session_id: int, outdir: Path | str,
                          config: KiosqueConfig | None = None) -> dict:
    """One PDF per invited person and one batch PDF of the whole session, under OUTDIR.

    File names carry the invitation id, never a name or an identifier of the person."""
    ks, pairs = _session_letters(session, session_id, config or KiosqueConfig.from_env())
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for inv, letter in pairs:
        path = outdir / f"session-{session_id}-invitation-{inv.id}.pdf"
        path.write_bytes(render_pdf([letter]))
        files.append(path)
    batch = outdir / f"session-{session_id}-{ks.starts_at:%Y-%m-%d}-lot.pdf"
    batch.write_bytes(render_pdf([letter for _, letter in pairs]))
    return {"session_id": session_id, "files": files, "batch": batch}
