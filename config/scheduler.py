"""APScheduler wiring: each package's jobs.py exposes JOBS, a list of Job specs.

Only one scheduler may run jobs at a time across all app servers: a database lock row
(`scheduler_lock`) is taken before each run, so that two schedulers never run the same job twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from config.modules import PACKAGES, optional_module
from config.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A scheduled job: func(runtime, as_of) -> dict summary."""

    id: str
    func: Callable[[Runtime, dt.date], dict]
    cron: dict = field(default_factory=dict)  # CronTrigger kwargs, e.g. {"hour": 6}
    every_minutes: int | None = None


def collect_jobs() -> list[Job]:
    jobs: list[Job] = []
    for name in PACKAGES:
        module = optional_module(f"{name}.jobs")
        if module is None:
            continue
        jobs.extend(getattr(module, "JOBS", []))
    return jobs


def run_job(runtime: Runtime, job: Job, as_of: dt.date | None = None) -> dict | None:
    """Run one job under the database lock; returns None when another scheduler holds it."""
    from config.locks import job_lock

    as_of = as_of or dt.date.today()
    with job_lock(runtime, job.id, owner=f"{socket.gethostname()}:{id(runtime)}") as acquired:
        if not acquired:
            log.info("job %s: skipped, another scheduler runs it", job.id)
            return None
        started = time.monotonic()
        result = job.func(runtime, as_of)
        log.info("job %s done in %.1fs: %s", job.id, time.monotonic() - started, result)
        return result


def build_scheduler(runtime: Runtime, scheduler_cls=BlockingScheduler):
    sched = scheduler_cls(timezone="Europe/Paris")
    for job in collect_jobs():
        trigger = IntervalTrigger(minutes=job.every_minutes) if job.every_minutes else CronTrigger(**job.cron)
        sched.add_job(run_job, trigger, args=[runtime, job], id=job.id, max_instances=1, coalesce=True)
    return sched


def run_forever(runtime: Runtime) -> None:  # pragma: no cover - blocking loop
    sched = build_scheduler(runtime)
    log.info("scheduler started with jobs: %s", [j.id for j in sched.get_jobs()])
    sched.start()
