"""APScheduler wiring: each package's jobs.py exposes JOBS, a list of Job specs.

Several schedulers may run (one per app server): each scheduled run time of a job is claimed in
the database (`job_run`, keyed by job and scheduled time), so that a tick runs exactly once whatever
the number of schedulers; a lease (`scheduler_lock`) also keeps two runs of a job from overlapping.
Interval jobs are anchored on a fixed date so that every scheduler computes the same ticks.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from config import clock
from config.modules import PACKAGES, optional_module
from config.runtime import Runtime

log = logging.getLogger(__name__)
TIMEZONE = ZoneInfo("Europe/Paris")
# Interval ticks are counted from this instant, the same for every scheduler (APScheduler would
# otherwise count them from each scheduler's start, and two schedulers would have different ticks).
ANCHOR = dt.datetime(2026, 1, 1, tzinfo=TIMEZONE)


@dataclass(frozen=True)
class Job:
    """A scheduled job: func(runtime, as_of) -> dict summary."""

    id: str
    func: Callable[[Runtime, dt.date], dict]
    cron: dict = field(default_factory=dict)  # CronTrigger kwargs, e.g. {"hour": 6}
    every_minutes: int | None = None
    every_seconds: int | None = None  # tests and sub-minute polling
    # Whether a run changes the data the reports summarise: True, False, or a test of the run's
    # summary. After such a run the stored reports are stale (reports.snapshots.data_changed). True
    # by default: a new nightly job cannot leave the dashboards showing yesterday's figures.
    reports_stale: bool | Callable[[dict], bool] = True

    def trigger(self):
        if self.every_minutes or self.every_seconds:
            return IntervalTrigger(minutes=self.every_minutes or 0, seconds=self.every_seconds or 0,
                                   start_date=ANCHOR, timezone=TIMEZONE)
        return CronTrigger(timezone=TIMEZONE, **self.cron)

    def tick(self, now: dt.datetime) -> dt.datetime:
        """The scheduled run time this firing belongs to: the latest tick at or before `now` (aware)."""
        if self.every_minutes or self.every_seconds:
            step = dt.timedelta(minutes=self.every_minutes or 0, seconds=self.every_seconds or 0)
            return ANCHOR + ((now - ANCHOR) // step) * step
        trigger = self.trigger()
        last, probe = None, trigger.get_next_fire_time(None, now - dt.timedelta(days=32))
        while probe is not None and probe <= now:
            last, probe = probe, trigger.get_next_fire_time(probe, probe + dt.timedelta(seconds=1))
        return last or now


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

    as_of = as_of or clock.today()
    with job_lock(runtime, job.id, owner=f"{socket.gethostname()}:{id(runtime)}") as acquired:
        if not acquired:
            log.info("job %s: skipped, another scheduler runs it", job.id)
            return None
        started = time.monotonic()
        result = None
        try:
            result = job.func(runtime, as_of)
        finally:  # a failed run may have committed part of its work: stale as well
            if job.reports_stale is True or (callable(job.reports_stale)
                                             and (result is None or job.reports_stale(result))):
                reports_stale(runtime, f"job {job.id}")
        log.info("job %s done in %.1fs: %s", job.id, time.monotonic() - started, result)
        return result


def reports_stale(runtime: Runtime, source: str) -> None:
    """The end of a bulk change (a job, a command, an upload): the stored reports are stale. A
    failure here is logged, never raised over the work that was done (the snapshots then expire by
    age, RSA_REPORT_CACHE_MINUTES)."""
    from reports.snapshots import data_changed

    try:
        with runtime.session() as session:
            data_changed(session, source)
    except Exception:  # noqa: BLE001 - the bulk work itself succeeded
        log.exception("reports: could not mark the stored reports stale after %s", source)


def run_scheduled(runtime: Runtime, job: Job, now: dt.datetime | None = None, owner: str | None = None):
    """What the scheduler fires: claim this tick of the job, then run it. Returns None when another
    scheduler already claimed the tick (or is still running the job)."""
    from config.locks import claim_run, finish_run

    now = now or dt.datetime.now(TIMEZONE)
    tick = job.tick(now)
    scheduled_for = tick.astimezone(dt.UTC).replace(tzinfo=None)
    owner = owner or f"{socket.gethostname()}:{id(runtime)}"
    if not claim_run(runtime, job.id, scheduled_for, owner):
        log.info("job %s: tick %s already run by another scheduler", job.id, tick.isoformat())
        return None
    status = "failed"
    try:
        result = run_job(runtime, job, as_of=tick.date())
        status = "done" if result is not None else "skipped"
        return result
    finally:
        finish_run(runtime, job.id, scheduled_for, status)


def build_scheduler(runtime: Runtime, scheduler_cls=BlockingScheduler, jobs: list[Job] | None = None):
    sched = scheduler_cls(timezone=TIMEZONE)
    for job in collect_jobs() if jobs is None else jobs:
        sched.add_job(run_scheduled, job.trigger(), args=[runtime, job], id=job.id, max_instances=1,
                      coalesce=True)
    return sched


def run_forever(runtime: Runtime) -> None:  # pragma: no cover - blocking loop
    sched = build_scheduler(runtime)
    log.info("scheduler started with jobs: %s", [j.id for j in sched.get_jobs()])
    sched.start()
