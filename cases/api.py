"""REST API of persons and their path: search, detail, timeline, appointments, contract, reviews,
diagnostics, suspension procedure, exit; and the referents' working lists.

Every query goes through cases.service.person_scope: a person out of scope answers 404."""

from __future__ import annotations

import datetime as dt

from flask_smorest import Blueprint, abort

from cases import service
from cases.models import Appointment, Contract, Diagnostic, Review, Sanction
from cases.schemas import (
    AppointmentInSchema,
    AppointmentSchema,
    AppointmentStatusSchema,
    AsOfQuerySchema,
    BreachInSchema,
    ContractInSchema,
    ContractSchema,
    DecisionInSchema,
    DiagnosticInSchema,
    DiagnosticSchema,
    EpOpinionInSchema,
    EpRequestInSchema,
    ExitCorrectionInSchema,
    ExitInSchema,
    ExitReasonSchema,
    ExitSchema,
    LiftInSchema,
    ListQuerySchema,
    ListResultSchema,
    ObservationsInSchema,
    PersonDetailSchema,
    PersonPageSchema,
    PersonQuerySchema,
    ReviewInSchema,
    ReviewSchema,
    SanctionSchema,
    TimelineEventSchema,
)
from config import clock
from config.auth import audit, current_user, db, requires, runtime
from referents.models import Role

blp = Blueprint("persons", __name__, url_prefix="/persons", description="Personnes et parcours")
lists_blp = Blueprint("cases", __name__, url_prefix="/cases", description="Listes de suivi des parcours")
blueprints = [lists_blp]  # registered besides `blp` by config.app

ALL = tuple(r.value for r in Role)
FOLLOWERS = ALL  # referents (MDS, providers, ATI) and the Département's staff record the path
DEPARTEMENT = (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value, Role.ATI.value)
DECIDERS = (Role.ADMIN.value, Role.MANAGER.value)


def _person(person_id: int):
    person = service.get_person_in_scope(db(), current_user(), person_id)
    if person is None:
        abort(404, message="Personne introuvable")
    return person


def _source() -> str:
    return "provider" if current_user().role == Role.PROVIDER.value else "agent"


def _as_of(args) -> dt.date:
    return args.get("as_of") or clock.today()


def _apply(func, *args, **kwargs):
    """Run a service write; a domain refusal answers 422 with its field messages."""
    try:
        return func(*args, **kwargs)
    except service.CaseValidationError as exc:
        db().rollback()
        abort(422, messages=exc.messages)


# --- persons --------------------------------------------------------------------------------------

@blp.route("", methods=["GET"])
@requires(*ALL)
@blp.arguments(PersonQuerySchema, location="query")
@blp.response(200, PersonPageSchema)
def search(args):
    """Recherche (nom, date de naissance, matricule CAF) parmi les personnes du périmètre."""
    found = service.search_persons(db(), current_user(), q=args["q"], birth_date=args["birth_date"],
                                   caf_number=args["caf_number"], page=args["page"], per_page=args["per_page"])
    audit("search", None, {"count": len(found.rows)})
    db().commit()
    return {"items": found.rows, "total": found.total, "total_capped": found.capped, "page": args["page"],
            "per_page": args["per_page"]}


@blp.route("/<int:person_id>", methods=["GET"])
@requires(*ALL)
@blp.arguments(AsOfQuerySchema, location="query")
@blp.response(200, PersonDetailSchema)
def detail(args, person_id):
    """Fiche de la personne: identité (selon le rôle), foyer, parcours, orientation, échéances."""
    person = _person(person_id)
    data = service.person_detail(db(), person, role=current_user().role, vault=runtime().vault, as_of=_as_of(args))
    audit("read", person_id)
    db().commit()
    return data


@blp.route("/<int:person_id>/timeline", methods=["GET"])
@requires(*ALL)
@blp.response(200, TimelineEventSchema(many=True))
def person_timeline(person_id):
    """Historique daté de la personne (flux, orientation, kiosque, rendez-vous, contrat, sortie)."""
    _person(person_id)
    events = service.timeline(db(), person_id)
    audit("read", person_id, {"view": "timeline"})
    db().commit()
    return events


# --- appointments ---------------------------------------------------------------------------------

@blp.route("/<int:person_id>/appointments", methods=["GET"])
@requires(*ALL)
@blp.response(200, AppointmentSchema(many=True))
def list_appointments(person_id):
    _person(person_id)
    rows = db().query(Appointment).filter(Appointment.person_id == person_id).order_by(Appointment.scheduled_at)
    data = rows.all()
    audit("read", person_id, {"view": "appointments"})
    db().commit()
    return data


