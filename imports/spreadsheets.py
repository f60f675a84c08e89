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
import itertools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import nir as nirlib
from cases.models import Household, Person
from cases.service import sync_path_sectors
from config import clock
from imports.identity import IdentityIndex
from imports.models import ColumnMapping
from imports.tabular import FileError, RowError, cell, check_controls, reject_row, run_batch, sniff_separator
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
# Streaming, with limits (issue 22, item 1): a 1.6 KB xlsx declaring cell XFD1048576, a 1.5 MB xlsx
# holding a 1.5 GiB cell, or a million rows sent a worker past 5 GB when the whole sheet was loaded
# (pandas.read_excel). Rows are now read one at a time (openpyxl read-only for xlsx, an lxml
# iterparse of content.xml for ods, a lazy csv reader for csv) and every file is refused, with a
# French reason and a failed batch, when its declared dimensions, its rows, columns, cell length or
# the decompressed size of its zip members exceed the limits below. Memory stays flat whatever the
# file; measured figures in docs/security.md.

MB = 1024 * 1024


@dataclass(frozen=True)
class SheetLimits:
    """Limits of a spreadsheet import. The defaults fit the largest real lists (a département's
    stock of beneficiaries is a few tens of thousands of rows); callers with bigger files pass their own."""

    max_rows: int = 200_000
    max_columns: int = 200
    max_cell_chars: int = 32_767  # Excel's own limit for a cell
    max_unzipped_bytes: int = 256 * MB  # sum of the declared sizes of an xlsx/ods zip's members
    max_compression_ratio: int = 200  # per member above 1 MB (zip bombs)
    max_members: int = 2_000
    max_xls_bytes: int = 30 * MB  # xlrd reads a whole .xls sheet (65,536 rows × 256 columns at most)


LIMITS = SheetLimits()


def _refuse(reason: str):
    raise FileError(f"fichier refusé: {reason}")


