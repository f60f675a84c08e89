"""Scheduled jobs of the security package: the monthly retention purge."""

from __future__ import annotations

import datetime as dt

from config.scheduler import Job


def run_purge(runtime, as_of: dt.date, dry_run: bool = False, months: int | None = None,
              actor: str = "job rgpd_purge") -> dict:
    """The retention purge in one transaction, recorded in the audit log (counts, never names)."""
    from cases.retention import purge
    from referents.security import record

    months = runtime.settings.retention_months if months is None else months
    with runtime.session() as s:
        result = purge(s, as_of, months=months, dry_run=dry_run, files_root=runtime.settings.outbox_dir)
        data = result.as_dict()
        data["months"] = months
        if not dry_run:
            record(s, "purge", endpoint=actor, details={
                "as_of": data["as_of"], "cutoff": data["cutoff"], "persons": data["person_count"],
                "households": data["households"], "rejected_records": data["rejected_records"],
                "raw_records": data["raw_records"], "france_travail_events": data["france_travail_events"]})
        else:
            s.rollback()
    return data


def monthly_purge(runtime, as_of: dt.date) -> dict:
    data = run_purge(runtime, as_of)
    return {k: v for k, v in data.items() if k != "persons"}


JOBS = [Job("rgpd_purge", monthly_purge, cron={"day": 1, "hour": 3, "minute": 30})]
