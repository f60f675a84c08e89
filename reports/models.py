"""Stored report results (issue 21 item 5): the dashboards read a snapshot instead of aggregating
the whole population on every request. reports/snapshots.py is the logic, docs/reports.md the design."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from config.db import Base


class ReportSnapshot(Base):
    """One computed report for one scope and one set of normalised parameters, shared by every
    worker and host. `payload` is NULL while the first computation runs; `computation` and
    `computing_since` are the claim: one request computes, the others wait for its result."""

    __tablename__ = "report_snapshot"

    # sha256 of (report, scope, params): one fixed-size key whatever the filters
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    report: Mapped[str] = mapped_column(String(40))
    # whose eyes (reports.snapshots.scope_key): an MDS never reads another MDS's row
    scope: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict] = mapped_column(JSON())  # as_of, period, territory, MDS: readable
    # plain JSON (not JSONB on PostgreSQL): stored and read back as written, keys in their order
    payload: Mapped[dict | None] = mapped_column(JSON())
    computed_at: Mapped[dt.datetime | None]  # config.clock.now() when the computation started
    # what data it reflects: the last bulk change (report_data_change.id, 0 = none yet) seen
    # when the computation started; a later bulk change makes the row stale
    data_version: Mapped[int | None] = mapped_column(Integer)
    compute_ms: Mapped[int | None] = mapped_column(Integer)
    # the computation that wrote (or is writing) the payload: a "recompute now" waits for a new one
    computation: Mapped[str | None] = mapped_column(String(32))
    computing_since: Mapped[dt.datetime | None]  # naive UTC, real time: the claim's lease


class ReportDataChange(Base):
    """One row per bulk change of the data the reports summarise (an import, the orientation run,
    the nightly jobs): every snapshot computed before it is stale."""

    __tablename__ = "report_data_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(80))  # job id, command or endpoint
    changed_at: Mapped[dt.datetime]  # config.clock.now()
