"""Screens of the orientation: the proposals an MDS worker (or a manager) validates, one by one or
a selection, and the override of a proposal with its mandatory reason.

The forms go through the API's schemas and `orientation.service`, so the page and the API refuse
the same things."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, g, render_template, request
from sqlalchemy import select

from cases.service import get_person_in_scope, person_scope
from config import clock
from config.auth import audit, current_user, db, requires
from orientation import service
from orientation.models import Orientation
from orientation.rules import RuleSetError
from orientation.schemas import OverrideInSchema
from referents.models import Role, Structure
from referents.pages import days_between, done, load_form
from referents.vocabulary import LEGAL_DAYS, ReferentType

bp = Blueprint("orientation_pages", __name__, template_folder="templates")

VALIDATORS = (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value)
# Age of the legal clock: (value, label, minimum days).
AGES = (("", "Toutes", None), ("21", "21 jours et plus (alerte)", 21), ("35", "35 jours et plus (alerte)", 35),
        (str(LEGAL_DAYS), f"{LEGAL_DAYS} jours et plus (délai légal dépassé)", LEGAL_DAYS))
PAGE_SIZE = 100


def _rules() -> list[tuple[str, str]]:
    """(id, label) of the active rules; read once per request (the filters, the labels and the
    choices of the page all use them)."""
    if "rsa_rule_choices" not in g:
        _row, spec = service.active_rule_set(db())
        g.rsa_rule_choices = [(r.id, r.label) for r in (*spec.rules, spec.fallback)]
    return g.rsa_rule_choices


def _mds() -> list:
    """Every MDS (id, code, name, active) by name; read once per request."""
    if "rsa_mds" not in g:
        g.rsa_mds = db().execute(select(Structure.id, Structure.code, Structure.name, Structure.active)
                                 .where(Structure.kind == "mds").order_by(Structure.name)).all()
    return g.rsa_mds


def _mds_choices() -> list[tuple[str, str]]:
    return [(m.code, m.name) for m in _mds() if m.active]


def _filters() -> tuple[dict, dict]:
    """The filters of the query string, and a French message per refused value (shown on the page)."""
    errors, f = {}, {"mds": request.args.get("mds") or None, "rule": request.args.get("rule") or None,
                     "age": request.args.get("age") or "", "referent_type": request.args.get("referent_type") or None}
    if f["mds"] and f["mds"] not in {c for c, _n in _mds_choices()}:
        errors["mds"] = f"MDS inconnue: {f['mds']}"
        f["mds"] = None
    if f["rule"] and f["rule"] not in {r for r, _l in _rules()}:
        errors["rule"] = f"règle inconnue: {f['rule']}"
        f["rule"] = None
    if f["age"] not in {a for a, _l, _d in AGES}:
        errors["age"] = "ancienneté non prévue"
        f["age"] = ""
    if f["referent_type"] and f["referent_type"] not in ReferentType.codes():
        errors["referent_type"] = "type de référent inconnu"
        f["referent_type"] = None
    return f, errors


def _as_of() -> dt.date:
    try:
        return dt.date.fromisoformat(request.args.get("as_of", "")) if request.args.get("as_of") else clock.today()
    except ValueError:
        return clock.today()


@bp.get("/propositions")
@requires(*VALIDATORS)
def proposals():
    """Les propositions d'orientation à valider, filtrées, chacune avec son explication."""
    f, errors = _filters()
    as_of = _as_of()
    s = db()
    min_age = next(d for a, _l, d in AGES if a == f["age"])
    data = service.queue(s, person_scope(current_user()), status="proposed",
                         mds_id=service.structure_id_by_code(s, f["mds"]) if f["mds"] else None,
                         referent_type=f["referent_type"], rule_id=f["rule"], limit=PAGE_SIZE,
                         clock_started_by=as_of - dt.timedelta(days=min_age) if min_age else None)
    items = data["items"]
    for it in items:
        it["age_days"] = days_between(it["clock_start"], as_of)
    total = data["total"]
    rules = dict(_rules())
    mds_names = {m.id: m.name for m in _mds()}
    structure_names = dict(s.execute(select(Structure.code, Structure.name)
                                     .where(Structure.code.in_({it["structure"] for it in items if it["structure"]}
                                                               or {""}))).all())
    audit("search", None, {"view": "pages.proposals", "count": len(items)})
    s.commit()
    return render_template("orientation/proposals.html", items=items, total=total, f=f, errors=errors,
                           rules=rules, rule_choices=_rules(), mds_choices=_mds_choices(), age_choices=[(a, lab) for a, lab, _d in AGES],
                           mds_names=mds_names, structure_names=structure_names, as_of=as_of, legal_days=LEGAL_DAYS,
                           referent_choices=[(m.value, m.label) for m in ReferentType])


