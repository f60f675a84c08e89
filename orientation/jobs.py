"""Scheduled orientation work: the daily run (after the morning imports) and the deadline alerts."""

from __future__ import annotations

import datetime as dt

from config.runtime import Runtime
from config.scheduler import Job


def orientation_run(runtime: Runtime, as_of: dt.date) -> dict:
    """Orient everyone to orient; also what imports call after a successful import (after_import)."""
    from orientation.service import run

    with runtime.session() as s:
        return run(s, as_of)


def deadline_alerts(runtime: Runtime, as_of: dt.date) -> dict:
    from orientation.service import check_deadlines

    with runtime.session() as s:
        return check_deadlines(s, as_of)


after_import = orientation_run

# Imports of the night's flows run first (the inbox is polled through the night); the orientation
# runs at 06:30, then the deadline alerts see its result.
JOBS = [
    Job("orientation.run", orientation_run, cron={"hour": 6, "minute": 30}),
    Job("orientation.deadlines", deadline_alerts, cron={"hour": 6, "minute": 50}),
]
