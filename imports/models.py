"""Import batches, rejected records kept for replay, and the raw record of each household."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from config.db import Base, utcnow


class ImportBatch(Base):
    """One file, once. The SHA-256 recognises a re-sent file."""

    __tablename__ = "import_batch"
    __table_args__ = (UniqueConstraint("kind", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # flux | france_travail:<kind> | spreadsheet | provider_return
    file_name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)  # flows of a whole département exceed 2 GB
    header: Mapped[dict | None]  # IdentificationFlux fields, mapping name, structure…
    status: Mapped[str] = mapped_column(String(12), default="running")  # running imported failed
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list | None]
    counts: Mapped[dict | None]  # households persons created updated unchanged rejected …
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class RejectedRecord(Base):
    """A record that failed validation, with its reason and raw content, kept for replay."""

    __tablename__ = "rejected_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    record_key: Mapped[str | None] = mapped_column(String(120))  # matricule, row number…
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending replayed purged
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    replayed_at: Mapped[dt.datetime | None]


class RawRecord(Base):
    """The last raw XML fragment of a household (compressed) and its content hash."""

    __tablename__ = "raw_record"

    household_id: Mapped[int] = mapped_column(ForeignKey("household.id", ondelete="CASCADE"), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_gz: Mapped[bytes | None] = mapped_column(LargeBinary)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ColumnMapping(Base):
    """A named spreadsheet column mapping (our field → header labels)."""

    __tablename__ = "column_mapping"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    fields: Mapped[dict]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FranceTravailDispatch(Base):
    """One validated orientation of the Département to send to France Travail, once (issue 17).

    The idempotency key goes with every try (header `Idempotency-Key`, column of the daily file), so
    a try whose answer was lost is not recorded twice by France Travail. The payload holds no NIR: it
    is read from the vault at the moment of sending, for France Travail only."""

    __tablename__ = "france_travail_dispatch"

    id: Mapped[int] = mapped_column(primary_key=True)
    orientation_id: Mapped[int] = mapped_column(ForeignKey("orientation.id"), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict]
    queued_on: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)  # queued sent failed
    transport: Mapped[str | None] = mapped_column(String(8))  # file | api
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    sent_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    sent_file: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
