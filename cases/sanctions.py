"""The suspension procedure: breach, observations, équipe pluridisciplinaire, decision, lifting."""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import Sanction
from cases.paths import open_path
from cases.procedure import CaseValidationError, _check_source, _iso, _require_person, procedure
from cases.timeline import add_event


def _sanction(session: Session, sanction_id: int) -> Sanction:
    sanction = session.get(Sanction, sanction_id)
    if sanction is None:
        raise CaseValidationError({"sanction_id": [f"procédure {sanction_id} inconnue"]})
    return sanction


def _sanction_event(session, sanction: Sanction, step: str, on: dt.date, source, author_id, summary, **data):
    path = open_path(session, sanction.person_id)
    add_event(session, sanction.person_id, f"sanction.{step}", on, source, summary=summary,
              data={"sanction_id": sanction.id, **data}, path_id=path.id if path else None, author_id=author_id)


def record_breach(session: Session, person_id: int, breach_on: dt.date, breach: str, *, source: str,
                  author_id: int | None = None) -> Sanction:
    """The referent records a breach (contract refused or not respected): the procedure starts."""
    _check_source(source)
    _require_person(session, person_id)
    if not (breach or "").strip():
        raise CaseValidationError({"breach": ["le manquement doit être décrit"]})
    earlier = session.scalar(select(func.count(Sanction.id)).where(
        Sanction.person_id == person_id, Sanction.decided_on.is_not(None), Sanction.decided_on <= breach_on))
    sanction = Sanction(person_id=person_id, breach_on=breach_on, breach=breach.strip(), repeated=bool(earlier),
                        status="breach")
    session.add(sanction)
    session.flush()
    _sanction_event(session, sanction, "breach", breach_on, source, author_id,
                    "Manquement constaté" + (" (réitération)" if sanction.repeated else ""),
                    repeated=sanction.repeated)
    return sanction


def record_observations(session: Session, sanction_id: int, observations_on: dt.date, observations: str, *,
                        source: str, author_id: int | None = None) -> Sanction:
    """The person's observations (contradictory phase) before any decision."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.decided_on is not None:
        raise CaseValidationError({"observations": ["la décision est déjà prise"]})
    if observations_on < sanction.breach_on:
        raise CaseValidationError({"observations_on": ["les observations ne peuvent précéder le manquement"]})
    sanction.observations_on = observations_on
    sanction.observations = observations
    sanction.status = "observations"
    _sanction_event(session, sanction, "observations", observations_on, source, author_id,
                    "Observations de la personne recueillies")
    return sanction


def request_ep_opinion(session: Session, sanction_id: int, requested_on: dt.date, *, source: str,
                       author_id: int | None = None) -> Sanction:
    """Refer the case to the équipe pluridisciplinaire (needed before a suppression)."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    sanction.ep_requested_on = requested_on
    _sanction_event(session, sanction, "ep_requested", requested_on, source, author_id,
                    f"Saisine de l'équipe pluridisciplinaire (avis réputé rendu le {ep_deemed_on(sanction):%d/%m/%Y})")
    return sanction


def ep_deemed_on(sanction: Sanction) -> dt.date | None:
    """The day the équipe pluridisciplinaire opinion is deemed given without answer."""
    if sanction.ep_requested_on is None:
        return None
    return sanction.ep_requested_on + relativedelta(months=procedure()["sanction"]["ep_opinion_deemed_after_months"])


def record_ep_opinion(session: Session, sanction_id: int, opinion_on: dt.date, opinion: str, *, source: str,
                      author_id: int | None = None) -> Sanction:
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.ep_requested_on is None:
        raise CaseValidationError({"ep_opinion": ["l'équipe pluridisciplinaire n'a pas été saisie"]})
    sanction.ep_opinion_on = opinion_on
    sanction.ep_opinion = opinion
    _sanction_event(session, sanction, "ep_opinion", opinion_on, source, author_id,
                    "Avis de l'équipe pluridisciplinaire rendu")
    return sanction


def decide_sanction(session: Session, sanction_id: int, decided_on: dt.date, *, kind: str = "suspension",
                    rate_percent: int | None = None, duration_months: int | None = None, source: str,
                    author_id: int | None = None) -> Sanction:
    """Decision of the Président: suspension (rate ≥ 30%, 1–2 months, 1–4 on repetition), or suppression
    once the équipe pluridisciplinaire gave its opinion (or it is deemed given). Bounds: procedure.yaml."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    rules = procedure()["sanction"]
    errors: dict[str, list[str]] = {}
    if sanction.decided_on is not None:
        errors.setdefault("decided_on", []).append("la décision est déjà prise")
    if sanction.observations_on is None:
        errors.setdefault("observations", []).append("les observations de la personne doivent être recueillies d'abord")
    if kind == "suspension":
        bounds = rules["duration_months_repeated"] if sanction.repeated else rules["duration_months"]
        if rate_percent is None or not rules["minimum_rate_percent"] <= int(rate_percent) <= 100:
            errors.setdefault("rate_percent", []).append(
                f"taux de suspension entre {rules['minimum_rate_percent']} et 100 %")
        if duration_months is None or not bounds["min"] <= int(duration_months) <= bounds["max"]:
            errors.setdefault("duration_months", []).append(
                f"durée entre {bounds['min']} et {bounds['max']} mois"
                + (" (réitération)" if sanction.repeated else ""))
    elif kind == "suppression":
        deemed = ep_deemed_on(sanction)
        if sanction.ep_opinion_on is None and (deemed is None or decided_on < deemed):
            errors.setdefault("kind", []).append(
                "une suppression exige l'avis de l'équipe pluridisciplinaire"
                + (f" (réputé rendu le {deemed:%d/%m/%Y})" if deemed else " (non saisie)"))
    else:
        errors.setdefault("kind", []).append("suspension ou suppression")
    if errors:
        raise CaseValidationError(errors)
    sanction.kind = kind
    sanction.decided_on = decided_on
    sanction.rate_percent = rate_percent if kind == "suspension" else None
    sanction.duration_months = duration_months if kind == "suspension" else None
    sanction.status = "decided"
    summary = (f"Suspension décidée: {rate_percent} % pendant {duration_months} mois" if kind == "suspension"
               else "Suppression décidée après avis de l'équipe pluridisciplinaire")
    _sanction_event(session, sanction, "decided", decided_on, source, author_id, summary, kind=kind,
                    rate_percent=sanction.rate_percent, duration_months=sanction.duration_months,
                    ends_on=_iso(sanction_end(sanction)))
    return sanction


def sanction_end(sanction: Sanction) -> dt.date | None:
    if sanction.kind != "suspension" or sanction.decided_on is None or not sanction.duration_months:
        return None
    return sanction.decided_on + relativedelta(months=sanction.duration_months)


def lift_sanction(session: Session, sanction_id: int, lifted_on: dt.date, *, source: str,
                  author_id: int | None = None, reason: str | None = None) -> Sanction:
    """Lifted as soon as the person complies (or the procedure is dropped before decision)."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.lifted_on is not None:
        return sanction
    if lifted_on < sanction.breach_on:
        raise CaseValidationError({"lifted_on": ["la levée ne peut précéder le manquement"]})
    sanction.lifted_on = lifted_on
    sanction.status = "lifted" if sanction.decided_on else "closed"
    _sanction_event(session, sanction, "lifted", lifted_on, source, author_id,
                    ("Sanction levée" if sanction.decided_on else "Procédure close sans sanction")
                    + (f": {reason}" if reason else ""))
    return sanction


