"""A lease lock in the database, so that one scheduler instance runs each job at a time."""

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
