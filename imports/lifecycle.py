"""What the flows end: a household gone from the next monthly flow, a person no longer SDD.

The flow importer (imports.service) decides *that* something ends; this module carries the
consequences into the packages below it, through their models and services: the path closes with
its exit (cases.service.record_exits), the pending decisions and the current orientation end
(orientation), the pending kiosque invitations are cancelled and, when an invitation had already
been sent, a short notice tells the person not to come (kiosque outbox). Everything runs inside
the import's transaction: a failed file changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from cases.models import CaseEvent, Household, Person, StatusChange
from cases.models import Path as CasePath
from cases.service import ExitIn, record_exits, touch_due
from config.db import utcnow
from imports.flux import FlowHeader
from imports.models import ImportBatch, RawRecord
from kiosque.models import Invitation
from orientation.messaging.models import Message
from orientation.messaging.outbox import fill_recipients
from orientation.models import Orientation
from orientation.vocabulary import PENDING

ABSENT_REASON = "absent_flux_mensuel"
CLOSED_STATES = ("5", "6")
SENT_KINDS = ("invitation", "reinvitation", "reminder_3", "reminder_1")
_REASON_LABELS = {ABSENT_REASON: "absent du flux mensuel", "sdd_ended": "n'est plus soumis aux droits et devoirs"}


def _chunks(seq, size=900):
    seq = list(seq)
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def wind_down(session: Session, pairs: Iterable[tuple[int, int | None]], on: dt.date, reason: str) -> dict:
    """For each (person, closed path): pending decisions and the current orientation end (status
    "ended", end_reason = reason); pending kiosque invitations are cancelled with their queued
    messages; a notice is queued when an invitation had been sent for a session still to come."""
    pairs = list(pairs)
    person_ids = sorted({p for p, _ in pairs})
    path_ids = sorted({x for _, x in pairs if x is not None})
    label = _REASON_LABELS.get(reason, reason)
    counts = {"decisions_ended": 0, "invitations_cancelled": 0, "notices": 0}
    if not person_ids:
        return counts
    events = []
    for pids in _chunks(person_ids):
        cond = Orientation.person_id.in_(pids)
        if path_ids:
            cond = and_(cond, or_(Orientation.path_id.in_(path_ids), Orientation.path_id.is_(None)))
        rows = session.execute(select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status)
                               .where(cond, Orientation.status.in_(("validated", *PENDING)))).all()
        if rows:
            session.execute(update(Orientation).where(Orientation.id.in_([r.id for r in rows]))
                            .values(status="ended", ended_on=on, end_reason=reason[:40]),
                            execution_options={"synchronize_session": False})
            counts["decisions_ended"] += len(rows)
            touch_due(session, [r.person_id for r in rows])  # their contract deadline goes (cases.followup)
            for r in rows:
                what = "Orientation" if r.status == "validated" else "Proposition d'orientation"
                events.append(dict(person_id=r.person_id, path_id=r.path_id, occurred_on=on, source="flow",
                                   kind="orientation.ended" if r.status == "validated" else "orientation.cancelled",
                                   summary=f"{what} close: la personne {label}",
                                   data={"orientation_id": r.id, "reason": reason}, recorded_at=utcnow()))
        invitations = session.scalars(select(Invitation).where(Invitation.person_id.in_(pids),
                                                               Invitation.status == "pending")).all()
        if not invitations:
            continue
        by_id = {i.id: i for i in invitations}
        for inv in invitations:
            inv.status = "cancelled"
            events.append(dict(person_id=inv.person_id, path_id=inv.path_id, occurred_on=on, source="flow",
                               kind="kiosque.invitation_cancelled",
                               summary=f"Invitation au Kiosque annulée: la personne {label}",
                               data={"invitation_id": inv.id, "reason": reason}, recorded_at=utcnow()))
        counts["invitations_cancelled"] += len(invitations)
        messages = session.scalars(select(Message).where(Message.invitation_id.in_(list(by_id)))).all()
        sent_for: dict[int, str] = {}
        for m in messages:
            if m.status == "queued":
                m.status, m.last_error = "cancelled", f"invitation annulée ({label})"
            elif m.status == "sent" and m.kind in SENT_KINDS:
                sent_for.setdefault(m.invitation_id, m.channel)
        notices = []
        for inv_id, channel in sorted(sent_for.items()):
            inv = by_id[inv_id]
            if inv.session is not None and inv.session.starts_at.date() < on:
                continue  # the session is over: nothing to call off
            notices.append(Message(person_id=inv.person_id, invitation_id=inv_id, kind="invitation_cancelled",
                                   channel=channel, status="queued", send_on=on))
        if notices:
            session.add_all(notices)
            session.flush()
            fill_recipients(session, notices)
            counts["notices"] += len(notices)
    if events:
        session.execute(insert(CaseEvent), events)
    session.flush()
    return counts


def _organism(header: dict) -> str:
    return "MSA" if (header.get("APPLIEME") or "").strip().upper() == "AGO" else "CAF"


def previous_monthly_batch(session: Session, batch_id: int, header: FlowHeader) -> int | None:
    """The last monthly flow of the same organism imported before this one, provided it is older
    (a late re-import of an old flow closes nothing)."""
    q = (select(ImportBatch.id, ImportBatch.header)
         .where(ImportBatch.kind == "flux", ImportBatch.status == "imported", ImportBatch.id != batch_id)
         .order_by(ImportBatch.id.desc()))
    for bid, h in session.execute(q):
        h = h or {}
        if (h.get("TYPEFLUX") or "").strip().upper() != "M" or _organism(h) != header.organism:
            continue
        ref = h.get("DTREF") or h.get("DTCREAFLUX")
        if ref and header.flow_date and dt.date.fromisoformat(ref) >= header.flow_date:
            return None
        return bid
    return None


def close_absent_households(session: Session, batch_id: int, previous_batch_id: int, header: FlowHeader) -> int:
    """Households of the previous monthly flow (same organism) missing from this one: right closed at
    this flow's reference date, open paths closed with the exit `absent_flux_mensuel`, decisions and
    invitations wound down. Returns the number of households closed."""
    on = header.flow_date
    H = Household
    ids = list(session.scalars(select(H.id).where(
        H.organism == header.organism, H.last_monthly_batch_id == previous_batch_id,
        or_(H.right_state.is_(None), H.right_state.not_in(CLOSED_STATES))).order_by(H.id)))
    if not ids:
        return 0
    now = utcnow()
    pairs = []
    for part in _chunks(ids):
        old = dict(session.execute(select(H.id, H.right_state).where(H.id.in_(part))).all())
        session.execute(update(H).where(H.id.in_(part)).values(right_state="5", right_state_on=on, closure_on=on,
                                                               updated_at=now),
                        execution_options={"synchronize_session": False})
        # the stored fragment no longer describes the household: its return is processed in full
        session.execute(update(RawRecord).where(RawRecord.household_id.in_(part)).values(content_hash="0" * 64),
                        execution_options={"synchronize_session": False})
        session.execute(insert(StatusChange), [
            {"household_id": hid, "person_id": None, "field": "right_state", "old_value": old.get(hid),
             "new_value": "5", "reason": ABSENT_REASON, "effective_on": on, "batch_id": batch_id,
             "recorded_at": now} for hid in part])
        open_paths = session.execute(
            select(CasePath.id, CasePath.person_id).join(Person, Person.id == CasePath.person_id)
            .where(Person.household_id.in_(part), CasePath.closed_on.is_(None))
            .order_by(CasePath.person_id, CasePath.id)).all()
        done = set()
        exits = []
        for path_id, pid in open_paths:
            pairs.append((pid, path_id))
            if pid in done:
                continue
            done.add(pid)
            session.add(CaseEvent(person_id=pid, path_id=path_id, occurred_on=on, source="flow",
                                  kind="flow.absent_monthly",
                                  summary="Foyer absent du flux mensuel suivant: droit réputé clos",
                                  data={"reason": ABSENT_REASON, "batch_id": batch_id}))
            exits.append(ExitIn(pid, on, ABSENT_REASON,
                                details=f"absent du flux mensuel du {on.isoformat()} (lot {batch_id})"))
        record_exits(session, exits, source="flow")
        # a person with several open paths: record_exits closed the latest; the others close too
        session.flush()
        stale = [p for _, p in pairs if p is not None]
        if stale:
            session.execute(update(CasePath).where(CasePath.id.in_(stale), CasePath.closed_on.is_(None))
                            .values(closed_on=on, close_reason=f"exit:{ABSENT_REASON}"),
                            execution_options={"synchronize_session": False})
    wind_down(session, pairs, on, ABSENT_REASON)
    return len(ids)
