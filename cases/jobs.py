"""Daily path alerts: contracts whose deadline passed, reviews due; total suppressions that ended."""

from __future__ import annotations

import datetime as dt

from config.scheduler import Job


def daily_alerts(runtime, as_of: dt.date) -> dict:
    from cases.service import raise_daily_alerts

    with runtime.session() as session:
        return raise_daily_alerts(session, as_of)


def sanction_alerts(runtime, as_of: dt.date) -> dict:
    """Four months of total suppression ended without the person complying: the Département decides
    whether the right ends (R262-68 CASF)."""
    from cases.service import raise_sanction_alerts

    with runtime.session() as session:
        return raise_sanction_alerts(session, as_of)


def refresh_next_due(runtime, as_of: dt.date) -> dict:
    """Nightly reconciliation of the due dates stored on the paths (Path.next_due_on) for the new day:
    appointments and suspensions whose day passed, writes that went round the session hooks."""
    from cases.service import refresh_next_due as refresh

    with runtime.session() as session:
        changed = refresh(session, as_of)
        session.commit()
        return {"paths_changed": changed}


# refresh_next_due after the night's imports, orientation run (06:30) and outcome reconciliation (07:10).
JOBS = [Job(id="cases.daily_alerts", func=daily_alerts, cron={"hour": 6, "minute": 30}),
        Job(id="cases.sanction_alerts", func=sanction_alerts, cron={"hour": 6, "minute": 35}),
        Job(id="cases.refresh_next_due", func=refresh_next_due, cron={"hour": 7, "minute": 20})]
