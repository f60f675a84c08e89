"""REST API of the orientation: run, queues, validation, override, explanation, réorientation,
rule sets (versioned) and deadlines. Thin: every decision is in orientation.service.

Persons are always reached through cases.service.person_scope (out of scope answers 404)."""

from __future__ import annotations

import datetime as dt

from flask import abort as flask_abort
from flask_smorest import Blueprint, abort

from cases.service import get_person_in_scope, person_scope
from config import clock
from config.auth import audit, current_user, db, requires
from orientation import deadlines as deadline_service
from orientation import reorientations as reorientation_service
from orientation import service
from orientation.rules import RuleSetError, parse_rule_set
from orientation.schemas import (
    AsOfSchema,
    DeadlinePageSchema,
    DeadlineQuerySchema,
    DecisionExportQuerySchema,
    ExplainSchema,
    OrientationSchema,
    OverrideInSchema,
    QueuePageSchema,
    QueueQuerySchema,
    ReorientationDecisionInSchema,
    ReorientationInSchema,
    ReorientationQuerySchema,
    ReorientationSchema,
    RuleSetInSchema,
    RuleSetSchema,
    RuleSetVersionSchema,
    RunResultSchema,
    ValidateInSchema,
    ValidateResultSchema,
)
from referents.models import Role

blp = Blueprint("orientation", __name__, url_prefix="/orientation",
                description="Orientation: règles, décisions, validation, réorientation, délais")

ALL = tuple(r.value for r in Role)
STAFF = (Role.ADMIN.value, Role.MANAGER.value)
VALIDATORS = (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value)


def _as_of(args) -> dt.date:
    return args.get("as_of") or clock.today()


def _scope():
    return person_scope(current_user())


def _refuse(code: int, message: str):
    """Answer an error with its French message (422: under "errors", like schema errors)."""
    db().rollback()
    if code == 422:
        abort(422, messages={"_schema": [message]})
    flask_abort(code, description=message)


def _domain(func, *args, **kwargs):
    """Run a service action; a refusal answers 422 (404 for something unknown or out of scope)."""
    try:
        return func(*args, **kwargs)
    except (service.OrientationError, RuleSetError) as exc:
        _refuse(422, str(exc))
    except LookupError as exc:
        _refuse(404, str(exc))


MAX_ID = 2**31 - 1


def _known_id(value: int) -> int:
    """Ids beyond the database integer range cannot exist: 404 rather than a database error."""
    if value > MAX_ID:
        _refuse(404, "introuvable")
    return value


def _structure(code):
    return _domain(service.structure_id_by_code, db(), code)


@blp.route("/run", methods=["POST"])
@requires(*STAFF)
@blp.arguments(AsOfSchema)
@blp.response(200, RunResultSchema)
def run(args):
    """Lance l'orientation de toutes les personnes à orienter (décisions datées du jour de référence)."""
    result = service.run(db(), _as_of(args))
    audit("orientation.run", None, {k: result[k] for k in ("considered", "validated", "proposed")})
    db().commit()
    return result


@blp.route("/queue", methods=["GET"])
@requires(*VALIDATORS)
@blp.arguments(QueueQuerySchema, location="query")
@blp.response(200, QueuePageSchema)
def queue(args):
    """Files d'attente: propositions à valider (par MDS / territoire), en attente de place, hors
    sectorisation, invitations au kiosque."""
    s = db()
    data = _domain(service.queue, s, _scope(), status=args["status"], mds_id=_structure(args["mds"]),
                   territory_id=_domain(service.territory_id_by_code, s, args["territory"]),
                   referent_type=args["referent_type"], rule_id=args["rule"],
                   structure_id=_structure(args["structure"]), limit=args["limit"], offset=args["offset"])
    audit("search", None, {"view": "orientation.queue", "status": args["status"], "count": len(data["items"])})
    s.commit()
    return data


