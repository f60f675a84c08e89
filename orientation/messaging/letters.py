"""Postal letters (PDF, fpdf2): the layout every printed message shares.

Plain French, never the NIR (a letter is built only from the name, the postal address and the
message's text). The font is the vendored DejaVu Sans (orientation/messaging/fonts, Bitstream Vera
licence) so that printing never depends on system fonts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from cases.models import Household, Person
from orientation.messaging.text import display_first_name

if TYPE_CHECKING:
    from fpdf import FPDF

FONT_DIR = Path(__file__).resolve().parent / "fonts"
SENDER = "Département de la Haute-Garonne"


class LetterError(ValueError):
    """A letter that cannot be produced; the message is user-facing French."""


@dataclass
class Letter:
    sender_lines: list[str]
    recipient_lines: list[str]
    dated: str
    body: str  # rendered template text: "Objet …" first, blank lines between paragraphs, "- " bullets


def _new_pdf() -> FPDF:
    """fpdf2 is loaded when a letter is made, not when this module is: with fontTools, PIL and numpy
    it weighs ~38 MB in every process that imports the package (the flow importer among them)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans-Latin.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold-Latin.ttf"))
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title("Courrier du Département de la Haute-Garonne")
    pdf.set_author(SENDER)
    pdf.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # reproducible bytes
    return pdf


def _write_letter(pdf: FPDF, letter: Letter) -> None:
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
            bold = line.startswith(("Objet", "Date :", "Lieu :", "## "))
            line = line.removeprefix("## ")  # a section heading of the body
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
        raise LetterError("aucun courrier à produire")
    pdf = _new_pdf()
    for letter in letters:
        _write_letter(pdf, letter)
    return bytes(pdf.output())


def recipient_lines(session: Session, person: Person) -> list[str]:
    """Name and postal address of the person, as printed in the window of the envelope."""
    h = session.get(Household, person.household_id) if person.household_id else None
    lines = [" ".join(x for x in (display_first_name(person.first_name), (person.last_name or "").upper()) if x)]
    if h is not None:
        if h.address_line:
            lines.extend(part.strip() for part in h.address_line.split("\n") if part.strip())
        town = " ".join(x for x in (h.postal_code, (h.city or "").upper()) if x)
        if town:
            lines.append(town)
    return lines


def sender_lines(mds, phone: str, service: str = "Kiosque Insertion") -> list[str]:
    """The Département, the service, the MDS (name and address) and the phone to call."""
    lines = [SENDER, service]
    if mds is not None:
        lines.append(mds.name)
        if mds.address and mds.address != mds.name:
            lines.append(mds.address)
    lines.append(f"Téléphone : {phone}")
    return lines


def write_pdf(path: Path, letters: list[Letter]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_pdf(letters))
    return path
