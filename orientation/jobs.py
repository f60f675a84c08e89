"""Scheduled orientation work: the daily run (after the morning imports), the deadline alerts and the
nightly reconciliation of the paths' outcome."""

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
    from orientation.deadlines import check_deadlines

    with runtime.session() as s:
        return check_deadlines(s, as_of)


def refresh_path_outcomes(runtime: Runtime, as_of: dt.date) -> dict:
    """Nightly reconciliation of the paths' denormalised outcome (oriented_* columns) with the
    orientations, after the orientation job: repairs any write that bypassed orientation's service."""
    from orientation.outcomes import refresh_path_outcomes as refresh

    with runtime.session() as s:
        return {"paths_changed": refresh(s)}


after_import = orientation_run

# Imports of the night's flows run first (the inbox is polled through the night); the orientation
# runs at 06:30, then the deadline alerts see its result.
JOBS = [
    Job("orientation.run", orientation_run, cron={"hour": 6, "minute": 30}),
    Job("orientation.deadlines", deadline_alerts, cron={"hour": 6, "minute": 50}),
    Job("orientation.refresh_path_outcomes", refresh_path_outcomes, cron={"hour": 7, "minute": 10}),
]