@bp.post("/propositions/valider")
@requires(*VALIDATORS)
def validate():
    """Valide une proposition (bouton de la ligne) ou la sélection (cases cochées)."""
    only = request.form.get("only")
    raw = [only] if only else request.form.getlist("ids")
    try:
        ids = [int(x) for x in raw if x]
    except ValueError:
        abort(400)
    if not ids:
        from flask import flash, redirect, url_for

        flash("Aucune proposition sélectionnée: cochez au moins une ligne.", "error")
        return redirect(url_for("orientation_pages.proposals", **request.args), 303)
    s = db()
    out = service.validate(s, ids, current_user().id, clock.today(), scope=person_scope(current_user()))
    for oid in out["validated"] + out["awaiting_capacity"]:
        o = s.get(Orientation, oid)
        audit("orientation.validate", o.person_id, {"orientation_id": oid, "status": o.status})
    s.commit()
    parts = []
    if out["validated"]:
        n = len(out["validated"])
        parts.append(f"{n} proposition{'s' if n > 1 else ''} validée{'s' if n > 1 else ''}")
    if out["awaiting_capacity"]:
        parts.append(f"{len(out['awaiting_capacity'])} en attente de place")
    if out["skipped"]:
        parts.append(f"{len(out['skipped'])} non validée(s): " + "; ".join(x["reason"] for x in out["skipped"]))
    return done(". ".join(parts) + ".", "orientation_pages.proposals", **request.args)


def _proposal(orientation_id: int) -> Orientation:
    o = db().get(Orientation, orientation_id)
    if o is None or get_person_in_scope(db(), current_user(), o.person_id) is None:
        abort(404)
    return o


def _structure_choices() -> list[tuple[str, str]]:
    rows = db().execute(select(Structure.code, Structure.name, Structure.kind)
                        .where(Structure.active, Structure.kind.in_(ReferentType.codes()))
                        .order_by(Structure.kind, Structure.name)).all()
    return [(c, f"{n} ({ReferentType.label_of(k)})") for c, n, k in rows]


@bp.route("/propositions/<int:orientation_id>/modifier", methods=["GET", "POST"])
@requires(*VALIDATORS)
def override(orientation_id):
    """Modifier une proposition: autre type de référent ou autre structure, motif obligatoire."""
    o = _proposal(orientation_id)
    errors, values = None, {}
    if request.method == "POST":
        values = dict(request.form)
        args, errors = load_form(OverrideInSchema())
        if args is not None:
            s = db()
            try:
                sid = service.structure_id_by_code(s, args["structure"])
                new = service.override(s, o.id, current_user().id, args["referent_type"], args["reason"],
                                       clock.today(), structure_id=sid, scope=person_scope(current_user()))
            except (service.OrientationError, RuleSetError, LookupError) as exc:
                s.rollback()
                errors = {"_schema": [str(exc)]}
            else:
                audit("orientation.override", new.person_id, {"orientation_id": o.id, "new_orientation_id": new.id,
                                                              "referent_type": args["referent_type"],
                                                              "reason": args["reason"]})
                s.commit()
                return done("Proposition modifiée: la nouvelle décision est enregistrée.",
                            "cases_pages.person", person_id=new.person_id)
    person = o.person if hasattr(o, "person") else None
    from cases.models import Person

    person = person or db().get(Person, o.person_id)
    status = 422 if errors else 200
    return render_template("orientation/override.html", o=o, person=person, errors=errors, values=values,
                           rules=dict(_rules()), structure_choices=_structure_choices(),
                           referent_choices=[(m.value, m.label) for m in ReferentType]), status
