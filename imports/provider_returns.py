"""Monthly return files of the ActiPro providers: the people they follow and what happened.

Each row names a person (our id, or NIR, or CAF number + role) and gives the first appointment
(date, status), the contract (signature date, weekly hours), the current step and the exit (date,
reason). Facts are recorded through the path services of `cases.service` (source "provider"),
the very functions the API uses, so a return file and the API produce the same events.

A provider only updates people *currently oriented to its own structure* (a validated
Orientation whose structure is the provider's): any other row is rejected with that reason.
Monthly files repeat earlier facts: what is already known is counted unchanged, not re-recorded.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import nir as nirlib
from cases import service as cases_service
from cases.models import CaseEvent, Contract, Exit, Person
from config import clock
from imports.identity import match_one
from imports.spreadsheets import locate_columns, read_sheet
from imports.tabular import FileError, RowError, cell, check_controls, reject_row, run_batch
from imports.values import (
    is_blank,
    normalise_header,
    parse_date,
    parse_datetime,
    parse_hours,
    parse_organism_number,
    parse_role,
    text,
)
from orientation.models import Orientation
from referents.service import structure_by_code

APPOINTMENT_STATUSES = {"honoured": "Honoré", "no_show": "Absent non excusé", "excused": "Excusé"}
EXTRA_STATUS_ALIASES = {"honore": "honoured", "present": "honoured", "absent": "no_show", "absence": "no_show",
                        "no show": "no_show", "excuse": "excused", "absence excusee": "excused"}

# Column of the template → our field. The first label is the one written in the template.
COLUMNS = {
    "person_id": ["Identifiant RSA31", "Identifiant", "ID"],
    "caf_number": ["N° allocataire", "N° CAF", "Matricule"],
    "organism": ["Organisme"],
    "role": ["Rôle", "Role"],
    "nir": ["NIR"],
    "last_name": ["Nom"],
    "first_name": ["Prénom"],
    "birth_date": ["Date de naissance"],
    "appointment_at": ["Date du 1er rendez-vous", "Date premier rendez-vous"],
    "appointment_status": ["Statut du 1er rendez-vous", "Statut premier rendez-vous"],
    "contract_signed_on": ["Date de signature du contrat", "Date signature contrat"],
    "weekly_hours": ["Heures hebdomadaires", "Heures par semaine"],
    "hours_reduction_reason": ["Motif de réduction des heures"],
    "step": ["Étape actuelle", "Etape"],
    "exit_on": ["Date de sortie"],
    "exit_reason": ["Motif de sortie"],
    "details": ["Précisions", "Commentaire"],
}
TEMPLATE_HELP = {
    "person_id": "Identifiant de la personne dans l'outil du Département (ou n° allocataire + rôle, ou NIR)",
    "appointment_status": "Honoré, Absent non excusé ou Excusé",
    "weekly_hours": "15 par défaut; moins seulement avec un motif légal",
    "exit_reason": "Motif dans la liste",
}
MAPPING = {"name": "provider-return", "organism": "CAF", "external_ids": {}, "required": [],
           "fields": COLUMNS}


def _choice(value, choices: dict[str, str], extra: dict[str, str], what: str) -> str | None:
    s = text(value)
    if s is None:
        return None
    norm = normalise_header(s)
    for code, label in choices.items():
        if norm in (normalise_header(code), normalise_header(label)):
            return code
    if norm in extra:
        return extra[norm]
    raise ValueError(f"{what} inconnu « {s} » (attendu: {', '.join(choices.values())})")


def exit_reason_labels() -> dict[str, str]:
    return {code: spec["label"] for code, spec in cases_service.exit_reasons().items() if not spec.get("flow_only")}


def hours_reduction_labels() -> dict[str, str]:
    return dict(cases_service.procedure()["contract"]["hours_reduction_reasons"])


# --- template ---------------------------------------------------------------------------------------

# The template a provider receives never has a NIR column (the NIR never leaves the Département's
# side); a return file carrying one is still read, for the Département's own files.
TEMPLATE_FIELDS = [f for f in COLUMNS if f != "nir"]


def caseload_rows(session: Session, structure_id: int) -> list[dict]:
    """The people currently oriented to a structure, on an open path, as rows of the template
    (identifiers and names only: what the provider already knows)."""
    from cases.models import Household
    from cases.models import Path as PathModel

    q = (select(Person.id, Person.last_name, Person.first_name, Person.birth_date, Person.role,
                Household.matricule, Household.organism)
         .join(Orientation, Orientation.person_id == Person.id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Orientation.status == "validated", Orientation.structure_id == structure_id,
                select(PathModel.id).where(PathModel.person_id == Person.id, PathModel.closed_on.is_(None))
                .exists())
         .order_by(Person.last_name, Person.first_name, Person.id).distinct())
    return [{"person_id": r.id, "caf_number": r.matricule, "organism": r.organism, "role": r.role,
             "last_name": r.last_name, "first_name": r.first_name, "birth_date": r.birth_date}
            for r in session.execute(q)]


def write_template(out: Path | str, rows: list[dict] | None = None) -> Path:
    """The expected xlsx, with dropdowns (data validation) for statuses, reasons, organism and role;
    pre-filled with `rows` (see caseload_rows) when given."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    out = Path(out)
    wb = Workbook()
    ws = wb.active
    ws.title = "Retour"
    lists = wb.create_sheet("Listes")
    fields = TEMPLATE_FIELDS
    for j, field in enumerate(fields, start=1):
        cell = ws.cell(row=1, column=j, value=COLUMNS[field][0])
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        if field in TEMPLATE_HELP:
            cell.comment = Comment(TEMPLATE_HELP[field], "RSA31")
        ws.column_dimensions[get_column_letter(j)].width = max(14, len(COLUMNS[field][0]) + 2)
    ws.freeze_panes = "A2"
    choices = {"appointment_status": list(APPOINTMENT_STATUSES.values()),
               "exit_reason": list(exit_reason_labels().values()),
               "hours_reduction_reason": list(hours_reduction_labels().values()),
               "organism": ["CAF", "MSA"], "role": ["DEM", "CJT"]}
    for k, (field, values) in enumerate(choices.items(), start=1):
        letter = get_column_letter(k)
        lists.cell(row=1, column=k, value=COLUMNS[field][0]).font = Font(bold=True)
        for i, v in enumerate(values, start=2):
            lists.cell(row=i, column=k, value=v)
        col = get_column_letter(fields.index(field) + 1)
        dv = DataValidation(type="list", formula1=f"=Listes!${letter}$2:${letter}${len(values) + 1}",
                            allow_blank=True, showErrorMessage=True, errorTitle="Valeur non prévue",
                            error=f"Choisissez une valeur de la liste ({COLUMNS[field][0]}).")
        dv.add(f"{col}2:{col}5000")
        ws.add_data_validation(dv)
    for field in ("appointment_at", "contract_signed_on", "exit_on", "birth_date"):
        col = get_column_letter(fields.index(field) + 1)
        dv = DataValidation(type="date", operator="greaterThan", formula1="1", allow_blank=True,
                            showErrorMessage=True, error="Saisissez une date (JJ/MM/AAAA).")
        dv.add(f"{col}2:{col}5000")
        ws.add_data_validation(dv)
    for i, row in enumerate(rows or [], start=2):
        for j, field in enumerate(fields, start=1):
            value = row.get(field)
            if value is not None:
                cell = ws.cell(row=i, column=j, value=value)
                if isinstance(value, dt.date):
                    cell.number_format = "DD/MM/YYYY"
    lists.sheet_state = "hidden"
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out


