"""Screens of the Kiosque Insertion for MDS workers (their MDS only) and managers: the sessions,
create / move / cancel, the invitees with the phoning results, the roll call, the outcome that
orients, and the documents (letters, call list) to download.

Forms are validated by the API's schemas and written by `kiosque.service`, like the API."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cases.service import get_person_in_scope, person_scope
from config import clock
from config.auth import audit, current_user, db, requires
from kiosque import notices, service
from kiosque.models import Invitation, KiosqueSession
from kiosque.schemas import InvitationSchema, SessionInSchema, SessionPatchSchema, SessionSchema
from kiosque.vocabulary import InvitationStatus, PhoningOutcome
from orientation.service import OrientationError
from referents.models import Role, Structure
from referents.pages import done, form_data, load_form
from referents.vocabulary import ReferentType

bp = Blueprint("kiosque_pages", __name__, template_folder="templates")

MANAGERS = (Role.ADMIN.value, Role.MANAGER.value)
KIOSQUE_STAFF = (*MANAGERS, Role.MDS_WORKER.value)


def _is_manager() -> bool:
    return current_user().role in MANAGERS


def _session(session_id: int) -> KiosqueSession:
    ks = db().get(KiosqueSession, session_id)
    if ks is None or (not _is_manager() and ks.mds_id != current_user().structure_id):
        abort(404)
    return ks


def _mds_choices():
    q = select(Structure.id, Structure.name).where(Structure.kind == "mds", Structure.active).order_by(Structure.name)
    if not _is_manager():
        q = q.where(Structure.id == current_user().structure_id)
    return [(str(i), n) for i, n in db().execute(q)]


@bp.get("/kiosque")
@requires(*KIOSQUE_STAFF)
def sessions(errors=None, values=None, status=200):
    """Les sessions de ma MDS (à venir d'abord), et le formulaire de création."""
    mds_id = None if _is_manager() else current_user().structure_id
    since = clock.today() - dt.timedelta(days=30)
    rows = SessionSchema(many=True).dump(service.list_sessions(db(), start=since, mds_id=mds_id))
    return render_template("kiosque/sessions.html", rows=rows, errors=errors or {}, values=values or {},
                           mds_choices=_mds_choices(), today=clock.today()), status


@bp.post("/kiosque/sessions")
@requires(*KIOSQUE_STAFF)
def create():
    data = form_data()
    if not _is_manager():
        data["mds_id"] = str(current_user().structure_id)
    args, errors = load_form(SessionInSchema(only=("mds_id", "starts_at", "duration_minutes", "place", "capacity")),
                             data)
    if args is not None:
        try:
            ks = service.create_session(db(), mds_id=args["mds_id"], starts_at=args["starts_at"],
                                        place=args["place"], capacity=args["capacity"],
                                        duration_minutes=args["duration_minutes"])
        except service.KiosqueError as exc:
            db().rollback()
            errors = {"_schema": [str(exc)]}
        else:
            db().commit()
            return done("Session créée.", "kiosque_pages.session", session_id=ks.id)
    return sessions(errors=errors, values=form_data(drop_empty=False), status=422)


def _render_session(ks: KiosqueSession, *, form=None, errors=None, values=None, status=200):
    s = db()
    invitations = InvitationSchema(many=True).dump(service.session_invitations(s, ks.id,
                                                                              scope=person_scope(current_user())))
    mds = s.get(Structure, ks.mds_id)
    audit("read", None, {"view": "pages.kiosque.session", "session_id": ks.id, "count": len(invitations)})
    s.commit()
    structures = [(str(i), f"{n} ({ReferentType.label_of(k)})") for i, n, k in s.execute(
        select(Structure.id, Structure.name, Structure.kind)
        .where(Structure.active, Structure.kind.in_(ReferentType.codes())).order_by(Structure.kind, Structure.name))]
    return render_template("kiosque/session.html", ks=ks, mds=mds, invitations=invitations,
                           booked=service.booked_seats(s, ks.id), form=form, errors=errors or {},
                           values=values or {}, phoning=list(PhoningOutcome.labels().items()),
                           attendance=[(c, InvitationStatus.label_of(c)) for c in service.ATTENDANCE],
                           referent_choices=list(ReferentType.labels().items()), structures=structures,
                           now=clock.now()), status


@bp.get("/kiosque/sessions/<int:session_id>")
@requires(*KIOSQUE_STAFF)
def session(session_id):
    """Une session: invités, appels, appel des présents, choix du référent, documents."""
    return _render_session(_session(session_id))


@bp.post("/kiosque/sessions/<int:session_id>/deplacer")
@requires(*KIOSQUE_STAFF)
def move(session_id):
    """Déplace la session (date, heure, lieu, capacité)."""
    ks = _session(session_id)
    args, errors = load_form(SessionPatchSchema(only=("starts_at", "place", "capacity")))
    if args is not None:
        changes = {k: v for k, v in args.items() if v is not None}
        if "starts_at" in changes:
            changes["ends_at"] = changes["starts_at"] + (ks.ends_at - ks.starts_at if ks.ends_at else
                                                         dt.timedelta(minutes=150))
        was, where = ks.starts_at, ks.place
        try:
            service.update_session(db(), ks, **changes)
        except service.KiosqueError as exc:
            db().rollback()
            errors = {"_schema": [str(exc)]}
        else:
            told = 0
            if ks.starts_at != was or ks.place != where:
                told = notices.notify_invitees(db(), ks, notices.MOVED, _pending_ids(ks), on=clock.today(),
                                               user_id=current_user().id, was=was)
            db().commit()
            return done(f"Session modifiée; {told} invité(s) prévenu(s).", "kiosque_pages.session", session_id=ks.id)
    return _render_session(ks, form="move", errors=errors, values=form_data(drop_empty=False), status=422)


@bp.post("/kiosque/sessions/<int:session_id>/annuler")
@requires(*KIOSQUE_STAFF)
def cancel(session_id):
    """Annule la session: ses invitations en attente sont annulées et replacées par la planification."""
    ks = _session(session_id)
    pending = _pending_ids(ks)
    n = service.cancel_session(db(), ks)
    told = notices.notify_invitees(db(), ks, notices.CANCELLED, pending, on=clock.today(),
                                   user_id=current_user().id)
    db().commit()
    return done(f"Session annulée: {n} invitation(s) en attente annulée(s), à replacer par la prochaine "
                f"planification; {told} invité(s) prévenu(s).", "kiosque_pages.session", session_id=ks.id)


def _pending_ids(ks: KiosqueSession) -> list[int]:
    return list(db().scalars(select(Invitation.id).where(Invitation.session_id == ks.id,
                                                         Invitation.status == "pending")))


def _invitation(ks: KiosqueSession, invitation_id: int) -> Invitation:
    inv = db().get(Invitation, invitation_id)
    if inv is None or inv.session_id != ks.id or get_person_in_scope(db(), current_user(), inv.person_id) is None:
        abort(404)
    return inv


@bp.post("/kiosque/sessions/<int:session_id>/appels/<int:invitation_id>")
@requires(*KIOSQUE_STAFF)
def phoning(session_id, invitation_id):
    """Résultat d'un appel avant le kiosque."""
    ks = _session(session_id)
    inv = _invitation(ks, invitation_id)
    outcome = request.form.get("outcome", "")
    try:
        service.record_phoning(db(), inv.id, outcome, on=clock.today(), notes=request.form.get("notes") or None,
                               user_id=current_user().id)
    except service.KiosqueError:
        db().rollback()
        return _render_session(ks, form=f"call-{inv.id}", errors={"outcome": ["Choisissez le résultat de l'appel."]},
                               status=422)
    audit("update", inv.person_id, {"invitation_id": inv.id, "phoning": outcome, "view": "pages"})
    db().commit()
    return done("Résultat de l'appel enregistré.", "kiosque_pages.session", session_id=ks.id)


@bp.post("/kiosque/sessions/<int:session_id>/presences")
@requires(*KIOSQUE_STAFF)
def roll_call(session_id):
    """L'appel: présent, absent ou excusé pour chaque invité coché."""
    ks = _session(session_id)
    marked, errors = 0, {}
    replans: list = []  # the absent and excused, re-invited together once the sheet is recorded
    for key, status in request.form.items():
        if not key.startswith("presence-") or not status:
            continue
        inv = _invitation(ks, int(key.removeprefix("presence-")))
        try:
            with db().begin_nested():
                service.record_attendance(db(), inv.id, status, user_id=current_user().id, replans=replans)
        except (service.KiosqueError, OrientationError) as exc:
            errors[key] = [str(exc)]
            continue
        audit("update", inv.person_id, {"invitation_id": inv.id, "attendance": status, "view": "pages"})
        marked += 1
    service.replan(db(), replans)
    db().commit()
    if errors:
        return _render_session(ks, form="roll-call", errors=errors, status=422)
    if not marked:
        flash("Aucune présence cochée.", "error")
        return redirect(url_for("kiosque_pages.session", session_id=ks.id), 303)
    return done(f"Appel enregistré pour {marked} personne(s).", "kiosque_pages.session", session_id=ks.id)


@bp.post("/kiosque/sessions/<int:session_id>/choix/<int:invitation_id>")
@requires(*KIOSQUE_STAFF)
def outcome(session_id, invitation_id):
    """Le référent choisi par une personne présente: une orientation validée, et le premier rendez-vous."""
    ks = _session(session_id)
    inv = _invitation(ks, invitation_id)
    referent_type = request.form.get("referent_type", "")
    errors = {}
    structure_id = int(request.form["structure_id"]) if request.form.get("structure_id", "").isdigit() else None
    first = None
    if request.form.get("first_appointment_at"):
        try:
            first = dt.datetime.fromisoformat(request.form["first_appointment_at"])
        except ValueError:
            errors["first_appointment_at"] = ["Date et heure invalides."]
    if referent_type not in ReferentType.codes():
        errors["referent_type"] = ["Choisissez le type de référent."]
    if not errors:
        try:
            oid = service.record_outcome(db(), inv.id, referent_type, structure_id=structure_id,
                                         first_appointment_at=first, user_id=current_user().id)
        except (service.KiosqueError, OrientationError) as exc:
            db().rollback()
            errors["_schema"] = [str(exc)]
        else:
            audit("update", inv.person_id, {"invitation_id": inv.id, "orientation_id": oid, "view": "pages"})
            db().commit()
            return done("Orientation enregistrée: choix de la personne au kiosque.", "kiosque_pages.session",
                        session_id=ks.id)
    return _render_session(ks, form=f"choice-{inv.id}", errors=errors, values=form_data(drop_empty=False), status=422)
