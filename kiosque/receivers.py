"""Kiosque's answers to orientation's signals (orientation.signals)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiosque.models import Invitation
from kiosque.vocabulary import FAILED_PHONING, Attendance
from orientation.signals import failed_prior_step

CHUNK = 900  # well under SQLite's bound-parameter limit


@failed_prior_step.connect
def failed_invitations(session: Session, person_ids) -> set[int]:
    """Persons whose kiosque invitation failed: absent, or the phoning found a wrong number or a refusal."""
    ids, failed = list(person_ids), set()
    for i in range(0, len(ids), CHUNK):
        failed.update(session.scalars(select(Invitation.person_id).where(
            Invitation.person_id.in_(ids[i:i + CHUNK]),
            or_(Invitation.status == Attendance.ABSENT.value, Invitation.phoning_outcome.in_(FAILED_PHONING)))))
    return failed