# --- import -----------------------------------------------------------------------------------------

def _parse(values: dict, labels: dict[str, str], vault) -> dict:
    check_controls(values, labels)
    run = functools.partial(cell, values, labels)
    out = {}
    pid = text(values.get("person_id"))
    if pid is not None and not pid.isdigit():
        raise RowError(labels["person_id"], f"identifiant invalide « {pid} »")
    out["person_id"] = int(pid) if pid else None
    organism = (text(values.get("organism")) or "CAF").upper()
    if organism not in ("CAF", "MSA"):
        raise RowError(labels.get("organism"), f"organisme inconnu « {organism} »")
    number = run("caf_number", lambda v: parse_organism_number(v, organism))
    out["organism"], out["matricule"] = number or (None, None)
    out["role"] = run("role", parse_role)
    nir13 = run("nir", nirlib.normalise)
    out["nir_hash"] = vault.hash(nir13) if nir13 else None
    out["last_name"], out["first_name"] = text(values.get("last_name")), text(values.get("first_name"))
    out["birth_date"] = run("birth_date", parse_date)
    out["appointment_at"] = run("appointment_at", parse_datetime)
    out["appointment_status"] = run("appointment_status", lambda v: _choice(
        v, APPOINTMENT_STATUSES, EXTRA_STATUS_ALIASES, "statut de rendez-vous"))
    if out["appointment_status"] and not out["appointment_at"]:
        raise RowError(labels.get("appointment_at"), "statut de rendez-vous sans date de rendez-vous")
    out["contract_signed_on"] = run("contract_signed_on", parse_date)
    out["weekly_hours"] = run("weekly_hours", parse_hours)
    out["hours_reduction_reason"] = run("hours_reduction_reason", lambda v: _choice(
        v, hours_reduction_labels(), {}, "motif de réduction des heures"))
    if out["weekly_hours"] is not None and not out["contract_signed_on"]:
        raise RowError(labels.get("contract_signed_on"), "heures hebdomadaires sans date de signature du contrat")
    out["step"] = text(values.get("step"))
    out["exit_on"] = run("exit_on", parse_date)
    out["exit_reason"] = run("exit_reason", lambda v: _choice(v, exit_reason_labels(), {}, "motif de sortie"))
    if out["exit_on"] and not out["exit_reason"]:
        raise RowError(labels.get("exit_reason"), "date de sortie sans motif de sortie")
    if out["exit_reason"] and not out["exit_on"]:
        raise RowError(labels.get("exit_on"), "motif de sortie sans date de sortie")
    out["details"] = text(values.get("details"))
    if not (out["person_id"] or out["nir_hash"] or out["matricule"]):
        raise RowError(None, "personne non identifiée: identifiant, NIR ou n° allocataire + rôle nécessaire")
    return out


