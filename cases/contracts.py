"""The contrat d'engagement (deadline, legal rules, signature) and the reviews of social paths."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases import signals
from cases.batches import distinct_runs
from cases.models import Alert, Contract, Review, Sanction
from cases.paths import current_orientation, current_orientations, open_path, open_paths
from cases.procedure import (
    CaseValidationError,
    _check_source,
    _iso,
    _require_person,
    _require_persons,
    check_not_future,
    procedure,
)
from cases.sanctions import lift_on_contract
from cases.signals import orientations
from cases.timeline import _resolve_alerts, add_event
from config import clock
from referents.vocabulary import CONTRACT_MONTHS, REVIEW_MONTHS, REVIEW_MONTHS_LONG, ReferentType

CONTRACT_KINDS = ("engagement", "ppae", "cer_pro", "cer_social")


LEGACY_CONTRACT_KINDS = ("ppae", "cer_pro", "cer_social")


_UNREAD = object()  # "not read yet" (None means "read: there is none")


def notice_day(notices, orientation) -> dt.date | None:
    """The day the orientation notice left, which starts the contract's month (D5411-14-1 code du
    travail, D5411-8-2 for a new decision after the diagnostic): the first outbox message of its
    notifications that was sent; None while its message waits in the outbox (the month has not
    started); for a notice given outside the outbox (message_id NULL: handed over, taken over from a
    previous system), its own date, else the orientation's notified_on, else its validation day.

    notices: rows of the orientation read model's `notifications` for this orientation."""
    if orientation is None:
        return None
    sent = [r.sent_at for r in notices if r.sent_at is not None]
    if sent:
        first = min(sent)
        return first.date() if isinstance(first, dt.datetime) else first
    if any(r.message_id is not None for r in notices):
        return None
    days = [r.notified_on for r in notices if r.notified_on is not None]
    return min(days) if days else (orientation.notified_on or orientation.validated_on)


def orientation_notice_date(session: Session, orientation) -> dt.date | None:
    """The day the orientation's notice left (notice_day), for one orientation."""
    if orientation is None:
        return None
    n = orientations().notifications.subquery()
    return notice_day(session.execute(select(n).where(n.c.orientation_id == orientation.id)).all(), orientation)


def counts_for(contract_orientation_id, signed_on, orientation) -> bool:
    """Whether a signed contract answers the current orientation: signed for it, or signed on or after
    its validation. A new orientation (réorientation, new decision after the diagnostic) needs its own
    contract with the new organisme référent, within a new month (D5411-8-2 code du travail)."""
    if orientation is None or contract_orientation_id == orientation.id:
        return True
    return signed_on is not None and orientation.validated_on is not None and signed_on >= orientation.validated_on


def contract_deadline(session: Session, person_id: int, kind: str = "engagement") -> dt.date | None:
    """Deadline of the contract: the day the orientation notice left + 1 month (CER social: 2), for
    every organisme référent alike (France Travail, ActiPro, ATI, MDS, CCAS). None while the notice
    has not left.

    On a path reopened after an exit, the clock starts again at the reopening (even before a new
    orientation: the reopened path needs a contract)."""
    orientation = current_orientation(session, person_id)
    return _deadline_after(orientation_notice_date(session, orientation), open_path(session, person_id), kind)


def _deadline_after(base: dt.date | None, path, kind: str) -> dt.date | None:
    """contract_deadline from the day the notice left (None: not yet) and the open path."""
    if path is not None and path.opening_reason == "reopening" and (base is None or path.clock_start > base):
        base = path.clock_start
    if base is None:
        return None
    return base + relativedelta(months=contract_months(kind))


def contract_months(kind: str = "engagement") -> int:
    """Months from the orientation notice to the contract: the contrat d'engagement's legal month
    (referents/vocabulary.py); legacy PPAE / CER kinds from procedure.yaml."""
    if kind == "engagement":
        return CONTRACT_MONTHS
    return procedure()["contract"]["deadline_months"].get(kind, CONTRACT_MONTHS)


