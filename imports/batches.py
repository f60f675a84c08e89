"""The batch / reject / idempotency machinery shared by every importer.

A file is hashed first; a file already imported with the same SHA-256 and kind is recognised and
nothing happens. (A large flow whose size and header no earlier batch has cannot be one already
seen: it is hashed while it is imported, FileDigest.) Each malformed record becomes a RejectedRecord with its
reason and raw content.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from config.db import utcnow
from imports.models import ImportBatch, RejectedRecord


def sha256_file(path: Path | str) -> str:
    """hashlib.file_digest: one 256 KB buffer read into again and again. Reading 1 MB blocks (a new
    bytes object each) took 5.4 s for a 4.2 GB flow and raised the hashing thread's RSS by 2.1 MB
    (FileDigest: the first import's peak at 1M on SQLite, 149.6 MB); file_digest 2.9 s and 0.35 MB."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class FileDigest:
    """A file's SHA-256 computed by a thread while the importer reads the file (hashlib and the reads
    release the GIL: 3.5 s of a 4.2 GB flow's re-import no longer come before its first household).
    `placeholder` stands for it in the batch row until `result()`; the transaction that holds that
    row is the only one that sees it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.placeholder = f"calcul en cours {secrets.token_hex(16)}"
        self._hex: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="rsa-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._hex = sha256_file(self.path)
        except OSError as exc:
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hex


def may_repeat(session: Session, kind: str, size: int, header: dict | None = None) -> bool:
    """Whether a file of this size (and header, when the kind has one) may be one already seen: a
    batch of the kind has that size, or none recorded, and that header, or none recorded. A monthly
    flow re-sent with a new header (its creation date) is a new file even at the same size. A file
    that may not be one already seen is hashed while imported (FileDigest)."""
    same_size = or_(ImportBatch.size_bytes == size, ImportBatch.size_bytes.is_(None))
    if header is None:
        return bool(session.scalar(select(exists().where(ImportBatch.kind == kind, same_size))))
    return any(h is None or h == header for h in session.scalars(
        select(ImportBatch.header).where(ImportBatch.kind == kind, same_size)))


@dataclass
class BatchStart:
    batch: ImportBatch
    duplicate: bool  # True: the same file was already imported; batch is the earlier one


def find_imported(session: Session, kind: str, sha256: str) -> ImportBatch | None:
    return session.scalar(select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.sha256 == sha256,
                                                    ImportBatch.status == "imported"))


def start_batch(session: Session, kind: str, path: Path | str, sha256: str | None = None,
                header: dict | None = None, created_by: int | None = None) -> BatchStart:
    """Open a batch for a file, or recognise it as already imported.

    A failed or interrupted earlier attempt of the same file is reused (status back to running),
    so that re-running after a crash completes the import.
    """
    path = Path(path)
    sha256 = sha256 or sha256_file(path)
    earlier = session.scalar(select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.sha256 == sha256))
    if earlier is not None and earlier.status == "imported":
        return BatchStart(earlier, True)
    if earlier is not None:
        earlier.status, earlier.error, earlier.started_at, earlier.finished_at = "running", None, utcnow(), None
        earlier.file_name = path.name
        if header is not None:
            earlier.header = header
        session.flush()
        return BatchStart(earlier, False)
    batch = ImportBatch(kind=kind, file_name=path.name, sha256=sha256, size_bytes=path.stat().st_size,
                        header=header, status="running", created_by=created_by)
    session.add(batch)
    session.flush()
    return BatchStart(batch, False)


def reject(session: Session, batch: ImportBatch, key: str | None, reason: str, raw: bytes | str | None) -> RejectedRecord:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    rec = RejectedRecord(batch_id=batch.id, record_key=key, reason=reason, raw=raw)
    session.add(rec)
    return rec


def finish(batch: ImportBatch, counts: dict, warnings: list[str] | None = None) -> None:
    batch.status = "imported"
    batch.counts = counts
    batch.warnings = warnings or None
    batch.finished_at = utcnow()


def fail(session_factory, kind: str, path: Path | str, sha256: str | None, reason: str,
         header: dict | None = None) -> ImportBatch:
    """Record a failed file in its own transaction (the import's own transaction was rolled back).
    A batch of the same file already imported is left as it is: another import of that file (the
    inbox job beside a command) committed first, and this one failed on its SHA-256's uniqueness."""
    path = Path(path)
    with session_factory() as s:
        sha = sha256 or (sha256_file(path) if path.exists() else "0" * 64)
        batch = s.scalar(select(ImportBatch).where(ImportBatch.kind == kind, ImportBatch.sha256 == sha))
        if batch is not None and batch.status == "imported":
            s.expunge(batch)
            return batch
        if batch is None:
            batch = ImportBatch(kind=kind, file_name=path.name, sha256=sha,
                                size_bytes=path.stat().st_size if path.exists() else None)
            s.add(batch)
        batch.status, batch.error, batch.header, batch.finished_at = "failed", reason, header, utcnow()
        s.commit()
        s.refresh(batch)
        s.expunge(batch)
        return batch


class ReplayError(ValueError):
    """A rejected record that cannot be replayed (unknown, already handled, or of another import)."""


def pending_reject(session: Session, reject_id: int, kind: str, kind_label: str) -> tuple[RejectedRecord, ImportBatch]:
    """The rejected record to replay and its batch: refused unless it is still pending and belongs to an
    import of `kind` (`kind_label` names that import in the French message)."""
    rec = session.get(RejectedRecord, reject_id)
    if rec is None:
        raise ReplayError(f"rejet {reject_id} inconnu")
    if rec.status != "pending":
        raise ReplayError(f"rejet {reject_id} déjà traité (statut {rec.status})")
    batch = session.get(ImportBatch, rec.batch_id)
    if batch.kind != kind:
        raise ReplayError(f"rejet {reject_id}: lot de type {batch.kind}, pas {kind_label}")
    return rec, batch