def _find_person(session: Session, row: dict) -> int | None:
    if row["person_id"]:
        return row["person_id"] if session.get(Person, row["person_id"]) is not None else None
    match = match_one(session, nir_hash=row["nir_hash"], birth_date=row["birth_date"], organism=row["organism"],
                      matricule=row["matricule"], role=row["role"], last_name=row["last_name"],
                      first_name=row["first_name"])
    return None if match.conflict else match.person_id


def oriented_here(session: Session, person_id: int, structure_id: int) -> bool:
    return session.scalar(select(Orientation.id).where(
        Orientation.person_id == person_id, Orientation.status == "validated",
        Orientation.structure_id == structure_id).limit(1)) is not None


def apply_row(session: Session, person_id: int, structure_id: int, row: dict, *, as_of: dt.date,
              author_id: int | None = None) -> list[str]:
    """Record the facts of one row through the cases services; returns what was new."""
    done = []
    if row["appointment_at"]:
        from cases.models import Appointment

        status = row["appointment_status"] or "planned"
        existing = session.scalar(select(Appointment).where(Appointment.person_id == person_id,
                                                            Appointment.scheduled_at == row["appointment_at"]))
        if existing is None or existing.status != status:
            cases_service.record_appointment(session, person_id, row["appointment_at"], status, kind="first",
                                             structure_id=structure_id, source="provider", author_id=author_id,
                                             as_of=as_of)
            done.append("appointment")
    if row["contract_signed_on"]:
        hours = row["weekly_hours"]
        same = session.scalar(select(Contract.id).where(
            Contract.person_id == person_id, Contract.status == "signed",
            Contract.signed_on == row["contract_signed_on"]).limit(1))
        known = session.get(Contract, same) if same else None
        if known is None or (hours is not None and float(known.weekly_hours) != hours):
            cases_service.record_contract(session, person_id, row["contract_signed_on"], weekly_hours=hours,
                                          hours_reduction_reason=row["hours_reduction_reason"],
                                          source="provider", author_id=author_id, as_of=as_of)
            done.append("contract")
    if row["step"]:
        last = session.scalar(select(CaseEvent).where(CaseEvent.person_id == person_id,
                                                      CaseEvent.kind == "provider.step")
                              .order_by(CaseEvent.occurred_on.desc(), CaseEvent.id.desc()).limit(1))
        if last is None or (last.data or {}).get("step") != row["step"]:
            path = cases_service.open_path(session, person_id)
            cases_service.add_event(session, person_id, "provider.step", as_of, "provider",
                                    summary=f"Étape en cours: {row['step']}",
                                    data={"step": row["step"], "structure_id": structure_id},
                                    path_id=path.id if path else None, author_id=author_id)
            done.append("step")
    if row["exit_on"]:
        exists = session.scalar(select(Exit.id).where(Exit.person_id == person_id, Exit.exit_on == row["exit_on"],
                                                      Exit.reason == row["exit_reason"]).limit(1))
        if exists is None:
            cases_service.record_exit(session, person_id, row["exit_on"], row["exit_reason"], source="provider",
                                      structure_id=structure_id, details=row["details"], author_id=author_id,
                                      as_of=as_of)
            done.append("exit")
    return done


