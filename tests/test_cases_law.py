"""Issue 19: accompaniment as the 2025 law says — sanctions as decreed (R262-68 and following of the
CASF, décret 2025-478), the contract's month from the notice that left for every organisme
(D5411-14-1 / D5411-8-2 code du travail), reviews of social paths (L262-31, D262-65-2-1 CASF).
Each rule at its boundaries; the suite runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cases import service as cs
from cases.models import Alert, Household, Review, Sanction
from orientation.messaging.models import Message
from orientation.models import Notification
from tests.factories import make_person
from tests.test_cases import JOINT, manager, orient

D = dt.date


def _decide_ready(session, person, breach_on=D(2026, 3, 2)) -> Sanction:
    sanction = cs.record_breach(session, person.id, breach_on, "Refus d'élaborer le contrat", source="agent")
    cs.record_observations(session, sanction.id, breach_on + dt.timedelta(days=5), "Observations orales",
                           source="agent")
    return sanction


def _couple(session):
    dem = make_person(session)
    make_person(session, role="CJT", household=session.get(Household, dem.household_id))
    return dem


def _first_sanction_decided(session, person, on=D(2026, 1, 20), rate=30):
    first = _decide_ready(session, person, D(2026, 1, 5))
    cs.decide_sanction(session, first.id, on, rate_percent=rate, duration_months=1, source="agent")
    return first


# ---- sanctions -------------------------------------------------------------------------------------

def test_couple_capped_at_fifty_percent(session):
    """R262-68-6: a household of more than one person is suspended at most 50 %."""
    dem = _couple(session)
    sanction = _decide_ready(session, dem)
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=51, duration_months=1, source="agent")
    assert set(err.value.messages) == {"rate_percent"}
    message = err.value.messages["rate_percent"][0]
    assert "taux (rate_percent)" in message and "au plus 50 %" in message and "plus d'une personne" in message
    cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=50, duration_months=1, source="agent")
    assert (sanction.cap_percent, sanction.cap_reason) == (50, "household_size")


def test_single_parent_increase_capped_and_single_person_not(session):
    alone = make_person(session)
    household = session.get(Household, alone.household_id)
    household.benefit_nature = "RSI"  # RSA majoré for isolation (L262-9)
    sanction = _decide_ready(session, alone)
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=51, duration_months=2, source="agent")
    assert "majoration" in err.value.messages["rate_percent"][0]
    household.benefit_nature = "RSD"
    cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=100, duration_months=2, source="agent")
    assert (sanction.cap_percent, sanction.cap_reason) == (100, None)


def test_first_breach_bounds_and_no_suppression(session):
    p = make_person(session)
    sanction = _decide_ready(session, p)
    assert not sanction.repeated
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 3, 20), kind="suppression", rate_percent=30,
                           duration_months=1, source="agent")
    assert "persistance ou de réitération" in " ".join(err.value.messages["kind"])
    for rate, months, field in ((29, 1, "rate_percent"), (30, 3, "duration_months"), (30, 0, "duration_months")):
        with pytest.raises(cs.CaseValidationError) as err:
            cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=rate, duration_months=months,
                               source="agent")
        assert set(err.value.messages) == {field}
    cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=30, duration_months=2, source="agent")
    assert cs.sanction_end(sanction) == D(2026, 5, 20)


def test_repetition_allows_four_months_and_suppression_after_ep(session):
    p = make_person(session)
    _first_sanction_decided(session, p)
    again = _decide_ready(session, p, D(2026, 6, 1))
    assert again.repeated
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, again.id, D(2026, 6, 20), rate_percent=30, duration_months=5, source="agent")
    assert set(err.value.messages) == {"duration_months"}
    with pytest.raises(cs.CaseValidationError) as err:  # no EP opinion yet
        cs.decide_sanction(session, again.id, D(2026, 6, 20), kind="suppression", rate_percent=40,
                           duration_months=2, source="agent")
    assert "équipe pluridisciplinaire" in err.value.messages["kind"][0]
    cs.request_ep_opinion(session, again.id, D(2026, 6, 10), source="agent")
    cs.decide_sanction(session, again.id, D(2026, 7, 10), kind="suppression", rate_percent=40, duration_months=2,
                       source="agent")  # deemed given one month after the referral
    assert (again.kind, again.rate_percent, again.duration_months) == ("suppression", 40, 2)
    assert again.radiation_proposed_on is None  # not a total suppression of four months


def test_observations_before_each_decision(session):
    p = make_person(session)
    sanction = cs.record_breach(session, p.id, D(2026, 3, 2), "Absences", source="agent")
    with pytest.raises(cs.CaseValidationError) as err:
        cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=30, duration_months=1, source="agent")
    assert "observations" in err.value.messages
    cs.record_observations(session, sanction.id, D(2026, 3, 25), "Tardives", source="agent")
    with pytest.raises(cs.CaseValidationError) as err:  # gathered after the decision date
        cs.decide_sanction(session, sanction.id, D(2026, 3, 20), rate_percent=30, duration_months=1, source="agent")
    assert "observations" in err.value.messages


def test_contract_signature_lifts_the_suspension_and_pays_back(session):
    p = make_person(session, clock_start=D(2026, 1, 5))
    session.get(Household, p.household_id).rsa_amount = 600
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 1, 10))
    sanction = _decide_ready(session, p, D(2026, 2, 20))
    cs.decide_sanction(session, sanction.id, D(2026, 3, 1), rate_percent=50, duration_months=2, source="agent")
    assert sanction.base_amount == Decimal("600.00") or float(sanction.base_amount) == 600
    cs.record_contract(session, p.id, D(2026, 4, 10), source="provider")
    assert (sanction.status, sanction.lifted_on, sanction.lift_reason) == ("lifted", D(2026, 4, 10), "contract")
    # Two monthly payments touched (March, and April started), 300 € each, paid back on remobilising.
    assert (Decimal(sanction.withheld_amount), Decimal(sanction.repaid_amount)) == (Decimal("600.00"),
                                                                                    Decimal("600.00"))
    lifted = [e for e in cs.timeline(session, p.id) if e["kind"] == "sanction.lifted"]
    assert len(lifted) == 1 and lifted[0]["source"] == "provider" and lifted[0]["data"]["cause"] == "contract"
    assert "contrat d'engagement" in lifted[0]["summary"]
    # A suspension already over is not lifted by a later contract.
    q = make_person(session)
    over = _decide_ready(session, q, D(2026, 1, 2))
    cs.decide_sanction(session, over.id, D(2026, 1, 10), rate_percent=30, duration_months=1, source="agent")
    cs.record_contract(session, q.id, D(2026, 2, 10), source="agent")
    assert over.lifted_on is None


def test_total_suppression_of_four_months_proposes_radiation_then_end_of_right(session):
    p = make_person(session)
    _first_sanction_decided(session, p)
    again = _decide_ready(session, p, D(2026, 6, 1))
    cs.request_ep_opinion(session, again.id, D(2026, 6, 8), source="agent")
    cs.record_ep_opinion(session, again.id, D(2026, 6, 15), "Avis favorable", source="agent")
    cs.decide_sanction(session, again.id, D(2026, 6, 20), kind="suppression", rate_percent=100, duration_months=4,
                       source="agent")
    assert again.radiation_proposed_on == D(2026, 6, 20)
    alert = session.scalar(select(Alert).where(Alert.kind == "sanction_radiation"))
    assert alert.person_id == p.id and "France Travail" in alert.message and alert.severity == "critical"
    assert cs.raise_sanction_alerts(session, D(2026, 10, 19)) == {"sanction_end_of_right": 0}
    assert cs.raise_sanction_alerts(session, D(2026, 10, 20)) == {"sanction_end_of_right": 1}
    assert cs.raise_sanction_alerts(session, D(2026, 10, 21)) == {"sanction_end_of_right": 0}
    assert "sanction.end_of_right" in [e["kind"] for e in cs.timeline(session, p.id)]


# ---- the contract's month ------------------------------------------------------------------------

@pytest.mark.parametrize("code,referent_type", [("MDS-SOUPETARD", "mds"), ("ATI-NORD", "ati"),
                                                ("CCAS-TOULOUSE", "mds"), ("ACTIPRO-TLS-EST", "actipro"),
                                                ("FT-TLS-CENTRE", "pole_emploi")])
def test_contract_due_one_month_after_the_notice_left(session, code, referent_type):
    """For every organisme: the month runs from the day the notice left the outbox, not validation."""
    p = make_person(session)
    o = orient(session, p, code, referent_type, D(2026, 10, 1))
    message = Message(person_id=p.id, orientation_id=o.id, kind="notification", channel="letter", status="queued",
                      send_on=D(2026, 10, 1))
    session.add(message)
    session.flush()
    session.add(Notification(orientation_id=o.id, channel="letter", notified_on=D(2026, 10, 1), message_id=message.id))
    session.flush()
    assert cs.contract_deadline(session, p.id) is None  # the notice has not left: no month yet
    assert cs.overdue_contracts(session, manager(), D(2026, 12, 1)) == []
    message.status, message.sent_at = "sent", dt.datetime(2026, 10, 6, 9, 30)
    session.flush()
    assert cs.contract_deadline(session, p.id) == D(2026, 11, 6)
    assert cs.next_due_dates(session, p.id, D(2026, 10, 20))["contract_due_on"] == "2026-11-06"
    assert cs.overdue_contracts(session, manager(), D(2026, 11, 6)) == []
    assert [r["person_id"] for r in cs.overdue_contracts(session, manager(), D(2026, 11, 7))] == [p.id]
    cw = cs.contract_within(session, as_of=D(2026, 11, 6))
    assert (cw["eligible"], cw["success"]) == (1, 0)
    assert cs.contract_within(session, as_of=D(2026, 11, 5))["eligible"] == 0


def test_new_orientation_after_diagnostic_restarts_the_month(session):
    p = make_person(session)
    orient(session, p, "FT-TLS-CENTRE", "pole_emploi", D(2026, 9, 1), notified_on=D(2026, 9, 2))
    assert cs.contract_deadline(session, p.id) == D(2026, 10, 2)
    cs.record_diagnostic(session, p.id, D(2026, 9, 15), {"health": "strong"}, "cap", False, None)
    orient(session, p, "MDS-SOUPETARD", "mds", D(2026, 9, 20), notified_on=D(2026, 9, 21))
    assert cs.contract_deadline(session, p.id) == D(2026, 10, 21)
    assert cs.overdue_contracts(session, manager(), D(2026, 10, 10)) == []
    assert [r["contract_due_on"] for r in cs.overdue_contracts(session, manager(), D(2026, 10, 22))] == ["2026-10-21"]
    # A contract signed with the former organisme does not answer the new orientation.
    q = make_person(session)
    orient(session, q, "FT-TLS-CENTRE", "pole_emploi", D(2026, 9, 1), notified_on=D(2026, 9, 1))
    cs.record_contract(session, q.id, D(2026, 9, 10), source="france_travail")
    orient(session, q, "MDS-SOUPETARD", "mds", D(2026, 9, 20), notified_on=D(2026, 9, 20))
    assert q.id in [r["person_id"] for r in cs.overdue_contracts(session, manager(), D(2026, 10, 21))]
    cs.record_contract(session, q.id, D(2026, 10, 25), source="agent")
    assert q.id not in [r["person_id"] for r in cs.overdue_contracts(session, manager(), D(2026, 10, 26))]


# ---- reviews of social paths ------------------------------------------------------------------------

def test_twelve_month_review_for_a_housing_reason(session):
    p = make_person(session)
    orient(session, p, "MDS-SOUPETARD", "mds", D(2026, 1, 5), notified_on=D(2026, 1, 7))
    with pytest.raises(cs.CaseValidationError) as err:  # a yes/no is not a legal reason
        cs.record_contract(session, p.id, D(2026, 1, 30), vulnerability=True, source="agent")
    assert "review_reason" in err.value.messages
    with pytest.raises(cs.CaseValidationError):
        cs.record_contract(session, p.id, D(2026, 1, 30), review_reason="astrology", source="agent")
    contract = cs.record_contract(session, p.id, D(2026, 1, 30), review_reason="housing", source="agent")
    assert contract.review_reason == "housing"
    review = session.scalar(select(Review).where(Review.person_id == p.id))
    assert (review.due_on, review.reason) == (D(2027, 1, 30), "housing")
    scheduled = [e for e in cs.timeline(session, p.id) if e["kind"] == "review.scheduled"][0]
    assert "logement" in scheduled["summary"] and scheduled["data"]["reason"] == "housing"


def test_six_month_review_without_reason_and_joint_diagnostic(session):
    p = make_person(session)
    orient(session, p, "MDS-SOUPETARD", "mds", D(2026, 1, 5), notified_on=D(2026, 1, 7))
    cs.record_contract(session, p.id, D(2026, 1, 31), source="agent")
    review = session.scalar(select(Review).where(Review.person_id == p.id))
    assert (review.due_on, review.reason) == (D(2026, 7, 31), None)
    with pytest.raises(cs.CaseValidationError) as err:
        cs.record_review(session, p.id, D(2026, 7, 20), "maintain", source="agent",
                         referent_participant="Assistante sociale")
    assert set(err.value.messages) == {"france_travail_participant"}
    assert "France Travail" in err.value.messages["france_travail_participant"][0]
    # Held jointly; the diagnostic now shows a family reason: the next review is 12 months later.
    held = cs.record_review(session, p.id, D(2026, 7, 20), "maintain", source="agent", next_review_reason="family",
                            **JOINT)
    assert (held.referent_participant, held.france_travail_participant) == (JOINT["referent_participant"],
                                                                             JOINT["france_travail_participant"])
    nxt = session.scalar(select(Review).where(Review.person_id == p.id, Review.held_on.is_(None)))
    assert (nxt.due_on, nxt.reason) == (D(2027, 7, 20), "family")
    # The joint review may lead to a new orientation.
    cs.record_review(session, p.id, D(2027, 7, 1), "reorientation", source="agent",
                     reorientation_reason="Prêt pour un accompagnement vers l'emploi",
                     wanted_referent_type="pole_emploi", **JOINT)
    assert "reorientation.requested" in [e["kind"] for e in cs.timeline(session, p.id)]
    assert session.scalar(select(func.count(Review.id)).where(Review.person_id == p.id)) == 2


# ---- through the API: French messages naming the field ------------------------------------------------

def test_api_refuses_fifty_one_percent_for_a_couple_and_a_review_without_france_travail(rt, client, make_user):
    with rt.session() as s:
        dem = _couple(s)
        orient(s, dem, "MDS-SOUPETARD", "mds", D(2026, 9, 1), notified_on=D(2026, 9, 2))
        cs.record_contract(s, dem.id, D(2026, 9, 20), review_reason="health", source="agent")
        pid = dem.id
    _, manager = make_user("manager")
    base = f"/api/v1/persons/{pid}/sanctions"
    sid = client.post(base, json={"breach_on": "2026-11-02", "breach": "Contrat non respecté"},
                      headers=manager).get_json()["id"]
    client.post(f"{base}/{sid}/observations", json={"observations_on": "2026-11-09", "observations": "—"},
                headers=manager)
    r = client.post(f"{base}/{sid}/decision", json={"decided_on": "2026-11-12", "rate_percent": 51,
                                                    "duration_months": 2}, headers=manager)
    assert r.status_code == 422
    assert "au plus 50 %" in r.get_json()["errors"]["rate_percent"][0]
    r = client.post(f"{base}/{sid}/decision", json={"decided_on": "2026-11-12", "rate_percent": 50,
                                                    "duration_months": 2}, headers=manager)
    assert r.status_code == 200 and (r.get_json()["cap_percent"], r.get_json()["cap_reason"]) == (50, "household_size")
    reviews = client.get(f"/api/v1/persons/{pid}/reviews", headers=manager).get_json()
    assert [(x["due_on"], x["reason"]) for x in reviews] == [("2027-09-20", "health")]
    r = client.post(f"/api/v1/persons/{pid}/reviews", json={"held_on": "2027-09-01", "outcome": "maintain",
                                                            "referent_participant": "AS MDS"}, headers=manager)
    assert r.status_code == 422 and "france_travail_participant" in r.get_json()["errors"]
    r = client.post(f"/api/v1/persons/{pid}/reviews", json={
        "held_on": "2027-09-01", "outcome": "maintain", "referent_participant": "AS MDS",
        "france_travail_participant": "Conseiller FT", "next_review_reason": None}, headers=manager)
    assert r.status_code == 201 and r.get_json()["france_travail_participant"] == "Conseiller FT"
    reviews = client.get(f"/api/v1/persons/{pid}/reviews", headers=manager).get_json()
    assert reviews[-1]["due_on"] == "2028-03-01" and reviews[-1]["reason"] is None  # back to 6 months
