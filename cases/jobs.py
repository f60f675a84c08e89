"""Daily path alerts: contracts whose deadline passed, reviews due."""

from __future__ import annotations

import datetime as dt

from config.scheduler import Job


def daily_alerts(runtime, as_of: dt.date) -> dict:
    from cases.service import raise_daily_alerts

    with runtime.session() as session:
        return raise_daily_alerts(session, as_of)


JOBS = [Job(id="cases.daily_alerts", func=daily_alerts, cron={"hour": 6, "minute": 30})]
