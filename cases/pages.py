"""Screens of the persons and their path: search, the person file with a form for each action the
role may take, and the follow-up lists ("my people" = the people oriented to my structure, apart
from "my sector" = everybody I may see).

Every form is validated by the API's own schema and written by the same `cases.service` function
as the API, so both refuse the same things. Every read of a file is in the audit log."""

from __future__ import annotations

import datetime as dt
import functools

from flask import Blueprint, abort, render_template, request, url_for
from sqlalchemy import select

from cases import service
from cases.models import Appointment, Exit, Review
from cases.schemas import (
    AppointmentInSchema,
    AppointmentStatusSchema,
    BreachInSchema,
    ContractInSchema,
    ExitCorrectionInSchema,
    ExitInSchema,
    PersonDetailSchema,
    ReviewInSchema,
    SanctionSchema,
)
from config import clock
from config.auth import audit, current_user, db, requires, runtime
from referents.models import Role, Structure
from referents.pages import days_between, done, form_data, load_form
from referents.text import parse_date_fr
from referents.vocabulary import CONTRACT_MONTHS, LEGAL_DAYS, TARGET_DAYS

bp = Blueprint("cases_pages", __name__, template_folder="templates")

ALL = tuple(r.value for r in Role)
FOLLOWERS = (Role.MDS_WORKER.value, Role.PROVIDER.value, Role.ATI.value)
DEPARTEMENT = (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value, Role.ATI.value)

LIST_TITLES = {
    "my-people": "Personnes suivies",
    "overdue-contracts": "Contrats en retard",
    "reviews-due": "Bilans à tenir",
    "appointments-to-update": "Rendez-vous dont l'issue manque",
    "without-appointment": "Sans rendez-vous récent",
}
# Output schemas built once, as flask-smorest does for the API: a schema instance builds its nested
# schemas (deep copies of their fields) on first use, ~5 ms of CPU on every person file otherwise.
# Dumping keeps no state between calls.
_DETAIL = PersonDetailSchema()
_SANCTIONS = SanctionSchema(many=True)


@functools.cache
def _explain_schema():
    from orientation.schemas import ExplainSchema

    return ExplainSchema()


def _person(person_id: int):
    person = service.get_person_in_scope(db(), current_user(), person_id)
    if person is None:
        abort(404)
    return person


def _source() -> str:
    return "provider" if current_user().role == Role.PROVIDER.value else "agent"


# --------------------------------------------------------------------------- search

SEARCH_ROWS = 50  # persons a page of search results


@bp.get("/personnes")
@requires(*ALL)
def search():
    """Recherche par nom (sans tenir compte des accents ni des majuscules) ou date de naissance."""
    q = (request.args.get("q") or "").strip()[:100]
    raw_birth = request.args.get("naissance") or ""
    errors, birth, found = {}, None, None
    try:
        birth = parse_date_fr(raw_birth)
    except ValueError as exc:
        errors["naissance"] = str(exc)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if (q or birth) and not errors:
        found = service.search_persons(db(), current_user(), q=q or None, birth_date=birth, page=page,
                                       per_page=SEARCH_ROWS)
        audit("search", None, {"count": len(found.rows), "page": page, "view": "pages.search"})
        db().commit()
    return render_template("cases/search.html", q=q, naissance=raw_birth, found=found, page=page,
                           offset=(page - 1) * SEARCH_ROWS, page_rows=SEARCH_ROWS,
                           errors=errors), (422 if errors else 200)


# --------------------------------------------------------------------------- the person file

def _structures(ids, code: str | None = None) -> tuple[dict[int, str], dict[str, str]]:
    """Names of the structures by id (those of `ids`), and by code (that of `code`): one query."""
    ids = {i for i in ids if i}
    if not ids and not code:
        return {}, {}
    wanted = Structure.id.in_(ids) if ids else None
    if code:
        wanted = Structure.code == code if wanted is None else wanted | (Structure.code == code)
    by_id, by_code = {}, {}
    for sid, scode, name in db().execute(select(Structure.id, Structure.code, Structure.name).where(wanted)):
        if sid in ids:
            by_id[sid] = name
        if code and scode == code:
            by_code[scode] = name
    return by_id, by_code