def validate_contract(kind: str, weekly_hours, hours_reduction_reason: str | None, objectives) -> dict[str, list[str]]:
    """The legal rules of the contract; returns field → messages (empty when valid)."""
    rules = procedure()["contract"]
    errors: dict[str, list[str]] = {}
    if kind not in CONTRACT_KINDS:
        errors.setdefault("kind", []).append(f"type inconnu {kind!r} (attendu: {', '.join(CONTRACT_KINDS)})")
    reasons = rules["hours_reduction_reasons"]
    if hours_reduction_reason is not None and hours_reduction_reason not in reasons:
        errors.setdefault("hours_reduction_reason", []).append(
            f"motif inconnu {hours_reduction_reason!r} (motifs légaux: {', '.join(reasons)})")
    if weekly_hours is not None:
        hours = float(weekly_hours)
        if hours < 0 or hours > 35:
            errors.setdefault("weekly_hours", []).append("la durée hebdomadaire doit être comprise entre 0 et 35 heures")
        elif kind == "engagement" and hours < rules["default_weekly_hours"] and hours_reduction_reason is None:
            errors.setdefault("weekly_hours", []).append(
                f"moins de {rules['default_weekly_hours']} heures par semaine seulement avec un motif légal "
                f"({', '.join(reasons)})")
    themes = rules["themes"]
    for i, obj in enumerate(objectives or []):
        if not isinstance(obj, dict) or obj.get("theme") not in themes:
            errors.setdefault("objectives", []).append(
                f"objectif {i + 1}: thème inconnu (attendu: {', '.join(themes)})")
        elif not str(obj.get("text") or "").strip():
            errors.setdefault("objectives", []).append(f"objectif {i + 1}: texte vide")
    return errors


@dataclass(frozen=True)
class ContractIn:
    """One contract to record (record_contracts): the arguments of record_contract."""

    person_id: int
    signed_on: dt.date | None
    weekly_hours: object = None
    hours_reduction_reason: str | None = None
    kind: str = "engagement"
    objectives: list | None = None
    duration_months: int | None = None
    vulnerability: bool = False
    review_reason: str | None = None
    as_of: dt.date | None = None


def record_contract(session: Session, person_id: int, signed_on: dt.date | None, *, weekly_hours=None,
                    hours_reduction_reason: str | None = None, kind: str = "engagement", objectives=None,
                    duration_months: int | None = None, vulnerability: bool = False,
                    review_reason: str | None = None, source: str, author_id: int | None = None,
                    as_of: dt.date | None = None) -> Contract:
    """Record the contrat d'engagement (or a legacy PPAE/CER from imported history).

    Weekly hours: 15 by default, fewer only with a legal reason. A signed contract replaces the
    previous one of the path; a social path (MDS orientation) gets its review due date: 6 months, 12
    with a legal `review_reason` (D262-65-2-1 CASF; `vulnerability` alone is refused: the reason is
    what the law asks). Signing ends a running suspension (R262-68 CASF)."""
    item = ContractIn(person_id, signed_on, weekly_hours, hours_reduction_reason, kind, objectives, duration_months,
                      vulnerability, review_reason, as_of)
    return record_contracts(session, [item], source=source, author_id=author_id)[0]


def record_contracts(session: Session, items, *, source: str, author_id: int | None = None) -> list[Contract]:
    """record_contract for many contracts (ContractIn), in the given order, with the same checks,
    rows, timeline events, alerts resolved, reviews and suspensions lifted: every check first
    (nothing is written when one fails), then what the contracts depend on (open paths, current
    orientations and their notices, pending and signed contracts, open reviews, open alerts and
    running suspensions) read once per run of distinct persons, and one flush for the contracts.
    A person given twice starts a new run, which reads what the previous one wrote."""
    items = list(items)
    _check_source(source)
    _require_persons(session, [it.person_id for it in items])
    rules = procedure()["contract"]
    checked = []
    for it in items:
        check_not_future("signed_on", "Date de signature du contrat", it.signed_on, source, it.as_of)
        weekly_hours = rules["default_weekly_hours"] if it.weekly_hours is None else it.weekly_hours
        errors = validate_contract(it.kind, weekly_hours, it.hours_reduction_reason, it.objectives)
        if it.duration_months is not None and not 1 <= int(it.duration_months) <= 60:
            errors.setdefault("duration_months", []).append("durée en mois entre 1 et 60")
        errors.update(_review_reason_errors(it.review_reason, it.vulnerability))
        if errors:
            raise CaseValidationError(errors)
        checked.append((it, weekly_hours))
    out: list[Contract] = []
    for run in distinct_runs(checked, lambda entry: entry[0].person_id):
        out += _record_contract_run(session, run, source, author_id)
    return out


