"""Kiosque's reactions to lower packages' signals: orientation's (orientation/signals.py) and the
retention purge of cases (cases/signals.py). Neither lower package imports kiosque; this module is
imported when kiosque loads and by the composition root (config.modules.connect_receivers)."""

from __future__ import annotations

from pathlib import Path as FsPath

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from cases import signals
from cases.retention import delete_file
from kiosque.models import Invitation, Message
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


@signals.retention_activity.connect
def recent_invitation(_sender, *, person_id, cutoff):
    """An invitation on or after the cutoff keeps the person's data."""
    return exists(select(Invitation.id).where(Invitation.person_id == person_id, Invitation.invited_on >= cutoff))


@signals.persons_purging.connect
def scrub_messages(session, *, person_ids: list[int], files_root: FsPath | None = None) -> int:
    """Letters, e-mails and SMS of the purged persons lose their content (generated files are
    deleted, only inside the product's own directory); phoning notes are cleared."""
    files = 0
    for m in session.scalars(select(Message).where(Message.person_id.in_(person_ids))):
        if m.document_path:
            files += delete_file(m.document_path, files_root)
        m.recipient = m.subject = m.body = m.document_path = m.last_error = None
    session.execute(update(Invitation).where(Invitation.person_id.in_(person_ids)).values(phoning_notes=None))
    return files