def _render_person(person, *, form: str | None = None, errors: dict | None = None, values: dict | None = None,
                   status: int = 200):
    s, user = db(), current_user()
    as_of = clock.today()
    from orientation import service as orientation_service

    explained = orientation_service.explain(s, person.id, as_of, simulate=None)  # simulated when undecided
    explanation, rule_labels = _explain_schema().dump(explained), explained.rule_labels
    # read once: the explanation's decisions give the current orientation, the lists of contracts and
    # sanctions the latest contract and the open sanctions
    contracts, all_sanctions = service.person_contracts(s, person.id), service.person_sanctions(s, person.id)
    current = orientation_service.current_orientation_summary(s, person.id, explained.history)
    data = _DETAIL.dump(service.person_detail(s, person, role=user.role, vault=runtime().vault, as_of=as_of,
                                              contracts=contracts, sanctions=all_sanctions, orientation=current))
    data["identity"].pop("nir", None)  # never on a page
    events = service.timeline(s, person.id)
    appointments = list(s.scalars(select(Appointment).where(Appointment.person_id == person.id)
                                  .order_by(Appointment.scheduled_at.desc())))
    reviews = list(s.scalars(select(Review).where(Review.person_id == person.id).order_by(Review.due_on, Review.id)))
    sanctions = []
    if user.role in DEPARTEMENT:
        # formatted by the API's schema (service.sanction_dict, gone with the typed person file, made
        # the page answer 500 for any person with a sanction)
        sanctions = _SANCTIONS.dump(all_sanctions)
    path = data["path"]
    legal_clock = None
    if path:
        end = dt.date.fromisoformat(path["closed_on"]) if path["closed_on"] else as_of
        legal_clock = {"start": path["clock_start"], "age": days_between(path["clock_start"], end),
                 "limit_on": dt.date.fromisoformat(path["clock_start"]) + dt.timedelta(days=LEGAL_DAYS),
                 "target_on": dt.date.fromisoformat(path["clock_start"]) + dt.timedelta(days=TARGET_DAYS)}
    code = (explanation or {}).get("current") and explanation["current"].get("structure")
    structure_names, structure_by_code = _structures([a.structure_id for a in appointments]
                                                     + [data["household"]["mds_id"] if data["household"] else None],
                                                     code)
    commune = None
    if data["household"] and data["household"]["commune_insee"]:
        from referents.models import Commune

        commune = s.get(Commune, data["household"]["commune_insee"])
    audit("read", person.id, {"view": "pages.person"})
    s.commit()
    reasons = service.exit_reasons()
    proc = service.procedure()
    from cases import corrections

    exit_row = s.get(Exit, data["exit"]["id"]) if data["exit"] else None
    can_correct = corrections.correctable(exit_row, as_of)
    return render_template(
        "cases/person.html", p=data, person=person, events=events, appointments=appointments, contracts=contracts,
        reviews=reviews, sanctions=sanctions, explanation=explanation, rule_labels=rule_labels, clock=legal_clock,
        structure_names=structure_names, structure_by_code=structure_by_code,
        commune=commune.name if commune else None, form=form, errors=errors or {}, values=values or {}, as_of=as_of,
        exit_reasons=[(k, v["label"]) for k, v in reasons.items()],
        hours_reasons=list(proc["contract"]["hours_reduction_reasons"].items()),
        review_reasons=list(proc["review"]["long_reasons"].items()),
        can_follow=user.role in ALL, show_sanctions=user.role in DEPARTEMENT,
        legal_days=LEGAL_DAYS, contract_months=CONTRACT_MONTHS, can_correct=can_correct,
        correction_days=corrections.CORRECTION_DAYS,
        is_staff=user.role in (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value)), status


@bp.get("/personnes/<int:person_id>")
@requires(*ALL)
def person(person_id):
    """Le dossier: identité (sans NIR), foyer, parcours et horloge légale, orientation expliquée,
    historique, rendez-vous, contrats, bilans, sanctions, sortie."""
    return _render_person(_person(person_id))


def _write(person_id: int, form: str, schema, write, message: str):
    """Validate the form with the API schema, write through the service, or show the errors."""
    person = _person(person_id)
    values = form_data(drop_empty=False)
    args, errors = load_form(schema)
    if args is not None:
        try:
            write(args)
        except service.CaseValidationError as exc:
            db().rollback()
            errors = exc.messages
        else:
            db().commit()
            return done(message, "cases_pages.person", person_id=person_id, _anchor=form)
    return _render_person(person, form=form, errors=errors, values=values, status=422)


