"""Beneficiary lists in spreadsheets (.xlsx, .xls, .ods, .csv) read through a named column mapping.

A mapping says, for each of our fields, which header labels hold it; labels are compared after
normalisation (case, accents, spaces, line breaks, "N°"), and the header line is found among the
first lines of the sheet (titles above it are common). Mappings are YAML files shipped in
`imports/mappings/` or stored in the database (ColumnMapping, via the CLI or the API); a stored
mapping overrides a shipped one of the same name.

Rows enrich or create persons with the identity matching of the flow (`imports.identity`):
contact details (e-mail, phone: invitations need them) are updated, identity fields only fill
blanks, and every rejected row names its line and column.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import nir as nirlib
from cases.models import Household, Person
from cases.service import sync_path_sectors
from imports.identity import IdentityIndex
from imports.models import ColumnMapping
from imports.tabular import FileError, RowError, cell, check_controls, read_rows, reject_row, run_batch
from imports.values import (
    is_blank,
    normalise_header,
    normalise_name,
    parse_civility,
    parse_date,
    parse_email,
    parse_organism_number,
    parse_phone,
    parse_postal_code,
    parse_role,
    split_postal_city,
    text,
)

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods", ".csv", ".txt")
HEADER_SEARCH_ROWS = 30

# Our fields, with a French label for messages and documentation.
FIELDS = {
    "civility": "civilité", "last_name": "nom", "birth_name": "nom de naissance", "first_name": "prénom",
    "birth_date": "date de naissance", "nir": "NIR", "caf_number": "numéro d'allocataire CAF",
    "msa_number": "numéro MSA", "organism": "organisme (CAF/MSA)", "role": "rôle (DEM, CJT…)",
    "address": "adresse", "address_complement": "complément d'adresse", "postal_code": "code postal",
    "city": "ville", "postal_city": "code postal + ville", "email": "e-mail", "phone": "téléphone",
    "phone2": "téléphone 2", "referent_email": "e-mail du référent", "rights_opened_on": "date d'ouverture des droits",
    "request_date": "date de demande RSA", "request_number": "numéro de demande RSA",
    "france_travail_id": "identifiant France Travail", "tags": "étiquettes",
}


# --- mappings -------------------------------------------------------------------------------------

class MappingError(ValueError):
    pass


def validate_mapping(data: dict) -> dict:
    """Check a mapping document and return it normalised: {name, description, organism, fields,
    external_ids, required}; every label is a list of strings."""
    if not isinstance(data, dict) or not data.get("name"):
        raise MappingError("une correspondance de colonnes doit avoir un nom (clé « name »)")
    fields = data.get("fields") or {}
    if not isinstance(fields, dict) or not fields:
        raise MappingError("la clé « fields » doit associer nos champs à des libellés de colonnes")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise MappingError(f"champ(s) inconnu(s): {', '.join(unknown)} (connus: {', '.join(FIELDS)})")

    def labels(v):
        items = v if isinstance(v, list) else [v]
        out = [str(x) for x in items if x is not None and str(x).strip()]
        if not out:
            raise MappingError("libellé de colonne vide")
        return out

    external = data.get("external_ids") or {}
    if not isinstance(external, dict):
        raise MappingError("« external_ids » doit associer un nom d'identifiant à des libellés")
    required = list(data.get("required") or [])
    bad = [f for f in required if f not in fields]
    if bad:
        raise MappingError(f"champ(s) obligatoire(s) non associé(s) à une colonne: {', '.join(bad)}")
    organism = str(data.get("organism") or "CAF").upper()
    if organism not in ("CAF", "MSA"):
        raise MappingError("« organism » vaut CAF ou MSA")
    return {"name": str(data["name"]), "description": str(data.get("description") or ""), "organism": organism,
            "fields": {k: labels(v) for k, v in fields.items()},
            "external_ids": {str(k): labels(v) for k, v in external.items()}, "required": required}


def shipped_mappings() -> dict[str, dict]:
    out = {}
    for path in sorted(MAPPINGS_DIR.glob("*.yaml")):
        doc = validate_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))
        doc["source"] = f"fichier {path.name}"
        out[doc["name"]] = doc
    return out


def list_mappings(session: Session) -> list[dict]:
    found = shipped_mappings()
    for m in session.scalars(select(ColumnMapping).order_by(ColumnMapping.name)):
        found[m.name] = {**m.fields, "source": "base de données"}
    return [found[k] for k in sorted(found)]


def get_mapping(session: Session, name: str) -> dict:
    stored = session.scalar(select(ColumnMapping).where(ColumnMapping.name == name))
    if stored is not None:
        return {**stored.fields, "source": "base de données"}
    shipped = shipped_mappings()
    if name in shipped:
        return shipped[name]
    raise MappingError(f"correspondance de colonnes inconnue « {name} » "
                       f"(connues: {', '.join(m['name'] for m in list_mappings(session))})")


def save_mapping(session: Session, data: dict) -> dict:
    """Store (or replace) a mapping in the database; returns it normalised."""
    doc = validate_mapping(data)
    stored = session.scalar(select(ColumnMapping).where(ColumnMapping.name == doc["name"]))
    if stored is None:
        session.add(ColumnMapping(name=doc["name"], fields=doc))
    else:
        stored.fields = doc
    session.flush()
    return doc


def load_mapping_file(session: Session, path: Path | str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingError(f"YAML illisible: {exc}") from None
    return save_mapping(session, data)


# --- reading the sheet ------------------------------------------------------------------------------

def read_sheet(path: Path | str) -> tuple[list[list], dict]:
    """Every line of the first sheet as Python values (dates stay dates), and what was detected."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise FileError(f"format non pris en charge « {suffix} » ({', '.join(EXTENSIONS)})")
    if suffix in (".csv", ".txt"):
        return read_rows(path)
    import pandas as pd

    engine = {".xls": "xlrd", ".ods": "odf"}.get(suffix, "openpyxl")
    try:
        frame = pd.read_excel(path, sheet_name=0, header=None, dtype=object, engine=engine)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file cannot be read
        raise FileError(f"classeur illisible ({suffix}): {exc.__class__.__name__}: {str(exc)[:200]}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.values.tolist(), {"engine": engine}


def locate_columns(rows: list[list], mapping: dict) -> tuple[int, dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    """(header line index, {field: (column index, label as written)}, {external id: (index, label)})."""
    wanted = {f: {normalise_header(lbl) for lbl in labels} for f, labels in mapping["fields"].items()}
    wanted_ext = {k: {normalise_header(lbl) for lbl in labels} for k, labels in mapping["external_ids"].items()}
    best, best_score = None, 0
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        norms = {normalise_header(c) for c in row if not is_blank(c)}
        score = sum(1 for labels in list(wanted.values()) + list(wanted_ext.values()) if labels & norms)
        if score > best_score:
            best, best_score = i, score
    if best is None:
        raise FileError("aucune ligne d'en-tête reconnue: vérifiez la correspondance de colonnes choisie")
    header = rows[best]
    norm_header = [normalise_header(c) if not is_blank(c) else "" for c in header]

    def find(labels):
        for j, n in enumerate(norm_header):
            if n and n in labels:
                return j, str(header[j]).strip()
        return None

    columns = {f: found for f, labels in wanted.items() if (found := find(labels))}
    external = {k: found for k, labels in wanted_ext.items() if (found := find(labels))}
    missing = [f for f in mapping["required"] if f not in columns]
    if missing:
        raise FileError("colonne(s) obligatoire(s) absente(s): " + ", ".join(
            f"{FIELDS[f]} ({' / '.join(mapping['fields'][f])})" for f in missing))
    return best, columns, external


# --- import --------------------------------------------------------------------------------------

class _Communes:
    """Postal code + city name → INSEE code, from the reference communes of the Département."""

    def __init__(self, session: Session):
        from referents.models import Commune
        from referents.service import SectorIndex

        self.by_pc_name, self.by_pc = {}, {}
        for c in session.scalars(select(Commune)):
            for pc in (c.postal_codes or "").split():
                self.by_pc_name[(pc, normalise_name(c.name))] = c.insee
                self.by_pc.setdefault(pc, set()).add(c.insee)
        self.sectors = SectorIndex(session)

    def insee(self, postal_code: str | None, city: str | None) -> str | None:
        if not postal_code:
            return None
        found = self.by_pc_name.get((postal_code, normalise_name(city)))
        if found:
            return found
        candidates = self.by_pc.get(postal_code, set())
        return next(iter(candidates)) if len(candidates) == 1 else None


def _parse(values: dict, labels: dict[str, str], organism_default: str, vault) -> dict:
    """Typed values of one row; RowError names the column as written in the file."""
    check_controls(values, labels)
    out: dict = {}
    run = functools.partial(cell, values, labels)
    for field in ("last_name", "birth_name", "first_name", "address", "address_complement", "city",
                  "referent_email", "request_number", "france_travail_id", "tags"):
        out[field] = run(field, text)
    out["civility"] = run("civility", parse_civility)
    out["role"] = run("role", parse_role)
    for field in ("birth_date", "rights_opened_on", "request_date"):
        out[field] = run(field, parse_date)
    if out["birth_date"] and not dt.date(1900, 1, 1) <= out["birth_date"] <= dt.date.today():
        raise RowError(labels["birth_date"], f"date de naissance invraisemblable « {out['birth_date']:%d/%m/%Y} »")
    nir13 = run("nir", nirlib.normalise)
    out["nir13"] = nir13
    out["nir_hash"] = vault.hash(nir13) if nir13 else None
    out["nir_encrypted"] = vault.encrypt(nir13) if nir13 else None
    out["email"] = run("email", parse_email)
    if out.get("referent_email"):
        out["referent_email"] = run("referent_email", parse_email)
    phones = [p for p in (run("phone", parse_phone), run("phone2", parse_phone)) if p]
    mobiles = [p for p in phones if p[1] == "mobile"]
    out["phone"] = (mobiles or phones or [None])[0]
    organism = (text(values.get("organism")) or "").upper() or organism_default
    if organism not in ("CAF", "MSA"):
        raise RowError(labels.get("organism"), f"organisme inconnu « {organism} » (CAF ou MSA)")
    number = run("caf_number", lambda v: parse_organism_number(v, organism))
    if number is None:
        number = run("msa_number", lambda v: parse_organism_number(v, "MSA"))
    out["organism"], out["matricule"] = number if number else (None, None)
    pc, city = run("postal_city", split_postal_city) or (None, None)
    out["postal_code"] = run("postal_code", parse_postal_code) or pc
    out["city"] = out["city"] or city
    return out


def _identity_key(row: dict):
    if row["nir_hash"]:
        return ("nir", row["nir_hash"])
    if row["matricule"]:
        return ("household", row["organism"], row["matricule"], row["role"] or normalise_name(row["first_name"]))
    return ("names", normalise_name(row["last_name"]), normalise_name(row["first_name"]), row["birth_date"])


def import_file(runtime, path: Path | str, mapping_name: str, *, created_by: int | None = None) -> dict:
    """Import a beneficiary list through a named mapping; returns the batch report."""
    with runtime.session() as s:
        mapping = get_mapping(s, mapping_name)

    def body(session: Session, batch):
        rows, detected = read_sheet(path)
        header_index, columns, external = locate_columns(rows, mapping)
        labels = {f: label for f, (_j, label) in columns.items()}
        index = IdentityIndex(session)
        communes = _Communes(session)
        counts = {"rows": 0, "created": 0, "updated": 0, "unchanged": 0, "households_created": 0}
        rejects, seen, sectorised = [], {}, []
        for i in range(header_index + 1, len(rows)):
            cells = rows[i]
            line = i + 1  # as numbered in the spreadsheet / text editor
            values = {f: (cells[j] if j < len(cells) else None) for f, (j, _l) in columns.items()}
            ext = {k: text(cells[j]) if j < len(cells) else None for k, (j, _l) in external.items()}
            if all(is_blank(v) for v in list(values.values()) + list(ext.values())):
                continue
            counts["rows"] += 1
            raw = {labels[f]: text(v) for f, v in values.items()} | {external[k][1]: v for k, v in ext.items()}
            try:
                row = _parse(values, labels, mapping["organism"], runtime.vault)
                for f in mapping["required"]:
                    if is_blank(values.get(f)):
                        raise RowError(labels[f], "valeur obligatoire absente")
                if not (row["nir_hash"] or row["matricule"] or (row["last_name"] and row["first_name"]
                                                                  and row["birth_date"])):
                    raise RowError(None, "identité insuffisante: il faut un NIR, un numéro d'allocataire, "
                                         "ou nom + prénom + date de naissance")
                key = _identity_key(row)
                if key in seen:
                    raise RowError(None, f"ligne en double de la ligne {seen[key]} (même personne)")
                seen[key] = line
                outcome = _apply(session, index, communes, row, {k: v for k, v in ext.items() if v}, labels)
            except RowError as exc:
                rejects.append(reject_row(session, batch, line, exc.column, exc.message, raw))
                continue
            counts[outcome] += 1
            if row.get("_household_sectorised") is not None:
                sectorised.append(row["_household_sectorised"])
            if outcome == "created" and row.get("_household_created"):
                counts["households_created"] += 1
            if counts["rows"] % 2000 == 0:
                session.flush()
        session.flush()
        if sectorised:
            sync_path_sectors(session, [h.id for h in sectorised])
        from imports.france_travail import match_pending

        counts["france_travail_matched"] = match_pending(session)
        warnings = []
        unmapped = [f for f in mapping["fields"] if f not in columns]
        if unmapped:
            warnings.append("colonnes de la correspondance absentes du fichier: " + ", ".join(unmapped))
        if detected.get("encoding") == "windows-1252":
            warnings.append("encodage détecté: windows-1252")
        return counts, rejects, warnings

    return run_batch(runtime, "spreadsheet", path, body, header={"mapping": mapping_name}, created_by=created_by)


def _apply(session: Session, index: IdentityIndex, communes: _Communes, row: dict, ext: dict,
           labels: dict[str, str]) -> str:
    """Enrich the matched person or create one; returns created | updated | unchanged."""
    match = index.match(nir_hash=row["nir_hash"], birth_date=row["birth_date"], organism=row["organism"],
                        matricule=row["matricule"], role=row["role"], last_name=row["last_name"],
                        first_name=row["first_name"])
    if match.conflict:
        raise RowError(labels.get("nir") or labels.get("birth_date"), match.conflict)
    household = None
    if row["matricule"]:
        ref = match.household_id
        if ref is None:
            household = Household(organism=row["organism"], matricule=row["matricule"])
            session.add(household)
            index.learn_household(household)
            row["_household_created"] = True
        else:
            household = ref if isinstance(ref, Household) else session.get(Household, ref)
    changed = False
    if household is not None:
        changed |= _enrich_household(household, row, communes)
    if match.person_id is None:
        if not (row["last_name"] and row["first_name"]):
            raise RowError(None, "personne inconnue: nom et prénom nécessaires pour la créer")
        person = Person(household=household, role=row["role"],
                        civility=row["civility"], last_name=row["last_name"], birth_name=row["birth_name"],
                        first_name=row["first_name"], birth_date=row["birth_date"], nir_hash=row["nir_hash"],
                        nir_encrypted=row["nir_encrypted"], email=row["email"],
                        phone=row["phone"][0] if row["phone"] else None,
                        phone_kind=row["phone"][1] if row["phone"] else None,
                        idassedic=row["france_travail_id"], external_ids=_external(row, ext) or None)
        session.add(person)
        index.learn_person(person, household)
        return "created"
    ref = match.person_id
    person = ref if isinstance(ref, Person) else session.get(Person, ref)
    if row["nir_hash"] and person.nir_hash and person.nir_hash != row["nir_hash"]:
        raise RowError(labels.get("nir"), "NIR différent de celui déjà connu pour cette personne: identité en conflit")
    for attr in ("civility", "last_name", "birth_name", "first_name", "birth_date", "role", "nir_hash"):
        if getattr(person, attr) is None and row.get(attr) is not None:
            setattr(person, attr, row[attr])
            changed = True
            if attr == "nir_hash":
                person.nir_encrypted = row["nir_encrypted"]
    if person.household_id is None and person.household is None and household is not None:
        person.household = household
        changed = True
    if row["france_travail_id"] and not person.idassedic:
        person.idassedic, changed = row["france_travail_id"], True
    if row["email"] and person.email != row["email"]:
        person.email, changed = row["email"], True
    if row["phone"] and (person.phone, person.phone_kind) != row["phone"]:
        person.phone, person.phone_kind = row["phone"]
        changed = True
    merged = dict(person.external_ids or {}) | _external(row, ext)
    if merged != (person.external_ids or {}):
        person.external_ids, changed = merged, True
    return "updated" if changed else "unchanged"


def _external(row: dict, ext: dict) -> dict:
    out = dict(ext)
    if row.get("referent_email"):
        out["referent_email"] = row["referent_email"]
    if row.get("tags"):
        out["tags"] = row["tags"]
    return out


def _enrich_household(household: Household, row: dict, communes: _Communes) -> bool:
    """Fill the blanks of the household (the CAF flow stays the authority on what it sends)."""
    changed = False
    address = ", ".join(p for p in (row.get("address"), row.get("address_complement")) if p) or None
    for attr, value in (("numdemrsa", row.get("request_number")), ("dtdemrsa", row.get("request_date")),
                        ("right_opened_on", row.get("rights_opened_on")), ("address_line", address),
                        ("postal_code", row.get("postal_code")), ("city", row.get("city"))):
        if value is not None and getattr(household, attr) is None:
            if attr == "numdemrsa" and len(str(value)) > 11:
                continue
            setattr(household, attr, value)
            changed = True
    if household.commune_insee is None and household.postal_code:
        insee = communes.insee(household.postal_code, household.city)
        if insee:
            household.commune_insee = insee
            sector = communes.sectors.find(insee, household.postal_code).sector
            if sector is not None:
                household.mds_id, household.territory_id = sector.mds_id, sector.territory_id
                row["_household_sectorised"] = household  # its paths take the sector after the flush
            changed = True
    return changed
