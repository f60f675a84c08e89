"""How the kiosque package takes part in the retention purge of cases (cases/signals.py): cases sits
below kiosque and never imports it. Imported by the composition root (config/runtime.py)."""

from __future__ import annotations

from pathlib import Path as FsPath

from sqlalchemy import exists, select, update

from cases import signals
from cases.retention import delete_file
from kiosque.models import Invitation, Message


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
