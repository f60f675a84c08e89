"""Scheduled reports: on the 1st of each month, the workbook of the previous month."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from config.runtime import Runtime
from config.scheduler import Job
from reports import service
from reports.indicators import ReportFilter


def monthly_workbook(runtime: Runtime, as_of: dt.date) -> dict:
    """Write RSA_REPORTS_DIR/indicateurs-YYYY-MM.xlsx for the month before as_of (cohort of that
    month, figures as of its last day). Idempotent: rewrites the same file."""
    start, end = service.previous_month(as_of)
    out = Path(runtime.settings.reports_dir) / f"indicateurs-{start:%Y-%m}.xlsx"
    with runtime.session() as s:
        report = service.write_workbook(s, ReportFilter(as_of=end, start=start, end=end), out, person_level=True)
    return {"path": str(out), "month": f"{start:%Y-%m}", "cohort_size": report["clocks"]["legal"]["cohort_size"]}


JOBS = [Job("reports.monthly_workbook", monthly_workbook, cron={"day": 1, "hour": 6, "minute": 30})]
