"""Phoning before a kiosque: the call list as an xlsx workbook, and reading the filled list back.

The list carries the invitation number (the key read back), name, phone, session, an outcome
dropdown (data validation) and a notes column. No NIR, no address.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import phonenumbers
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Person
from kiosque.models import Invitation, KiosqueSession
from kiosque.service import KiosqueError, record_phoning
from kiosque.vocabulary import InvitationStatus, PhoningOutcome
from referents.cells import append_safe
from referents.models import Structure

OUTCOME_LABELS = PhoningOutcome.labels()  # the drop-down's texts, in the enum's order
LABEL_TO_OUTCOME = {v.lower(): k for k, v in OUTCOME_LABELS.items()} | {k: k for k in OUTCOME_LABELS}
HEADERS = ("N° invitation", "Nom", "Prénom", "Téléphone", "Session", "Déjà appelé(e)", "Résultat de l'appel",
           "Notes")


def display_phone(phone: str | None) -> str:
    if not phone:
        return ""
    try:
        return phonenumbers.format_number(phonenumbers.parse(phone, "FR"), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return phone


def write_call_list(session: Session, session_id: int, path: Path | str) -> dict:
    ks = session.get(KiosqueSession, session_id)
    if ks is None:
        raise KiosqueError(f"session {session_id} inconnue")
    mds = session.get(Structure, ks.mds_id)
    label = f"{ks.starts_at:%d/%m/%Y %H:%M} — {mds.name if mds else ''} — {ks.place}"
    rows = session.execute(
        select(Invitation, Person.last_name, Person.first_name, Person.phone)
        .join(Person, Person.id == Invitation.person_id)
        .where(Invitation.session_id == session_id, Invitation.status == InvitationStatus.PENDING)
        .order_by(Person.last_name, Person.first_name, Invitation.id)).all()
    wb = Workbook()
    ws = wb.active
    ws.title = "Appels"
    ws.append(HEADERS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
    for inv, last, first, phone in rows:
        append_safe(ws, [inv.id, (last or "").upper(), first or "", display_phone(phone), label,
                         OUTCOME_LABELS.get(inv.phoning_outcome, "") if inv.phoning_outcome else "",
                         None, inv.phoning_notes or None])
    choices = DataValidation(type="list", formula1='"' + ",".join(OUTCOME_LABELS.values()) + '"',
                             allow_blank=True, showDropDown=False)
    choices.error, choices.errorTitle = "Choisissez un résultat dans la liste", "Résultat inconnu"
    choices.prompt, choices.promptTitle = "Résultat de l'appel", "Phoning"
    ws.add_data_validation(choices)
    choices.add(f"G2:G{max(len(rows) + 1, 2) + 200}")
    for col, width in zip("ABCDEFGH", (13, 22, 18, 16, 48, 15, 22, 50), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    if isinstance(path, str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)  # a path or a binary file object (the API streams it)
    return {"session_id": session_id, "rows": len(rows), "path": str(path)}


def read_call_results(session: Session, path: Path | str, *, on: dt.date, user_id: int | None = None) -> dict:
    """Record every filled outcome; rows without an outcome are skipped, bad rows reported (per row)."""
    wb = load_workbook(path, read_only=True, data_only=True)
    ws = wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = [str(h or "").strip() for h in next(rows, ())]
    try:
        col_id, col_out, col_notes = (header.index(HEADERS[0]), header.index(HEADERS[6]), header.index(HEADERS[7]))
    except ValueError as exc:
        raise KiosqueError(f"{path}: colonnes attendues absentes ({', '.join(HEADERS)})") from exc
    result = {"recorded": 0, "skipped": 0, "errors": []}
    for n, row in enumerate(rows, start=2):
        if not row or all(v in (None, "") for v in row):
            continue
        outcome_raw = str(row[col_out] or "").strip() if col_out < len(row) else ""
        if not outcome_raw:
            result["skipped"] += 1
            continue
        outcome = LABEL_TO_OUTCOME.get(outcome_raw.lower())
        if outcome is None:
            result["errors"].append({"row": n, "error": f"résultat inconnu {outcome_raw!r}"})
            continue
        try:
            inv_id = int(row[col_id])
        except (TypeError, ValueError):
            result["errors"].append({"row": n, "error": f"n° d'invitation illisible {row[col_id]!r}"})
            continue
        notes = row[col_notes] if col_notes < len(row) else None
        try:
            record_phoning(session, inv_id, outcome, on=on, notes=str(notes) if notes not in (None, "") else None,
                           user_id=user_id)
        except KiosqueError as exc:
            result["errors"].append({"row": n, "error": str(exc)})
            continue
        result["recorded"] += 1
    wb.close()
    return result
