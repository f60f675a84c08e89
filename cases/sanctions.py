"""The sanction procedure of R262-68 and following of the CASF (décret 2025-478, in force 2025-06-01):
breach, the person's observations, équipe pluridisciplinaire, decision within the decree's bounds,
lifting (automatic when the person signs or updates the contract), amounts withheld and paid back,
and the radiation proposal after four months of total suppression. docs/cases.md cites each rule."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import Alert, Household, Person, Sanction
from cases.paths import open_path
from cases.procedure import CaseValidationError, _check_source, _iso, _require_person, procedure
from cases.timeline import _resolve_alerts, add_event

SANCTION_KINDS = ("suspension", "suppression")
LIFT_CAUSES = ("contract", "complied", "dropped")
CAP_REASONS = {"household_size": "foyer de plus d'une personne",
               "single_parent_increase": "foyer bénéficiant de la majoration pour isolement (L262-9 CASF)",
               "unknown": "composition du foyer inconnue: plafond retenu par prudence"}


def _rules() -> dict:
    return procedure()["sanction"]


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
    """The referent records a breach (contract refused or not respected): the procedure starts. A breach
    after an earlier decided sanction is a persistence or repetition (R262-68 2°)."""
    _check_source(source)
    _require_person(session, person_id)
    if not (breach or "").strip():
        raise CaseValidationError({"breach": ["manquement (breach): il doit être décrit"]})
    earlier = session.scalar(select(func.count(Sanction.id)).where(
        Sanction.person_id == person_id, Sanction.decided_on.is_not(None), Sanction.decided_on <= breach_on))
    sanction = Sanction(person_id=person_id, breach_on=breach_on, breach=breach.strip(), repeated=bool(earlier),
                        status="breach")
    session.add(sanction)
    session.flush()
    _sanction_event(session, sanction, "breach", breach_on, source, author_id,
                    "Manquement constaté" + (" (persistance ou réitération)" if sanction.repeated else ""),
                    repeated=sanction.repeated)
    return sanction


def record_observations(session: Session, sanction_id: int, observations_on: dt.date, observations: str, *,
                        source: str, author_id: int | None = None) -> Sanction:
    """The person's observations (contradictory phase) before any decision."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.decided_on is not None:
        raise CaseValidationError({"observations": ["observations (observations): la décision est déjà prise"]})
    if observations_on < sanction.breach_on:
        raise CaseValidationError({"observations_on": [
            "date des observations (observations_on): elle ne peut précéder le manquement"]})
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
    """The day the équipe pluridisciplinaire opinion is deemed given without answer (one month)."""
    if sanction.ep_requested_on is None:
        return None
    return sanction.ep_requested_on + relativedelta(months=_rules()["ep_opinion_deemed_after_months"])


def record_ep_opinion(session: Session, sanction_id: int, opinion_on: dt.date, opinion: str, *, source: str,
                      author_id: int | None = None) -> Sanction:
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.ep_requested_on is None:
        raise CaseValidationError({"ep_opinion": [
            "avis de l'équipe pluridisciplinaire (ep_opinion): l'équipe n'a pas été saisie"]})
    sanction.ep_opinion_on = opinion_on
    sanction.ep_opinion = opinion
    _sanction_event(session, sanction, "ep_opinion", opinion_on, source, author_id,
                    "Avis de l'équipe pluridisciplinaire rendu")
    return sanction


def household_cap(session: Session, person_id: int) -> tuple[int, str | None]:
    """The highest rate of suspension or suppression for the person's household (R262-68-6 CASF):
    50 % when the household has more than one person or the majoration for isolated parents (NATPF
    of procedure.yaml), else 100 %. An unknown household is capped at 50 % (never harsher than the
    law when the facts are missing)."""
    rules = _rules()
    cap = int(rules["household_cap_percent"])
    household_id = session.scalar(select(Person.household_id).where(Person.id == person_id))
    if household_id is None:
        return cap, "unknown"
    nature = session.scalar(select(Household.benefit_nature).where(Household.id == household_id))
    if nature and nature.strip().upper() in {c.upper() for c in rules["single_parent_increase_natpf"]}:
        return cap, "single_parent_increase"
    size = session.scalar(select(func.count(Person.id)).where(Person.household_id == household_id))
    if (size or 0) > 1:
        return cap, "household_size"
    return 100, None


