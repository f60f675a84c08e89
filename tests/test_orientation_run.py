"""Issue 4: facts from the database, the orientation run, assignment, capacity, idempotence, deadlines."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cases.models import Alert, CaseEvent, Diagnostic, FranceTravailEvent, Path
from orientation import deadlines as deadline_service
from orientation import reorientations, service
from orientation.facts import build_facts
from orientation.models import Notification, Orientation, ReorientationRequest, RuleSet
from orientation.population import expected_by_referent, insert_population
from orientation.schemas import ExplainSchema, RuleSetSchema, RuleSetVersionSchema
from referents.models import Agent, Structure
from tests.factories import make_person
from tests.rules_helpers import use_rules_v1

AS_OF = dt.date(2026, 11, 20)


def _structure(session, code) -> Structure:
    return session.scalar(select(Structure).where(Structure.code == code))


def _orientations(session, person_id):
    return session.scalars(select(Orientation).where(Orientation.person_id == person_id)
                           .order_by(Orientation.id)).all()


def test_current_summary_from_the_decisions_read_is_the_one_queried(session):
    """The person file takes the current orientation from the decisions it has read to explain them:
    the same latest validated decision (validation day, then id) as the query, among several."""
    p = make_person(session)
    path_id = session.scalar(select(Path.id).where(Path.person_id == p.id))
    assert service.current_orientation_summary(session, p.id, service.history(session, p.id)) is None
    day = dt.date(2026, 10, 1)
    for referent_type, status, validated_on in (("mds", "validated", day + dt.timedelta(days=9)),
                                                ("actipro", "validated", day),  # later id, earlier day
                                                ("ati", "validated", day + dt.timedelta(days=9)),  # same day, later id
                                                ("pole_emploi", "proposed", None)):
        session.add(Orientation(person_id=p.id, path_id=path_id, referent_type=referent_type, origin="agent",
                                status=status, decided_on=day, validated_on=validated_on))
        session.flush()
        queried = service.current_orientation_summary(session, p.id)
        assert service.current_orientation_summary(session, p.id, service.history(session, p.id)) == queried
    assert queried["referent_type"] == "ati"


def test_build_facts_from_the_database(session):
    p = make_person(session, activities=[("SAL", dt.date(2018, 1, 1), dt.date(2025, 6, 30)),
                                         ("ETI", dt.date(2025, 3, 1), AS_OF),
                                         ("CHO", dt.date(2027, 1, 1), None)])  # future: not known yet
    session.add_all([
        FranceTravailEvent(person_id=p.id, nir_hash="x", kind="inscription", event_on=dt.date(2026, 1, 5),
                           ppae_signed_on=dt.date(2026, 1, 20)),
        FranceTravailEvent(person_id=p.id, nir_hash="x", kind="radiation", event_on=dt.date(2026, 6, 1)),
        Diagnostic(person_id=p.id, recorded_on=dt.date(2026, 1, 1), constraints={"health": "strong"}),
        Diagnostic(person_id=p.id, recorded_on=dt.date(2026, 10, 1), constraints={"health": "medium",
                                                                                  "housing": "bogus"},
                   education_level="Master", can_seek_work=True),
    ])
    session.flush()
    f = build_facts(session, [p.id], AS_OF)[p.id]
    assert f["current_activity.code"] == "ETI" and f["current_activity.start_on"] == dt.date(2025, 3, 1)
    assert f["activities.count"] == 2 and f["age"] == 41 and f["household.adults"] == 1
    assert f["ft.registered"] is False  # the latest event is a radiation
    assert f["diagnostic.health"] == "medium" and f["diagnostic.housing"] is None
    assert f["diagnostic.education_level"] == "bac+5" and f["path.clock_start"] == dt.date(2026, 10, 1)
    # the day after DFACT, ETI is no longer current
    assert build_facts(session, [p.id], AS_OF + dt.timedelta(days=1))[p.id]["current_activity.code"] is None
    session.add(FranceTravailEvent(person_id=p.id, nir_hash="x", kind="stock", event_on=dt.date(2026, 9, 1),
                                   ppae_signed_on=dt.date(2026, 9, 2)))
    session.flush()
    f = build_facts(session, [p.id], AS_OF)[p.id]
    assert f["ft.registered"] and f["ft.ppae"] and f["ft.ppae_signed_on"] == dt.date(2026, 9, 2)


def test_run_decides_assigns_explains_and_notifies(session):
    use_rules_v1(session)
    eti = make_person(session, activities=[("ETI", dt.date(2025, 3, 1), None)], email="a@example.org")
    mal = make_person(session, activities=[("MAL", dt.date(2025, 3, 1), None)])
    ssa = make_person(session, activities=[("SSA", dt.date(2025, 3, 1), None)], commune="31395", postal_code=None)
    grad = make_person(session, activities=[("SSA", dt.date(2025, 3, 1), None)])
    session.add(Diagnostic(person_id=grad.id, recorded_on=dt.date(2026, 10, 1), constraints={},
                           education_level="bac+5"))
    unknown = make_person(session)
    outside = make_person(session, activities=[("CHO", dt.date(2026, 1, 1), None)], commune="52121",
                          postal_code="52100")
    not_sdd = make_person(session, sdd=False, activities=[("CHO", dt.date(2026, 1, 1), None)])
    child = make_person(session, role="ENF")
    closed_right = make_person(session, right_state="5")
    session.flush()
    agents = [Agent(structure_id=_structure(session, "ATI-TOULOUSE").id, name=n, capacity=c)
              for n, c in (("A", 10), ("B", 40))]
    session.add_all(agents)
    session.flush()

    result = service.run(session, AS_OF)
    assert result["considered"] == 6
    assert result["decisions"] == {"pole_emploi": 1, "actipro": 2, "ati": 1, "mds": 1, "kiosque": 1}
    assert (result["validated"], result["proposed"], result["unsectorised"], result["kiosque"]) == (1, 3, 1, 1)

    o = _orientations(session, eti.id)[0]
    assert (o.status, o.referent_type, o.rule_id, o.rule_set_version, o.origin) == \
        ("validated", "ati", "SELF_EMPLOYED", 1, "auto")
    assert o.structure_id == _structure(session, "ATI-TOULOUSE").id and o.agent_id == agents[0].id
    assert o.validated_on == AS_OF and o.algorithmic and o.facts["current_activity.code"] == "ETI"
    assert o.explanation.startswith("Travailleur indépendant (ACT=ETI depuis le 2025-03-01) → ATI")
    assert "algorithme" in o.explanation and "SELF_EMPLOYED v1" in o.explanation
    note = session.scalar(select(Notification).where(Notification.orientation_id == o.id))
    assert note.channel == "email" and note.notified_on == AS_OF
    kinds = set(session.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == eti.id)))
    assert {"orientation.validated", "orientation.notified"} <= kinds

    m = _orientations(session, mal.id)[0]
    assert (m.status, m.referent_type, m.structure_id) == ("proposed", "mds", _structure(session, "MDS-RANGUEIL").id)
    s = _orientations(session, ssa.id)[0]  # Muret (31395): sector ActiPro Sud
    assert (s.status, s.structure_id) == ("proposed", _structure(session, "ACTIPRO-SUD").id)
    g = _orientations(session, grad.id)[0]
    assert g.structure_id == _structure(session, "ACTIPRO-DIPLOMES").id and "Dispositif Diplômés" in g.explanation
    k = _orientations(session, unknown.id)[0]
    assert (k.status, k.referent_type, k.mode, k.structure_id) == \
        ("kiosque", "kiosque", "kiosque", _structure(session, "MDS-RANGUEIL").id)
    u = _orientations(session, outside.id)[0]
    assert (u.status, u.referent_type, u.structure_id) == ("unsectorised", "pole_emploi", None)
    assert "hors sectorisation" in u.explanation
    assert session.scalar(select(Alert).where(Alert.kind == "orientation.unsectorised")).person_id == outside.id
    for p in (not_sdd, child, closed_right):
        assert _orientations(session, p.id) == []
    assert service.current_orientation_summary(session, eti.id) == {
        "referent_type": "ati", "rule": "SELF_EMPLOYED", "status": "validated", "origin": "auto",
        "decided_on": "2026-11-20", "structure": "ATI-TOULOUSE"}
    assert service.current_orientation_summary(session, mal.id) is None
    # the same summary from the decisions the person file has already read (service.history)
    for p in (eti, mal, ssa, unknown, not_sdd):
        assert service.current_orientation_summary(session, p.id, service.history(session, p.id)) == \
            service.current_orientation_summary(session, p.id)

    # running twice changes nothing
    before = session.scalar(select(func.count(Orientation.id))), session.scalar(select(func.count(CaseEvent.id)))
    again = service.run(session, AS_OF)
    assert again["decisions"] == {"pole_emploi": 0, "actipro": 0, "ati": 0, "mds": 0, "kiosque": 0}
    assert again["unchanged"] == 5 and again["considered"] == 5
    assert (session.scalar(select(func.count(Orientation.id))),
            session.scalar(select(func.count(CaseEvent.id)))) == before
    assert session.scalar(select(func.count(Alert.id))) == 1

    # facts change: the pending kiosque decision is superseded by the new rule's decision
    session.add(FranceTravailEvent(person_id=unknown.id, nir_hash="y", kind="inscription",
                                   event_on=dt.date(2026, 11, 1), ppae_signed_on=dt.date(2026, 11, 10)))
    session.flush()
    third = service.run(session, AS_OF)
    assert third["superseded"] == 1 and third["decisions"]["pole_emploi"] == 1
    rows = _orientations(session, unknown.id)
    assert [r.status for r in rows] == ["superseded", "validated"] and rows[1].supersedes_id == rows[0].id


def test_capacity_three_places_five_candidates(session):
    ati = _structure(session, "ATI-TOULOUSE")
    ati.capacity = 3
    people = [make_person(session, activities=[("ETI", dt.date(2025, 1, 1), None)], clock_start=dt.date(2026, 10, i))
              for i in range(1, 6)]
    session.flush()
    result = service.run(session, AS_OF)
    assert (result["validated"], result["awaiting_capacity"]) == (3, 2)
    statuses = [_orientations(session, p.id)[0].status for p in people]
    assert statuses.count("validated") == 3 and statuses.count("awaiting_capacity") == 2
    waiting = [p for p in people if _orientations(session, p.id)[0].status == "awaiting_capacity"]
    assert session.scalar(select(func.count(Alert.id)).where(Alert.kind == "orientation.awaiting_capacity")) == 2
    q = service.queue(session, status="awaiting_capacity")
    assert q["total"] == 2 and {i["person_id"] for i in q["items"]} == {p.id for p in waiting}
    # nothing freed: a second run changes nothing
    assert service.run(session, AS_OF)["unchanged"] == 2
    # a place frees up (one path closes): the oldest waiting decision is validated in place
    first = next(p for p in people if _orientations(session, p.id)[0].status == "validated")
    path = session.scalar(select(Path).where(Path.person_id == first.id))
    path.closed_on, path.close_reason = dt.date(2026, 11, 25), "ECH"
    session.flush()
    later = service.run(session, dt.date(2026, 11, 27))
    assert later["ended"] == 1 and later["promoted"] == 1 and later["validated"] == 1
    promoted = _orientations(session, waiting[0].id)[0]
    assert promoted.status == "validated" and promoted.validated_on == dt.date(2026, 11, 27)
    assert _orientations(session, waiting[1].id)[0].status == "awaiting_capacity"
    ended = _orientations(session, first.id)[0]
    assert (ended.status, ended.ended_on, ended.end_reason) == ("ended", dt.date(2026, 11, 25), "ECH")


def test_generated_population_end_to_end(session):
    use_rules_v1(session)
    expected = insert_population(session, 400, AS_OF, seed=7, unsectorised_share=0.05)
    result = service.run(session, AS_OF)
    assert result["considered"] == 400
    assert result["decisions"] == {k: expected_by_referent(expected).get(k, 0)
                                   for k in ("pole_emploi", "actipro", "ati", "mds", "kiosque")}
    by_rule = dict(session.execute(select(Orientation.rule_id, func.count(Orientation.id))
                                   .group_by(Orientation.rule_id)).all())
    assert by_rule == dict(expected)
    assert result["unsectorised"] == session.scalar(select(func.count(Orientation.id))
                                                    .where(Orientation.status == "unsectorised")) > 0
    n_orient = session.scalar(select(func.count(Orientation.id)))
    again = service.run(session, AS_OF)
    assert sum(again["decisions"].values()) == 0 and session.scalar(select(func.count(Orientation.id))) == n_orient

    # households closing between two runs end the orientations (validated and pending)
    validated = session.execute(select(Orientation.person_id, Orientation.path_id)
                                .where(Orientation.status == "validated").limit(3)).all()
    pending = session.execute(select(Orientation.person_id, Orientation.path_id)
                              .where(Orientation.status == "proposed").limit(2)).all()
    from cases.models import Household, Person

    for pid, path_id in [*validated, *pending]:
        person = session.get(Person, pid)
        hh = session.get(Household, person.household_id)
        hh.right_state, hh.closure_on, hh.closure_reason = "5", dt.date(2026, 11, 30), "RFD"
        path = session.get(Path, path_id)
        path.closed_on, path.close_reason = dt.date(2026, 11, 30), "RFD"
    session.flush()
    third = service.run(session, dt.date(2026, 12, 2))
    assert third["ended"] == 5 and sum(third["decisions"].values()) == 0
    for pid, _ in [*validated, *pending]:
        o = _orientations(session, pid)[-1]
        assert (o.status, o.ended_on, o.end_reason) == ("ended", dt.date(2026, 11, 30), "RFD")
    assert session.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.kind == "orientation.ended")) == 3


def test_household_closed_without_path_closure_ends_orientation(session):
    p = make_person(session, activities=[("CHO", dt.date(2026, 1, 1), None)])
    service.run(session, AS_OF)
    p.household.right_state, p.household.closure_on, p.household.closure_reason = "6", dt.date(2026, 11, 21), "ECH"
    session.flush()
    r = service.run(session, dt.date(2026, 11, 22))
    assert r["ended"] == 1 and r["considered"] == 0
    o = _orientations(session, p.id)[0]
    assert (o.status, o.end_reason) == ("ended", "ECH")


def test_validate_override_and_record_orientation(session):
    use_rules_v1(session)
    a = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])
    b = make_person(session, activities=[("MAL", dt.date(2025, 1, 1), None)])
    c = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)], email="c@example.org")
    service.run(session, AS_OF)
    pa, pb, pc = (_orientations(session, p.id)[0] for p in (a, b, c))
    # batch validation of a filtered queue (ActiPro proposals)
    ids = service.queue_ids(session, referent_type="actipro")
    assert set(ids) == {pa.id, pc.id}
    out = service.validate(session, ids + [999999], user_id=None, as_of=dt.date(2026, 11, 23))
    assert sorted(out["validated"]) == sorted([pa.id, pc.id])
    assert {s["id"] for s in out["skipped"]} == {999999}
    assert pa.status == "validated" and pa.validated_on == dt.date(2026, 11, 23)
    assert session.scalar(select(Notification.channel).where(Notification.orientation_id == pc.id)) == "email"
    again = service.validate(session, [pa.id], user_id=None, as_of=AS_OF)
    assert again["skipped"][0]["reason"].startswith("statut validated")

    with pytest.raises(service.OrientationError, match="motif"):
        service.override(session, pb.id, None, "pole_emploi", "  ", AS_OF)
    new = service.override(session, pb.id, None, "pole_emploi", "La personne cherche un emploi", AS_OF)
    assert pb.status == "overridden" and new.status == "validated" and new.supersedes_id == pb.id
    assert new.origin == "agent" and not new.algorithmic and new.override_reason == "La personne cherche un emploi"
    assert new.structure_id == _structure(session, "FT-TLS-RANGUEIL").id
    assert "n'a pas été établie par un algorithme" in new.explanation
    assert session.scalar(select(CaseEvent).where(CaseEvent.kind == "orientation.overridden")).person_id == b.id

    # kiosque outcome recorded by the kiosque: ends the current one? no current → just validated
    d = make_person(session)
    service.run(session, AS_OF)
    kq = _orientations(session, d.id)[0]
    assert kq.status == "kiosque"
    chosen = service.record_orientation(session, d.id, "actipro", origin="kiosque", decided_on=dt.date(2026, 11, 24),
                                        reason="Choix au kiosque")
    assert kq.status == "superseded" and chosen.status == "validated" and chosen.origin == "kiosque"
    assert chosen.structure_id == _structure(session, "ACTIPRO-TLS-SUD").id and chosen.agent_id is None
    # a later decision ends the current validated one
    again = service.record_orientation(session, d.id, "mds", origin="agent", decided_on=dt.date(2026, 11, 26))
    assert (chosen.status, chosen.end_reason, again.status) == ("ended", "reorientation", "validated")
    # MDS default proposal
    e = make_person(session, commune="52121", postal_code="52100")
    prop = service.record_orientation(session, e.id, "mds", origin="default_mds", decided_on=AS_OF, status="proposed")
    assert prop.status == "unsectorised" and prop.structure_id is None
    with pytest.raises(service.OrientationError):
        service.record_orientation(session, e.id, "prefecture", origin="agent", decided_on=AS_OF)


def test_reorientation_request_accept_and_refuse(session):
    p = make_person(session, activities=[("CHO", dt.date(2026, 1, 1), None)])
    service.run(session, AS_OF)
    current = _orientations(session, p.id)[0]
    req = reorientations.request_reorientation(session, p.id, None, "Problème de santé découvert", AS_OF,
                                        wanted_referent_type="mds")
    assert req.orientation_id == current.id and req.status == "pending"
    with pytest.raises(service.OrientationError, match="déjà en attente"):
        reorientations.request_reorientation(session, p.id, None, "encore", AS_OF)
    reorientations.decide_reorientation(session, req.id, None, True, dt.date(2026, 11, 25))
    new = session.get(Orientation, req.new_orientation_id)
    assert (req.status, new.status, new.origin, new.referent_type) == ("accepted", "validated", "reorientation", "mds")
    assert (current.status, current.end_reason) == ("ended", "reorientation")
    req2 = reorientations.request_reorientation(session, p.id, None, "Retour à l'emploi", AS_OF)
    with pytest.raises(service.OrientationError, match="motif du refus"):
        reorientations.decide_reorientation(session, req2.id, None, False, AS_OF)
    reorientations.decide_reorientation(session, req2.id, None, False, AS_OF, reason="Pas de changement de situation")
    assert req2.status == "refused" and new.status == "validated"
    assert session.scalar(select(func.count(ReorientationRequest.id))) == 2
    kinds = list(session.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == p.id)))
    assert "orientation.reorientation_requested" in kinds and "orientation.reorientation_refused" in kinds


def test_deadlines_alerts_and_mds_default(session):
    from kiosque.models import Invitation, KiosqueSession

    fresh = make_person(session, clock_start=AS_OF - dt.timedelta(days=20))
    d21 = make_person(session, clock_start=AS_OF - dt.timedelta(days=21))
    d35 = make_person(session, clock_start=AS_OF - dt.timedelta(days=35))
    late = make_person(session, clock_start=AS_OF - dt.timedelta(days=42))
    oriented = make_person(session, clock_start=AS_OF - dt.timedelta(days=50),
                           activities=[("CHO", dt.date(2026, 1, 1), None)])
    service.run(session, AS_OF)  # oriented → validated; the others → kiosque
    mds = _structure(session, "MDS-RANGUEIL")
    ks = KiosqueSession(mds_id=mds.id, starts_at=dt.datetime(2026, 11, 10, 9, 30), place="MDS")
    session.add(ks)
    session.flush()
    session.add(Invitation(person_id=d35.id, session_id=ks.id, invited_on=dt.date(2026, 11, 1), status="absent"))
    session.add(Invitation(person_id=fresh.id, session_id=ks.id, invited_on=dt.date(2026, 11, 1),
                           phoning_outcome="wrong_number"))
    session.flush()
    items = {i["person_id"]: i for i in deadline_service.deadlines(session, AS_OF)}
    assert set(items) == {fresh.id, d21.id, d35.id, late.id}  # `oriented` is oriented: no deadline
    assert oriented.id not in items
    assert [items[p.id]["level"] for p in (fresh, d21, d35, late)] == ["ok", "d21", "d35", "past_limit"]
    assert items[late.id]["legal_on"] == AS_OF and items[d21.id]["target_on"] == AS_OF + dt.timedelta(days=9)
    r = deadline_service.check_deadlines(session, AS_OF)
    assert (r["d21"], r["d35"], r["past_limit"], r["default_mds"]) == (3, 2, 1, 1)
    keys = set(session.scalars(select(Alert.key)))
    path = {p.id: session.scalar(select(Path.id).where(Path.person_id == p.id)) for p in (d21, d35, late)}
    assert f"orientation.past_limit:{path[late.id]}" in keys and f"orientation.d21:{path[d21.id]}" in keys
    default = _orientations(session, d35.id)[-1]
    assert (default.origin, default.status, default.referent_type) == ("default_mds", "proposed", "mds")
    assert not default.algorithmic
    # idempotent: no new alert, no second default
    r2 = deadline_service.check_deadlines(session, AS_OF)
    assert r2["alerts_raised"] == 0 and r2["default_mds"] == 0
    # the run leaves the MDS default alone
    assert service.run(session, AS_OF)["kept"] == 1


def test_rule_sets_are_versioned(session):
    use_rules_v1(session)
    row, spec = service.active_rule_set(session)
    assert row.version == 1 and row.active and spec.rules[0].id == "FT_ACCOMPANIED"
    same = service.load_rules_text(session, row.source_text)
    assert same.id == row.id  # identical rules: no new version
    doc = RuleSetSchema().dump(row)
    doc["rules"] = [r for r in doc["rules"] if r["id"] != "FT_ACCOMPANIED"]
    new = service.load_rules_document(session, {"name": "sans FT", "rules": doc["rules"],
                                                 "fallback": doc["fallback"]}, base_version=1)
    assert new.version == 2 and new.active and not row.active
    with pytest.raises(service.OrientationError, match="changé entre-temps"):
        service.load_rules_document(session, {"name": "x", "rules": doc["rules"], "fallback": doc["fallback"]},
                                    base_version=1)
    assert [v["version"] for v in RuleSetVersionSchema(many=True).dump(service.rule_set_versions(session))] == [1, 2]
    p = make_person(session, activities=[("CHO", dt.date(2026, 1, 1), None)])
    service.run(session, AS_OF)
    o = _orientations(session, p.id)[0]
    assert o.rule_set_version == 2 and "v2" in o.explanation
    exp = ExplainSchema().dump(service.explain(session, p.id, AS_OF))
    assert exp["current"]["rule"] == "JOB_READY" and exp["rule_label"] == "Disponible pour l'emploi"
    assert exp["rules_today"]["rule"] == "JOB_READY"
    assert session.scalar(select(func.count(RuleSet.id))) == 2


def test_record_orientation_respects_capacity_and_agents(session):
    lot = _structure(session, "ACTIPRO-TLS-SUD")
    lot.capacity = 1
    agents = [Agent(structure_id=lot.id, name="X", capacity=2), Agent(structure_id=lot.id, name="Y", capacity=None)]
    session.add_all(agents)
    first, second = make_person(session), make_person(session)
    session.flush()
    a = service.record_orientation(session, first.id, "actipro", origin="kiosque", decided_on=AS_OF)
    assert (a.status, a.structure_id, a.agent_id) == ("validated", lot.id, agents[0].id)
    b = service.record_orientation(session, second.id, "actipro", origin="kiosque", decided_on=AS_OF)
    assert (b.status, b.agent_id, b.validated_on) == ("awaiting_capacity", None, None)
    assert session.scalar(select(Alert.key).where(Alert.person_id == second.id)).startswith(
        "orientation.awaiting_capacity:")
    # the place frees up: the run validates the waiting decision made at the kiosque
    a.status, a.ended_on = "ended", AS_OF
    session.flush()
    assert service.validate(session, [b.id], None, AS_OF)["skipped"]  # only a proposal is validated by hand
    result = service.run(session, dt.date(2026, 11, 21))
    assert result["promoted"] == 1 and result["decisions"]["actipro"] == 0
    session.refresh(b)
    assert (b.status, b.origin, b.validated_on, b.agent_id) == ("validated", "kiosque", dt.date(2026, 11, 21),
                                                                agents[0].id)
    assert session.scalar(select(Alert.resolved_on).where(Alert.person_id == second.id)) == dt.date(2026, 11, 21)
    assert session.scalar(select(func.count(Notification.id)).where(Notification.orientation_id == b.id)) == 1


def test_daily_jobs_run_orientation_and_deadlines(rt):
    from config.scheduler import collect_jobs, run_job
    from orientation.jobs import JOBS

    with rt.session() as s:
        make_person(s, activities=[("CHO", dt.date(2026, 1, 1), None)])
        make_person(s, clock_start=AS_OF - dt.timedelta(days=40))
    assert {"orientation.run", "orientation.deadlines"} <= {j.id for j in collect_jobs()}
    jobs = {j.id: j for j in JOBS}
    result = run_job(rt, jobs["orientation.run"], AS_OF)
    assert result["considered"] == 2 and result["validated"] == 1 and result["kiosque"] == 1
    alerts = run_job(rt, jobs["orientation.deadlines"], AS_OF)
    assert (alerts["to_orient"], alerts["d35"], alerts["past_limit"]) == (1, 1, 0)


# --- end to end on a generated CAF flow (generator and importer of the flow issue) --------------------

_SELF = {"ETI", "EXP", "MAR", "CJT"}
_STUDY = {"ETU", "ETS", "EBO", "SFP", "APP", "PIL", "SNR"}
_HEALTH = {"MAL", "MLD", "INV", "INP", "HAN", "AAP", "CAT", "SAV", "INF"}
_SEEK = {"CHO", "CHR", "CNI", "ABA", "ASS", "AFD", "AIN", "ANP", "ASP", "ANI", "CHA", "CPL", "TSA", "INT"}


def _oracle(person, household, acts, as_of):
    """Rule set v1 written out by hand (no France Travail list, no diagnostic in a CAF flow)."""
    known = [a for a in acts if a.start_on is None or a.start_on <= as_of]
    current = [a for a in known if a.end_on is None or a.end_on >= as_of]
    code = max(current, key=lambda a: a.start_on or dt.date.min).code if current else None
    if code in _SELF or code in _STUDY:
        return "ati"
    if household.no_fixed_address or code in _HEALTH:
        return "mds"
    if code in _SEEK or any(a.code == "SAL" and a.end_on and dt.date(2024, 11, 20) <= a.end_on <= as_of
                            for a in known):
        return "pole_emploi"
    return "actipro" if known else "kiosque"


def test_generated_flow_end_to_end(rt, tmp_path):
    from collections import Counter

    with rt.session() as s:
        use_rules_v1(s)

    from cases.models import Activity, Household, Person
    from imports.generator import generate_monthly
    from imports.service import import_file

    flow = tmp_path / "RSABEM_202610.xml"
    generate_monthly(flow, households=150, seed=4, month="2026-10")
    assert import_file(rt, flow)["status"] == "imported"
    with rt.session() as s:
        expected = Counter()
        for person, household in s.execute(
                select(Person, Household).join(Household, Household.id == Person.household_id)
                .join(Path, (Path.person_id == Person.id) & Path.closed_on.is_(None))
                .where(Person.sdd.is_(True), Person.role.in_(("DEM", "CJT")),
                       Household.right_state.in_(("2", "3", "4")))):
            acts = s.scalars(select(Activity).where(Activity.person_id == person.id)).all()
            expected[_oracle(person, household, acts, AS_OF)] += 1
        result = service.run(s, AS_OF)
    assert sum(expected.values()) == result["considered"] > 100
    assert result["decisions"] == {k: expected.get(k, 0) for k in ("pole_emploi", "actipro", "ati", "mds", "kiosque")}
    with rt.session() as s:
        again = service.run(s, AS_OF)
        assert sum(again["decisions"].values()) == 0 and again["unchanged"] == result["considered"] - \
            result["validated"]