def _fr(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def _check_zip(path: Path, limits: SheetLimits) -> None:
    """Decompressed sizes declared by the zip (Python's zipfile never inflates a member beyond its
    declared size, so the declaration bounds the memory; a lie ends in a CRC error)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileError(f"classeur illisible (archive zip invalide: {exc})") from None
    if len(infos) > limits.max_members:
        _refuse(f"{_fr(len(infos))} éléments dans l'archive (maximum {_fr(limits.max_members)})")
    total = sum(i.file_size for i in infos)
    if total > limits.max_unzipped_bytes:
        _refuse(f"{total / MB:,.0f} Mo une fois décompressé (maximum {limits.max_unzipped_bytes // MB} Mo)"
                .replace(",", "\u202f"))
    for i in infos:
        if i.file_size > MB and i.file_size > limits.max_compression_ratio * max(i.compress_size, 1):
            _refuse(f"taux de compression anormal pour « {i.filename[:80]} » "
                    f"({i.file_size // max(i.compress_size, 1)}:1): archive piégée")


class _Guard:
    """Counts rows and checks widths and cell lengths as rows stream by."""

    def __init__(self, limits: SheetLimits):
        self.limits = limits

    def rows(self, line: int) -> None:
        if line > self.limits.max_rows:
            _refuse(f"plus de {_fr(self.limits.max_rows)} lignes (découpez le fichier)")

    def columns(self, width: int, line: int) -> None:
        if width > self.limits.max_columns:
            _refuse(f"ligne {line}: {_fr(width)} colonnes (maximum {self.limits.max_columns})")

    def cell(self, value, line: int, column: int):
        if isinstance(value, str) and len(value) > self.limits.max_cell_chars:
            _refuse(f"ligne {line}, colonne {column}: cellule de {_fr(len(value))} caractères "
                    f"(maximum {_fr(self.limits.max_cell_chars)})")
        return value

    def row(self, values, line: int) -> list:
        """A row as a list without its trailing blanks, checked."""
        self.rows(line)
        values = list(values)
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        self.columns(len(values), line)
        for j, v in enumerate(values, start=1):
            self.cell(v, line, j)
        return values


def _number(value: float):
    return int(value) if isinstance(value, float) and value.is_integer() else value


_XLSX_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _xlsx_rows(path: Path, limits: SheetLimits, guard: _Guard, detected: dict):
    """The first sheet of an xlsx, streamed: openpyxl reads the workbook parts (shared strings,
    styles for dates), and the sheet XML is walked row by row with lxml, each row decoded by
    openpyxl's own row parser. (openpyxl's read-only mode would first parse a whole sheet that
    declares no dimension; this reader stops at the first row over the limits.)"""
    from lxml import etree
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
    from openpyxl.worksheet._reader import WorkSheetParser

    _check_zip(path, limits)
    reader = None
    try:
        reader = ExcelReader(str(path), read_only=True, data_only=True)
        reader.read_manifest()
        strings = [n for n in reader.archive.namelist() if n.lower().endswith("sharedstrings.xml")]
        for name in strings:
            if reader.archive.getinfo(name).file_size > limits.max_unzipped_bytes // 4:
                _refuse(f"table des textes partagés de {reader.archive.getinfo(name).file_size // MB} Mo "
                        f"(maximum {limits.max_unzipped_bytes // 4 // MB} Mo)")
        reader.read_strings()
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.wb)
        sheets = list(reader.parser.find_sheets())
        if not sheets:
            raise FileError("classeur sans feuille")
        _sheet, rel = sheets[0]
        wb = reader.wb
        parser = WorkSheetParser(None, reader.shared_strings, data_only=True, epoch=wb.epoch,
                                 date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats)
        source = reader.archive.open(rel.target)
    except FileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file cannot be read
        if reader is not None:
            reader.archive.close()
        raise FileError(f"classeur illisible (.xlsx): {exc.__class__.__name__}: {str(exc)[:200]}") from None
    try:
        line = 0
        events = etree.iterparse(source, events=("start", "end"), tag=(f"{_XLSX_NS}dimension", f"{_XLSX_NS}row"),
                                 resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        for event, el in events:
            if el.tag == f"{_XLSX_NS}dimension":
                if event == "start":
                    # The declared size (<dimension ref="A1:XFD1048576"/>) is refused before any row is
                    # read; it may also lie, so every row is checked again as it comes.
                    ref = (el.get("ref") or "").split(":")[-1]
                    try:
                        letters, max_row = coordinate_from_string(ref)
                        max_col = column_index_from_string(letters)
                    except ValueError:
                        continue
                    detected["declared"] = {"rows": max_row, "columns": max_col}
                    if max_row > limits.max_rows:
                        _refuse(f"feuille déclarée de {_fr(max_row)} lignes (maximum {_fr(limits.max_rows)})")
                    if max_col > limits.max_columns:
                        _refuse(f"feuille déclarée de {_fr(max_col)} colonnes (maximum {limits.max_columns})")
                continue
            if event != "end":
                continue
            index = int(el.get("r") or line + 1) if (el.get("r") or "").isdigit() else line + 1
            guard.rows(index)
            if len(el) > limits.max_columns:
                guard.columns(len(el), index)
            last = el[-1].get("r") if len(el) else None
            if last:
                try:
                    width = column_index_from_string(coordinate_from_string(last)[0])
                except ValueError:
                    width = 0
                guard.columns(width, index)
            _idx, cells = parser.parse_row(el)
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
            while line + 1 < index:  # rows the file leaves out are blank lines
                line += 1
                yield []
            line = index
            values = [None] * (max((c["column"] for c in cells), default=0))
            for c in cells:
                if c["column"] >= 1:
                    values[c["column"] - 1] = _number(c["value"])
            yield guard.row(values, line)
    except FileError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt sheet, an XML error, a CRC error…
        raise FileError(f"classeur illisible (.xlsx): {exc.__class__.__name__}: {str(exc)[:200]}") from None
    finally:
        source.close()
        reader.archive.close()


_ODS_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_ODS_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_ODS_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"


def _ods_text(element) -> str:
    """The text of a cell: its paragraphs joined by line breaks (text:s = spaces, text:tab)."""
    out = []

    def walk(node):
        if node.text:
            out.append(node.text)
        for child in node:
            if child.tag == f"{_ODS_TEXT}s":
                out.append(" " * int(child.get(f"{_ODS_TEXT}c", "1") or 1))
            elif child.tag == f"{_ODS_TEXT}tab":
                out.append("\t")
            elif child.tag == f"{_ODS_TEXT}line-break":
                out.append("\n")
            else:
                walk(child)
            if child.tail:
                out.append(child.tail)

    paragraphs = []
    for p in element:
        if p.tag in (f"{_ODS_TEXT}p", f"{_ODS_TEXT}h"):
            out.clear()
            walk(p)
            paragraphs.append("".join(out))
    return "\n".join(paragraphs)


def _ods_value(cell):
    kind = cell.get(f"{_ODS_OFFICE}value-type")
    if kind in ("float", "percentage", "currency"):
        try:
            return _number(float(cell.get(f"{_ODS_OFFICE}value")))
        except (TypeError, ValueError):
            return _ods_text(cell) or None
    if kind == "date":
        raw = cell.get(f"{_ODS_OFFICE}date-value") or ""
        try:
            return dt.datetime.fromisoformat(raw) if "T" in raw else dt.date.fromisoformat(raw)
        except ValueError:
            return raw or None
    if kind == "boolean":
        return (cell.get(f"{_ODS_OFFICE}boolean-value") or "").lower() == "true"
    return _ods_text(cell) or None


def _ods_rows(path: Path, limits: SheetLimits, guard: _Guard, detected: dict):
    """The first table of an OpenDocument spreadsheet, streamed from content.xml (repeated rows and
    cells expanded only when they hold something; trailing blanks are not rows)."""
    from lxml import etree

    _check_zip(path, limits)
    try:
        zf = zipfile.ZipFile(path)
        source = zf.open("content.xml")
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise FileError(f"classeur illisible (.ods): {exc}") from None
    line = 0
    pending_blank = 0
    in_table = False
    try:
        context = etree.iterparse(source, events=("start", "end"), resolve_entities=False, no_network=True,
                                  load_dtd=False, huge_tree=False)
        for event, el in context:
            tag = el.tag
            if tag == f"{_ODS_TABLE}table":
                if event == "start":
                    in_table = True
                else:
                    if in_table:
                        break  # only the first sheet
                continue
            if not in_table or event != "end" or tag != f"{_ODS_TABLE}table-row":
                continue
            repeat = int(el.get(f"{_ODS_TABLE}number-rows-repeated", "1") or 1)
            values, width = [], 0
            for c in el:
                if c.tag not in (f"{_ODS_TABLE}table-cell", f"{_ODS_TABLE}covered-table-cell"):
                    continue
                times = int(c.get(f"{_ODS_TABLE}number-columns-repeated", "1") or 1)
                value = _ods_value(c) if c.tag == f"{_ODS_TABLE}table-cell" else None
                if value is None or value == "":
                    width += times
                    continue
                guard.columns(width + times, line + pending_blank + 1)
                values.extend([None] * (width - len(values)))
                values.extend([guard.cell(value, line + pending_blank + 1, width + 1)] * times)
                width += times
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
            if not values:
                pending_blank += repeat
                continue
            for _ in range(pending_blank):
                line += 1
                guard.rows(line)
                yield []
            pending_blank = 0
            for _ in range(repeat):
                line += 1
                yield guard.row(values, line)
    except FileError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed XML, CRC error…
        raise FileError(f"classeur illisible (.ods): {exc.__class__.__name__}: {str(exc)[:200]}") from None
    finally:
        source.close()
        zf.close()


def _xls_rows(path: Path, limits: SheetLimits, guard: _Guard, detected: dict):
    """Legacy .xls (BIFF): xlrd reads a whole sheet, so the file size is capped first."""
    import xlrd

    size = path.stat().st_size
    if size > limits.max_xls_bytes:
        _refuse(f"classeur .xls de {size / MB:.0f} Mo (maximum {limits.max_xls_bytes // MB} Mo): "
                "enregistrez-le au format .xlsx")
    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
        sheet = book.sheet_by_index(0)
    except Exception as exc:  # noqa: BLE001
        raise FileError(f"classeur illisible (.xls): {exc.__class__.__name__}: {str(exc)[:200]}") from None
    try:
        if sheet.nrows > limits.max_rows:
            _refuse(f"feuille de {_fr(sheet.nrows)} lignes (maximum {_fr(limits.max_rows)})")
        if sheet.ncols > limits.max_columns:
            _refuse(f"feuille de {_fr(sheet.ncols)} colonnes (maximum {limits.max_columns})")
        for i in range(sheet.nrows):
            out = []
            for c in sheet.row(i):
                if c.ctype == xlrd.XL_CELL_DATE:
                    try:
                        v = xlrd.xldate.xldate_as_datetime(c.value, book.datemode)
                    except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                        v = c.value
                elif c.ctype == xlrd.XL_CELL_NUMBER:
                    v = _number(c.value)
                elif c.ctype == xlrd.XL_CELL_BOOLEAN:
                    v = bool(c.value)
                elif c.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
                    v = None
                else:
                    v = c.value if c.value != "" else None
                out.append(v)
            yield guard.row(out, i + 1)
    finally:
        book.release_resources()


def _csv_rows(path: Path, limits: SheetLimits, guard: _Guard, detected: dict):
    """CSV read lazily: the encoding is found in one streaming pass (strict UTF-8, else windows-1252),
    then rows are parsed one at a time."""
    import codecs
    import csv

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    encoding = "utf-8"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
            if b"\x00" in head:
                raise FileError("fichier binaire: ce n'est pas un fichier texte CSV")
            if head.startswith(b"\xef\xbb\xbf"):
                encoding = "utf-8-sig"
            chunk = head
            try:
                while chunk:
                    decoder.decode(chunk)
                    chunk = fh.read(MB)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                encoding = "windows-1252"
    except OSError as exc:
        raise FileError(f"fichier illisible: {exc.strerror}") from None
    detected["encoding"] = encoding
    fh = path.open("r", encoding="cp1252" if encoding == "windows-1252" else encoding, errors="replace", newline="")
    try:
        sample = fh.read(20000)
        fh.seek(0)
        detected["separator"] = sep = sniff_separator(sample)
        reader = csv.reader(fh, delimiter=sep)
        line = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise FileError(f"CSV mal formé (ligne {line + 1}): {exc}") from None
            line = reader.line_num
            if len(row) > limits.max_columns:
                guard.columns(len(row), line)
            yield guard.row(row, line)
    finally:
        fh.close()


def open_sheet(path: Path | str, limits: SheetLimits = LIMITS):
    """(row iterator, detected): every line of the first sheet as a list of Python values (dates
    stay dates, integral numbers are ints, trailing blanks dropped), read one at a time under `limits`.
    The iterator raises FileError (French reason) on a limit or a broken file; `detected` is filled
    as reading goes (encoding, separator of a CSV, engine)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise FileError(f"format non pris en charge « {suffix} » ({', '.join(EXTENSIONS)})")
    if not path.is_file():
        raise FileError("fichier illisible: fichier absent")
    guard = _Guard(limits)
    detected: dict = {}
    if suffix in (".csv", ".txt"):
        detected["engine"] = "csv"
        return _csv_rows(path, limits, guard, detected), detected
    if suffix == ".xls":
        detected["engine"] = "xlrd"
        return _xls_rows(path, limits, guard, detected), detected
    if suffix == ".ods":
        detected["engine"] = "ods"
        return _ods_rows(path, limits, guard, detected), detected
    detected["engine"] = "openpyxl"
    return _xlsx_rows(path, limits, guard, detected), detected


def read_sheet(path: Path | str, limits: SheetLimits = LIMITS) -> tuple[list[list], dict]:
    """Every line of the first sheet as Python values (dates stay dates), and what was detected.
    Read through `open_sheet`, so the same limits hold; prefer `open_sheet` to keep memory flat."""
    rows, detected = open_sheet(path, limits)
    return list(rows), detected


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
    if out["birth_date"] and not dt.date(1900, 1, 1) <= out["birth_date"] <= clock.today():
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
        stream, detected = open_sheet(path)
        head = list(itertools.islice(stream, HEADER_SEARCH_ROWS))
        header_index, columns, external = locate_columns(head, mapping)
        labels = {f: label for f, (_j, label) in columns.items()}
        index = IdentityIndex(session)
        communes = _Communes(session)
        counts = {"rows": 0, "created": 0, "updated": 0, "unchanged": 0, "households_created": 0}
        rejects, seen, sectorised = [], {}, []
        rows = itertools.chain(head[header_index + 1:], stream)  # one row at a time: memory stays flat
        for i, cells in enumerate(rows, start=header_index + 1):
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
