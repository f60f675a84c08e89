"""Scheduled kiosque work: daily planning, daily reminders, outbox sending every 10 minutes."""

from __future__ import annotations

import datetime as dt

from config.scheduler import Job


def plan_job(runtime, as_of: dt.date) -> dict:
    from kiosque import service

    with runtime.session() as s:
        return service.plan(s, as_of).as_dict()


def reminders_job(runtime, as_of: dt.date) -> dict:
    from kiosque import messaging

    with runtime.session() as s:
        return {"reminders_queued": messaging.queue_reminders(s, as_of)}


def outbox_job(runtime, as_of: dt.date) -> dict:
    """Orientation notifications to queue, then every due message (committed one by one)."""
    from orientation.messaging import outbox
    from orientation.notices import queue_notifications

    with runtime.session() as s:
        queued = queue_notifications(s, as_of)
    with runtime.session() as s:
        out = outbox.process_outbox(s, runtime.settings, as_of=as_of, commit=True)
    out["notifications_queued"] = queued
    return out


JOBS = [
    Job("kiosque.plan", plan_job, cron={"hour": 6, "minute": 30}),
    Job("kiosque.reminders", reminders_job, cron={"hour": 8, "minute": 0}),
    Job("kiosque.outbox", outbox_job, every_minutes=10, reports_stale=False),  # messages: no report figure
]
