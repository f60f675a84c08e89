"""Reading text files whose encoding and separator nobody declares (CSV exports of Excel, legacy
France Travail lists): UTF-8 with or without BOM, else windows-1252; separator sniffed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cases.nir import NirError
from referents.cells import control_reason


class FileError(ValueError):
    """The file as a whole cannot be imported (nothing is changed)."""


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding). UTF-8 (BOM removed) when it decodes strictly, else windows-1252."""
    if b"\x00" in data[:4096]:
        raise FileError("fichier binaire: ce n'est pas un fichier texte CSV")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "iso-8859-1"


def sniff_separator(sample: str) -> str:
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if not lines:
        return ";"
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=";,\t|").delimiter
    except csv.Error:
        counts = {sep: lines[0].count(sep) for sep in ";,\t|"}
        return max(counts, key=counts.get)


def read_rows(path: Path | str, separator: str | None = None) -> tuple[list[list[str]], dict]:
    """All rows of a CSV file as lists of strings, and what was detected."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileError(f"fichier illisible: {exc.strerror}") from None
    text, encoding = decode(data)
    sep = separator or sniff_separator(text[:20000])
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    except csv.Error as exc:
        raise FileError(f"CSV mal formé: {exc}") from None
    return rows, {"encoding": encoding, "separator": sep}


# --- the batch around a list import ---------------------------------------------------------------

class RowError(ValueError):
    """A row that cannot be imported: its column (as labelled in the file) and the reason."""

    def __init__(self, column: str | None, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


def cell(values: dict, labels: dict[str, str], field: str, parser):
    """The typed value of one of our fields in a row (None when the file has no such column); a
    value the parser refuses becomes a RowError naming the column as labelled in the file."""
    if field not in values:
        return None
    reason = control_reason(values[field])
    if reason:
        raise RowError(labels[field], reason)
    try:
        return parser(values[field])
    except (ValueError, NirError) as exc:
        raise RowError(labels[field], str(exc)) from None


def check_controls(values: dict, labels: dict | None = None) -> None:
    """Refuse a row whose values hold control characters (names are otherwise kept verbatim)."""
    for field, value in values.items():
        reason = control_reason(value)
        if reason:
            raise RowError((labels or {}).get(field, field), reason)


def reject_row(session, batch, row_no: int, column: str | None, message: str, values: dict | None) -> dict:
    """Store a RejectedRecord naming the row and the column; return the reject for the report."""
    import json

    from imports.batches import reject

    where = f"ligne {row_no}" + (f", colonne « {column} »" if column else "")
    raw = json.dumps({"row": row_no, "column": column, "values": values or {}}, ensure_ascii=False, default=str)
    reject(session, batch, f"ligne {row_no}", f"{where}: {message}", raw)
    return {"row": row_no, "column": column, "reason": message}


def earlier_rejects(session, batch_id: int, limit: int = 100) -> list[dict]:
    """The rejects of a batch in the report's shape ({row, column, reason}), from the stored records."""
    import json

    from sqlalchemy import select

    from imports.models import RejectedRecord

    out = []
    for rec in session.scalars(select(RejectedRecord).where(RejectedRecord.batch_id == batch_id)
                               .order_by(RejectedRecord.id).limit(limit)):
        try:
            raw = json.loads(rec.raw.decode("utf-8")) if rec.raw else {}
        except (ValueError, UnicodeDecodeError):
            raw = {}
        reason = rec.reason
        where = f"{rec.record_key}" if rec.record_key else ""
        if raw.get("column"):
            where += f", colonne « {raw['column']} »"
        if where and reason.startswith(where + ": "):
            reason = reason[len(where) + 2:]
        out.append({"row": raw.get("row"), "column": raw.get("column"), "reason": reason})
    return out


def run_batch(runtime, kind: str, path: Path | str, body, *, header: dict | None = None,
              created_by: int | None = None, max_rejects_in_report: int = 100) -> dict:
    """Run `body(session, batch) -> (counts, rejects, warnings)` in ONE transaction.

    A re-sent file (same SHA-256) is recognised and nothing happens; a FileError (or any crash)
    rolls everything back and records the batch as failed with its one-line reason."""
    from imports.batches import fail, finish, sha256_file, start_batch

    path = Path(path)
    report = {"path": str(path), "file": path.name, "kind": kind, "status": None, "batch_id": None,
              "counts": {}, "rejected": 0, "rejects": [], "warnings": [], "error": None}
    try:
        sha = sha256_file(path)
    except OSError as exc:
        report.update(status="failed", error=f"fichier illisible: {exc.strerror}")
        return report
    session = runtime.sessions()
    try:
        started = start_batch(session, kind, path, sha, header=header, created_by=created_by)
        report["batch_id"] = started.batch.id
        if started.duplicate:
            # The same file again: nothing changes, and the answer repeats the first one's rejects
            # (a provider re-sending its file learns again what to correct, not "nothing to do").
            rejects = earlier_rejects(session, started.batch.id, max_rejects_in_report)
            counts = started.batch.counts or {}
            session.rollback()
            report.update(status="duplicate", counts=counts, rejected=int(counts.get("rejected", len(rejects))),
                          rejects=rejects, warnings=started.batch.warnings or [])
            return report
        counts, rejects, warnings = body(session, started.batch)
        counts["rejected"] = len(rejects)
        finish(started.batch, counts, warnings)
        session.commit()
        report.update(status="imported", counts=counts, rejected=len(rejects),
                      rejects=rejects[:max_rejects_in_report], warnings=warnings)
        return report
    except FileError as exc:
        session.rollback()
        batch = fail(runtime.sessions, kind, path, sha, str(exc), header=header)
        report.update(status="failed", error=str(exc), batch_id=batch.id)
        return report
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
