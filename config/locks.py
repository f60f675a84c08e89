"""Database leases for the scheduled jobs.

- `claim_run`: a job runs exactly once per scheduled run time, whatever the number of schedulers
  (issue 22, item 8): the first scheduler to insert (job, scheduled time) runs it; the others find
  the row and skip, even when the first one has already finished (a 0.1 s job used to run twice in
  the same 5-minute tick, because the old lease only prevented overlap).
- `job_lock`: no two runs of the same job overlap (a long run still going at the next tick)."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

from sqlalchemy import String, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from config.db import Base, utcnow

LEASE = dt.timedelta(hours=2)


class JobRun(Base):
    """One row per (job, scheduled run time) that a scheduler claimed: the second scheduler to
    claim the same tick finds the row and skips, even when the first one has already finished."""

    __tablename__ = "job_run"

    job_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    scheduled_for: Mapped[dt.datetime] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | done | failed


class SchedulerLock(Base):
    __tablename__ = "scheduler_lock"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    acquired_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


@contextmanager
def job_lock(runtime, name: str, owner: str):
    now = utcnow()
    acquired = False
    with runtime.engine.begin() as conn:
        # Take over a stale lease (a crashed scheduler), else insert; a conflict means "held".
        conn.execute(delete(SchedulerLock).where(SchedulerLock.name == name, SchedulerLock.expires_at < now))
    try:
        with runtime.engine.begin() as conn:
            conn.execute(insert(SchedulerLock).values(name=name, owner=owner, acquired_at=now,
                                                      expires_at=now + LEASE))
        acquired = True
    except IntegrityError:
        acquired = False
    try:
        yield acquired
    finally:
        if acquired:
            with runtime.engine.begin() as conn:
                conn.execute(delete(SchedulerLock).where(SchedulerLock.name == name,
                                                         SchedulerLock.owner == owner))


def refresh(runtime, name: str, owner: str) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(update(SchedulerLock).where(SchedulerLock.name == name, SchedulerLock.owner == owner)
                     .values(expires_at=utcnow() + LEASE))


RUN_HISTORY = dt.timedelta(days=45)


def claim_run(runtime, job_id: str, scheduled_for: dt.datetime, owner: str) -> bool:
    """Claim the run of `job_id` scheduled at `scheduled_for` (naive UTC). True for exactly one
    caller per (job, scheduled time), across processes and servers (primary key of job_run)."""
    now = utcnow()
    try:
        with runtime.engine.begin() as conn:
            conn.execute(insert(JobRun).values(job_id=job_id, scheduled_for=scheduled_for, owner=owner,
                                               started_at=now, status="running"))
    except IntegrityError:
        return False
    with runtime.engine.begin() as conn:  # old ticks are of no use: keep the table small
        conn.execute(delete(JobRun).where(JobRun.job_id == job_id, JobRun.scheduled_for < now - RUN_HISTORY))
    return True


def finish_run(runtime, job_id: str, scheduled_for: dt.datetime, status: str) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(update(JobRun).where(JobRun.job_id == job_id, JobRun.scheduled_for == scheduled_for)
                     .values(finished_at=utcnow(), status=status))
