"""Scheduled imports: the inbox (RSA_INBOX) is polled every few minutes."""

from __future__ import annotations

import datetime as dt

from config.scheduler import Job

# A file modified less than this many seconds ago may still be being copied: left for the next run.
SETTLE_SECONDS = 60


def inbox_job(runtime, as_of: dt.date) -> dict:
    """Import the files dropped in the inbox, then archive (or quarantine) them."""
    from imports.service import process_inbox

    result = process_inbox(runtime, settle_seconds=SETTLE_SECONDS)
    return {k: result[k] for k in ("imported", "duplicate", "failed")} | {
        "files": [{"path": f["path"], "status": f["status"], "error": f.get("error")} for f in result["files"]]}


JOBS = [Job("imports.inbox", inbox_job, every_minutes=5)]