def _record_contract_run(session: Session, run: list, source: str, author_id) -> list[Contract]:
    """record_contracts for checked items of distinct persons."""
    ids = sorted(it.person_id for it, _ in run)
    path_of = open_paths(session, ids)
    orientation_of = current_orientations(session, ids)
    n = orientations().notifications.subquery()
    notices: dict[int, list] = defaultdict(list)
    oids = sorted(o.id for o in orientation_of.values())
    pending_of: dict[tuple[int, int | None], Contract] = {}
    signed_of: dict[int, list[Contract]] = defaultdict(list)
    reviews_of: dict[int, list[Review]] = defaultdict(list)
    overdue: set[int] = set()
    suspended: set[int] = set()
    for i in range(0, max(len(ids), len(oids)), 5000):
        chunk, ochunk = ids[i:i + 5000], oids[i:i + 5000]
        if ochunk:
            for row in session.execute(select(n).where(n.c.orientation_id.in_(ochunk))):
                notices[row.orientation_id].append(row)
        if not chunk:
            continue
        for c in session.scalars(select(Contract).where(Contract.person_id.in_(chunk),
                                                        Contract.status.in_(("pending", "signed")))
                                 .order_by(Contract.id.desc())):
            if c.status == "pending":
                pending_of.setdefault((c.person_id, c.path_id), c)
            else:
                signed_of[c.person_id].append(c)
        for r in session.scalars(_open_reviews_query(chunk)):
            reviews_of[r.person_id].append(r)
        wanted = {f"contract_overdue:{pid}:" for pid in chunk}  # the prefixes record_contract resolves
        overdue.update(int(key.split(":")[1]) for key in session.scalars(
            select(Alert.key).where(Alert.key.startswith("contract_overdue:", autoescape=True),
                                    Alert.resolved_on.is_(None)))
            if ":".join(key.split(":")[:2]) + ":" in wanted)
        suspended.update(session.scalars(select(Sanction.person_id).where(
            Sanction.person_id.in_(chunk), Sanction.kind == "suspension", Sanction.decided_on.is_not(None),
            Sanction.lifted_on.is_(None))))
    made = []
    for it, weekly_hours in run:
        person_id = it.person_id
        path = path_of.get(person_id)
        orientation = orientation_of.get(person_id)
        pending = pending_of.get((person_id, path.id)) if path else None
        contract = pending or Contract(person_id=person_id, path_id=path.id if path else None)
        contract.kind = it.kind
        contract.orientation_id = orientation.id if orientation else None
        # A pending contract (revision asked by a review) keeps its own deadline.
        contract.due_on = (pending.due_on if pending is not None and pending.due_on else _deadline_after(
            notice_day(notices.get(orientation.id, []), orientation) if orientation else None, path, it.kind))
        contract.signed_on = it.signed_on
        contract.duration_months = it.duration_months
        contract.weekly_hours = weekly_hours
        contract.hours_reduction_reason = it.hours_reduction_reason
        contract.objectives = [{"theme": o["theme"], "text": str(o["text"]).strip()} for o in (it.objectives or [])]
        contract.review_reason = it.review_reason
        contract.vulnerability = it.review_reason is not None
        contract.status = "signed" if it.signed_on else "pending"
        contract.source = source
        if pending is None:
            session.add(contract)
        made.append((it, contract, path, orientation))
    session.flush()
    for it, contract, path, orientation in made:
        person_id, signed_on, kind = it.person_id, it.signed_on, it.kind
        if signed_on is None:
            add_event(session, person_id, "contract.pending", contract.due_on or clock.today(), source,
                      summary=f"Contrat à signer avant le {contract.due_on:%d/%m/%Y}" if contract.due_on
                      else "Contrat à signer",
                      data={"contract_id": contract.id, "kind": kind}, path_id=contract.path_id, author_id=author_id)
            continue
        # The newly signed contract replaces the earlier ones of the same path.
        for old in signed_of.get(person_id, []):
            if old.id != contract.id and (path is None or old.path_id in (path.id, None)):
                old.status = "ended"
        late = contract.due_on is not None and signed_on > contract.due_on
        hours = float(contract.weekly_hours)
        reduction = it.hours_reduction_reason
        summary = (f"Contrat {_contract_label(kind)} signé le {signed_on:%d/%m/%Y}, {hours:g} h/semaine"
                   + (f" (réduction: {reduction})" if reduction else "")
                   + (f", hors délai (échéance {contract.due_on:%d/%m/%Y})" if late else ""))
        add_event(session, person_id, "contract.signed", signed_on, source, summary=summary,
                  data={"contract_id": contract.id, "kind": kind, "weekly_hours": hours,
                        "hours_reduction_reason": reduction, "due_on": _iso(contract.due_on),
                        "late": late, "themes": sorted({o["theme"] for o in contract.objectives})},
                  path_id=contract.path_id, author_id=author_id)
        if person_id in overdue:
            _resolve_alerts(session, f"contract_overdue:{person_id}:", signed_on, person_id)
        if kind == "engagement":
            _schedule_review(session, contract, orientation, source, author_id,
                             open_reviews=reviews_of.get(person_id, []))
            if person_id in suspended:
                lift_on_contract(session, person_id, signed_on, source=source, author_id=author_id)
    return [contract for _it, contract, _path, _orientation in made]