def decide_sanction(session: Session, sanction_id: int, decided_on: dt.date, *, kind: str = "suspension",
                    rate_percent: int | None = None, duration_months: int | None = None, source: str,
                    author_id: int | None = None) -> Sanction:
    """Decision of the Président du conseil départemental (R262-68 CASF):
    - a first breach: suspension of at least 30 % for one to two months;
    - persistence or repetition: suspension or suppression of at least 30 % for one to four months;
      a suppression after the équipe pluridisciplinaire's opinion (given, or deemed given a month after
      the referral);
    - the rate never above the household's cap (R262-68-6); the person's observations first."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    rules = _rules()
    errors: dict[str, list[str]] = {}

    def refuse(field, message):
        errors.setdefault(field, []).append(message)

    if sanction.decided_on is not None:
        refuse("decided_on", "date de décision (decided_on): la décision est déjà prise")
    elif decided_on < sanction.breach_on:
        refuse("decided_on", "date de décision (decided_on): elle ne peut précéder le manquement")
    if sanction.observations_on is None:
        refuse("observations", "observations (observations): les observations de la personne doivent être "
                               "recueillies avant toute décision")
    elif sanction.observations_on > decided_on:
        refuse("observations", "observations (observations): recueillies après la date de décision")
    if kind not in SANCTION_KINDS:
        refuse("kind", f"nature de la sanction (kind): {kind!r} inconnue (attendu: suspension ou suppression)")
    if kind == "suppression":
        if not sanction.repeated:
            refuse("kind", "nature de la sanction (kind): une suppression n'est possible qu'en cas de persistance "
                           "ou de réitération du manquement; un premier manquement donne lieu à une suspension "
                           "(R262-68 CASF)")
        deemed = ep_deemed_on(sanction)
        if sanction.ep_opinion_on is None and (deemed is None or decided_on < deemed):
            refuse("kind", "nature de la sanction (kind): une suppression exige l'avis de l'équipe "
                           "pluridisciplinaire" + (f" (réputé rendu le {deemed:%d/%m/%Y})" if deemed
                                                   else " (non saisie)"))
    cap, cap_reason = household_cap(session, sanction.person_id)
    minimum = int(rules["minimum_rate_percent"])
    if rate_percent is None:
        refuse("rate_percent", f"taux (rate_percent): obligatoire, au moins {minimum} %")
    elif int(rate_percent) < minimum:
        refuse("rate_percent", f"taux (rate_percent): au moins {minimum} % du montant de l'allocation (R262-68 CASF)")
    elif int(rate_percent) > cap:
        refuse("rate_percent", f"taux (rate_percent): au plus {cap} % pour ce foyer"
                               + (f" ({CAP_REASONS[cap_reason]}, R262-68-6 CASF)" if cap_reason else ""))
    bounds = rules["duration_months_repeated"] if sanction.repeated else rules["duration_months"]
    if duration_months is None or not bounds["min"] <= int(duration_months) <= bounds["max"]:
        refuse("duration_months", f"durée (duration_months): entre {bounds['min']} et {bounds['max']} mois"
                                  + (" (persistance ou réitération)" if sanction.repeated else " (premier manquement)"))
    if errors:
        raise CaseValidationError(errors)
    sanction.kind = kind
    sanction.decided_on = decided_on
    sanction.rate_percent = int(rate_percent)
    sanction.duration_months = int(duration_months)
    sanction.cap_percent, sanction.cap_reason = cap, cap_reason
    sanction.base_amount = session.scalar(select(Household.rsa_amount).join(Person, Person.household_id == Household.id)
                                          .where(Person.id == sanction.person_id))
    sanction.status = "decided"
    label = "Suspension" if kind == "suspension" else "Suppression"
    summary = f"{label} décidée: {rate_percent} % pendant {duration_months} mois" + (
        " après avis de l'équipe pluridisciplinaire" if kind == "suppression" else "")
    _sanction_event(session, sanction, "decided", decided_on, source, author_id, summary, kind=kind,
                    rate_percent=sanction.rate_percent, duration_months=sanction.duration_months,
                    cap_percent=cap, cap_reason=cap_reason, ends_on=_iso(sanction_end(sanction)))
    if kind == "suppression" and sanction.rate_percent >= 100 and sanction.duration_months >= rules["radiation_after_months"]:
        _propose_radiation(session, sanction, decided_on, source, author_id)
    return sanction


def _propose_radiation(session: Session, sanction: Sanction, on: dt.date, source: str, author_id) -> None:
    """Four months of total suppression: the Président proposes France Travail to strike the person off
    its list for that period (R262-68, last paragraph): an alert the Département acts on."""
    sanction.radiation_proposed_on = on
    end = sanction_end(sanction)
    message = (f"Suppression totale de {sanction.duration_months} mois: proposer à France Travail la radiation "
               f"de la liste des demandeurs d'emploi jusqu'au {end:%d/%m/%Y}")
    session.add(Alert(key=f"sanction_radiation:{sanction.id}", kind="sanction_radiation", severity="critical",
                      person_id=sanction.person_id, message=message, raised_on=on,
                      data={"sanction_id": sanction.id, "ends_on": _iso(end)}))
    _sanction_event(session, sanction, "radiation_proposed", on, source, author_id, message, ends_on=_iso(end))


def sanction_end(sanction: Sanction) -> dt.date | None:
    """The last day covered by the decided suspension or suppression (decision + duration)."""
    if sanction.decided_on is None or not sanction.duration_months:
        return None
    return sanction.decided_on + relativedelta(months=sanction.duration_months)


def _money(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def months_applied(sanction: Sanction, until: dt.date) -> int:
    """Monthly payments the decision touched by `until`: every month started since the decision, at
    most its duration."""
    if sanction.decided_on is None or not sanction.duration_months or until <= sanction.decided_on:
        return 0
    delta = relativedelta(until, sanction.decided_on)
    started = delta.years * 12 + delta.months + (1 if delta.days else 0)
    return min(max(started, 1), int(sanction.duration_months))


def withheld_amounts(sanction: Sanction, until: dt.date) -> dict:
    """Money withheld by the decision up to `until` and what the person gets back on complying: the
    suspended amounts of a suspension, within `repayable_months` months (L262-37: to confirm);
    nothing for a suppression. None when the monthly amount is unknown."""
    if sanction.base_amount is None or sanction.rate_percent is None:
        return {"withheld": None, "repayable": None, "months": months_applied(sanction, until)}
    monthly = _money(Decimal(sanction.base_amount) * sanction.rate_percent / 100)
    months = months_applied(sanction, until)
    repayable = (monthly * min(months, int(_rules()["repayable_months"]))
                 if sanction.kind == "suspension" else Decimal("0.00"))
    return {"withheld": _money(monthly * months), "repayable": _money(repayable), "months": months}


def lift_sanction(session: Session, sanction_id: int, lifted_on: dt.date, *, source: str,
                  author_id: int | None = None, reason: str | None = None, cause: str | None = None) -> Sanction:
    """Lifted as soon as the person complies: `cause` "contract" (the person signed or updated the
    contrat d'engagement: R262-68 ends the suspension), "complied", or "dropped" (procedure closed
    before any decision). A lifted suspension records the amounts withheld and those paid back."""
    _check_source(source)
    sanction = _sanction(session, sanction_id)
    if sanction.lifted_on is not None:
        return sanction
    if lifted_on < sanction.breach_on:
        raise CaseValidationError({"lifted_on": ["date de levée (lifted_on): elle ne peut précéder le manquement"]})
    if cause is None:
        cause = "complied" if sanction.decided_on else "dropped"
    if cause not in LIFT_CAUSES:
        raise CaseValidationError({"cause": [f"motif de levée (cause): {cause!r} inconnu "
                                             f"(attendu: {', '.join(LIFT_CAUSES)})"]})
    sanction.lifted_on = lifted_on
    sanction.lift_reason = cause
    sanction.status = "lifted" if sanction.decided_on else "closed"
    data = {"cause": cause}
    if sanction.decided_on is not None:
        amounts = withheld_amounts(sanction, lifted_on)
        if amounts["withheld"] is not None:
            sanction.withheld_amount = amounts["withheld"]
            sanction.repaid_amount = amounts["repayable"] if cause in ("contract", "complied") else Decimal("0.00")
            data.update(withheld_amount=str(sanction.withheld_amount), repaid_amount=str(sanction.repaid_amount))
        _resolve_alerts(session, f"sanction_radiation:{sanction.id}", lifted_on)
        _resolve_alerts(session, f"sanction_end_of_right:{sanction.id}", lifted_on)
    what = {"contract": "contrat d'engagement signé ou actualisé", "complied": "la personne se conforme à ses obligations",
            "dropped": "procédure close sans sanction"}[cause]
    summary = ("Sanction levée" if sanction.decided_on else "Procédure close sans sanction") + f" ({what})"
    if sanction.repaid_amount:
        summary += f", {sanction.repaid_amount} € à reverser"
    _sanction_event(session, sanction, "lifted", lifted_on, source, author_id,
                    summary + (f": {reason}" if reason else ""), **data)
    return sanction


def lift_on_contract(session: Session, person_id: int, signed_on: dt.date, *, source: str,
                     author_id: int | None = None) -> list[Sanction]:
    """The person signs or updates the contrat d'engagement before the end of a suspension: the
    suspension ends (R262-68 CASF), recorded on the timeline with the amounts to pay back."""
    running = session.scalars(select(Sanction).where(
        Sanction.person_id == person_id, Sanction.kind == "suspension", Sanction.decided_on.is_not(None),
        Sanction.decided_on <= signed_on, Sanction.lifted_on.is_(None)).order_by(Sanction.id)).all()
    lifted = []
    for sanction in running:
        end = sanction_end(sanction)
        if end is not None and signed_on < end:
            lifted.append(lift_sanction(session, sanction.id, signed_on, source=source, author_id=author_id,
                                        cause="contract"))
    return lifted


def end_of_right_candidates(session: Session, as_of: dt.date) -> list[Sanction]:
    """Total suppressions whose radiation was proposed and whose period ended by as_of without the
    person complying: the Président may end the right (R262-68, last paragraph)."""
    found = session.scalars(select(Sanction).where(Sanction.radiation_proposed_on.is_not(None),
                                                   Sanction.lifted_on.is_(None)).order_by(Sanction.id))
    return [s for s in found if (end := sanction_end(s)) is not None and end <= as_of]


def raise_sanction_alerts(session: Session, as_of: dt.date) -> dict:
    """Daily: a total suppression whose four months ended without the person complying raises one
    alert (idempotent by key) and a `job` timeline event: the Président may end the right and strike
    the person off the RSA (R262-68, last paragraph). The decision stays the Département's."""
    raised = 0
    for sanction in end_of_right_candidates(session, as_of):
        key = f"sanction_end_of_right:{sanction.id}"
        if session.scalar(select(func.count(Alert.id)).where(Alert.key == key)):
            continue
        end = sanction_end(sanction)
        message = (f"Suppression totale terminée le {end:%d/%m/%Y} sans mise en conformité: fin du droit au RSA "
                   "et radiation de la liste des bénéficiaires possibles (décision du Président du conseil "
                   "départemental)")
        session.add(Alert(key=key, kind="sanction_end_of_right", severity="critical", person_id=sanction.person_id,
                          message=message, raised_on=as_of, data={"sanction_id": sanction.id, "ended_on": _iso(end)}))
        _sanction_event(session, sanction, "end_of_right", as_of, "job", None, message, ended_on=_iso(end))
        raised += 1
    session.flush()
    return {"sanction_end_of_right": raised}