@bp.post("/personnes/<int:person_id>/rendez-vous")
@requires(*ALL)
def add_appointment(person_id):
    """Enregistre un rendez-vous avec le référent (planifié ou déjà tenu)."""
    def write(a):
        appt = service.record_appointment(db(), person_id, a["scheduled_at"], a["status"], kind=a["kind"],
                                          structure_id=current_user().structure_id, source=_source(),
                                          author_id=current_user().id, notes=a["notes"])
        audit("update", person_id, {"appointment_id": appt.id, "view": "pages"})

    return _write(person_id, "rendez-vous", AppointmentInSchema(only=("scheduled_at", "status", "kind", "notes")),
                  write, "Rendez-vous enregistré.")


@bp.post("/personnes/<int:person_id>/rendez-vous/<int:appointment_id>")
@requires(*ALL)
def appointment_status(person_id, appointment_id):
    """Met à jour l'issue d'un rendez-vous (honoré, absence, excusé, annulé)."""
    _person(person_id)
    appt = db().get(Appointment, appointment_id)
    if appt is None or appt.person_id != person_id:
        abort(404)

    def write(a):
        service.update_appointment_status(db(), appointment_id, a["status"], source=_source(),
                                          author_id=current_user().id)
        audit("update", person_id, {"appointment_id": appointment_id, "status": a["status"], "view": "pages"})

    return _write(person_id, f"rdv-{appointment_id}", AppointmentStatusSchema(), write, "Rendez-vous mis à jour.")


@bp.post("/personnes/<int:person_id>/contrat")
@requires(*ALL)
def add_contract(person_id):
    """Enregistre le contrat d'engagement signé (15 h par semaine sauf motif légal)."""
    def write(a):
        c = service.record_contract(db(), person_id, a["signed_on"], weekly_hours=a["weekly_hours"],
                                    hours_reduction_reason=a["hours_reduction_reason"], kind=a["kind"],
                                    objectives=a.get("objectives") or [], duration_months=a["duration_months"],
                                    review_reason=a["review_reason"], source=_source(), author_id=current_user().id)
        audit("update", person_id, {"contract_id": c.id, "view": "pages"})

    return _write(person_id, "contrat", ContractInSchema(only=("signed_on", "kind", "weekly_hours",
                                                               "hours_reduction_reason", "duration_months",
                                                               "review_reason")),
                  write, "Contrat enregistré.")


@bp.post("/personnes/<int:person_id>/bilan")
@requires(*ALL)
def add_review(person_id):
    """Bilan du parcours: maintien, révision du contrat ou demande de réorientation."""
    def write(a):
        r = service.record_review(db(), person_id, a["held_on"], a["outcome"], source=_source(),
                                  author_id=current_user().id, notes=a["notes"], review_id=a["review_id"],
                                  reorientation_reason=a["reorientation_reason"],
                                  wanted_referent_type=a["wanted_referent_type"], wanted_structure_id=None,
                                  referent_participant=a["referent_participant"],
                                  france_travail_participant=a["france_travail_participant"])
        audit("update", person_id, {"review_id": r.id, "outcome": a["outcome"], "view": "pages"})

    return _write(person_id, "bilan", ReviewInSchema(only=("held_on", "outcome", "review_id", "notes",
                                                           "reorientation_reason", "wanted_referent_type",
                                                           "referent_participant", "france_travail_participant")),
                  write, "Bilan enregistré.")


@bp.post("/personnes/<int:person_id>/sortie")
@requires(*ALL)
def add_exit(person_id):
    """Sortie du parcours: ferme le parcours."""
    def write(a):
        ex = service.record_exit(db(), person_id, a["exit_on"], a["reason"], source=_source(),
                                 details=a["details"], author_id=current_user().id)
        audit("update", person_id, {"exit_id": ex.id, "view": "pages"})

    return _write(person_id, "sortie", ExitInSchema(), write, "Sortie enregistrée.")


def _exit_for(exit_id: int) -> Exit:
    """An exit the user may correct: of a person in scope, or recorded for the user's structure
    (a provider no longer sees the person once exited)."""
    ex = db().get(Exit, exit_id)
    user = current_user()
    if ex is None or not (service.get_person_in_scope(db(), user, ex.person_id) is not None
                          or (user.structure_id is not None and ex.structure_id == user.structure_id)):
        abort(404)
    return ex