def _review_reason_errors(review_reason: str | None, vulnerability: bool) -> dict[str, list[str]]:
    reasons = procedure()["review"]["long_reasons"]
    if review_reason is not None and review_reason not in reasons:
        return {"review_reason": [f"motif du bilan à 12 mois (review_reason): {review_reason!r} inconnu "
                                  f"(motifs légaux: {', '.join(reasons)})"]}
    if vulnerability and review_reason is None:
        return {"review_reason": ["motif du bilan à 12 mois (review_reason): préciser la difficulté constatée "
                                  f"({', '.join(reasons)}), D262-65-2-1 CASF"]}
    return {}


def _contract_label(kind: str) -> str:
    return {"engagement": "d'engagement", "ppae": "PPAE", "cer_pro": "CER professionnel",
            "cer_social": "CER social"}.get(kind, kind)


def needs_new_contract(session: Session, person_id: int, path=_UNREAD) -> bool:
    """A reopened path needs a new contrat d'engagement until one is signed on it.
    path: the person's open path (None: none) when the caller has already read it."""
    if path is _UNREAD:
        path = open_path(session, person_id)
    if path is None or path.opening_reason != "reopening":
        return False
    signed = session.scalar(select(func.count(Contract.id)).where(
        Contract.person_id == person_id, Contract.path_id == path.id, Contract.status == "signed"))
    return not signed


REVIEW_OUTCOMES = ("maintain", "revise", "reorientation")


def _review_months(reason: str | None) -> int:
    return REVIEW_MONTHS_LONG if reason else REVIEW_MONTHS


def _open_reviews_query(person_ids):
    return (select(Review).where(Review.person_id.in_(person_ids), Review.held_on.is_(None),
                                 Review.outcome.is_(None)).order_by(Review.due_on, Review.id))


def _open_reviews(session: Session, person_id: int):
    return session.scalars(_open_reviews_query([person_id]))


def _schedule_review(session: Session, contract: Contract, orientation, source: str, author_id,
                     start: dt.date | None = None, open_reviews=None) -> Review | None:
    """Social paths (MDS orientation): a review 6 months after signature or revision, 12 when the
    contract records a legal reason (D262-65-2-1 CASF); the review records that reason.
    open_reviews: the person's open reviews when the caller has read them (record_contracts)."""
    if orientation is None or orientation.referent_type != ReferentType.MDS:
        return None
    for old in (_open_reviews(session, contract.person_id) if open_reviews is None else open_reviews):
        old.outcome = "superseded"
    start = start or contract.signed_on
    review = Review(person_id=contract.person_id, contract_id=contract.id, reason=contract.review_reason,
                    due_on=start + relativedelta(months=_review_months(contract.review_reason)))
    session.add(review)
    session.flush()
    add_event(session, contract.person_id, "review.scheduled", start, source,
              summary=f"Bilan du parcours social prévu le {review.due_on:%d/%m/%Y}"
                      + (f" (12 mois: {procedure()['review']['long_reasons'][review.reason].lower()})"
                         if review.reason else ""),
              data={"review_id": review.id, "due_on": review.due_on.isoformat(), "contract_id": contract.id,
                    "reason": review.reason},
              path_id=contract.path_id, author_id=author_id)
    return review


KEEP = object()  # record_review: keep the contract's legal review reason for the next review


