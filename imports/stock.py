"""Taking over the existing stock at go-live: `rsa import stock FILE [--mapping NAME] [--dry-run]`.

A Département switches on with tens of thousands of people already oriented, with referents and
contracts, in its previous system (WebRSA, IODAS, spreadsheets). Run after the first flow import,
this importer reads the export of those orientations through the spreadsheet machinery
(imports.spreadsheets: the same reading, header detection and column mapping) and records them as
they were decided:

- persons are matched as the flows match them (imports.identity: NIR, then dossier number and
  role, then name and birth date); an unmatched, ambiguous or contradicted row is a reject with
  its reason, kept for replay (`rsa import replay ID` once the next flow brought the person);
- a taken-over orientation is a validated decision with origin `reprise`, dated on its historic
  date, never notified again (no Notification row), and `rsa orient run` never re-orients it (its
  path has a validated orientation). Its path counts as oriented on that date (Path.oriented_*);
  the legal clock of the path, which the first flow set to the go-live receipt, is brought back
  to the historic date (the real receipt happened in the previous system and is unknown), so
  that no negative delay enters the dashboards; DTDEMRSA stays the DREES clock;
- the file's organisme code is kept on the decision (facts.reprise.organisme): CCAS, mission
  locale and Cap emploi are not referent types of the product yet (issue 15); they are stored as
  the nearest referent type (docs/imports.md: CCAS → MDS, mission locale and Cap emploi → France
  Travail, the other members of the réseau pour l'emploi);
- contracts (CER, PPAE, contrat d'engagement) are kept, signed, with source `reprise`; a CER or
  PPAE signed before 2025-01-01 is on the old-contracts working list (reports.old_contracts).

One file is one transaction: all its valid rows or nothing; the same file again is recognised
(SHA-256), and a row already taken over identically (another export) is counted unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import yaml
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from cases import nir as nirlib
from cases.models import CaseEvent, Contract, Person
from cases.models import Path as CasePath
from config import clock
from config.db import update_rows, utcnow
from imports import spreadsheets
from imports.batches import pending_reject
from imports.identity import IdentityIndex
from imports.models import ColumnMapping, ImportBatch
from imports.service import _BulkInsert
from imports.spreadsheets import HEADER_SEARCH_ROWS, locate_columns
from imports.tabular import FileError, RowError, reject_row
from imports.values import is_blank, normalise_header, parse_date, text
from orientation.models import Orientation
from referents.models import Agent, Structure

KIND = "stock"
ORIGIN = "reprise"
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings" / "stock"
LEGACY_BEFORE = dt.date(2025, 1, 1)  # CER / PPAE signed before: to replace by a contrat d'engagement

# The file's organisme → (referent type stored, structure kinds accepted for its `structure` code, label).
ORGANISMES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "france_travail": ("pole_emploi", ("pole_emploi",), "France Travail"),
    "actipro": ("actipro", ("actipro",), "ActiPro"),
    "ati": ("ati", ("ati",), "ATI"),
    "mds": ("mds", ("mds",), "MDS"),
    "ccas": ("mds", ("ccas", "mds"), "CCAS (par délégation du Département)"),
    "mission_locale": ("pole_emploi", (), "mission locale"),
    "cap_emploi": ("pole_emploi", (), "Cap emploi"),
}
_ORGANISME_ALIASES = {"pole_emploi": "france_travail", "ft": "france_travail", "france travail": "france_travail",
                      "pole emploi": "france_travail", "mission locale": "mission_locale", "ml": "mission_locale",
                      "cap emploi": "cap_emploi", "ce": "cap_emploi"}
CONTRACT_TYPES = ("CER", "PPAE", "CE")
FIELDS = {"nir": "NIR", "matricule": "matricule CAF/MSA", "role": "rôle", "last_name": "nom", "first_name": "prénom",
          "birth_date": "date de naissance", "organisme": "organisme", "structure": "structure",
          "referent": "référent", "oriented_on": "date d'orientation", "contract_kind": "type de contrat",
          "contract_signed_on": "date du contrat"}


class StockError(ValueError):
    """A mapping or an argument the command refuses (French message)."""


# --- mappings ------------------------------------------------------------------------------------

def _validate(doc: dict) -> dict:
    if not isinstance(doc, dict) or not doc.get("name") or not isinstance(doc.get("fields"), dict):
        raise StockError("une correspondance de reprise a un nom (« name ») et des champs (« fields »)")
    unknown = sorted(set(doc["fields"]) - set(FIELDS))
    if unknown:
        raise StockError(f"champ(s) inconnu(s) dans la correspondance: {', '.join(unknown)} "
                         f"(connus: {', '.join(FIELDS)})")
    fields = {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in doc["fields"].items()}
    required = list(doc.get("required") or ["organisme", "oriented_on"])
    return {"name": str(doc["name"]), "description": str(doc.get("description") or ""), "fields": fields,
            "required": required, "kind": KIND}


def get_mapping(session: Session, name: str) -> dict:
    """A stock mapping: stored in the database (ColumnMapping whose document says kind: stock), or
    shipped in imports/mappings/stock/NAME.yaml."""
    stored = session.scalar(select(ColumnMapping).where(ColumnMapping.name == name))
    if stored is not None and (stored.fields or {}).get("kind") == KIND:
        return _validate(stored.fields)
    path = MAPPINGS_DIR / f"{name}.yaml"
    if path.is_file():
        return _validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    known = sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))
    raise StockError(f"correspondance de reprise inconnue « {name} » (connues: {', '.join(known)})")


# --- rows ----------------------------------------------------------------------------------------

@dataclass
class StockRow:
    row_no: int
    raw: dict  # field → cell as read (stored with a reject, for replay)
    labels: dict  # field → header as written in the file
    nir13: str | None = None
    matricule: str | None = None
    role: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    birth_date: dt.date | None = None
    organisme: str = ""
    structure_code: str | None = None
    referent: str | None = None
    oriented_on: dt.date | None = None
    contract_kind: str | None = None
    contract_signed_on: dt.date | None = None
    person_id: int | None = None
    via: str | None = None
    extra: dict = field(default_factory=dict)


def _cell(row: StockRow, name: str, parser):
    if name not in row.raw:
        return None
    try:
        return parser(row.raw[name])
    except (ValueError, nirlib.NirError) as exc:
        raise RowError(row.labels.get(name, FIELDS[name]), str(exc)) from None


def _organisme(value) -> str | None:
    s = text(value)
    if s is None:
        return None
    return _organisme_code(s)


@functools.lru_cache(maxsize=256)
def _organisme_code(s: str) -> str:
    key = normalise_header(s).replace("-", " ").strip().lower()
    key = _ORGANISME_ALIASES.get(key, key.replace(" ", "_"))
    if key not in ORGANISMES:
        raise ValueError(f"organisme inconnu « {s} » (attendu: {', '.join(ORGANISMES)})")
    return key


def _matricule(value) -> str | None:
    s = text(value)
    if s is None:
        return None
    s = s.replace(" ", "")
    if s.endswith(".0"):  # a number cell read as float
        s = s[:-2]
    if not (s.isascii() and s.isdigit()) or len(s) > 15:
        raise ValueError(f"matricule invalide « {s[:20]} » (15 chiffres au plus)")
    return s.zfill(7) if len(s) < 7 else s


def _role(value) -> str | None:
    s = (text(value) or "").upper()
    if not s:
        return None
    if s not in ("DEM", "CJT"):
        raise ValueError(f"rôle « {s[:10]} » non repris (DEM ou CJT attendu: seuls eux sont orientés)")
    return s


def _contract_type(value) -> str | None:
    s = (text(value) or "").upper().replace(" ", "")
    if not s:
        return None
    if s not in CONTRACT_TYPES:
        raise ValueError(f"type de contrat inconnu « {s[:10]} » (CER, PPAE ou CE)")
    return s


def _date(value) -> dt.date | None:
    """An orientation or contract date: the RSA exists since 2009 (RMI contracts before it)."""
    d = parse_date(value)
    if d is not None and not dt.date(1989, 1, 1) <= d <= dt.date(2100, 1, 1):
        raise ValueError(f"date impossible « {d.strftime('%d/%m/%Y')} »")
    return d


def _birth(value) -> dt.date | None:
    d = parse_date(value)
    if d is not None and not dt.date(1900, 1, 1) <= d <= clock.today():
        raise ValueError(f"date de naissance impossible « {d.strftime('%d/%m/%Y')} »")
    return d


def parse_row(row: StockRow, as_of: dt.date) -> None:
    """Fill the typed fields of a row; RowError names the column of the first problem."""
    row.nir13 = _cell(row, "nir", lambda v: nirlib.normalise(text(v)))
    row.matricule = _cell(row, "matricule", _matricule)
    row.role = _cell(row, "role", _role)
    row.last_name = _cell(row, "last_name", text)
    row.first_name = _cell(row, "first_name", text)
    row.birth_date = _cell(row, "birth_date", _birth)
    row.organisme = _cell(row, "organisme", _organisme)
    row.structure_code = _cell(row, "structure", text)
    row.referent = _cell(row, "referent", text)
    row.oriented_on = _cell(row, "oriented_on", _date)
    row.contract_kind = _cell(row, "contract_kind", _contract_type)
    row.contract_signed_on = _cell(row, "contract_signed_on", _date)
    if not row.organisme:
        raise RowError(row.labels.get("organisme", "organisme"), "organisme manquant")
    if row.oriented_on is None:
        raise RowError(row.labels.get("oriented_on", "date_orientation"), "date d'orientation manquante")
    for name in ("oriented_on", "contract_signed_on"):
        d = getattr(row, name)
        if d is not None and d > as_of:
            raise RowError(row.labels.get(name, FIELDS[name]),
                           f"date future « {d.strftime('%d/%m/%Y')} »: une reprise ne porte que sur le passé")
    if row.contract_kind and row.contract_signed_on is None:
        raise RowError(row.labels.get("contract_signed_on", "date_contrat"),
                       f"date du contrat manquante pour un {row.contract_kind}")
    if row.contract_signed_on and not row.contract_kind:
        raise RowError(row.labels.get("contract_kind", "type_contrat"), "type de contrat manquant")
    if not (row.nir13 or row.matricule or (row.last_name and row.first_name and row.birth_date)):
        raise RowError(None, "ni NIR, ni matricule, ni nom + prénom + date de naissance: personne introuvable")


# --- the import ------------------------------------------------------------------------------------

class _Context:
    """What the rows of a file are applied against: identity index, structures, agents, persons
    already taken over in this file."""

    def __init__(self, session: Session, vault):
        self.s, self.vault = session, vault
        self.index = IdentityIndex(session)
        self.structures = {s.code: s for s in session.scalars(select(Structure))}
        self.agents = defaultdict(list)
        for a in session.scalars(select(Agent).where(Agent.active.is_(True))):
            if a.email:
                self.agents[a.email.strip().lower()].append(a)
            self.agents[" ".join((a.name or "").lower().split())].append(a)
        self.taken: dict[int, int] = {}  # person id → row number that took it over

    def organism_of(self, matricule: str | None) -> str | None:
        if not matricule:
            return None
        found = [org for org in ("CAF", "MSA") if self.index.household_id(org, matricule) is not None]
        return found[0] if len(found) == 1 else None


def _match(ctx: _Context, row: StockRow) -> None:
    nir_hash = ctx.vault.hash(row.nir13) if row.nir13 else None
    organism = ctx.organism_of(row.matricule)
    m = ctx.index.match(nir_hash=nir_hash, birth_date=row.birth_date, organism=organism, matricule=row.matricule,
                        role=row.role, last_name=row.last_name, first_name=row.first_name)
    if m.conflict:
        raise RowError(row.labels.get(m.conflict_field) if m.conflict_field else None,
                       f"{m.conflict}: aucune reprise (vérifier l'identité)")
    if m.person_id is None:
        from imports.values import normalise_name

        names = ctx.index.by_names.get((normalise_name(row.last_name), normalise_name(row.first_name),
                                        row.birth_date), []) if row.birth_date else []
        if len(names) > 1:
            raise RowError(None, f"identité ambiguë: {len(names)} personnes ont ces nom, prénom et date de "
                                 "naissance; préciser le NIR ou le matricule et le rôle")
        if row.matricule and organism is None and any(
                ctx.index.household_id(o, row.matricule) for o in ("CAF", "MSA")):
            raise RowError(row.labels.get("matricule"), "matricule connu à la CAF et à la MSA: préciser le NIR")
        raise RowError(None, "personne introuvable dans les flux importés (NIR, matricule + rôle, nom + date de "
                             "naissance): importer d'abord le flux CAF/MSA, puis rejouer ce rejet")
    if not isinstance(m.person_id, int):
        raise RowError(None, "personne non encore enregistrée")
    if m.person_id in ctx.taken:
        raise RowError(None, f"personne déjà reprise à la ligne {ctx.taken[m.person_id]} de ce fichier")
    row.person_id, row.via = m.person_id, m.via


def _structure(ctx: _Context, row: StockRow, referent_type: str):
    if not row.structure_code:
        return None
    s = ctx.structures.get(row.structure_code) or ctx.structures.get(row.structure_code.upper())
    if s is None:
        raise RowError(row.labels.get("structure"), f"structure inconnue « {row.structure_code} »")
    kinds = ORGANISMES[row.organisme][1]
    if s.kind not in kinds:
        raise RowError(row.labels.get("structure"),
                       f"la structure {s.code} ({s.kind}) ne correspond pas à l'organisme {row.organisme}")
    return s


def _agent(ctx: _Context, row: StockRow, structure) -> int | None:
    if not row.referent:
        return None
    key = row.referent.strip().lower() if "@" in row.referent else " ".join(row.referent.lower().split())
    found = [a for a in ctx.agents.get(key, []) if structure is None or a.structure_id == structure.id]
    return found[0].id if len(found) == 1 else None


def _contract_kind(kind: str, referent_type: str) -> str:
    if kind == "CE":
        return "engagement"
    if kind == "PPAE":
        return "ppae"
    return "cer_social" if referent_type == "mds" else "cer_pro"


def apply_rows(session: Session, ctx: _Context, rows: list[StockRow], batch: ImportBatch | None,
               reject) -> Counter:
    """Match and take over the rows (all inside the caller's transaction); `reject(row, column,
    reason)` records a row that cannot be taken over. Returns the counts."""
    counts: Counter = Counter()
    ok: list[StockRow] = []
    for row in rows:
        try:
            _match(ctx, row)
            rtype = ORGANISMES[row.organisme][0]
            row.extra["structure"] = _structure(ctx, row, rtype)
            row.extra["agent_id"] = _agent(ctx, row, row.extra["structure"])
        except RowError as exc:
            reject(row, exc.column, exc.message)
            counts["rejected"] += 1
            continue
        ctx.taken[row.person_id] = row.row_no
        ok.append(row)
    if not ok:
        return counts
    pids = sorted({r.person_id for r in ok})
    paths: dict[int, dict] = {}
    latest: dict[int, dict] = {}
    decisions: dict[int, list] = defaultdict(list)
    for part in _chunks(pids):
        for p in session.execute(select(CasePath.id, CasePath.person_id, CasePath.clock_start, CasePath.closed_on,
                                        CasePath.opening_reason)
                                 .where(CasePath.person_id.in_(part)).order_by(CasePath.clock_start, CasePath.id)):
            latest[p.person_id] = p._asdict()
            if p.closed_on is None:
                paths[p.person_id] = p._asdict()
        for o in session.execute(select(Orientation.id, Orientation.person_id, Orientation.path_id,
                                        Orientation.status, Orientation.origin, Orientation.referent_type,
                                        Orientation.decided_on)
                                 .where(Orientation.person_id.in_(part),
                                        Orientation.status.in_(("validated", "proposed", "awaiting_capacity",
                                                                "unsectorised", "kiosque")))):
            decisions[o.person_id].append(o)
    new_orientations, path_updates, person_clock, superseded, todo = [], [], [], [], []
    for row in ok:
        rtype = ORGANISMES[row.organisme][0]
        path = paths.get(row.person_id) or latest.get(row.person_id)
        path_id = path["id"] if path else None
        mine = [o for o in decisions[row.person_id] if path_id is None or o.path_id in (path_id, None)]
        validated = [o for o in mine if o.status == "validated"]
        if validated:
            v = validated[0]
            if v.origin == ORIGIN and v.referent_type == rtype and v.decided_on == row.oriented_on:
                counts["unchanged"] += 1
                continue
            what = "une reprise" if v.origin == ORIGIN else f"une décision du produit (origine {v.origin})"
            reject(row, None, f"personne déjà orientée par {what} le {v.decided_on.strftime('%d/%m/%Y')}: "
                              "la reprise ne la remplace pas")
            counts["rejected"] += 1
            continue
        superseded += [o.id for o in mine]
        structure = row.extra["structure"]
        facts = {"reprise": {"organisme": row.organisme, "organisme_label": ORGANISMES[row.organisme][2],
                             "structure": row.structure_code, "referent": row.referent,
                             "contrat": row.contract_kind,
                             "date_contrat": row.contract_signed_on.isoformat() if row.contract_signed_on else None,
                             "ligne": row.row_no, "lot": batch.id if batch else None, "apparie_par": row.via}}
        label = ORGANISMES[row.organisme][2]
        explanation = (f"Orientation reprise du système précédent du Département: {label}"
                       f"{f' ({structure.code})' if structure is not None else ''}, décidée le "
                       f"{row.oriented_on.strftime('%d/%m/%Y')}. Reprise à la mise en service, sans nouvelle "
                       "notification. Cette décision n'a pas été établie par l'algorithme du produit.")
        new_orientations.append(dict(
            person_id=row.person_id, path_id=path_id, referent_type=rtype,
            structure_id=structure.id if structure is not None else None, agent_id=row.extra["agent_id"],
            rule_set_version=None, rule_id=None, mode="auto", origin=ORIGIN, status="validated", facts=facts,
            explanation=explanation, algorithmic=False, decided_on=row.oriented_on, validated_on=row.oriented_on,
            validated_by=None, notified_on=row.oriented_on, created_at=utcnow()))
        todo.append(row)
        if path is not None and path["closed_on"] is None and row.oriented_on < path["clock_start"]:
            path_updates.append({"_id": path_id, "clock_start": row.oriented_on,
                                 "opening_reason": ORIGIN if path["opening_reason"] == "entry"
                                 else path["opening_reason"]})
            person_clock.append({"_id": row.person_id, "legal_clock_start": row.oriented_on})
        counts["taken_over"] += 1
        counts[f"matched_{row.via}"] += 1
        counts[f"organisme_{row.organisme}"] += 1
        if structure is None:
            counts["without_structure"] += 1
    if superseded:
        for part in _chunks(superseded):
            session.execute(update(Orientation).where(Orientation.id.in_(part)).values(status="superseded"),
                            execution_options={"synchronize_session": False})
        counts["superseded"] += len(superseded)
    if not new_orientations:
        return counts
    ids = _insert_returning_ids(session, new_orientations)
    if path_updates:
        # The path's clock goes back to its taken-over orientation's date; the person's legal clock
        # follows: one statement each (config.db.update_rows).
        update_rows(session, CasePath, [{"id": u["_id"], "clock_start": u["clock_start"]} for u in path_updates],
                    values={"opening_reason": lambda new: case((CasePath.opening_reason == "entry", ORIGIN),
                                                               else_=CasePath.opening_reason)})
        update_rows(session, Person, [{"id": u["_id"], "legal_clock_start": u["legal_clock_start"]}
                                      for u in person_clock])
    contracts, events = [], []
    now = utcnow()
    for row, oid, o in zip(todo, ids, new_orientations, strict=True):
        events.append(dict(person_id=row.person_id, path_id=o["path_id"], kind="orientation.reprise",
                           occurred_on=row.oriented_on, source="agent", author_id=None, recorded_at=now,
                           summary=f"Orientation reprise du système précédent: {ORGANISMES[row.organisme][2]}",
                           data={"orientation_id": oid, "organisme": row.organisme, "batch_id": batch.id if batch else None}))
        if row.contract_kind:
            kind = _contract_kind(row.contract_kind, o["referent_type"])
            contracts.append(dict(person_id=row.person_id, path_id=o["path_id"], orientation_id=oid, kind=kind,
                                  signed_on=row.contract_signed_on, status="signed", source=ORIGIN, due_on=None,
                                  weekly_hours=15, vulnerability=False, created_at=now))
            counts["contracts"] += 1
            if kind != "engagement" and row.contract_signed_on < LEGACY_BEFORE:
                counts["legacy_contracts"] += 1
    bulk = _BulkInsert(session, session.get_bind().dialect.name == "postgresql")
    if contracts:
        bulk(Contract.__table__, contracts)
    bulk(CaseEvent.__table__, events)
    from orientation.outcomes import mark_path_oriented

    session.flush()
    mark_path_oriented(session, [o["path_id"] for o in new_orientations])
    return counts


def _insert_returning_ids(session: Session, rows: list[dict]) -> list[int]:
    """Insert orientations in order and return their ids in the same order."""
    conn = session.connection()
    table = Orientation.__table__
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text as sql

        ids = list(conn.execute(sql("SELECT nextval(pg_get_serial_sequence('orientation', 'id')) "
                                    "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars())
    else:
        start = (conn.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar() or 0) + 1
        ids = list(range(start, start + len(rows)))
    for row, oid in zip(rows, ids, strict=True):
        row["id"] = oid
    _BulkInsert(session, conn.dialect.name == "postgresql")(table, rows)
    return ids


def _chunks(seq, size=900):
    seq = list(seq)
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def _rows_of(path: Path, mapping: dict) -> tuple[dict, object]:
    """(columns, iterator of (row number, cells)) through the spreadsheet reader; the header line is
    found among the first lines as for any beneficiary list."""
    # open_sheet (issue 22: row by row, under limits, FileError while iterating) where the spreadsheet
    # reader has it, else read_sheet (the whole sheet): both give (rows, detected).
    opener = getattr(spreadsheets, "open_sheet", None) or spreadsheets.read_sheet
    sheet, _info = opener(path)
    it = iter(sheet)
    head = list(islice(it, HEADER_SEARCH_ROWS))
    spec = {"fields": mapping["fields"], "external_ids": {}, "required": []}
    header_at, columns, _ext = locate_columns(head, spec)
    missing = [f for f in mapping["required"] if f not in columns]
    if missing:
        raise FileError("colonne(s) obligatoire(s) absente(s): " + ", ".join(
            f"{FIELDS[f]} ({' / '.join(mapping['fields'].get(f, [f]))})" for f in missing))

    def rows():
        n = header_at + 1
        for cells in head[header_at + 1:]:
            n += 1
            yield n, cells
        for cells in it:
            n += 1
            yield n, cells
    return columns, rows()


def import_stock(runtime, path: Path | str, mapping_name: str = "reprise", *, dry_run: bool = False,
                 as_of: dt.date | None = None, created_by: int | None = None) -> dict:
    """Take over one export file in one transaction; returns the report (counts by key, rejects)."""
    from imports.batches import fail, finish, sha256_file, start_batch

    path = Path(path)
    as_of = as_of or clock.today()
    report = {"path": str(path), "file": path.name, "kind": KIND, "status": None, "dry_run": dry_run,
              "batch_id": None, "counts": {}, "rejected": 0, "rejects": [], "warnings": [], "error": None}
    try:
        sha = sha256_file(path)
    except OSError as exc:
        report.update(status="failed", error=f"fichier illisible: {exc.strerror}")
        return report
    session = runtime.sessions()
    try:
        mapping = get_mapping(session, mapping_name)
        started = start_batch(session, KIND, path, sha, header={"mapping": mapping["name"]}, created_by=created_by)
        batch = started.batch
        report["batch_id"] = None if dry_run else batch.id
        if started.duplicate:
            session.rollback()
            report.update(status="duplicate", counts=batch.counts or {})
            return report
        columns, rows = _rows_of(path, mapping)
        labels = {f: label for f, (_i, label) in columns.items()}
        rejects: list[dict] = []

        def reject(row: StockRow, column, message):
            rejects.append(reject_row(session, batch, row.row_no, column, message, row.raw))

        parsed: list[StockRow] = []
        counts: Counter = Counter()
        for n, cells in rows:
            if all(is_blank(c) for c in cells):
                continue
            raw = {f: cells[i] if i < len(cells) else None for f, (i, _l) in columns.items()}
            row = StockRow(n, {k: v for k, v in raw.items() if not is_blank(v)}, labels)
            counts["rows"] += 1
            try:
                parse_row(row, as_of)
            except RowError as exc:
                reject(row, exc.column, exc.message)
                continue
            parsed.append(row)
        ctx = _Context(session, runtime.vault)
        counts.update(apply_rows(session, ctx, parsed, batch, reject))
        counts["rejected"] = len(rejects)
        counts = {k: counts[k] for k in sorted(counts)}
        warnings = []
        if counts.get("without_structure"):
            warnings.append(f"{counts['without_structure']} orientation(s) reprise(s) sans structure (colonne "
                            "structure vide): la personne n'apparaît pas encore dans le périmètre d'une structure")
        report.update(counts=counts, rejected=len(rejects), rejects=rejects[:100], warnings=warnings)
        if dry_run:
            session.rollback()
            report["status"] = "dry_run"
            return report
        finish(batch, counts, warnings)
        session.commit()
        report["status"] = "imported"
        return report
    except (FileError, StockError) as exc:
        session.rollback()
        report.update(status="failed", error=str(exc))
        if not dry_run and isinstance(exc, FileError):
            report["batch_id"] = fail(runtime.sessions, KIND, path, sha, str(exc), header={"mapping": mapping_name}).id
        return report
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def replay(runtime, reject_id: int, as_of: dt.date | None = None) -> dict:
    """Retry one rejected stock row (typically after the flow that brings the person was imported)."""
    as_of = as_of or clock.today()
    with runtime.sessions() as s, s.begin():
        rec, batch = pending_reject(s, reject_id, KIND, "une reprise")
        stored = json.loads((rec.raw or b"{}").decode("utf-8"))
        row = StockRow(stored.get("row") or 0, {k: v for k, v in (stored.get("values") or {}).items()
                                                 if not is_blank(v)}, {})
        failures: list[str] = []

        def reject(_row, column, message):
            failures.append((f"colonne « {column} »: " if column else "") + message)

        try:
            parse_row(row, as_of)
        except RowError as exc:
            reject(row, exc.column, exc.message)
        if not failures:
            counts = apply_rows(s, _Context(s, runtime.vault), [row], batch, reject)
            if not failures and not counts.get("taken_over") and not counts.get("unchanged"):
                failures.append("rien à reprendre")
        if failures:
            rec.reason = f"ligne {row.row_no}: {failures[0]}"
            return {"id": reject_id, "status": "pending", "reason": rec.reason}
        rec.status, rec.replayed_at = "replayed", utcnow()
        c = dict(batch.counts or {})
        c["rejected"] = max(0, c.get("rejected", 0) - 1)
        c["replayed"] = c.get("replayed", 0) + 1
        c["taken_over"] = c.get("taken_over", 0) + 1
        batch.counts = c
        return {"id": reject_id, "status": "replayed", "key": f"ligne {row.row_no}", "reason": None}