@bp.route("/sorties/<int:exit_id>/correction", methods=["GET", "POST"])
@requires(*ALL)
def correct_exit(exit_id):
    """Corrige une sortie enregistrée par erreur (dans les 30 jours): l'annuler, ou sa date et son motif."""
    from cases import corrections
    from cases.models import Person

    ex = _exit_for(exit_id)
    person = db().get(Person, ex.person_id)
    errors, values = {}, {}
    if request.method == "POST":
        values = form_data(drop_empty=False)
        args, errors = load_form(ExitCorrectionInSchema())
        if args is not None:
            try:
                kept = corrections.correct_exit(db(), ex.id, as_of=clock.today(), cancel=args["cancel"],
                                                exit_on=args["exit_on"], reason=args["reason"], note=args["note"],
                                                source=_source(), author_id=current_user().id)
            except service.CaseValidationError as exc:
                db().rollback()
                errors = exc.messages
            else:
                audit("update", person.id, {"exit_correction": "cancel" if kept is None else "correct",
                                            "view": "pages"})
                db().commit()
                if service.get_person_in_scope(db(), current_user(), person.id) is not None:
                    return done("Sortie corrigée.", "cases_pages.person", person_id=person.id)
                return done("Sortie corrigée.", "cases_pages.follow_up")
    reasons = service.exit_reasons()
    return render_template("cases/exit_correction.html", ex=ex, person=person, errors=errors or {}, values=values,
                           label=reasons.get(ex.reason, {}).get("label", ex.reason),
                           exit_reasons=[(k, v["label"]) for k, v in reasons.items()],
                           correctable=corrections.correctable(ex, clock.today()),
                           correction_days=corrections.CORRECTION_DAYS), (422 if errors else 200)


@bp.post("/personnes/<int:person_id>/manquement")
@requires(*ALL)
def add_breach(person_id):
    """Le référent signale un manquement: la procédure de suspension commence."""
    def write(a):
        sanction = service.record_breach(db(), person_id, a["breach_on"], a["breach"], source=_source(),
                                         author_id=current_user().id)
        audit("update", person_id, {"sanction_id": sanction.id, "step": "breach", "view": "pages"})

    return _write(person_id, "manquement", BreachInSchema(), write, "Manquement signalé.")


# --------------------------------------------------------------------------- follow-up lists

SHOWN_ROWS = 500  # rows of a follow-up list shown on the page (the count says how many in all)
PAGE_ROWS = 50  # "my people": one page of the caseload, in due-date order (paged in SQL)


@bp.get("/suivi")
@requires(*ALL)
def follow_up():
    """Listes de suivi: mes personnes (orientées vers ma structure) ou mon secteur."""
    user = current_user()
    name = request.args.get("liste", "my-people")
    if name not in service.LISTS:
        abort(404)
    scope = request.args.get("perimetre", "mine")
    can_choose = user.role == Role.MDS_WORKER.value and user.structure_id is not None
    mine = scope != "sector" and user.structure_id is not None and user.role in FOLLOWERS
    as_of = clock.today()
    s = db()
    page, offset = 1, 0
    if name == "my-people":  # sorted and paged in SQL (the due date stored on the path)
        page = max(1, request.args.get("page", 1, type=int) or 1)
        offset = (page - 1) * PAGE_ROWS
        count, rows = service.my_people_page(s, user, as_of, structure_id=user.structure_id if mine else None,
                                             offset=offset, limit=PAGE_ROWS)
    else:
        rows = service.LISTS[name](s, user, as_of)
        if mine:
            keep = service.my_people_ids(s, user, user.structure_id)
            rows = [r for r in rows if r["person_id"] in keep]
        count = len(rows)
    audit("list", None, {"list": name, "count": count, "view": "pages.follow_up", "mine": mine})
    s.commit()
    from cases import corrections

    recent = corrections.recent_exits(s, user.structure_id, as_of) if user.structure_id and user.role in FOLLOWERS \
        else []
    return render_template("cases/follow_up.html", rows=rows[:SHOWN_ROWS], count=count, name=name, titles=LIST_TITLES,
                           page=page, offset=offset, page_rows=PAGE_ROWS,
                           mine=mine, can_choose=can_choose, scope=scope, as_of=as_of, recent_exits=recent,
                           correction_days=corrections.CORRECTION_DAYS,
                           # the person file's address but its id: one url_for, not one a row
                           person_url=url_for("cases_pages.person", person_id=0)[:-1])
