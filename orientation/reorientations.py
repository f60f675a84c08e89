"""Réorientation: a request by the person or their referent, decided by an agent of the Département;
an accepted request records a new decision (service.record_orientation)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cases.models import Person
from cases.service import add_event
from orientation.errors import OrientationError
from orientation.models import Orientation, ReorientationRequest
from orientation.service import open_path_id, record_orientation
from referents.vocabulary import REFERENT_TYPES, OrientationStatus, Origin, Outcome


def request_reorientation(session: Session, person_id: int, user_id: int | None, reason: str, as_of: dt.date,
                          wanted_referent_type: str | None = None,
                          wanted_structure_id: int | None = None) -> ReorientationRequest:
    if not reason or not reason.strip():
        raise OrientationError("le motif de la demande de réorientation est obligatoire")
    if wanted_referent_type is not None and wanted_referent_type not in REFERENT_TYPES:
        raise OrientationError(f"type de référent inconnu: {wanted_referent_type!r}")
    if session.get(Person, person_id) is None:
        raise LookupError(f"personne {person_id} inconnue")
    if session.scalar(select(ReorientationRequest.id).where(ReorientationRequest.person_id == person_id,
                                                            ReorientationRequest.status == "pending")):
        raise OrientationError("une demande de réorientation est déjà en attente pour cette personne")
    current = session.scalar(select(Orientation).where(Orientation.person_id == person_id,
                                                       Orientation.status == OrientationStatus.VALIDATED)
                             .order_by(Orientation.id.desc()).limit(1))
    req = ReorientationRequest(person_id=person_id, orientation_id=current.id if current else None,
                               requested_by=user_id, requested_on=as_of, reason=reason.strip(),
                               wanted_referent_type=wanted_referent_type, wanted_structure_id=wanted_structure_id)
    session.add(req)
    session.flush()
    add_event(session, person_id, "orientation.reorientation_requested", as_of, "agent",
              f"Demande de réorientation: {reason.strip()}",
              {"request_id": req.id, "wanted_referent_type": wanted_referent_type},
              path_id=current.path_id if current else open_path_id(session, person_id), author_id=user_id)
    return req


def decide_reorientation(session: Session, request_id: int, user_id: int | None, accept: bool, as_of: dt.date,
                         reason: str | None = None, referent_type: str | None = None,
                         structure_id: int | None = None) -> ReorientationRequest:
    req = session.get(ReorientationRequest, request_id)
    if req is None:
        raise LookupError(f"demande {request_id} inconnue")
    if req.status != "pending":
        raise OrientationError(f"demande déjà traitée ({req.status})")
    req.decided_by, req.decided_on, req.decision_reason = user_id, as_of, (reason or "").strip() or None
    if accept:
        rtype = referent_type or req.wanted_referent_type
        if rtype is None:
            raise OrientationError("le type de référent de la nouvelle orientation est requis")
        new = record_orientation(session, req.person_id, rtype, origin=Origin.REORIENTATION, decided_on=as_of,
                                 structure_id=structure_id or req.wanted_structure_id, user_id=user_id,
                                 reason=req.reason, status=OrientationStatus.VALIDATED)
        req.status, req.new_orientation_id = "accepted", new.id
        kind, summary = "orientation.reorientation_accepted", f"Réorientation acceptée: {Outcome(rtype).label}"
    else:
        if not req.decision_reason:
            raise OrientationError("le motif du refus est obligatoire")
        req.status = "refused"
        kind, summary = "orientation.reorientation_refused", f"Réorientation refusée: {req.decision_reason}"
    add_event(session, req.person_id, kind, as_of, "agent", summary, {"request_id": req.id},
              path_id=open_path_id(session, req.person_id), author_id=user_id)
    session.flush()
    return req


def reorientation_requests(session: Session, status: str | None = "pending",
                           scope: ColumnElement[bool] | None = None) -> list[ReorientationRequest]:
    q = select(ReorientationRequest).join(Person, Person.id == ReorientationRequest.person_id)
    if status:
        q = q.where(ReorientationRequest.status == status)
    if scope is not None:
        q = q.where(scope)
    return list(session.scalars(q.order_by(ReorientationRequest.id)))
