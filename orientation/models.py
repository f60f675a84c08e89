"""Rule sets (versioned data) and the append-only orientation history."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, utcnow


class RuleSet(Base):
    """One version of the ordered rule set. Versions are never edited, only added."""

    __tablename__ = "rule_set"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    rules: Mapped[list]  # [{"id", "label", "when": {...}, "outcome", "mode", "explain"}]
    source_text: Mapped[str | None] = mapped_column(Text)  # the YAML as loaded
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    @property
    def ordered_rules(self) -> list[dict]:
        """The rules in order, without the fallback (stored last, marked "fallback")."""
        return [r for r in self.rules if not r.get("fallback")]

    @property
    def fallback_rule(self) -> dict | None:
        return next(({k: v for k, v in r.items() if k != "fallback"} for r in self.rules if r.get("fallback")), None)

    @property
    def rule_count(self) -> int:
        return len(self.ordered_rules)


class Orientation(Base):
    """A decision for one person on one path. Status moves forward; a new decision is a new row.

    status: proposed | validated | awaiting_capacity | unsectorised | kiosque | overridden |
            refused | ended | superseded
    origin: auto | agent | kiosque | default_mds | reorientation
    """

    __tablename__ = "orientation"
    __table_args__ = (
        Index("ix_orientation_person_status", "person_id", "status"),
        # with person_id: the scope of a structure (person_scope) from the index alone
        Index("ix_orientation_structure_status", "structure_id", "status", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"), index=True)
    referent_type: Mapped[str] = mapped_column(String(20))  # pole_emploi actipro ati mds kiosque
    # The référentiel's two steps (referents.vocabulary.Parcours / Organisme); NULL for a kiosque invitation.
    parcours: Mapped[str | None] = mapped_column(String(30), index=True)
    organisme: Mapped[str | None] = mapped_column(String(20), index=True)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"), index=True)
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    rule_id: Mapped[str | None] = mapped_column(String(60))
    mode: Mapped[str] = mapped_column(String(10), default="auto")  # auto propose kiosque
    origin: Mapped[str] = mapped_column(String(20), default="auto")
    status: Mapped[str] = mapped_column(String(20), index=True)
    facts: Mapped[dict | None]
    explanation: Mapped[str | None] = mapped_column(Text)
    algorithmic: Mapped[bool] = mapped_column(Boolean, default=True)
    decided_on: Mapped[dt.date] = mapped_column(Date, index=True)
    validated_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    validated_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    # How it was validated: "auto" (by the algorithm alone, the Département enabled it for the rule) or
    # "agent" (a person validated or took it); NULL while pending. Notices say which.
    validation: Mapped[str | None] = mapped_column(String(10))
    notified_on: Mapped[dt.date | None] = mapped_column(Date)
    ended_on: Mapped[dt.date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    override_reason: Mapped[str | None] = mapped_column(Text)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("orientation.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """That a validated orientation was notified to the person, and how."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    orientation_id: Mapped[int] = mapped_column(ForeignKey("orientation.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # letter email sms
    notified_on: Mapped[dt.date] = mapped_column(Date)
    message_id: Mapped[int | None] = mapped_column(Integer)


class ReorientationRequest(Base):
    __tablename__ = "reorientation_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    orientation_id: Mapped[int | None] = mapped_column(ForeignKey("orientation.id"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    requested_on: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    wanted_referent_type: Mapped[str | None] = mapped_column(String(20))
    wanted_structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending accepted refused
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    decided_on: Mapped[dt.date | None] = mapped_column(Date)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    new_orientation_id: Mapped[int | None] = mapped_column(ForeignKey("orientation.id"))

    orientation: Mapped[Orientation | None] = relationship(foreign_keys=[orientation_id])