@blp.route("/validate", methods=["POST"])
@requires(*VALIDATORS)
@blp.arguments(ValidateInSchema)
@blp.response(200, ValidateResultSchema)
def validate(args):
    """Valide des propositions, une par une (ids) ou toute une file filtrée (filter)."""
    s = db()
    if args["ids"] is not None:
        ids = args["ids"]
    else:
        f = args["filter"]
        ids = service.queue_ids(s, _scope(), status="proposed", mds_id=_structure(f.get("mds")),
                                territory_id=_domain(service.territory_id_by_code, s, f.get("territory")),
                                referent_type=f.get("referent_type"), rule_id=f.get("rule"),
                                structure_id=_structure(f.get("structure")))
    out = service.validate(s, ids, current_user().id, _as_of(args), scope=_scope())
    from orientation.models import Orientation

    for oid in out["validated"] + out["awaiting_capacity"]:
        o = s.get(Orientation, oid)
        audit("orientation.validate", o.person_id, {"orientation_id": oid, "status": o.status})
    s.commit()
    return out


@blp.route("/<int:orientation_id>/override", methods=["POST"])
@requires(*VALIDATORS)
@blp.arguments(OverrideInSchema)
@blp.response(200, OrientationSchema)
def override(args, orientation_id):
    """Remplace une décision en attente par un autre type de référent / une autre structure (motif obligatoire)."""
    s = db()
    new = _domain(service.override, s, _known_id(orientation_id), current_user().id, args["referent_type"], args["reason"],
                  _as_of(args), structure_id=_structure(args["structure"]), scope=_scope(),
                  parcours=args["parcours"])
    audit("orientation.override", new.person_id, {"orientation_id": orientation_id, "new_orientation_id": new.id,
                                                  "referent_type": args["referent_type"], "reason": args["reason"]})
    s.commit()
    return service.decision_of(s, new)


@blp.route("/persons/<int:person_id>/explain", methods=["GET"])
@requires(*ALL)
@blp.arguments(AsOfSchema, location="query")
@blp.response(200, ExplainSchema)
def explain(args, person_id):
    """Pourquoi cette orientation: règle, version, faits utilisés, en français (décision algorithmique signalée)."""
    s = db()
    if get_person_in_scope(s, current_user(), _known_id(person_id)) is None:
        _refuse(404, "Personne introuvable")
    data = service.explain(s, person_id, _as_of(args))
    audit("read", person_id, {"view": "orientation.explain"})
    s.commit()
    return data


@blp.route("/persons/<int:person_id>/reorientation", methods=["POST"])
@requires(*ALL)
@blp.arguments(ReorientationInSchema)
@blp.response(201, ReorientationSchema)
def request_reorientation(args, person_id):
    """Demande de réorientation par un référent ou un responsable (motif obligatoire)."""
    s = db()
    if get_person_in_scope(s, current_user(), _known_id(person_id)) is None:
        _refuse(404, "Personne introuvable")
    req = _domain(reorientation_service.request_reorientation, s, person_id, current_user().id, args["reason"], _as_of(args),
                  wanted_referent_type=args["wanted_referent_type"],
                  wanted_structure_id=_structure(args["wanted_structure"]))
    audit("orientation.reorientation_request", person_id, {"request_id": req.id, "reason": args["reason"]})
    s.commit()
    return req


@blp.route("/reorientations", methods=["GET"])
@requires(*STAFF)
@blp.arguments(ReorientationQuerySchema, location="query")
@blp.response(200, ReorientationSchema(many=True))
def reorientations(args):
    """Demandes de réorientation (en attente par défaut)."""
    status = None if args["status"] == "all" else args["status"]
    return reorientation_service.reorientation_requests(db(), status, scope=_scope())


@blp.route("/reorientations/<int:request_id>/decision", methods=["POST"])
@requires(*STAFF)
@blp.arguments(ReorientationDecisionInSchema)
@blp.response(200, ReorientationSchema)
def decide_reorientation(args, request_id):
    """Accepte (nouvelle orientation validée, l'ancienne prend fin) ou refuse (motif obligatoire) une demande."""
    s = db()
    req = _domain(reorientation_service.decide_reorientation, s, _known_id(request_id), current_user().id, args["accept"], _as_of(args),
                  reason=args["reason"], referent_type=args["referent_type"],
                  structure_id=_structure(args["structure"]))
    audit("orientation.reorientation_decision", req.person_id,
          {"request_id": request_id, "accept": args["accept"], "reason": args["reason"]})
    s.commit()
    return req


