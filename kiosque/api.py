"""REST API of the Kiosque Insertion: sessions, templates, closures, planning, invitations (phoning,
attendance, outcome), call list and letters, funnel.

Managers (and admins) act everywhere; an MDS worker only on the sessions of their own MDS
(User.structure_id), and sees only persons of their scope (cases.service.person_scope)."""

from __future__ import annotations

import io

from flask import send_file
from flask_smorest import Blueprint, abort
from sqlalchemy import select

from cases.service import get_person_in_scope, person_scope
from config import clock
from config.auth import audit, current_user, db, requires
from config.edges import PDF, XLSX, file_response
from kiosque import letters, phoning, service
from kiosque.models import Closure, Invitation, KiosqueSession, SessionTemplate
from kiosque.schemas import (
    AttendanceInSchema,
    AttendanceResultSchema,
    ClosureInSchema,
    ClosureSchema,
    FunnelQuerySchema,
    FunnelRowSchema,
    GenerateInSchema,
    GenerateResultSchema,
    InvitationSchema,
    OutcomeInSchema,
    PhoningInSchema,
    PlanInSchema,
    PlanResultSchema,
    SessionInSchema,
    SessionPatchSchema,
    SessionQuerySchema,
    SessionSchema,
    TemplateInSchema,
    TemplateSchema,
)
from kiosque.sessions import SessionSeats
from referents.models import Role

blp = Blueprint("kiosque", __name__, url_prefix="/kiosque", description="Kiosque Insertion")

MANAGERS = (Role.ADMIN.value, Role.MANAGER.value)
KIOSQUE_STAFF = (*MANAGERS, Role.MDS_WORKER.value)


def _is_manager() -> bool:
    return current_user().role in MANAGERS


def _check_mds(mds_id: int | None) -> None:
    """An MDS worker acts only for their own MDS (403 otherwise)."""
    if not _is_manager() and (mds_id is None or mds_id != current_user().structure_id):
        abort(403, message="Réservé aux sessions de votre MDS")


def _session(session_id: int) -> KiosqueSession:
    ks = db().get(KiosqueSession, session_id)
    if ks is None or (not _is_manager() and ks.mds_id != current_user().structure_id):
        abort(404, message="Session introuvable")
    return ks


def _invitation(invitation_id: int) -> Invitation:
    """The invitation, when its session is of the user's MDS and its person in the user's scope."""
    inv = db().get(Invitation, invitation_id)
    if inv is None or (not _is_manager() and inv.session.mds_id != current_user().structure_id) \
            or get_person_in_scope(db(), current_user(), inv.person_id) is None:
        abort(404, message="Invitation introuvable")
    return inv


def _apply(func, *args, **kwargs):
    """Run a service write; a refusal of the kiosque or orientation rules answers 422."""
    from orientation.service import OrientationError

    try:
        return func(*args, **kwargs)
    except (service.KiosqueError, OrientationError) as exc:
        db().rollback()
        abort(422, message=str(exc))


def _session_out(ks: KiosqueSession) -> SessionSeats:
    from referents.models import Structure

    mds = db().get(Structure, ks.mds_id)
    return SessionSeats(ks, mds_name=mds.name if mds else None, booked=service.booked_seats(db(), ks.id))


# --- sessions -------------------------------------------------------------------------------------

