"""How the orientation package answers the questions of cases and reacts to its facts
(cases/signals.py): cases sits below orientation and never imports it. Imported by the
composition root (config/runtime.py) whenever a runtime is built."""

from __future__ import annotations

import functools

from sqlalchemy import case, exists, select, update

from cases import signals
from cases.retention import scrub
from orientation.messaging.models import Message
from orientation.models import Notification, Orientation, ReorientationRequest
from referents.vocabulary import OrientationStatus


@functools.cache
def _view() -> signals.OrientationView:
    """Built once: cases caches the aliases it derives from it (cases/scope.py)."""
    rows = select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status,
                  Orientation.referent_type, Orientation.structure_id, Orientation.agent_id,
                  Orientation.rule_id.label("rule"), Orientation.origin, Orientation.decided_on,
                  Orientation.validated_on, Orientation.notified_on)
    # The notice as it left: the outbox message of the notification (sent_at when it was sent), so that
    # the contract's month runs from the day the notice left (D5411-14-1 code du travail).
    sent_at = case((Message.status == "sent", Message.sent_at))
    notifications = (select(Notification.orientation_id, Notification.notified_on, Notification.message_id,
                            sent_at.label("sent_at"))
                     .outerjoin(Message, Message.id == Notification.message_id))
    return signals.OrientationView(rows=rows, notifications=notifications)


@signals.orientation_view.connect
def orientation_view(_sender, **_kwargs) -> signals.OrientationView:
    return _view()


@signals.orientation_summary.connect
def orientation_summary(session, *, person_id: int) -> dict | None:
    from orientation.service import current_orientation_summary

    return current_orientation_summary(session, person_id)


@signals.exits_recorded.connect
def end_orientations_on_exit(session, *, ends) -> None:
    """The exit of the path ends the current orientation (same transaction as the exit): one read
    for a batch of exits, the rows changed through the unit of work (its due-date hooks see them)."""
    ended_on = dict(ends)
    ids = sorted(ended_on)
    for i in range(0, len(ids), 5000):
        for orientation in session.scalars(select(Orientation).where(Orientation.id.in_(ids[i:i + 5000]))):
            orientation.status = OrientationStatus.ENDED
            orientation.ended_on = ended_on[orientation.id]
            orientation.end_reason = "exit"


@signals.exit_corrected.connect
def follow_exit_correction(session, *, person_id: int, exit_on, new_exit_on) -> None:
    """An exit recorded by mistake: cancelled, the orientation it ended is current again; its date
    corrected, the orientation ends on the new date."""
    for orientation in session.scalars(select(Orientation).where(
            Orientation.person_id == person_id, Orientation.status == "ended", Orientation.end_reason == "exit",
            Orientation.ended_on == exit_on)):
        if new_exit_on is None:
            orientation.status, orientation.ended_on, orientation.end_reason = "validated", None, None
        else:
            orientation.ended_on = new_exit_on


@signals.reorientation_requested.connect
def request_reorientation(session, *, person_id: int, orientation_id: int | None, requested_by: int | None,
                          requested_on, reason: str | None, wanted_referent_type: str | None,
                          wanted_structure_id: int | None) -> int:
    """A review concluded to a reorientation: a pending request for the orientation service."""
    request = ReorientationRequest(person_id=person_id, orientation_id=orientation_id, requested_by=requested_by,
                                   requested_on=requested_on, reason=reason, status="pending",
                                   wanted_referent_type=wanted_referent_type,
                                   wanted_structure_id=wanted_structure_id)
    session.add(request)
    session.flush()
    return request.id


@signals.retention_activity.connect
def recent_decision(_sender, *, person_id, cutoff):
    """A decision on or after the cutoff keeps the person's data."""
    return exists(select(Orientation.id).where(Orientation.person_id == person_id, Orientation.decided_on >= cutoff))


@signals.persons_purging.connect
def scrub_orientations(session, *, person_ids: list[int], files_root=None) -> int:
    """Facts and free texts of the purged persons' orientations and reorientation requests."""
    for o in session.scalars(select(Orientation).where(Orientation.person_id.in_(person_ids))):
        o.facts = scrub(o.facts) if o.facts else o.facts
        o.override_reason = None
    session.execute(update(ReorientationRequest).where(ReorientationRequest.person_id.in_(person_ids))
                    .values(reason="", decision_reason=None))
    return 0


# ---- what moves a person's due date (cases.followup: the stored next due date) ---------------------

def _person_of_notice(notice) -> int | None:
    """A notice moves the contract's month of its orientation's person."""
    from sqlalchemy.orm import object_session

    session = object_session(notice)
    if session is None or notice.orientation_id is None:
        return None
    return session.scalar(select(Orientation.person_id).where(Orientation.id == notice.orientation_id))


def _person_of_message(message) -> int | None:
    """Only the outbox messages of notices: the day one leaves starts the contract's month."""
    return message.person_id if message.orientation_id is not None else None


def _register_due_inputs() -> None:
    from cases.followup import register_due_input

    register_due_input(Orientation)
    register_due_input(Notification, _person_of_notice)
    register_due_input(Message, _person_of_message)


_register_due_inputs()