@blp.route("/rules", methods=["GET"])
@requires(*ALL)
@blp.response(200, RuleSetSchema)
def rules_active(**_kw):
    """Le jeu de règles actif (données: identifiant, libellé, conditions, résultat, mode, explication)."""
    row = service.get_rule_set(db())
    db().commit()
    return row


@blp.route("/rules", methods=["PUT"])
@requires(*STAFF)
@blp.arguments(RuleSetInSchema)
@blp.response(201, RuleSetSchema)
def rules_put(args):
    """Enregistre une nouvelle version du jeu de règles (validée entièrement; 409 si la version de base a changé)."""
    s = db()
    service.active_rule_set(s)
    try:
        warnings = parse_rule_set({"name": args["name"], "rules": args["rules"], "fallback": args["fallback"]}).warnings
        row = service.load_rules_document(s, {"name": args["name"], "rules": args["rules"],
                                              "fallback": args["fallback"]},
                                          user_id=current_user().id, base_version=args["base_version"])
    except RuleSetError as exc:
        _refuse(422, str(exc))
    except service.OrientationError as exc:
        _refuse(409, str(exc))
    audit("orientation.rules", None, {"version": row.version})
    s.commit()
    row.warnings = warnings  # dumped by RuleSetSchema.warnings (not a column: only this answer carries it)
    return row


@blp.route("/rules/versions", methods=["GET"])
@requires(*ALL)
@blp.response(200, RuleSetVersionSchema(many=True))
def rules_versions():
    """Toutes les versions du jeu de règles (aucune n'est jamais modifiée)."""
    s = db()
    service.active_rule_set(s)
    s.commit()
    return service.rule_set_versions(s)


@blp.route("/rules/<int:version>", methods=["GET"])
@requires(*ALL)
@blp.response(200, RuleSetSchema)
def rules_version(version):
    """Une version donnée du jeu de règles."""
    row = service.get_rule_set(db(), _known_id(version))
    if row is None:
        _refuse(404, f"version {version} inconnue")
    return row


@blp.route("/deadlines", methods=["GET"])
@requires(*VALIDATORS)
@blp.arguments(DeadlineQuerySchema, location="query")
@blp.response(200, DeadlinePageSchema)
def deadlines(args):
    """Personnes à orienter et leur délai: objectif J+30, limite légale J+42, alertes J+21 / J+35."""
    items = deadline_service.deadlines(db(), _as_of(args), scope=_scope(), level=args["level"])
    counts = {lvl: 0 for lvl in ("ok", "d21", "d35", "past_limit")}
    for it in items:
        counts[it["level"]] += 1
    audit("search", None, {"view": "orientation.deadlines", "count": len(items)})
    db().commit()
    return {"total": len(items), "counts": counts, "items": items[:args["limit"]]}


@blp.route("/decisions/export", methods=["GET"])
@requires(*STAFF)
@blp.arguments(DecisionExportQuerySchema, location="query")
@blp.response(200, content_type="application/octet-stream", description="fichier xlsx ou csv")
def decisions_export(args):
    """Décisions validées sur la période pour les comités pour l'emploi (L5411-5-1 III): clé pseudonyme
    (jamais le NIR), date, parcours, organisme, règle, critères utilisés."""
    import io

    from flask import current_app, send_file

    from orientation.decisions_export import ExportError, decision_rows, to_csv, to_xlsx

    s = db()
    secret = current_app.extensions["rsa"].settings.secret_key
    try:
        rows = decision_rows(s, args["from_"], args["to"], secret)
    except ExportError as exc:
        _refuse(422, str(exc))
    audit("orientation.export_decisions", None, {"from": args["from_"].isoformat(), "to": args["to"].isoformat(),
                                                  "decisions": len(rows)})
    s.commit()
    xlsx = args["format"] == "xlsx"
    data = to_xlsx(rows, args["from_"], args["to"]) if xlsx else to_csv(rows)
    mimetype = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if xlsx
                else "text/csv; charset=utf-8")
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                     download_name=f"decisions-orientation-{args['from_']}-{args['to']}.{args['format']}")