def record_review(session: Session, person_id: int, held_on: dt.date, outcome: str, *, source: str,
                  author_id: int | None = None, notes: str | None = None, review_id: int | None = None,
                  reorientation_reason: str | None = None, wanted_referent_type: str | None = None,
                  wanted_structure_id: int | None = None, referent_participant: str | None = None,
                  france_travail_participant: str | None = None, next_review_reason=KEEP) -> Review:
    """Hold the (next) review of a social path, a joint diagnostic of the referent organisme and France
    Travail (both parties recorded): maintain → next review 6 months later (12 with a legal reason:
    `next_review_reason`, by default the contract's); revise → a contract to re-sign within the
    contract delay; reorientation → a pending ReorientationRequest for the orientation service."""
    _check_source(source)
    if outcome not in REVIEW_OUTCOMES:
        raise CaseValidationError({"outcome": [f"issue inconnue {outcome!r} (attendu: {', '.join(REVIEW_OUTCOMES)})"]})
    errors: dict[str, list[str]] = {}
    if outcome == "reorientation" and not (reorientation_reason or notes):
        errors["reorientation_reason"] = ["motif de réorientation (reorientation_reason): une demande de "
                                          "réorientation doit être motivée"]
    if not (referent_participant or "").strip():
        errors["referent_participant"] = ["participant pour l'organisme référent (referent_participant): le bilan "
                                          "est un diagnostic conjoint, indiquer qui y a pris part"]
    if not (france_travail_participant or "").strip():
        errors["france_travail_participant"] = ["participant pour France Travail (france_travail_participant): le "
                                                "bilan est un diagnostic conjoint avec France Travail"]
    if next_review_reason is not KEEP:
        errors.update(_review_reason_errors(next_review_reason, False))
    if errors:
        raise CaseValidationError(errors)
    _require_person(session, person_id)
    path = open_path(session, person_id)
    if review_id is not None:
        review = session.get(Review, review_id)
        if review is None or review.person_id != person_id:
            raise CaseValidationError({"review_id": [f"bilan {review_id} inconnu pour cette personne"]})
        if review.held_on is not None:
            raise CaseValidationError({"review_id": ["ce bilan a déjà eu lieu"]})
    else:
        review = _open_reviews(session, person_id).first()
    contract = session.scalar(select(Contract).where(Contract.person_id == person_id, Contract.status == "signed")
                              .order_by(Contract.signed_on.desc(), Contract.id.desc()).limit(1))
    if review is None:  # an unscheduled (early) review
        review = Review(person_id=person_id, contract_id=contract.id if contract else None, due_on=held_on)
        session.add(review)
    review.held_on = held_on
    review.outcome = outcome
    review.notes = notes
    review.referent_participant = referent_participant.strip()
    review.france_travail_participant = france_travail_participant.strip()
    session.flush()
    labels = {"maintain": "maintien du contrat", "revise": "contrat à réviser", "reorientation": "réorientation demandée"}
    add_event(session, person_id, "review.held", held_on, source, summary=f"Bilan tenu: {labels[outcome]}",
              data={"review_id": review.id, "outcome": outcome, "due_on": review.due_on.isoformat(),
                    "referent_participant": review.referent_participant,
                    "france_travail_participant": review.france_travail_participant},
              path_id=path.id if path else None, author_id=author_id)
    _resolve_alerts(session, f"review_due:{person_id}:", held_on, person_id)
    orientation = current_orientation(session, person_id)
    if contract is not None and next_review_reason is not KEEP:
        contract.review_reason = next_review_reason
        contract.vulnerability = next_review_reason is not None
    if outcome == "maintain" and contract is not None:
        _schedule_review(session, contract, orientation, source, author_id, start=held_on)
    elif outcome == "revise":
        months = contract_months("engagement")
        pending = Contract(person_id=person_id, path_id=path.id if path else None,
                           orientation_id=orientation.id if orientation else None, kind="engagement",
                           due_on=held_on + relativedelta(months=months), status="pending", source=source,
                           vulnerability=contract.vulnerability if contract else False,
                           review_reason=contract.review_reason if contract else None,
                           weekly_hours=procedure()["contract"]["default_weekly_hours"])
        session.add(pending)
        session.flush()
        add_event(session, person_id, "contract.pending", held_on, source,
                  summary=f"Contrat à réviser avant le {pending.due_on:%d/%m/%Y}",
                  data={"contract_id": pending.id, "kind": "engagement", "due_on": pending.due_on.isoformat()},
                  path_id=pending.path_id, author_id=author_id)
    elif outcome == "reorientation":
        request_id = signals.answer(signals.reorientation_requested, session, person_id=person_id,
                                    orientation_id=orientation.id if orientation else None,
                                    requested_by=author_id, requested_on=held_on,
                                    reason=reorientation_reason or notes,
                                    wanted_referent_type=wanted_referent_type,
                                    wanted_structure_id=wanted_structure_id)
        add_event(session, person_id, "reorientation.requested", held_on, source,
                  summary="Demande de réorientation à l'issue du bilan"
                          + (f" (vers {wanted_referent_type})" if wanted_referent_type else ""),
                  data={"reorientation_request_id": request_id, "review_id": review.id,
                        "wanted_referent_type": wanted_referent_type},
                  path_id=path.id if path else None, author_id=author_id)
    return review


