"""Scheduler wiring: jobs collected from packages, and the database lease lock."""

from __future__ import annotations

import datetime as dt
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from config.runtime import build_runtime
from config.scheduler import Job, build_scheduler, collect_jobs, run_job


def test_two_schedulers_run_a_job_once(rt, base_settings):
    """Two scheduler processes (two runtimes, two engines) fire the same job at the same time."""
    other = build_runtime(base_settings)
    runs: list[str] = []
    started = threading.Barrier(2)

    def slow_job(runtime, as_of):
        runs.append(str(id(runtime)))
        time.sleep(0.5)
        return {"ok": True}

    job = Job(id="test-slow", func=slow_job, cron={"hour": 3})
    results = {}

    def fire(name, runtime):
        started.wait()
        results[name] = run_job(runtime, job, dt.date(2026, 11, 20))

    threads = [threading.Thread(target=fire, args=("a", rt)), threading.Thread(target=fire, args=("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    assert len(runs) == 1
    assert sorted(r is None for r in results.values()) == [False, True]
    # the lock is released: the next run goes through
    assert run_job(rt, job, dt.date(2026, 11, 21)) == {"ok": True}
    assert len(runs) == 2


def test_stale_lock_is_taken_over(rt):
    from config.db import utcnow
    from config.locks import SchedulerLock

    with rt.session() as s:
        s.add(SchedulerLock(name="test-stale", owner="crashed", acquired_at=utcnow() - dt.timedelta(hours=5),
                            expires_at=utcnow() - dt.timedelta(hours=3)))
    job = Job(id="test-stale", func=lambda runtime, as_of: {"ran": as_of.isoformat()}, cron={"hour": 1})
    assert run_job(rt, job, dt.date(2026, 11, 20)) == {"ran": "2026-11-20"}


def test_build_scheduler_registers_every_package_job(rt):
    sched = build_scheduler(rt, scheduler_cls=BackgroundScheduler)
    ids = {j.id for j in sched.get_jobs()}
    assert ids == {j.id for j in collect_jobs()}
    assert len(ids) == len(collect_jobs())  # job ids are unique


def test_a_short_job_runs_once_per_tick_with_two_schedulers(rt, base_settings):
    """Issue 22 item 8: a 0.1 s job (empty inbox) ran twice in the same 5-minute tick, because the
    lease only prevented overlap. The claim is keyed by job and scheduled run time."""
    from zoneinfo import ZoneInfo

    from config.locks import JobRun
    from config.scheduler import run_scheduled

    other = build_runtime(base_settings)
    runs: list[str] = []

    def short_job(runtime, as_of):
        runs.append(str(id(runtime)))
        time.sleep(0.1)
        return {"ok": True}

    job = Job(id="test-inbox", func=short_job, every_minutes=5)
    paris = ZoneInfo("Europe/Paris")
    tick_time = dt.datetime(2026, 11, 20, 10, 5, 0, 300000, tzinfo=paris)
    try:
        assert run_scheduled(rt, job, now=tick_time) == {"ok": True}
        # the second scheduler fires the same tick 0.2 s later, after the first run ended
        assert run_scheduled(other, job, now=tick_time + dt.timedelta(seconds=0.2)) is None
        assert run_scheduled(other, job, now=tick_time + dt.timedelta(minutes=4, seconds=59)) is None
        assert len(runs) == 1
        # the next tick runs again, once
        assert run_scheduled(other, job, now=tick_time + dt.timedelta(minutes=5)) == {"ok": True}
        assert run_scheduled(rt, job, now=tick_time + dt.timedelta(minutes=5, seconds=1)) is None
        assert len(runs) == 2
        with rt.session() as s:
            rows = s.scalars(select(JobRun).where(JobRun.job_id == "test-inbox").order_by(JobRun.scheduled_for)).all()
        assert [(r.scheduled_for.strftime("%H:%M"), r.status) for r in rows] == [("09:05", "done"), ("09:10", "done")]
    finally:
        other.dispose()


def test_cron_tick_is_the_latest_scheduled_time():
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    job = Job(id="x", func=lambda rt, d: {}, cron={"day": 1, "hour": 3, "minute": 30})
    assert job.tick(dt.datetime(2026, 11, 20, 12, 0, tzinfo=paris)) == dt.datetime(2026, 11, 1, 3, 30, tzinfo=paris)
    job = Job(id="y", func=lambda rt, d: {}, cron={"hour": 6, "minute": 30})
    assert job.tick(dt.datetime(2026, 11, 20, 6, 30, 2, tzinfo=paris)) == dt.datetime(2026, 11, 20, 6, 30, tzinfo=paris)


def test_two_real_schedulers_run_each_tick_once(rt, base_settings):
    """Two APScheduler instances (two runtimes, two engines) fire a 1-second interval job for ~3 s."""
    other = build_runtime(base_settings)
    ticks: list[tuple[str, int]] = []
    lock = threading.Lock()

    def quick(runtime, as_of):
        with lock:
            ticks.append((dt.datetime.now().strftime("%H:%M:%S"), id(runtime)))
        time.sleep(0.05)
        return {"ok": True}

    job = Job(id="test-quick", func=quick, every_seconds=1)
    scheds = [build_scheduler(r, scheduler_cls=BackgroundScheduler, jobs=[job]) for r in (rt, other)]
    try:
        for sc in scheds:
            sc.start()
        time.sleep(3.4)
    finally:
        for sc in scheds:
            sc.shutdown(wait=True)
        other.dispose()
    seconds = [t for t, _ in ticks]
    assert len(seconds) >= 2
    assert len(seconds) == len(set(seconds)), ticks  # never twice in the same tick
