"""Telling the invitees when their kiosque session moves or is cancelled.

The notices go through the outbox like the invitations (same channels, same gateways, same
templates folder: `session_moved.*.j2`, `session_cancelled.*.j2`), rendered at sending time from
the session as it then is. Only people who may already know the old date are told: those whose
invitation left the outbox; an invitation still queued will simply carry the new date."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.service import add_event
from kiosque.models import Invitation, KiosqueSession
from orientation.messaging.models import Message

MOVED, CANCELLED = "session_moved", "session_cancelled"


def _informed(session: Session, invitation_ids: list[int]) -> set[int]:
    """Invitations whose invitation or reminder has left the outbox (the person knows the date)."""
    if not invitation_ids:
        return set()
    return set(session.scalars(select(Message.invitation_id).where(
        Message.invitation_id.in_(invitation_ids), Message.status == "sent").distinct()))


def notify_invitees(session: Session, ks: KiosqueSession, kind: str, invitation_ids: list[int], *,
                    on: dt.date, user_id: int | None = None, was: dt.datetime | None = None) -> int:
    """Queue a notice of `kind` (MOVED or CANCELLED) to each informed invitee; returns the count."""
    from cases.models import Person
    from kiosque.service import channels_for
    from orientation.messaging.outbox import fill_recipients

    informed = _informed(session, invitation_ids)
    messages = []
    for inv in session.scalars(select(Invitation).where(Invitation.id.in_(sorted(informed)))):
        person = session.get(Person, inv.person_id)
        for channel in channels_for(person):
            messages.append(Message(person_id=inv.person_id, invitation_id=inv.id, kind=kind, channel=channel,
                                    status="queued", attempts=0, send_on=on))
        summary = (f"Kiosque Insertion déplacé au {ks.starts_at:%d/%m/%Y à %H h %M}"
                   + (f" (au lieu du {was:%d/%m/%Y à %H h %M})" if was else "") if kind == MOVED
                   else f"Kiosque Insertion du {ks.starts_at:%d/%m/%Y} annulé: une nouvelle invitation suivra")
        add_event(session, inv.person_id, f"kiosque.{kind}", on, "kiosque", summary=summary + ", personne prévenue",
                  data={"invitation_id": inv.id, "session_id": ks.id}, path_id=inv.path_id, author_id=user_id)
    session.add_all(messages)
    session.flush()
    fill_recipients(session, messages)
    return len({m.invitation_id for m in messages})