@blp.route("/sessions", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(SessionQuerySchema, location="query")
@blp.response(200, SessionSchema(many=True))
def list_sessions(args):
    """Sessions (places données et libres); une MDS ne voit que les siennes."""
    mds_id = args["mds_id"] if _is_manager() else current_user().structure_id
    return service.list_sessions(db(), start=args["start"], end=args["end"], mds_id=mds_id, status=args["status"])


@blp.route("/sessions", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(SessionInSchema)
@blp.response(201, SessionSchema)
def create_session(args):
    """Crée une session (MDS, date et heure, lieu, capacité, partenaires présents)."""
    _check_mds(args["mds_id"])
    ks = _apply(service.create_session, db(), mds_id=args["mds_id"], starts_at=args["starts_at"],
                place=args["place"], capacity=args["capacity"], duration_minutes=args["duration_minutes"],
                partner_ids=args["partner_ids"])
    db().commit()
    return _session_out(ks)


@blp.route("/sessions/<int:session_id>", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.response(200, SessionSchema)
def get_session(session_id):
    return _session_out(_session(session_id))


@blp.route("/sessions/<int:session_id>", methods=["PATCH"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(SessionPatchSchema)
@blp.response(200, SessionSchema)
def update_session(args, session_id):
    """Modifie une session; la capacité ne descend pas sous les places déjà données."""
    ks = _session(session_id)
    _apply(service.update_session, db(), ks, **args)
    db().commit()
    return _session_out(ks)


@blp.route("/sessions/<int:session_id>", methods=["DELETE"])
@requires(*KIOSQUE_STAFF)
@blp.response(200, SessionSchema)
def cancel_session(session_id):
    """Annule la session: ses invitations en attente seront replacées par la prochaine planification."""
    ks = _session(session_id)
    service.cancel_session(db(), ks)
    db().commit()
    return _session_out(ks)


@blp.route("/sessions/generate", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(GenerateInSchema)
@blp.response(201, GenerateResultSchema)
def generate(args):
    """Crée les sessions des modèles sur une période (jours fériés et fermetures sautés)."""
    mds_id = args["mds_id"]
    if not _is_manager():
        _check_mds(mds_id)
    out = _apply(service.generate_sessions, db(), args["start"], args["end"], mds_id=mds_id)
    db().commit()
    return out


# --- templates and closures -----------------------------------------------------------------------

@blp.route("/templates", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.response(200, TemplateSchema(many=True))
def list_templates():
    q = select(SessionTemplate).order_by(SessionTemplate.mds_id, SessionTemplate.weekday, SessionTemplate.id)
    if not _is_manager():
        q = q.where(SessionTemplate.mds_id == current_user().structure_id)
    return list(db().scalars(q))


@blp.route("/templates", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(TemplateInSchema)
@blp.response(201, TemplateSchema)
def create_template(args):
    """Modèle récurrent: « chaque mardi 9 h 30, 20 places »."""
    _check_mds(args["mds_id"])
    t = _apply(service.create_template, db(), **args)
    db().commit()
    return t


@blp.route("/closures", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(ClosureInSchema)
@blp.response(201, ClosureSchema)
def create_closure(args):
    """Déclare un jour sans kiosque (une MDS, ou toutes pour un gestionnaire)."""
    _check_mds(args["mds_id"])
    c = service.add_closure(db(), args["day"], args["reason"], mds_id=args["mds_id"])
    db().commit()
    return c


@blp.route("/closures", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.response(200, ClosureSchema(many=True))
def list_closures():
    return list(db().scalars(select(Closure).order_by(Closure.day, Closure.id)))


# --- planning -------------------------------------------------------------------------------------

@blp.route("/planning", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(PlanInSchema)
@blp.response(200, PlanResultSchema)
def run_planning(args):
    """Lance la planification des invitations (la même que le travail quotidien)."""
    result = service.plan(db(), args["as_of"] or clock.today())
    db().commit()
    return result.as_dict()


# --- invitations, phoning, attendance -------------------------------------------------------------

@blp.route("/sessions/<int:session_id>/invitations", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.response(200, InvitationSchema(many=True))
def session_invitations(session_id):
    """Les personnes invitées à la session (celles du périmètre de l'utilisateur)."""
    _session(session_id)
    rows = service.session_invitations(db(), session_id, scope=person_scope(current_user()))
    audit("read", None, {"view": "kiosque.invitations", "session_id": session_id, "count": len(rows)})
    db().commit()
    return rows


@blp.route("/invitations/<int:invitation_id>/phoning", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(PhoningInSchema)
@blp.response(200, InvitationSchema)
def record_phoning(args, invitation_id):
    """Résultat d'un appel: joint, pas de réponse, faux numéro, refus, viendra."""
    inv = _invitation(invitation_id)
    _apply(service.record_phoning, db(), inv.id, args["outcome"], on=args["on"] or clock.today(),
           notes=args["notes"], user_id=current_user().id)
    audit("update", inv.person_id, {"invitation_id": inv.id, "phoning": args["outcome"]})
    db().commit()
    return inv


@blp.route("/invitations/<int:invitation_id>/attendance", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(AttendanceInSchema)
@blp.response(200, AttendanceResultSchema)
def record_attendance(args, invitation_id):
    """Présent (avec le référent choisi et le premier rendez-vous), absent ou excusé."""
    inv = _invitation(invitation_id)
    out = _apply(service.record_attendance, db(), inv.id, args["status"], referent_type=args["referent_type"],
                 structure_id=args["structure_id"], first_appointment_at=args["first_appointment_at"],
                 user_id=current_user().id)
    audit("update", inv.person_id, {"invitation_id": inv.id, "attendance": args["status"]})
    db().commit()
    return out


@blp.route("/invitations/<int:invitation_id>/outcome", methods=["POST"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(OutcomeInSchema)
@blp.response(200, AttendanceResultSchema)
def record_outcome(args, invitation_id):
    """Le référent choisi par une personne présente: orientation validée d'origine kiosque."""
    inv = _invitation(invitation_id)
    oid = _apply(service.record_outcome, db(), inv.id, args["referent_type"], structure_id=args["structure_id"],
                 first_appointment_at=args["first_appointment_at"], user_id=current_user().id)
    audit("update", inv.person_id, {"invitation_id": inv.id, "orientation_id": oid})
    db().commit()
    return {"invitation_id": inv.id, "status": inv.status, "orientation_id": oid}


# --- documents ------------------------------------------------------------------------------------

@blp.route("/sessions/<int:session_id>/phoning.xlsx", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.doc(**file_response(XLSX, "la liste d'appels (xlsx)"))
def call_list(session_id):
    """Liste d'appels de la session (xlsx: nom, téléphone, résultat en liste déroulante, notes)."""
    ks = _session(session_id)
    buf = io.BytesIO()
    out = phoning.write_call_list(db(), ks.id, buf)
    audit("export", None, {"view": "kiosque.phoning", "session_id": ks.id, "rows": out["rows"]})
    db().commit()
    buf.seek(0)
    return send_file(buf, as_attachment=True, download_name=f"appels-session-{ks.id}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@blp.route("/sessions/<int:session_id>/letters.pdf", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.doc(**file_response(PDF, "les courriers d'invitation (PDF)"))
def session_letters(session_id):
    """Le lot de courriers d'invitation de la session, à imprimer (PDF)."""
    ks = _session(session_id)
    data = _apply(letters.session_batch_pdf, db(), ks.id)
    audit("export", None, {"view": "kiosque.letters", "session_id": ks.id})
    db().commit()
    return send_file(io.BytesIO(data), as_attachment=True, download_name=f"courriers-session-{ks.id}.pdf",
                     mimetype="application/pdf")


# --- funnel ---------------------------------------------------------------------------------------

@blp.route("/funnel", methods=["GET"])
@requires(*KIOSQUE_STAFF)
@blp.arguments(FunnelQuerySchema, location="query")
@blp.response(200, FunnelRowSchema(many=True))
def funnel(args):
    """Invités → joints par téléphone → présents → orientés, par session, MDS, mois ou au total."""
    mds_id = args["mds_id"] if _is_manager() else current_user().structure_id
    return _apply(service.funnel, db(), start=args["start"], end=args["end"], mds_id=mds_id, by=args["by"])
