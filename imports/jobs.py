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


def france_travail_read(runtime, as_of: dt.date) -> dict:
    """Daily: in API mode, read France Travail's orientations and contracts for the persons to read;
    in both modes, apply the records that wait (D+42 reached, person arrived, orientation recorded);
    then the reconciliation report of the day before, written to RSA_REPORTS_DIR/france_travail."""
    import json
    from pathlib import Path

    from imports.france_travail_dispatch import reconciliation
    from imports.france_travail_orientation import apply_pending, read_api

    if runtime.settings.ft_mode == "api":
        out = read_api(runtime, as_of)
    else:
        with runtime.session() as s:
            out = apply_pending(s, as_of)
    with runtime.session() as s:
        report = reconciliation(s, runtime.settings, as_of - dt.timedelta(days=1))
    folder = Path(runtime.settings.reports_dir) / "france_travail"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rapprochement_{report['date']}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    out["reconciliation"] = {k: report[k] for k in ("date", "validated", "of_which_sent", "of_which_failed",
                                                    "of_which_not_queued", "balanced")}
    return out


def france_travail_send(runtime, as_of: dt.date, now: dt.datetime | None = None, client=None) -> dict:
    """Queue the validated decisions not queued yet, then send what is due (file of the day or API)."""
    from imports.france_travail_dispatch import process, queue_decisions

    with runtime.session() as s:
        queued = queue_decisions(s, runtime.settings, as_of)
    with runtime.session() as s:
        out = process(s, runtime, now=now, as_of=as_of, client=client)
    return {"queued": queued, **out}


# France Travail: read after the orientation run (06:30) and before the deadline alerts see the backlog;
# decisions sent every 30 minutes (retries of a failed try come due in between).
# The inbox makes the stored reports stale only when it imported a file (reports_stale).
JOBS = [Job("imports.inbox", inbox_job, every_minutes=5, reports_stale=lambda r: bool(r.get("imported"))),
        Job("imports.france_travail_read", france_travail_read, cron={"hour": 6, "minute": 40}),
        Job("imports.france_travail_send", france_travail_send, every_minutes=30, reports_stale=False)]
