"""Kiosque sessions and invitations. The outbox (Message) lives in orientation.messaging; it is
re-exported here for the callers that still import it from kiosque.models."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table, Text, Time
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, utcnow
from orientation.messaging.models import Message  # noqa: F401  (re-export)

session_partner = Table(
    "kiosque_session_partner",
    Base.metadata,
    Column("session_id", ForeignKey("kiosque_session.id", ondelete="CASCADE"), primary_key=True),
    Column("structure_id", ForeignKey("structure.id"), primary_key=True),
)


class SessionTemplate(Base):
    """A recurring kiosque ("every Tuesday 9:30, 20 seats") of one MDS."""

    __tablename__ = "kiosque_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    mds_id: Mapped[int] = mapped_column(ForeignKey("structure.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_time: Mapped[dt.time] = mapped_column(Time)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=150)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    place: Mapped[str] = mapped_column(String(300))
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(default=True)


class Closure(Base):
    """A day an MDS (or every MDS when mds_id is NULL) holds no kiosque."""

    __tablename__ = "kiosque_closure"

    id: Mapped[int] = mapped_column(primary_key=True)
    mds_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    reason: Mapped[str] = mapped_column(String(200), default="")


class KiosqueSession(Base):
    __tablename__ = "kiosque_session"
    __table_args__ = (Index("ix_kiosque_session_mds_start", "mds_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mds_id: Mapped[int] = mapped_column(ForeignKey("structure.id"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("kiosque_template.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime | None]
    place: Mapped[str] = mapped_column(String(300))
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    status: Mapped[str] = mapped_column(String(12), default="planned")  # kiosque.vocabulary.SessionStatus
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    partners = relationship("Structure", secondary=session_partner)


class Invitation(Base):
    """A seat offered to one person at one session, and what came of it."""

    __tablename__ = "kiosque_invitation"
    __table_args__ = (Index("ix_invitation_person_status", "person_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"))
    orientation_id: Mapped[int | None] = mapped_column(ForeignKey("orientation.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("kiosque_session.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    invited_on: Mapped[dt.date] = mapped_column(Date)
    # pending | present | absent | excused | cancelled
    status: Mapped[str] = mapped_column(String(12), default="pending")  # kiosque.vocabulary.InvitationStatus
    phoning_outcome: Mapped[str | None] = mapped_column(String(20))  # reached no_answer wrong_number declined will_come
    phoned_on: Mapped[dt.date | None] = mapped_column(Date)
    phoning_notes: Mapped[str | None] = mapped_column(Text)
    chosen_referent_type: Mapped[str | None] = mapped_column(String(20))
    chosen_structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    first_appointment_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    session: Mapped[KiosqueSession] = relationship()
