"""Path tracking (issue 8): one person walked from flow entry to exit, deadlines, reviews,
suspension procedure, exits and reopening, working lists and the aggregates for reports."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cases import service as cs
from cases.models import Alert, CaseEvent, Contract, Exit, Path, Review
from orientation.models import Notification, Orientation, ReorientationRequest
from orientation.service import mark_path_oriented
from referents.models import Structure, User
from tests.factories import make_person

D = dt.date
# A review of a social path is a joint diagnostic: both parties are recorded (issue 19).
JOINT = dict(referent_participant="Assistante sociale MDS", france_travail_participant="Conseiller France Travail")


def structure_id(session, code: str) -> int:
    return session.scalar(select(Structure.id).where(Structure.code == code))


def orient(session, person, code: str, referent_type: str, validated_on: dt.date,
           notified_on: dt.date | None = None) -> Orientation:
    """What the orientation service leaves behind: a validated orientation, its notification, events."""
    path = cs.open_path(session, person.id)
    o = Orientation(person_id=person.id, path_id=path.id if path else None, referent_type=referent_type,
                    structure_id=structure_id(session, code), status="validated", decided_on=validated_on,
                    validated_on=validated_on, mode="auto", origin="auto", rule_id="test", explanation="test")
    session.add(o)
    session.flush()
    mark_path_oriented(session, [o.path_id])
    cs.add_event(session, person.id, "orientation.validated", validated_on, "agent",
                 summary=f"Orientation validée: {referent_type}", path_id=o.path_id)
    if notified_on:
        session.add(Notification(orientation_id=o.id, channel="letter", notified_on=notified_on))
        cs.add_event(session, person.id, "orientation.notified", notified_on, "job", path_id=o.path_id)
    session.flush()
    return o


def manager() -> User:
    return cs._system_user()


def user_of(session, role: str, code: str) -> User:
    s = session.scalar(select(Structure).where(Structure.code == code))
    return User(id=None, email=f"{role}@x", role=role, structure_id=s.id, territory_id=s.territory_id, active=True)


def kinds(session, person_id):
    return [e["kind"] for e in cs.timeline(session, person_id)]


def test_walk_from_flow_entry_to_exit(session):
    """Entry → diagnostic → orientation → appointment → contract (late) → reviews → suspension →
    réorientation request → exit by the provider → the flow closure confirms it, no second exit."""
    p = make_person(session, commune="31555", postal_code="31500", clock_start=D(2026, 3, 2),
                    request_date=D(2026, 2, 20))
    cs.add_event(session, p.id, "flow.right_opened", D(2026, 3, 2), "flow", summary="Droit ouvert (flux CAF)",
                 path_id=cs.open_path(session, p.id).id)
    cs.record_diagnostic(session, p.id, D(2026, 3, 10), {"health": "strong", "housing": "medium"}, "cap", False, None)
    orient(session, p, "MDS-SOUPETARD", "mds", D(2026, 3, 20), notified_on=D(2026, 3, 23))
    assert cs.contract_deadline(session, p.id) == D(2026, 4, 23)

    appt = cs.record_appointment(session, p.id, dt.datetime(2026, 3, 30, 10, 0), "planned", source="agent")
    assert cs.appointments_to_update(session, manager(), D(2026, 4, 2))[0]["appointment_id"] == appt.id
    cs.update_appointment_status(session, appt.id, "honoured", source="agent")
    assert cs.appointments_to_update(session, manager(), D(2026, 4, 2)) == []
    assert session.get(type(p), p.id).last_contact_on == D(2026, 3, 30)

    # The deadline passes: one alert and one job event, however many times the job runs.
    assert cs.overdue_contracts(session, manager(), D(2026, 4, 23)) == []
    late = cs.overdue_contracts(session, manager(), D(2026, 4, 24))
    assert [(r["person_id"], r["contract_due_on"], r["days_late"]) for r in late] == [(p.id, "2026-04-23", 1)]
    assert cs.raise_daily_alerts(session, D(2026, 4, 24)) == {"contract_overdue": 1, "review_due": 0}
    assert cs.raise_daily_alerts(session, D(2026, 4, 25)) == {"contract_overdue": 0, "review_due": 0}

    with pytest.raises(cs.CaseValidationError) as err:
        cs.record_contract(session, p.id, D(2026, 4, 28), weekly_hours=10, source="agent")
    assert "weekly_hours" in err.value.messages
    contract = cs.record_contract(session, p.id, D(2026, 4, 28), weekly_hours=10, hours_reduction_reason="health",
                                  objectives=[{"theme": "health", "text": "Suivi médical régulier"},
                                              {"theme": "housing", "text": "Demande de logement social"}],
                                  duration_months=12, source="agent")
    assert (contract.status, contract.due_on, float(contract.weekly_hours)) == ("signed", D(2026, 4, 23), 10.0)
    alert = session.scalar(select(Alert).where(Alert.kind == "contract_overdue"))
    assert alert.resolved_on == D(2026, 4, 28)
    assert cs.overdue_contracts(session, manager(), D(2026, 5, 1)) == []

    # Social path: review due 6 months after signature.
    review = session.scalar(select(Review).where(Review.person_id == p.id))
    assert review.due_on == D(2026, 10, 28)
    assert cs.reviews_due(session, manager(), D(2026, 9, 1)) == []
    due = cs.reviews_due(session, manager(), D(2026, 10, 1))
    assert [(r["review_id"], r["overdue"]) for r in due] == [(review.id, False)]
    cs.record_review(session, p.id, D(2026, 10, 27), "maintain", source="agent", **JOINT)
    nxt = session.scalar(select(Review).where(Review.person_id == p.id, Review.held_on.is_(None)))
    assert nxt.due_on == D(2027, 4, 27)

    # Suspension procedure: bounds from the configuration, observations before the decision.
    sanction = cs.record_breach(session, p.id, D(2026, 11, 2), "Absences répétées aux rendez-vous", source="agent")
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 11, 5), rate_percent=30, duration_months=1, source="agent")
    assert "observations" in err.value.messages
    cs.record_observations(session, sanction.id, D(2026, 11, 10), "Problème de garde d'enfant", source="agent")
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 11, 20), rate_percent=20, duration_months=3, source="agent")
    assert set(err.value.messages) == {"rate_percent", "duration_months"}
    cs.decide_sanction(session, sanction.id, D(2026, 11, 20), rate_percent=30, duration_months=2, source="agent")
    assert cs.sanction_end(sanction) == D(2027, 1, 20)
    assert cs.next_due_dates(session, p.id, D(2026, 12, 1))["suspension_ends_on"] == "2027-01-20"
    cs.lift_sanction(session, sanction.id, D(2026, 12, 15), source="agent", reason="Reprise des rendez-vous")
    assert sanction.status == "lifted"

    # Review with a réorientation request for the orientation service.
    cs.record_review(session, p.id, D(2027, 4, 20), "reorientation", source="agent", **JOINT,
                     reorientation_reason="Projet professionnel construit", wanted_referent_type="actipro")
    request = session.scalar(select(ReorientationRequest).where(ReorientationRequest.person_id == p.id))
    assert (request.status, request.wanted_referent_type) == ("pending", "actipro")

    # Exit recorded by the provider ahead of the flow; the flow closure then confirms it.
    ex = cs.record_exit(session, p.id, D(2027, 5, 15), "employment_permanent", source="provider", as_of=D(2027, 5, 15))
    path = session.scalar(select(Path).where(Path.person_id == p.id))
    assert (path.closed_on, path.close_reason) == (D(2027, 5, 15), "exit:employment_permanent")
    assert ex.positive and ex.structure_id == structure_id(session, "MDS-SOUPETARD")
    assert session.scalar(select(Orientation.status).where(Orientation.person_id == p.id)) == "ended"
    assert cs.record_exit(session, p.id, D(2027, 7, 31), "end_of_right_resources", source="flow").id == ex.id
    assert cs.record_exit(session, p.id, D(2027, 7, 31), "end_of_right_resources", source="flow").id == ex.id
    assert session.scalar(select(func.count(Exit.id))) == 1
    session.commit()

    events = cs.timeline(session, p.id)
    assert [e["kind"] for e in events] == [
        "flow.right_opened", "diagnostic.recorded", "orientation.validated", "orientation.notified",
        "appointment.planned", "appointment.honoured", "contract.overdue", "contract.signed", "review.scheduled",
        "review.held", "review.scheduled", "sanction.breach", "sanction.observations", "sanction.decided",
        "sanction.lifted", "review.held", "reorientation.requested", "exit.recorded", "exit.confirmed"]
    dates = [e["occurred_on"] for e in events]
    assert dates == sorted(dates)
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["contract.overdue"]["source"] == "job"
    assert by_kind["exit.recorded"]["source"] == "provider"
    assert by_kind["exit.recorded"]["data"]["positive"] is True
    assert by_kind["exit.confirmed"]["source"] == "flow"
    assert by_kind["contract.signed"]["data"]["late"] is True
    assert "hors délai" in by_kind["contract.signed"]["summary"]
    assert by_kind["sanction.decided"]["data"]["ends_on"] == "2027-01-20"
    assert all(e["path_id"] == path.id for e in events)


def test_contract_rules_and_legacy_kinds(session):
    p = make_person(session)
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 10, 5))  # no notification: validation date
    assert cs.contract_deadline(session, p.id) == D(2026, 11, 5)
    assert cs.contract_deadline(session, p.id, "cer_social") == D(2026, 12, 5)
    bad = [
        dict(weekly_hours=0),  # zero hours without a legal reason
        dict(weekly_hours=15, hours_reduction_reason="convenience"),
        dict(objectives=[{"theme": "astrology", "text": "x"}]),
        dict(objectives=[{"theme": "employment", "text": "  "}]),
        dict(kind="cer_magic"),
        dict(weekly_hours=40),
    ]
    for kwargs in bad:
        with pytest.raises(cs.CaseValidationError):
            cs.record_contract(session, p.id, D(2026, 10, 20), source="agent", **kwargs)
    zero = cs.record_contract(session, p.id, D(2026, 10, 20), weekly_hours=0,
                              hours_reduction_reason="isolated_parent_child_under_12", source="agent")
    assert float(zero.weekly_hours) == 0
    # ActiPro is not a social path: no review.
    assert session.scalar(select(func.count(Review.id))) == 0
    # Legacy imported history is accepted and replaces nothing on another person.
    q = make_person(session)
    legacy = cs.record_contract(session, q.id, D(2019, 3, 1), kind="cer_social", weekly_hours=0, source="flow")
    assert (legacy.kind, legacy.status, legacy.due_on) == ("cer_social", "signed", None)
    # A second signature on the same path ends the first contract.
    again = cs.record_contract(session, p.id, D(2026, 11, 2), source="agent")
    assert (zero.status, again.status, float(again.weekly_hours)) == ("ended", "signed", 15.0)


def test_review_vulnerability_and_revision(session):
    p = make_person(session)
    orient(session, p, "MDS-SOUPETARD", "mds", D(2026, 1, 5), notified_on=D(2026, 1, 7))
    cs.record_contract(session, p.id, D(2026, 1, 30), review_reason="housing", source="agent")
    review = session.scalar(select(Review).where(Review.person_id == p.id))
    assert review.due_on == D(2027, 1, 30)
    assert cs.reviews_due(session, manager(), D(2027, 1, 31), within_days=0)[0]["overdue"] is True
    assert cs.raise_daily_alerts(session, D(2027, 1, 31))["review_due"] == 1
    cs.record_review(session, p.id, D(2027, 2, 3), "revise", source="agent", notes="Objectifs à reprendre", **JOINT)
    pending = session.scalar(select(Contract).where(Contract.person_id == p.id, Contract.status == "pending"))
    assert pending.due_on == D(2027, 3, 3)
    assert cs.next_due_dates(session, p.id, D(2027, 2, 10))["contract_due_on"] == "2027-03-03"
    assert [r["person_id"] for r in cs.overdue_contracts(session, manager(), D(2027, 3, 4))] == [p.id]
    revised = cs.record_contract(session, p.id, D(2027, 2, 20), review_reason="housing", source="agent",
                                 as_of=D(2027, 2, 20))
    assert revised.id == pending.id and revised.due_on == D(2027, 3, 3)
    assert session.scalar(select(Review.due_on).where(Review.person_id == p.id, Review.held_on.is_(None),
                                                      Review.outcome.is_(None))) == D(2028, 2, 20)
    assert session.scalar(select(Alert.resolved_on).where(Alert.kind == "review_due")) == D(2027, 2, 3)
    with pytest.raises(cs.CaseValidationError):
        cs.record_review(session, p.id, D(2027, 3, 1), "reorientation", source="agent", **JOINT)  # unmotivated


def test_suppression_needs_ep_opinion_deemed_after_one_month(session):
    p = make_person(session)
    first = cs.record_breach(session, p.id, D(2026, 1, 5), "Refus du contrat", source="agent")
    cs.record_observations(session, first.id, D(2026, 1, 15), "Aucune observation", source="agent")
    cs.decide_sanction(session, first.id, D(2026, 1, 20), rate_percent=50, duration_months=1, source="agent")
    again = cs.record_breach(session, p.id, D(2026, 6, 1), "Refus du contrat", source="agent")
    assert again.repeated
    cs.record_observations(session, again.id, D(2026, 6, 8), "Aucune observation", source="agent")
    with pytest.raises(cs.CaseValidationError):
        cs.decide_sanction(session, again.id, D(2026, 6, 10), kind="suppression", source="agent")
    cs.request_ep_opinion(session, again.id, D(2026, 6, 10), source="agent")
    assert cs.ep_deemed_on(again) == D(2026, 7, 10)
    with pytest.raises(cs.CaseValidationError):
        cs.decide_sanction(session, again.id, D(2026, 7, 9), kind="suppression", source="agent")
    # Repetition: up to 4 months for a suspension.
    cs.decide_sanction(session, again.id, D(2026, 7, 10), kind="suspension", rate_percent=100, duration_months=4,
                       source="agent")
    third = cs.record_breach(session, p.id, D(2026, 12, 1), "Refus du contrat", source="agent")
    cs.record_observations(session, third.id, D(2026, 12, 2), "—", source="agent")
    cs.request_ep_opinion(session, third.id, D(2026, 12, 3), source="agent")
    cs.record_ep_opinion(session, third.id, D(2026, 12, 9), "Avis favorable", source="agent")
    # A suppression keeps its rate and duration (R262-68 as amended by décret 2025-478).
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, third.id, D(2026, 12, 10), kind="suppression", source="agent")
    assert set(err.value.messages) == {"rate_percent", "duration_months"}
    cs.decide_sanction(session, third.id, D(2026, 12, 10), kind="suppression", rate_percent=100, duration_months=4,
                       source="agent")
    assert (third.kind, third.rate_percent, cs.sanction_end(third)) == ("suppression", 100, D(2027, 4, 10))


def test_exit_reopening_within_twelve_months_needs_a_contract(session):
    p = make_person(session, clock_start=D(2025, 6, 1))
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2025, 6, 20))
    cs.record_contract(session, p.id, D(2025, 7, 1), source="agent")
    ex = cs.record_exit(session, p.id, D(2026, 1, 31), "employment_short", source="agent")
    assert not ex.positive and cs.open_path(session, p.id) is None
    assert cs.reopening_applies(session, p.id, D(2027, 1, 31))
    assert not cs.reopening_applies(session, p.id, D(2027, 2, 1))
    # The flow importer opens the new path.
    session.add(Path(person_id=p.id, household_id=p.household_id, clock_start=D(2026, 9, 1),
                     opening_reason="reopening"))
    session.flush()
    status = cs.reopening_status(session, p.id)
    assert status["reopened"] and status["needs_contract"]
    assert status["previous_exit"]["reason"] == "employment_short"
    assert status["contract_due_on"] == "2026-10-01"
    assert [r["person_id"] for r in cs.overdue_contracts(session, manager(), D(2026, 10, 2))] == [p.id]
    cs.record_contract(session, p.id, D(2026, 9, 20), source="agent")
    assert not cs.needs_new_contract(session, p.id)
    # A new exit on the new path is a second exit of the person, not a duplicate.
    cs.record_exit(session, p.id, D(2026, 12, 1), "training", source="agent")
    assert session.scalar(select(func.count(Exit.id)).where(Exit.person_id == p.id)) == 2


def test_provider_qualifies_an_exit_the_flow_recorded_first(session):
    p = make_person(session)
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 6, 1))
    flow = cs.record_exit(session, p.id, D(2026, 9, 30), "other", source="flow")
    assert not flow.positive and flow.structure_id == structure_id(session, "ACTIPRO-TLS-EST")
    again = cs.record_exit(session, p.id, D(2026, 9, 12), "employment_permanent", source="provider",
                           details="CDI chez un transporteur")
    assert again.id == flow.id and (again.reason, again.positive, again.exit_on) == (
        "employment_permanent", True, D(2026, 9, 12))
    cs.record_exit(session, p.id, D(2026, 9, 12), "employment_permanent", source="provider")  # same: no event
    assert kinds(session, p.id)[-2:] == ["exit.recorded", "exit.qualified"]
    assert session.scalar(select(func.count(Exit.id))) == 1


def test_flow_exit_without_open_path_is_kept_once(session):
    p = make_person(session, clock_start=None)
    first = cs.record_exit(session, p.id, D(2026, 5, 1), "transfer", source="flow")
    assert first.path_id is None and cs.record_exit(session, p.id, D(2026, 5, 1), "transfer", source="flow")
    with pytest.raises(cs.CaseValidationError):
        cs.record_exit(session, p.id, D(2026, 5, 1), "moon", source="flow")
    with pytest.raises(cs.CaseValidationError):
        cs.record_exit(session, p.id, D(2026, 5, 1), "death", source="carrier_pigeon")


def test_appointments_idempotent_and_validated(session):
    p = make_person(session)
    a = cs.record_appointment(session, p.id, dt.datetime(2026, 10, 12, 9, 30), "planned", source="provider")
    b = cs.record_appointment(session, p.id, dt.datetime(2026, 10, 12, 9, 30), "planned", source="provider")
    assert a.id == b.id
    c = cs.record_appointment(session, p.id, dt.datetime(2026, 10, 12, 9, 30), "no_show", source="provider")
    assert c.id == a.id and a.status == "no_show"
    assert kinds(session, p.id) == ["appointment.planned", "appointment.no_show"]
    cs.update_appointment_status(session, a.id, "no_show", source="agent")  # unchanged: no event
    assert len(kinds(session, p.id)) == 2
    for bad in (dict(status="maybe"), dict(kind="brunch")):
        with pytest.raises(cs.CaseValidationError):
            cs.record_appointment(session, p.id, dt.datetime(2026, 10, 13, 9), source="agent",
                                  **{"status": "planned", **bad})
    late = cs.record_appointment(session, p.id, D(2026, 10, 20), "excused", kind="follow_up", source="kiosque")
    assert late.scheduled_at == dt.datetime(2026, 10, 20, 0, 0)
    assert kinds(session, p.id)[-2:] == ["appointment.planned", "appointment.excused"]


def test_lists_are_scoped_and_dated(session):
    as_of = D(2026, 11, 20)
    est = make_person(session, commune="31555", postal_code="31500", last_name="EST")
    muret = make_person(session, commune="31395", postal_code="31600", last_name="MURET")
    orient(session, est, "ACTIPRO-TLS-EST", "actipro", D(2026, 8, 1), notified_on=D(2026, 8, 3))
    orient(session, muret, "MDS-MURET", "mds", D(2026, 10, 25), notified_on=D(2026, 10, 27))
    cs.record_appointment(session, est.id, dt.datetime(2026, 8, 10, 14), "honoured", source="provider")
    cs.record_appointment(session, muret.id, dt.datetime(2026, 11, 18, 9), "planned", source="agent")
    cs.record_appointment(session, muret.id, dt.datetime(2026, 12, 2, 9), "planned", kind="follow_up",
                          source="agent")
    provider = user_of(session, "provider", "ACTIPRO-TLS-EST")
    mds = user_of(session, "mds_worker", "MDS-MURET")

    mine = cs.my_people(session, provider, as_of)
    assert [r["person_id"] for r in mine] == [est.id]
    assert (mine[0]["next_due"], mine[0]["next_due_on"], mine[0]["contract_overdue"]) == ("contract", "2026-09-03", True)
    mds_mine = cs.my_people(session, mds, as_of)
    assert [(r["person_id"], r["next_due"], r["next_due_on"]) for r in mds_mine] == \
        [(muret.id, "contract", "2026-11-27")]
    assert mds_mine[0]["next_appointment_at"] == "2026-12-02T09:00:00"
    assert [r["person_id"] for r in cs.my_people(session, manager(), as_of)] == [est.id, muret.id]

    assert [r["person_id"] for r in cs.overdue_contracts(session, provider, as_of)] == [est.id]
    assert cs.overdue_contracts(session, mds, as_of) == []
    assert [r["person_id"] for r in cs.appointments_to_update(session, mds, as_of)] == [muret.id]
    assert cs.appointments_to_update(session, provider, as_of) == []
    # EST: honoured on 10 Aug, nothing since and nothing planned → listed 60 days later, not before.
    assert [r["person_id"] for r in cs.without_recent_appointment(session, provider, as_of)] == [est.id]
    assert cs.without_recent_appointment(session, provider, as_of)[0]["last_appointment_on"] == "2026-08-10"
    assert cs.without_recent_appointment(session, provider, D(2026, 10, 8)) == []
    assert cs.without_recent_appointment(session, mds, as_of) == []  # oriented less than 60 days ago


def test_search_is_scoped(session):
    est = make_person(session, commune="31555", postal_code="31500", last_name="DUPONT", first_name="Jeanne",
                      birth_date=D(1980, 2, 3))
    other = make_person(session, commune="31555", postal_code="31500", last_name="DUPONTEL", first_name="Marc")
    orient(session, est, "ACTIPRO-TLS-EST", "actipro", D(2026, 10, 1))
    provider = user_of(session, "provider", "ACTIPRO-TLS-EST")
    found = cs.search_persons(session, provider, q="dupont")
    assert found.total == 1 and found.rows[0]["id"] == est.id and found.rows[0]["referent_type"] == "actipro"
    found = cs.search_persons(session, manager(), q="Dupont")
    assert found.total == 2 and {r["id"] for r in found.rows} == {est.id, other.id} and not found.capped
    found = cs.search_persons(session, manager(), q="dupont jea")
    assert [r["id"] for r in found.rows] == [est.id]
    found = cs.search_persons(session, manager(), birth_date=D(1980, 2, 3))
    assert [r["id"] for r in found.rows] == [est.id]
    found = cs.search_persons(session, manager(), caf_number=est.household.matricule)
    assert [r["id"] for r in found.rows] == [est.id]
    found = cs.search_persons(session, manager(), q="dupont", page=2, per_page=1)
    assert found.total == 2 and len(found.rows) == 1


def _named(session, last, first, birth=None):
    person = make_person(session, last_name="X", first_name=first)
    person.last_name, person.birth_name = last, birth  # None: no last name at all
    session.flush()
    return person


def test_search_finds_each_name_once_in_name_order(session):
    """The three ways to match (last name; else a birth name that differs; else the first name) are
    disjoint and together find what "any of the three names starts with the word" finds: each person
    once, in the order of the folded last name, then the folded first name, then id, on any page."""
    married = _named(session, "BERNARD", "Lucie", birth="MARTINEZ")  # by her birth name only
    same = _named(session, "MARTIN", "Paul", birth="MARTIN")  # last and birth name: once
    accented = _named(session, "MÂRTINON", "Zoé")  # accents aside: between MARTIN and MARTINS
    martins = _named(session, "MARTINS", "Ana")
    by_first = _named(session, "ABADIE", "Martine")  # by the first name only, sorted by her last name
    everything = _named(session, "MARTIN", "Martin", birth="MARTINET")  # the three names: once
    nameless = _named(session, None, "Martial")  # no last name: still found by the first name
    _named(session, "DURAND", "Paul", birth="DURAND")  # no name starts with "mart"
    found = cs.search_persons(session, manager(), q="mart")
    ids = [r["id"] for r in found.rows]
    assert sorted(ids) == sorted(p.id for p in (married, same, accented, martins, by_first, everything, nameless))
    assert found.total == 7 and not found.capped
    expected = [by_first.id, married.id, everything.id, same.id, accented.id, martins.id]
    assert [i for i in ids if i != nameless.id] == expected  # ABADIE, BERNARD, MARTIN Martin, MARTIN Paul…
    # page by page (each page merges the first rows of the three ways): the same order, nobody twice
    paged = [r["id"] for page in range(1, 8) for r in cs.search_persons(session, manager(), q="mart", page=page,
                                                                         per_page=1).rows]
    assert paged == ids
    # a second word narrows through any of the three names, birth name included
    assert [r["id"] for r in cs.search_persons(session, manager(), q="bern martinez").rows] == [married.id]
    assert [r["id"] for r in cs.search_persons(session, manager(), q="paul martin").rows] == [same.id]


def test_search_count_stops_at_the_cap(session, monkeypatch):
    """Past SEARCH_COUNT_CAP the count says "more than" (capped) instead of counting every match;
    the pages themselves are still exact."""
    from cases import views

    people = [_named(session, f"LEBLANC{i}", "Jo") for i in range(5)]
    monkeypatch.setattr(views, "SEARCH_COUNT_CAP", 3)
    found = cs.search_persons(session, manager(), q="leblanc", per_page=2)
    assert (found.total, found.capped) == (3, True)
    assert [r["id"] for r in found.rows] == [people[0].id, people[1].id]
    third = cs.search_persons(session, manager(), q="leblanc", page=3, per_page=2)
    assert [r["id"] for r in third.rows] == [people[4].id]
    monkeypatch.setattr(views, "SEARCH_COUNT_CAP", 5)
    assert (cs.search_persons(session, manager(), q="leblanc").total,
            cs.search_persons(session, manager(), q="leblanc").capped) == (5, False)


def test_report_aggregates(session):
    """One definition each: exits by reason, positive rate per structure, first appointment within
    15 days, contract within 1 month, first-appointment no-show rate."""
    as_of = D(2026, 11, 20)
    est_id, sud_id = structure_id(session, "ACTIPRO-TLS-EST"), structure_id(session, "ACTIPRO-SUD")
    people = []
    for i, (code, validated, appt, appt_status, signed) in enumerate([
        ("ACTIPRO-TLS-EST", D(2026, 9, 1), dt.datetime(2026, 9, 10, 9), "honoured", D(2026, 9, 20)),   # both ok
        ("ACTIPRO-TLS-EST", D(2026, 9, 1), dt.datetime(2026, 9, 20, 9), "honoured", D(2026, 10, 15)),  # both late
        ("ACTIPRO-SUD", D(2026, 9, 1), dt.datetime(2026, 9, 5, 9), "no_show", None),                   # no-show
        ("ACTIPRO-SUD", D(2026, 11, 15), dt.datetime(2026, 11, 18, 9), "honoured", None),              # too recent
    ]):
        p = make_person(session, last_name=f"R{i}")
        orient(session, p, code, "actipro", validated)
        cs.record_appointment(session, p.id, appt, appt_status, source="provider")
        if signed:
            cs.record_contract(session, p.id, signed, source="provider")
        people.append(p)
    fa = cs.first_appointment_within(session, 15, as_of=as_of)
    # Plan pauvreté B4 counts appointments FIXED within 15 days (the no-show too), attendance apart.
    assert (fa["eligible"], fa["success"], fa["rate"]) == (3, 2, round(2 / 3, 4))
    assert (fa["attendance_eligible"], fa["attended"], fa["attendance_rate"]) == (2, 1, 0.5)
    assert cs.first_appointment_within(session, 15, as_of=as_of, structure_id=sud_id)["success"] == 1
    assert cs.first_appointment_within(session, 15, as_of=as_of, structure_id=sud_id)["attended"] == 0
    assert cs.first_appointment_within(session, 15, as_of=as_of, start=D(2026, 11, 1))["eligible"] == 0
    cw = cs.contract_within(session, as_of=as_of)
    assert (cw["eligible"], cw["success"]) == (3, 1)
    assert cs.contract_within(session, days=60, as_of=as_of)["success"] == 2
    ns = cs.first_appointment_no_show_rate(session, D(2026, 9, 1), D(2026, 11, 30))
    assert (ns["appointments"], ns["no_show"]) == (4, 1)

    cs.record_exit(session, people[0].id, D(2026, 10, 1), "employment_permanent", source="provider")
    cs.record_exit(session, people[1].id, D(2026, 10, 2), "employment_short", source="provider")
    cs.record_exit(session, people[2].id, D(2026, 10, 3), "training", source="agent")
    cs.record_exit(session, people[3].id, D(2026, 12, 3), "training", source="agent")  # outside the period
    by_reason = cs.exits_by_reason(session, D(2026, 10, 1), D(2026, 10, 31))
    assert {(r["reason"], r["count"], r["positive"]) for r in by_reason} == {
        ("employment_permanent", 1, True), ("employment_short", 1, False), ("training", 1, True)}
    assert [r["reason"] for r in cs.exits_by_reason(session, D(2026, 10, 1), D(2026, 10, 31), sud_id)] == ["training"]
    rates = {r["structure_code"]: r for r in cs.positive_exit_rate(session, D(2026, 10, 1), D(2026, 10, 31))}
    assert (rates["ACTIPRO-TLS-EST"]["exits"], rates["ACTIPRO-TLS-EST"]["positive"],
            rates["ACTIPRO-TLS-EST"]["rate"]) == (2, 1, 0.5)
    assert rates["ACTIPRO-SUD"]["rate"] == 1.0
    assert rates["ACTIPRO-TLS-EST"]["structure_id"] == est_id


def test_diagnostic_validation(session):
    p = make_person(session)
    d = cs.record_diagnostic(session, p.id, D(2026, 10, 1), {"mobility": "strong"}, "bac", True, None)
    assert cs.latest_diagnostic(session, p.id).id == d.id
    for bad in ({"mood": "strong"}, {"health": "terrible"}):
        with pytest.raises(cs.CaseValidationError):
            cs.record_diagnostic(session, p.id, D(2026, 10, 2), bad, None, None, None)
    assert session.scalar(select(CaseEvent.summary).where(CaseEvent.kind == "diagnostic.recorded")).endswith("mobility")


def test_sql_month_arithmetic_clamps_like_relativedelta(session):
    """The deadline of contract_within (notice + 1 month) is computed in SQL: both databases must
    agree with dateutil's relativedelta, month ends included."""
    from dateutil.relativedelta import relativedelta
    from sqlalchemy import Date, literal, select

    from cases.service import _plus_days, _plus_months

    for day in (dt.date(2026, 1, 31), dt.date(2024, 1, 30), dt.date(2026, 3, 15), dt.date(2026, 12, 31),
                dt.date(2026, 8, 31)):
        for months in (1, 2, 12):
            got = session.scalar(select(_plus_months(session, literal(day, Date), months)))
            got = dt.date.fromisoformat(got) if isinstance(got, str) else got
            assert got == day + relativedelta(months=months), (day, months, got)
        got = session.scalar(select(_plus_days(session, literal(day, Date), 16)))
        assert (dt.date.fromisoformat(got) if isinstance(got, str) else got) == day + dt.timedelta(days=16)


def test_add_months_is_relativedelta_for_dates():
    from dateutil.relativedelta import relativedelta

    from cases.service import add_months

    day = dt.date(2023, 1, 1)
    while day < dt.date(2025, 1, 1):
        for months in (-13, -1, 0, 1, 2, 6, 12, 25):
            assert add_months(day, months) == day + relativedelta(months=months), (day, months)
        day += dt.timedelta(days=1)


def test_after_orientation_indicators_judge_the_paths_first_decision(session):
    """The decision judged is the path's first by validation date (docs/indicators.md), not the
    first orientation row created: here the row created second was validated first."""
    as_of = D(2026, 11, 20)
    p = make_person(session)
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 9, 20))  # created first, validated later
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 9, 1))
    cs.record_appointment(session, p.id, dt.datetime(2026, 9, 10, 9), "honoured", source="provider")
    fa = cs.first_appointment_within(session, 15, as_of=as_of)
    assert (fa["eligible"], fa["success"]) == (1, 1)
