"""The orientation decisions of a period, for the employment committees (L5411-5-1 III Code du travail:
the orienting bodies transmit their decisions and the use of the criteria to the national and
departmental committees; the list of information is the CNE's, arrêté du 21 novembre 2024, JORF of
7 December 2024).

One row per decision taken in the period (an orientation validated on a date of the period, whatever
became of it since): a pseudonymous key, the date, the parcours, the organisme, the rule and the
criteria it used. Never the NIR, a name or an address: the key is a keyed hash (HMAC-SHA256 with a key
derived from the application secret) of the person's internal id, stable from one export to the next
so that the committees can count people, and useless without the key. The criteria are the names of
the facts the rule read, not their values (minimisation).

Every value written is a code, a date, a number or a label from the vocabulary: no free text from the
data reaches the files, so no cell can be taken for a spreadsheet formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from orientation.models import Orientation
from orientation.rules import FACTS
from referents.models import Structure
from referents.vocabulary import Organisme, Parcours

COLUMNS = (
    ("key", "cle_pseudonyme"),
    ("decided_on", "date_decision"),
    ("parcours", "parcours"),
    ("parcours_label", "parcours_libelle"),
    ("organisme", "organisme"),
    ("organisme_label", "organisme_libelle"),
    ("referent_type", "type_referent"),
    ("structure", "structure"),
    ("origin", "origine"),
    ("validation", "validation"),
    ("rule", "regle"),
    ("rule_set_version", "version_regles"),
    ("criteria", "criteres_utilises"),
)
VALIDATION_LABELS = {"auto": "automatique", "agent": "agent"}
# Facts kept with a decision only to assign the structure, not criteria of the référentiel.
_NOT_CRITERIA = {"commune", "postal_code"}


class ExportError(ValueError):
    """A request the export refuses (French message)."""


@dataclass(frozen=True)
class DecisionRow:
    key: str
    decided_on: dt.date
    parcours: str | None
    parcours_label: str | None
    organisme: str | None
    organisme_label: str | None
    referent_type: str
    structure: str | None
    origin: str
    validation: str | None
    rule: str | None
    rule_set_version: int | None
    criteria: str


def pseudonym_key(secret: str) -> bytes:
    """The export's own key (a purpose-bound derivation: it never equals the NIR-hash key)."""
    return hashlib.sha256(("rsa-decision-export:" + secret).encode()).digest()


def pseudonym(key: bytes, person_id: int) -> str:
    return hmac.new(key, str(person_id).encode(), hashlib.sha256).hexdigest()[:20]


def criteria_of(facts: dict | None) -> str:
    """The labels of the criteria a decision read (from its stored facts), in rule-language order."""
    names = [n for n in FACTS if facts and n in facts and n not in _NOT_CRITERIA]
    return "; ".join(FACTS[n].label for n in names)


def decision_rows(session: Session, date_from: dt.date, date_to: dt.date, secret: str) -> list[DecisionRow]:
    """The decisions validated between date_from and date_to (both included), oldest first."""
    if date_to < date_from:
        raise ExportError(f"période vide: le {date_to:%d/%m/%Y} précède le {date_from:%d/%m/%Y}")
    key = pseudonym_key(secret)
    codes = dict(session.execute(select(Structure.id, Structure.code)).all())
    q = (select(Orientation.person_id, Orientation.validated_on, Orientation.parcours, Orientation.organisme,
                Orientation.referent_type, Orientation.structure_id, Orientation.origin, Orientation.validation,
                Orientation.rule_id, Orientation.rule_set_version, Orientation.facts)
         .where(Orientation.validated_on.is_not(None), Orientation.validated_on >= date_from,
                Orientation.validated_on <= date_to, Orientation.referent_type != "kiosque")
         .order_by(Orientation.validated_on, Orientation.id))
    rows = []
    for r in session.execute(q):
        rows.append(DecisionRow(
            key=pseudonym(key, r.person_id), decided_on=r.validated_on,
            parcours=r.parcours, parcours_label=Parcours.label_of(r.parcours) if r.parcours else None,
            organisme=r.organisme, organisme_label=Organisme.label_of(r.organisme) if r.organisme else None,
            referent_type=r.referent_type, structure=codes.get(r.structure_id), origin=r.origin,
            validation=VALIDATION_LABELS.get(r.validation or ""), rule=r.rule_id,
            rule_set_version=r.rule_set_version if r.rule_id else None, criteria=criteria_of(r.facts)))
    return rows


def summary(rows: list[DecisionRow]) -> dict:
    """Counts by parcours, by organisme and by both (what the committees read first)."""
    return {"decisions": len(rows),
            "by_parcours": dict(Counter(r.parcours or "non_renseigne" for r in rows)),
            "by_organisme": dict(Counter(r.organisme or "non_renseigne" for r in rows)),
            "by_validation": dict(Counter(r.validation or "non_renseigne" for r in rows)),
            "by_parcours_organisme": {f"{p}/{o}": n for (p, o), n in sorted(
                Counter((r.parcours or "non_renseigne", r.organisme or "non_renseigne") for r in rows).items())}}


def to_csv(rows: list[DecisionRow]) -> bytes:
    """`;`-separated, UTF-8 with a BOM (what a French spreadsheet opens without asking)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow([h for _, h in COLUMNS])
    for row in rows:
        d = asdict(row)
        w.writerow(["" if d[k] is None else (d[k].isoformat() if isinstance(d[k], dt.date) else d[k])
                    for k, _ in COLUMNS])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(rows: list[DecisionRow], date_from: dt.date, date_to: dt.date) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "Décisions"
    ws.append([h for _, h in COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        d = asdict(row)
        ws.append([d[k] for k, _ in COLUMNS])
        ws.cell(row=ws.max_row, column=2).number_format = "dd/mm/yyyy"
    ws.freeze_panes = "A2"
    for col, width in zip("ABCDEFGHIJKLM", (22, 13, 20, 20, 16, 24, 15, 22, 14, 12, 22, 8, 60), strict=True):
        ws.column_dimensions[col].width = width
    s = wb.create_sheet("Synthèse")
    s.append(["Période", f"du {date_from:%d/%m/%Y} au {date_to:%d/%m/%Y}"])
    s.append(["Décisions", len(rows)])
    s.append([])
    s.append(["Parcours", "Organisme", "Décisions"])
    for cell in s[s.max_row]:
        cell.font = Font(bold=True)
    counts = Counter((r.parcours_label or "non renseigné", r.organisme_label or "non renseigné") for r in rows)
    for (p, o), n in sorted(counts.items()):
        s.append([p, o, n])
    s.column_dimensions["A"].width = 22
    s.column_dimensions["B"].width = 28
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write(rows: list[DecisionRow], out: Path | str, date_from: dt.date, date_to: dt.date) -> Path:
    """OUT.xlsx or OUT.csv by its suffix (the format is the file's, nothing else)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise ExportError(f"{out.name}: format inconnu (attendu: .xlsx ou .csv)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_xlsx(rows, date_from, date_to) if suffix == ".xlsx" else to_csv(rows))
    return out

