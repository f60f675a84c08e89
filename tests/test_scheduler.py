"""Scheduler wiring: jobs collected from packages, and the database lease lock."""

from __future__ import annotations

import datetime as dt
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler

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