def import_file(runtime, path: Path | str, structure_code: str, *, created_by: int | None = None,
                as_of: dt.date | None = None) -> dict:
    """Import a provider return for one structure; returns the batch report."""
    as_of = as_of or clock.today()
    with runtime.session() as s:
        structure = structure_by_code(s, structure_code)
        if structure is None:
            raise ValueError(f"structure inconnue « {structure_code} »")
        structure_id, structure_name = structure.id, structure.name

    def body(session: Session, batch):
        rows, _detected = read_sheet(path)
        header_index, columns, _ext = locate_columns(rows, MAPPING)
        if not ({"person_id", "caf_number", "nir"} & set(columns)):
            raise FileError("aucune colonne d'identification (Identifiant RSA31, N° allocataire ou NIR)")
        labels = {f: label for f, (_j, label) in columns.items()}
        counts = {"rows": 0, "updated": 0, "unchanged": 0, "appointment": 0, "contract": 0, "step": 0, "exit": 0}
        rejects, seen = [], {}
        for i in range(header_index + 1, len(rows)):
            cells, line = rows[i], i + 1
            values = {f: (cells[j] if j < len(cells) else None) for f, (j, _l) in columns.items()}
            if all(is_blank(v) for v in values.values()):
                continue
            counts["rows"] += 1
            raw = {labels[f]: text(v) for f, v in values.items() if f != "nir"}
            try:
                row = _parse(values, labels, runtime.vault)
                # Unknown, conflicting or oriented elsewhere: one answer, so that a provider
                # learns nothing about people who are not its own.
                not_ours = RowError(None, f"personne non orientée vers {structure_name} (ou inconnue): "
                                          "un prestataire ne met à jour que les personnes qui lui sont orientées")
                person_id = _find_person(session, row)
                if person_id is None:
                    raise not_ours
                if not oriented_here(session, person_id, structure_id):
                    already = session.scalar(select(Exit.id).where(Exit.person_id == person_id,
                                                                   Exit.structure_id == structure_id).limit(1))
                    if already is None:
                        raise not_ours
                    counts["unchanged"] += 1  # exited from this structure: the return repeats what is known
                    continue
                if person_id in seen:
                    raise RowError(None, f"ligne en double de la ligne {seen[person_id]} (même personne)")
                seen[person_id] = line
                with session.begin_nested():
                    try:
                        done = apply_row(session, person_id, structure_id, row, as_of=as_of, author_id=created_by)
                    except cases_service.CaseValidationError as exc:
                        field = next(iter(exc.messages))
                        column = labels.get({"weekly_hours": "weekly_hours", "hours_reduction_reason":
                                             "hours_reduction_reason", "reason": "exit_reason",
                                             "status": "appointment_status"}.get(field, ""), None)
                        raise RowError(column, "; ".join(m for ms in exc.messages.values() for m in ms)) from None
            except RowError as exc:
                rejects.append(reject_row(session, batch, line, exc.column, exc.message, raw))
                continue
            counts["updated" if done else "unchanged"] += 1
            for what in done:
                counts[what] += 1
        return counts, rejects, []

    return run_batch(runtime, "provider_return", path, body,
                     header={"structure": structure_code, "structure_id": structure_id}, created_by=created_by)
