"""Scheduled reports: on the 1st of each month, the workbook of the previous month; every morning,
after the night's imports and jobs, the dashboards' snapshots (reports/snapshots.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from config.runtime import Runtime
from config.scheduler import Job
from reports import service, snapshots
from reports.indicators import ReportFilter


def monthly_workbook(runtime: Runtime, as_of: dt.date) -> dict:
    """Write RSA_REPORTS_DIR/indicateurs-YYYY-MM.xlsx for the month before as_of (cohort of that
    month, figures as of its last day). Idempotent: rewrites the same file."""
    start, end = service.previous_month(as_of)
    out = Path(runtime.settings.reports_dir) / f"indicateurs-{start:%Y-%m}.xlsx"
    with runtime.session() as s:
        report = service.write_workbook(s, ReportFilter(as_of=end, start=start, end=end), out, person_level=True)
    return {"path": str(out), "month": f"{start:%Y-%m}", "cohort_size": report["clocks"]["legal"]["cohort_size"]}


WARM_EVERY_MINUTES = 10


def warm_dashboards(runtime: Runtime, as_of: dt.date) -> dict:
    """The dashboards of the day are served from snapshots computed here: every 10 minutes in office
    hours, the default reports (snapshots.warm) stale or about to be (the night's imports, orientation
    run and reconciliations made the old ones stale; RSA_REPORT_CACHE_MINUTES ages them) are
    computed again, so that no manager waits for one. Snapshots of days gone by are deleted."""
    minutes = runtime.settings.report_cache_minutes
    if minutes <= 0:
        return {"skipped": "RSA_REPORT_CACHE_MINUTES=0: pas d'instantané"}
    with runtime.session() as s:
        pruned = snapshots.prune(s, dt.timedelta(days=2))
        return snapshots.warm(s, as_of, max_age=dt.timedelta(minutes=minutes),
                              ahead=dt.timedelta(minutes=WARM_EVERY_MINUTES)) | {"pruned": pruned}


# The first warm-up of the day follows the last nightly job that changes the data
# (cases.refresh_next_due, 07:20); neither job makes the snapshots stale.
JOBS = [Job("reports.monthly_workbook", monthly_workbook, cron={"day": 1, "hour": 6, "minute": 30},
            reports_stale=False),
        Job("reports.warm_dashboards", warm_dashboards, reports_stale=False,
            cron={"day_of_week": "mon-fri", "hour": "7-19", "minute": "*/10"})]
