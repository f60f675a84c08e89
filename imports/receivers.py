"""How the imports package takes part in the retention purge of cases (cases/signals.py): cases sits
below imports and never imports it. Imported by the composition root (config/runtime.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update

from cases import signals
from imports.models import RawRecord, RejectedRecord


@signals.households_purging.connect
def delete_raw_records(session, *, household_ids: list[int]) -> int:
    """The raw XML fragments of households whose members are all anonymised."""
    if not household_ids:
        return 0
    return session.execute(delete(RawRecord).where(RawRecord.household_id.in_(household_ids))).rowcount


@signals.retention_sweep.connect
def sweep_records(session, *, cutoff: dt.datetime, dry_run: bool) -> dict[str, int]:
    """Rejected records (their raw content and key) and raw fragments older than the retention."""
    rejected = (RejectedRecord.created_at < cutoff, RejectedRecord.status != "purged")
    raw = (RawRecord.updated_at < cutoff,)
    if dry_run:
        count = lambda model, cond: session.scalar(select(func.count()).select_from(model).where(*cond))  # noqa: E731
        return {"rejected_records": count(RejectedRecord, rejected), "raw_records": count(RawRecord, raw)}
    return {"rejected_records": session.execute(update(RejectedRecord).where(*rejected)
                                                .values(raw=None, record_key=None, status="purged")).rowcount,
            "raw_records": session.execute(delete(RawRecord).where(*raw)).rowcount}
