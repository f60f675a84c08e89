"""Postal invitations of a kiosque session (PDF): one per person and one batch per session for
printing. The layout is the outbox's (orientation.messaging.letters); the text is the invitation
template (kiosque.messaging)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Person
from kiosque.messaging import invitation_letter
from kiosque.models import Invitation, KiosqueSession
from kiosque.service import KiosqueConfig, KiosqueError
from kiosque.vocabulary import InvitationStatus
from orientation.messaging.letters import render_pdf


def _session_letters(session: Session, session_id: int, config: KiosqueConfig) -> tuple[KiosqueSession, list]:
    ks = session.get(KiosqueSession, session_id)
    if ks is None:
        raise KiosqueError(f"session {session_id} inconnue")
    invitations = list(session.scalars(
        select(Invitation).join(Person, Person.id == Invitation.person_id)
        .where(Invitation.session_id == session_id, Invitation.status == InvitationStatus.PENDING)
        .order_by(Person.last_name, Person.first_name, Invitation.id)))
    if not invitations:
        raise KiosqueError(f"aucune invitation en attente pour la session {session_id}")
    return ks, [(inv, invitation_letter(session, inv, config)) for inv in invitations]


def session_batch_pdf(session: Session, session_id: int, config: KiosqueConfig | None = None) -> bytes:
    """The batch PDF of a session (one page per invited person), for printing."""
    _, pairs = _session_letters(session, session_id, config or KiosqueConfig.from_env())
    return render_pdf([letter for _, letter in pairs])


def write_session_letters(session: Session, session_id: int, outdir: Path | str,
                          config: KiosqueConfig | None = None) -> dict:
    """One PDF per invited person and one batch PDF of the whole session, under OUTDIR.

    File names carry the invitation id, never a name or an identifier of the person."""
    ks, pairs = _session_letters(session, session_id, config or KiosqueConfig.from_env())
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for inv, letter in pairs:
        path = outdir / f"session-{session_id}-invitation-{inv.id}.pdf"
        path.write_bytes(render_pdf([letter]))
        files.append(path)
    batch = outdir / f"session-{session_id}-{ks.starts_at:%Y-%m-%d}-lot.pdf"
    batch.write_bytes(render_pdf([letter for _, letter in pairs]))
    return {"session_id": session_id, "files": files, "batch": batch}
