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


JOBS = [Job(id="cases.daily_alerts", func=daily_alerts, cron={"hour": 6, "minute": 30}),
        Job(id="cases.sanction_alerts", func=sanction_alerts, cron={"hour": 6, "minute": 35})]
