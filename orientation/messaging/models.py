"""The outbox table (unchanged name `message`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from config.db import Base, utcnow


class Message(Base):
    """Outbox: one message to one person on one channel, with delivery status and retries. It points
    at what it is about: an orientation (notice) or a kiosque invitation (invitation, reminder)."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("kiosque_invitation.id"))
    orientation_id: Mapped[int | None] = mapped_column(ForeignKey("orientation.id"))
    kind: Mapped[str] = mapped_column(String(30))  # invitation reminder_3 reminder_1 reinvitation notification
    channel: Mapped[str] = mapped_column(String(10))  # email sms letter
    recipient: Mapped[str | None] = mapped_column(String(300))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    document_path: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued sent failed bounced
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    send_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