@blp.route("/<int:person_id>/appointments", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(AppointmentInSchema)
@blp.response(201, AppointmentSchema)
def create_appointment(args, person_id):
    """Enregistre un rendez-vous avec le référent (idempotent sur la date et l'heure)."""
    _person(person_id)
    appt = _apply(service.record_appointment, db(), person_id, args["scheduled_at"], args["status"],
                  kind=args["kind"], structure_id=args["structure_id"], agent_id=args["agent_id"],
                  source=_source(), author_id=current_user().id, notes=args["notes"])
    audit("update", person_id, {"appointment_id": appt.id})
    db().commit()
    return appt


@blp.route("/<int:person_id>/appointments/<int:appointment_id>", methods=["PATCH"])
@requires(*FOLLOWERS)
@blp.arguments(AppointmentStatusSchema)
@blp.response(200, AppointmentSchema)
def update_appointment(args, person_id, appointment_id):
    """Met à jour le statut d'un rendez-vous (honoré, absence, excusé, annulé)."""
    _person(person_id)
    appt = db().get(Appointment, appointment_id)
    if appt is None or appt.person_id != person_id:
        abort(404, message="Rendez-vous introuvable")
    _apply(service.update_appointment_status, db(), appointment_id, args["status"], source=_source(),
           author_id=current_user().id)
    audit("update", person_id, {"appointment_id": appointment_id, "status": args["status"]})
    db().commit()
    return appt


# --- contract and reviews -------------------------------------------------------------------------

@blp.route("/<int:person_id>/contracts", methods=["GET"])
@requires(*ALL)
@blp.response(200, ContractSchema(many=True))
def list_contracts(person_id):
    _person(person_id)
    rows = db().query(Contract).filter(Contract.person_id == person_id).order_by(Contract.id)
    data = rows.all()
    audit("read", person_id, {"view": "contracts"})
    db().commit()
    return data


@blp.route("/<int:person_id>/contracts", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(ContractInSchema)
@blp.response(201, ContractSchema)
def create_contract(args, person_id):
    """Enregistre le contrat d'engagement (15 h/semaine sauf motif légal)."""
    _person(person_id)
    contract = _apply(service.record_contract, db(), person_id, args["signed_on"], weekly_hours=args["weekly_hours"],
                      hours_reduction_reason=args["hours_reduction_reason"], kind=args["kind"],
                      objectives=args["objectives"], duration_months=args["duration_months"],
                      vulnerability=args["vulnerability"], review_reason=args["review_reason"], source=_source(),
                      author_id=current_user().id)
    audit("update", person_id, {"contract_id": contract.id})
    db().commit()
    return contract


@blp.route("/<int:person_id>/reviews", methods=["GET"])
@requires(*ALL)
@blp.response(200, ReviewSchema(many=True))
def list_reviews(person_id):
    _person(person_id)
    rows = db().query(Review).filter(Review.person_id == person_id).order_by(Review.due_on, Review.id)
    data = rows.all()
    audit("read", person_id, {"view": "reviews"})
    db().commit()
    return data


@blp.route("/<int:person_id>/reviews", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(ReviewInSchema)
@blp.response(201, ReviewSchema)
def hold_review(args, person_id):
    """Bilan du parcours: maintien, révision du contrat ou demande de réorientation."""
    _person(person_id)
    review = _apply(service.record_review, db(), person_id, args["held_on"], args["outcome"], source=_source(),
                    author_id=current_user().id, notes=args["notes"], review_id=args["review_id"],
                    reorientation_reason=args["reorientation_reason"],
                    wanted_referent_type=args["wanted_referent_type"],
                    wanted_structure_id=args["wanted_structure_id"],
                    referent_participant=args["referent_participant"],
                    france_travail_participant=args["france_travail_participant"],
                    **({"next_review_reason": args["next_review_reason"]} if "next_review_reason" in args else {}))
    audit("update", person_id, {"review_id": review.id, "outcome": args["outcome"]})
    db().commit()
    return review


# --- diagnostics ----------------------------------------------------------------------------------

@blp.route("/<int:person_id>/diagnostics", methods=["GET"])
@requires(*ALL)
@blp.response(200, DiagnosticSchema(many=True))
def list_diagnostics(person_id):
    _person(person_id)
    rows = db().query(Diagnostic).filter(Diagnostic.person_id == person_id).order_by(Diagnostic.recorded_on)
    data = rows.all()
    audit("read", person_id, {"view": "diagnostics"})
    db().commit()
    return data


@blp.route("/<int:person_id>/diagnostics", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(DiagnosticInSchema)
@blp.response(201, DiagnosticSchema)
def create_diagnostic(args, person_id):
    """Diagnostic socio-professionnel (fait utilisé par les règles d'orientation)."""
    _person(person_id)
    diag = _apply(service.record_diagnostic, db(), person_id, args["recorded_on"], args["constraints"],
                  args["education_level"], args["can_seek_work"], current_user().id, notes=args["notes"],
                  source=_source())
    audit("update", person_id, {"diagnostic_id": diag.id})
    db().commit()
    return diag


# --- exit -----------------------------------------------------------------------------------------

@blp.route("/<int:person_id>/exit", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(ExitInSchema)
@blp.response(201, ExitSchema)
def create_exit(args, person_id):
    """Sortie du parcours (avant le flux si le référent la connaît): ferme le parcours."""
    _person(person_id)
    ex = _apply(service.record_exit, db(), person_id, args["exit_on"], args["reason"], source=_source(),
                details=args["details"], author_id=current_user().id)
    audit("update", person_id, {"exit_id": ex.id})
    db().commit()
    return ex


@blp.route("/<int:person_id>/exit/correction", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(ExitCorrectionInSchema)
@blp.response(200, ExitSchema)
def correct_exit(args, person_id):
    """Corrige (date, motif) ou annule (cancel) la dernière sortie enregistrée par erreur, dans les 30 jours.
    Un prestataire y accède encore pour une sortie de sa structure (la personne a quitté son périmètre)."""
    from sqlalchemy import select

    from cases import corrections
    from cases.models import Exit

    user = current_user()
    ex = db().scalar(select(Exit).where(Exit.person_id == person_id).order_by(Exit.id.desc()).limit(1))
    in_scope = service.get_person_in_scope(db(), user, person_id) is not None
    if not (in_scope or (ex is not None and user.structure_id is not None and ex.structure_id == user.structure_id)):
        abort(404, message="Personne introuvable")
    if ex is None:
        abort(422, messages={"exit": ["aucune sortie enregistrée à corriger"]})
    kept = _apply(corrections.correct_exit, db(), ex.id, as_of=_as_of(args), cancel=args["cancel"],
                  exit_on=args["exit_on"], reason=args["reason"], note=args["note"], source=_source(),
                  author_id=user.id)
    audit("update", person_id, {"exit_correction": "cancel" if kept is None else "correct", "exit_id": ex.id})
    db().commit()
    if kept is None:  # cancelled: nothing left to describe
        from flask import jsonify

        return jsonify(cancelled=True, person_id=person_id)
    return kept


# --- suspension procedure -------------------------------------------------------------------------

def _sanction_of(person_id: int, sanction_id: int) -> Sanction:
    _person(person_id)
    sanction = db().get(Sanction, sanction_id)
    if sanction is None or sanction.person_id != person_id:
        abort(404, message="Procédure introuvable")
    return sanction


@blp.route("/<int:person_id>/sanctions", methods=["GET"])
@requires(*DEPARTEMENT)
@blp.response(200, SanctionSchema(many=True))
def list_sanctions(person_id):
    _person(person_id)
    rows = db().query(Sanction).filter(Sanction.person_id == person_id).order_by(Sanction.breach_on, Sanction.id)
    data = rows.all()
    audit("read", person_id, {"view": "sanctions"})
    db().commit()
    return data


@blp.route("/<int:person_id>/sanctions", methods=["POST"])
@requires(*FOLLOWERS)
@blp.arguments(BreachInSchema)
@blp.response(201, SanctionSchema)
def create_breach(args, person_id):
    """Le référent signale un manquement: la procédure de suspension commence."""
    _person(person_id)
    sanction = _apply(service.record_breach, db(), person_id, args["breach_on"], args["breach"], source=_source(),
                      author_id=current_user().id)
    audit("update", person_id, {"sanction_id": sanction.id, "step": "breach"})
    db().commit()
    return sanction


@blp.route("/<int:person_id>/sanctions/<int:sanction_id>/observations", methods=["POST"])
@requires(*DEPARTEMENT)
@blp.arguments(ObservationsInSchema)
@blp.response(200, SanctionSchema)
def sanction_observations(args, person_id, sanction_id):
    _sanction_of(person_id, sanction_id)
    sanction = _apply(service.record_observations, db(), sanction_id, args["observations_on"], args["observations"],
                      source="agent", author_id=current_user().id)
    audit("update", person_id, {"sanction_id": sanction_id, "step": "observations"})
    db().commit()
    return sanction


@blp.route("/<int:person_id>/sanctions/<int:sanction_id>/ep-request", methods=["POST"])
@requires(*DECIDERS)
@blp.arguments(EpRequestInSchema)
@blp.response(200, SanctionSchema)
def sanction_ep_request(args, person_id, sanction_id):
    _sanction_of(person_id, sanction_id)
    sanction = _apply(service.request_ep_opinion, db(), sanction_id, args["requested_on"], source="agent",
                      author_id=current_user().id)
    audit("update", person_id, {"sanction_id": sanction_id, "step": "ep_requested"})
    db().commit()
    return sanction


@blp.route("/<int:person_id>/sanctions/<int:sanction_id>/ep-opinion", methods=["POST"])
@requires(*DECIDERS)
@blp.arguments(EpOpinionInSchema)
@blp.response(200, SanctionSchema)
def sanction_ep_opinion(args, person_id, sanction_id):
    _sanction_of(person_id, sanction_id)
    sanction = _apply(service.record_ep_opinion, db(), sanction_id, args["opinion_on"], args["opinion"],
                      source="agent", author_id=current_user().id)
    audit("update", person_id, {"sanction_id": sanction_id, "step": "ep_opinion"})
    db().commit()
    return sanction


@blp.route("/<int:person_id>/sanctions/<int:sanction_id>/decision", methods=["POST"])
@requires(*DECIDERS)
@blp.arguments(DecisionInSchema)
@blp.response(200, SanctionSchema)
def sanction_decision(args, person_id, sanction_id):
    """Décision (taux et durée bornés par la configuration; suppression après avis de l'EP)."""
    _sanction_of(person_id, sanction_id)
    sanction = _apply(service.decide_sanction, db(), sanction_id, args["decided_on"], kind=args["kind"],
                      rate_percent=args["rate_percent"], duration_months=args["duration_months"], source="agent",
                      author_id=current_user().id)
    audit("update", person_id, {"sanction_id": sanction_id, "step": "decided"})
    db().commit()
    return sanction


@blp.route("/<int:person_id>/sanctions/<int:sanction_id>/lift", methods=["POST"])
@requires(*DECIDERS)
@blp.arguments(LiftInSchema)
@blp.response(200, SanctionSchema)
def sanction_lift(args, person_id, sanction_id):
    """Levée dès que la personne se conforme à ses obligations."""
    _sanction_of(person_id, sanction_id)
    sanction = _apply(service.lift_sanction, db(), sanction_id, args["lifted_on"], source="agent",
                      author_id=current_user().id, reason=args["reason"], cause=args["cause"])
    audit("update", person_id, {"sanction_id": sanction_id, "step": "lifted"})
    db().commit()
    return sanction


# --- working lists --------------------------------------------------------------------------------

@lists_blp.route("/lists/<string:name>", methods=["GET"])
@requires(*ALL)
@lists_blp.arguments(ListQuerySchema, location="query")
@lists_blp.response(200, ListResultSchema)
def working_list(args, name):
    """my-people, overdue-contracts, reviews-due, appointments-to-update, without-appointment."""
    func = service.LISTS.get(name)
    if func is None:
        abort(404, message=f"Liste inconnue: {name}")
    as_of = _as_of(args)
    kwargs = {}
    if args.get("days") is not None:
        if name == "reviews-due":
            kwargs["within_days"] = args["days"]
        elif name == "without-appointment":
            kwargs["days"] = args["days"]
    if name == "my-people":  # sorted and paged in SQL (the due date stored on the path)
        count, page = service.my_people_page(db(), current_user(), as_of, offset=args["offset"],
                                             limit=args["limit"])
    else:
        items = func(db(), current_user(), as_of, **kwargs)
        count, page = len(items), items[args["offset"]:args["offset"] + args["limit"]]
    audit("list", None, {"list": name, "count": count, "offset": args["offset"], "returned": len(page)})
    db().commit()
    return {"name": name, "as_of": as_of.isoformat(), "count": count, "limit": args["limit"],
            "offset": args["offset"], "items": page}


@lists_blp.route("/exit-reasons", methods=["GET"])
@requires(*ALL)
@lists_blp.response(200, ExitReasonSchema(many=True))
def exit_reason_list():
    """Motifs de sortie et leur caractère positif (configuration)."""
    return [{"reason": k, "label": v["label"], "positive": bool(v.get("positive"))}
            for k, v in service.exit_reasons().items()]
