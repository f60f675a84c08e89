"""Indicators on hand-built datasets: every expected figure is computed by hand below (issue 5)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from cases.models import Appointment, Contract, Exit, Path
from orientation import outcomes
from orientation.models import Orientation
from referents.models import Structure
from reports import indicators as ind
from reports import service
from reports.indicators import ReportFilter
from tests.factories import make_person

AS_OF = dt.date(2026, 11, 20)
D = dt.date


def orient(session, person, validated_on, *, decided_on=None, referent_type="mds", origin="auto",
           status="validated", rule_id="R1", structure_id=None):
    path = session.scalar(select(Path).where(Path.person_id == person.id))
    o = Orientation(person_id=person.id, path_id=path.id, referent_type=referent_type, origin=origin,
                    status=status, rule_id=rule_id, decided_on=decided_on or validated_on or AS_OF,
                    validated_on=validated_on, structure_id=structure_id)
    session.add(o)
    session.flush()
    # The row bypasses orientation.service: reconcile the paths' outcome as the nightly job would.
    outcomes.refresh_path_outcomes(session)
    return o


def person(session, start, **kw):
    """A person whose DTDEMRSA is 10 days before the legal clock start."""
    return make_person(session, clock_start=start, request_date=start - dt.timedelta(days=10), **kw)


@pytest.fixture
def dataset(session):
    """Legal delays of the oriented: 5, 10, 10 (a tie), 30, 42, 100; demande delays are +10 days.

    A..F start 2026-06-01; G starts 2026-11-01 (19 days old), H 2026-10-15 (36 days old);
    I started before the period; J is closed before any decision; K is no longer SDD."""
    p = {}
    june = D(2026, 6, 1)
    p["A"] = person(session, june)
    orient(session, p["A"], D(2026, 6, 11), status="superseded", referent_type="pole_emploi")
    orient(session, p["A"], D(2026, 8, 1), status="validated", referent_type="mds")  # not the first
    p["B"] = person(session, june)
    orient(session, p["B"], None, decided_on=D(2026, 6, 5), status="refused", referent_type="ati")  # never validated
    orient(session, p["B"], D(2026, 6, 11), decided_on=D(2026, 6, 5), referent_type="pole_emploi", origin="agent")
    p["C"] = person(session, june)
    orient(session, p["C"], D(2026, 7, 1), referent_type="actipro", status="ended")
    p["D"] = person(session, june)
    orient(session, p["D"], D(2026, 7, 13), referent_type="actipro", origin="kiosque", rule_id=None)
    p["E"] = person(session, june)
    orient(session, p["E"], D(2026, 9, 9), referent_type="mds", origin="default_mds")
    p["F"] = person(session, june)
    orient(session, p["F"], D(2026, 12, 1))  # validated after the as-of date: not oriented yet
    p["G"] = person(session, D(2026, 11, 1))
    p["H"] = person(session, D(2026, 10, 15))
    orient(session, p["H"], D(2026, 10, 20), referent_type="mds")
    p["I"] = person(session, D(2025, 5, 1))
    orient(session, p["I"], D(2025, 5, 3))
    p["J"] = person(session, D(2026, 11, 18))
    session.query(Path).filter(Path.person_id == p["J"].id).update({"closed_on": D(2026, 11, 19)})
    p["K"] = person(session, D(2026, 11, 10), sdd=False)
    session.flush()
    return p


def test_delays_by_hand(session, dataset):
    f = ReportFilter(as_of=AS_OF, start=D(2026, 1, 1), end=D(2026, 12, 31))
    report = service.delays(session, f, service.BREAKDOWNS)
    legal = report["clocks"]["legal"]
    # cohort A..H, K (I is before the period; J, closed without orientation before D+42, is shown
    # apart, not as a failure: issue 19); oriented: A B C D E H
    assert legal["cohort_size"] == 9 and legal["oriented"] == 6
    assert legal["closed_before_legal_delay"] == 1
    assert legal["mean_days"] == round(197 / 6, 1) == 32.8
    # sorted 5 10 10 30 42 100: median rank 2.5 → (10+30)/2; p90 rank 4.5 → 42 + .5 × 58
    assert legal["median_days"] == 20.0 and legal["p90_days"] == 71.0
    # 30 days: started on or before 2026-10-21 → A..F + H = 7; within 30: A B C H
    assert legal["denominators"] == {"30": 7, "42": 6, "90": 6}
    assert legal["share_within_30"] == round(4 / 7, 4)
    assert legal["share_within_42"] == round(4 / 6, 4)  # A B C D; F never oriented = failure
    assert legal["share_within_90"] == round(4 / 6, 4)  # E took 100 days
    # backlog: F (172 days) and G (19 days); J closed, K not SDD
    assert legal["backlog"] == {"0-14": 0, "15-29": 1, "30-41": 0, "42-89": 0, "90+": 1}

    demande = report["clocks"]["demande"]
    assert demande["cohort_size"] == 9 and demande["oriented"] == 6
    assert demande["closed_before_legal_delay"] == 1
    assert demande["mean_days"] == round(257 / 6, 1)
    assert demande["median_days"] == 30.0 and demande["p90_days"] == 81.0
    # request on or before 10-21: A..F, H (10-05) → 7; within 30: H(15) A(20) B(20)
    assert demande["share_within_30"] == round(3 / 7, 4)
    # on or before 10-09: A..F, H → 7; within 42: H A B C(40)
    assert demande["share_within_42"] == round(4 / 7, 4)
    assert demande["share_within_90"] == round(4 / 6, 4)
    # G's request was 29 days before the as-of date, F's 182
    assert demande["backlog"] == {"0-14": 0, "15-29": 1, "30-41": 0, "42-89": 0, "90+": 1}

    by_rt = {r["key"]: r for r in legal["by_referent_type"]}
    assert by_rt["pole_emploi"]["oriented"] == 2 and by_rt["pole_emploi"]["median_days"] == 10.0
    assert by_rt["pole_emploi"]["p90_days"] == 10.0
    assert by_rt["actipro"]["median_days"] == 36.0 and by_rt["actipro"]["p90_days"] == 40.8
    assert by_rt["mds"]["mean_days"] == 52.5 and by_rt["mds"]["p90_days"] == 90.5
    assert by_rt[None]["cohort_size"] == 3 and by_rt[None]["oriented"] == 0
    assert by_rt[None]["median_days"] is None and by_rt[None]["label"] == "Non orienté"
    by_origin = {r["key"]: r["oriented"] for r in legal["by_origin"]}
    assert by_origin == {"auto": 3, "agent": 1, "kiosque": 1, "default_mds": 1, None: 0}
    by_rule = {r["key"]: r["cohort_size"] for r in legal["by_rule"]}
    assert by_rule["R1"] == 5 and by_rule[None] == 4  # D has no rule, plus the three not oriented (J apart)
    months = {r["key"]: r for r in legal["by_month"]}
    assert len(legal["by_month"]) == 11 and months["2026-06"]["cohort_size"] == 6
    # June: A..F → 10 10 30 42 100 and F never oriented: median rank 2 → 30; p90 rank 3.6 → 42 + .6 × 58
    assert months["2026-06"]["median_days"] == 30.0 and months["2026-06"]["p90_days"] == 76.8
    assert months["2026-03"]["cohort_size"] == 0 and months["2026-03"]["median_days"] is None
    mds_total = sum(r["cohort_size"] for r in legal["by_mds"])
    assert mds_total == 9


def test_empty_cohort_gives_nulls(session, dataset):
    f = ReportFilter(as_of=AS_OF, start=D(2024, 1, 1), end=D(2024, 12, 31))
    legal = service.delays(session, f)["clocks"]["legal"]
    assert legal["cohort_size"] == 0 and legal["oriented"] == 0
    for key in ("mean_days", "median_days", "p90_days", "share_within_30", "share_within_42", "share_within_90"):
        assert legal[key] is None, key
    # the backlog is a stock on the as-of date, not a cohort figure
    assert sum(legal["backlog"].values()) == 2


def test_cohort_too_young_for_thresholds(session):
    a = person(session, D(2026, 11, 1))
    orient(session, a, D(2026, 11, 4))
    b = person(session, D(2026, 10, 10))  # 41 days old: judged at 30, not at 42
    orient(session, b, D(2026, 11, 15))  # 36 days: a failure at 30
    legal = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 10, 1)))["clocks"]["legal"]
    assert legal["cohort_size"] == 2 and legal["median_days"] == 19.5 and legal["p90_days"] == 32.7
    assert legal["share_within_30"] == 0.0 and legal["share_within_42"] is None
    assert legal["share_within_90"] is None


def test_single_value_percentiles_and_default_period(session):
    a = person(session, D(2025, 11, 30))  # before the default period (2025-12-01 → as-of)
    orient(session, a, D(2025, 12, 2))
    b = person(session, D(2025, 12, 1))
    orient(session, b, D(2025, 12, 8))
    report = service.delays(session, ReportFilter(as_of=AS_OF))
    assert report["period"] == {"from": "2025-12-01", "to": "2026-11-20"}
    legal = report["clocks"]["legal"]
    assert legal["cohort_size"] == 1 and legal["median_days"] == 7.0 and legal["p90_days"] == 7.0
    assert legal["mean_days"] == 7.0 and legal["share_within_30"] == 1.0


def test_percentiles_match_postgresql_percentile_cont(session, dataset):
    """The portable SQL gives exactly PostgreSQL's percentile_cont (only checkable on PostgreSQL)."""
    f = ReportFilter(as_of=AS_OF, start=D(2026, 1, 1))
    legal = service.delays(session, f)["clocks"]["legal"]
    if session.get_bind().dialect.name != "postgresql":
        import statistics

        assert legal["median_days"] == statistics.median([5, 10, 10, 30, 42, 100])
        return
    row = session.execute(text(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY o.validated_on - p.clock_start), "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY o.validated_on - p.clock_start) "
        "FROM path p JOIN orientation o ON o.path_id = p.id "
        "WHERE p.clock_start >= '2026-01-01' AND o.validated_on <= '2026-11-20' "
        "AND o.id = (SELECT MIN(o2.id) FROM orientation o2 WHERE o2.path_id = p.id "
        "AND o2.validated_on IS NOT NULL AND o2.validated_on <= '2026-11-20')")).one()
    assert (legal["median_days"], legal["p90_days"]) == (round(row[0], 1), round(row[1], 1))


def test_territory_mds_filters_and_person_scope(session, dataset, make_user):
    all_rows = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    mds_rows = all_rows["clocks"]["legal"]["by_mds"]
    assert mds_rows and mds_rows[0]["key"]  # keys are structure codes
    mds = session.scalar(select(Structure).where(Structure.code == mds_rows[0]["key"]))
    only = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1), mds_id=mds.id))
    assert only["clocks"]["legal"]["cohort_size"] == mds_rows[0]["cohort_size"]
    other = session.scalar(select(Structure).where(Structure.kind == "mds", Structure.id != mds.id))
    none = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1), mds_id=other.id))
    assert none["clocks"]["legal"]["cohort_size"] == 0
    # a provider sees only persons currently oriented to its structure
    actipro = session.scalar(select(Structure).where(Structure.kind == "actipro"))
    session.execute(Orientation.__table__.update().where(Orientation.person_id == dataset["C"].id)
                    .values(structure_id=actipro.id, status="validated"))
    session.commit()
    user, _ = make_user("provider", structure_code=actipro.code)
    scoped = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1), user=user))
    assert scoped["clocks"]["legal"]["cohort_size"] == 1 and scoped["clocks"]["legal"]["median_days"] == 30.0


def test_after_orientation_indicators(session, dataset):
    p = dataset
    # B decided 2026-06-11: first appointment honoured on 06-20 (9 days) → success
    session.add(Appointment(person_id=p["B"].id, scheduled_at=dt.datetime(2026, 6, 20, 10), kind="first",
                            status="honoured"))
    # C decided 07-01: honoured but 20 days later → failure; D: no-show in time → failure
    session.add(Appointment(person_id=p["C"].id, scheduled_at=dt.datetime(2026, 7, 21, 10), kind="first",
                            status="honoured"))
    session.add(Appointment(person_id=p["D"].id, scheduled_at=dt.datetime(2026, 7, 14, 10), kind="first",
                            status="no_show"))
    session.add(Contract(person_id=p["A"].id, signed_on=D(2026, 7, 11), status="signed"))  # 30 days: in
    session.add(Contract(person_id=p["E"].id, signed_on=D(2026, 10, 10), status="signed"))  # 31 days: out
    actipro = session.scalar(select(Structure).where(Structure.kind == "actipro"))
    session.add(Exit(person_id=p["C"].id, structure_id=actipro.id, exit_on=D(2026, 9, 1), reason="employment_permanent",
                     positive=True, source="provider"))
    session.add(Exit(person_id=p["D"].id, structure_id=actipro.id, exit_on=D(2026, 9, 2), reason="transfer",
                     positive=False, source="provider"))
    session.flush()
    f = ReportFilter(as_of=AS_OF, start=D(2026, 1, 1))
    after = service.after_orientation(session, f)
    # reused from cases.service (docs/cases.md); decisions in the period at least 15 days old:
    # A B C D E H (I is 2025) → 6; plan pauvreté B4 counts appointments FIXED within 15 days: B (honoured)
    # and D (no-show) → 2 (issue 19); attendance among them: B of B, D → 1 of 2
    assert after["first_appointment_within_15"] == {
        "denominator": 6, "numerator": 2, "share": round(2 / 6, 4), "days": 15,
        "attendance": {"denominator": 2, "numerator": 1, "share": 0.5}}
    # Mean delays: appointments B 9, C 20, D 1 days → 10.0 over 3; contracts A 30, E 31 → 30.5 over 2
    assert after["mean_delays"] == {
        "orientation_to_first_appointment": {"mean_days": 10.0, "denominator": 3},
        "orientation_to_contract": {"mean_days": 30.5, "denominator": 2}}
    assert after["contract_within_1_month"]["numerator"] == 1
    assert after["contract_within_1_month"]["denominator"] == 6
    exits = {r["key"]: r for r in after["positive_exits_by_structure"]}
    assert exits[actipro.code]["exits"] == 2 and exits[actipro.code]["share_positive"] == 0.5
    # SDD with an open path: A..I (J closed, K not SDD); seniority from DTDEMRSA
    seniority = {r["key"]: r for r in after["oriented_by_seniority"]}
    # < 6 months (≤ 182 days): A..F (requests of 2026-05-22: 182 days), G, H → 8, oriented A..E, H → 6
    assert seniority["<6m"] == {"key": "<6m", "sdd": 8, "oriented": 6, "share_oriented": 0.75}
    assert seniority["6-12m"] == {"key": "6-12m", "sdd": 0, "oriented": 0, "share_oriented": None}
    assert seniority[">=1y"] == {"key": ">=1y", "sdd": 1, "oriented": 1, "share_oriented": 1.0}


def test_persons_behind_numbers(session, dataset):
    f = ReportFilter(as_of=AS_OF, start=D(2026, 1, 1))
    backlog = ind.persons_behind(session, f, "backlog")
    assert {r["person_id"] for r in backlog} == {dataset["F"].id, dataset["G"].id}
    assert backlog[0]["person_id"] == dataset["F"].id  # oldest first
    band = ind.persons_behind(session, f, "backlog", band="15-29")
    assert [r["person_id"] for r in band] == [dataset["G"].id]
    late = {r["person_id"] for r in ind.persons_behind(session, f, "late")}
    assert late == {dataset["E"].id, dataset["F"].id}
    with pytest.raises(ValueError):
        ind.persons_behind(session, f, "everyone")


def test_national_reference_is_data():
    rows = ind.national_reference()
    drees = {r["year"]: r["value"] for r in rows if r["indicator"] == "drees_delay_days" and r["scope"] == "France"}
    assert drees == {"2017": 94.0, "2018": 95.0, "2019": 95.0, "2023": 79.0}


def test_first_validated_decision_ties_take_the_lowest_id(session):
    """Two decisions validated the same day on one path: the first recorded one is the first."""
    a = person(session, D(2026, 9, 1))
    orient(session, a, D(2026, 9, 21), referent_type="ati", origin="agent")
    orient(session, a, D(2026, 9, 21), referent_type="pole_emploi", origin="auto")
    report = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 9, 1)), service.BREAKDOWNS)
    legal = report["clocks"]["legal"]
    assert legal["median_days"] == 20.0
    assert [r["key"] for r in legal["by_referent_type"]] == ["ati"]
    assert [r["key"] for r in legal["by_origin"]] == ["agent"]
    # an earlier day wins over a lower id
    b = person(session, D(2026, 9, 1))
    orient(session, b, D(2026, 9, 30), referent_type="actipro")
    orient(session, b, D(2026, 9, 10), referent_type="mds")
    legal = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 9, 1)))["clocks"]["legal"]
    assert {r["key"]: r["median_days"] for r in legal["by_referent_type"]} == {"ati": 20.0, "mds": 9.0}


def _hist_rows(session, f, packed):
    with ind.histogram(session, f, packed=packed) as h:
        return sorted(session.execute(select(h)).all(), key=repr)


def _by_hand(session, f):
    """The month and geo histograms of both clocks, counted in Python from the paths: the
    definition of docs/indicators.md, independent of how the database aggregates."""
    from collections import Counter

    start, end = f.period
    out = Counter()
    for p in session.scalars(select(Path)):
        decided = p.oriented_on if p.oriented_on is not None and p.oriented_on <= f.as_of else None
        for clock, s in (("legal", p.clock_start), ("demande", p.request_date)):
            if s is None or not start <= s <= min(end, f.as_of):
                continue
            delay = (decided - s).days if decided else None
            bucket = max(low for low in ind.BUCKETS if s <= f.as_of - dt.timedelta(days=low))
            rt = p.oriented_referent_type if decided else None
            out[(clock, "geo", p.territory_id, p.mds_id, None, rt, delay, bucket)] += 1
            out[(clock, "month", None, None, s.strftime("%Y-%m"), None, delay, bucket)] += 1
    return out


def _geo_month(rows):
    return {tuple(r[:-1]): r[-1] for r in rows if r.src in ("geo", "month")}


@pytest.mark.parametrize("territory_id, mds_id", [(16_000, 260_000), (20_000, 300_000)])
def test_packed_histogram_equals_the_plain_group_by(session, territory_id, mds_id):
    """The delay histogram equals a count made by hand from the paths, on both databases. On SQLite
    the packed fold (reports.indicators._packed) must also give exactly the rows of the plain GROUP
    BY, with ids near the packing limits (keys above 2**53, where floating point would lose the low
    fields), with ids beyond them (the plain GROUP BY takes over) and with a referent type outside
    the known list (likewise). PostgreSQL always runs the plain GROUP BY."""
    import random

    from referents.models import Territory

    session.add(Territory(id=territory_id, code="T-BIG", name="Territoire à grand identifiant"))
    session.add(Structure(id=mds_id, code="MDS-BIG", name="MDS à grand identifiant", kind="mds",
                          territory_id=territory_id))
    session.flush()
    rnd = random.Random(5)
    types = ("pole_emploi", "actipro", "ati", "mds", "kiosque")
    for i in range(120):
        start = AS_OF - dt.timedelta(days=rnd.randint(0, 400))
        p = person(session, start, sdd=rnd.random() < 0.9, right_state=rnd.choice("22225"))
        if i % 3 == 0:  # in the big sector
            session.execute(text("UPDATE household SET territory_id = :t, mds_id = :m WHERE id = :h"),
                            {"t": territory_id, "m": mds_id, "h": p.household_id})
        if rnd.random() < 0.7:
            decided = min(start + dt.timedelta(days=rnd.randint(-3, 150)), AS_OF + dt.timedelta(days=5))
            orient(session, p, decided, referent_type=rnd.choice(types), origin=rnd.choice(("auto", "agent")),
                   rule_id=rnd.choice(("R1", "R2", None)))
    outcomes.refresh_path_outcomes(session)  # the paths take the households' sector
    f = ReportFilter(as_of=AS_OF)
    packed, plain = _hist_rows(session, f, True), _hist_rows(session, f, False)
    assert packed == plain and len(plain) > 100
    assert _geo_month(plain) == _by_hand(session, f)
    assert any(r.mds == mds_id for r in plain) and any(r.territory == territory_id for r in plain)
    assert any(r.delay is not None and r.delay < 0 for r in plain)  # decided before the clock start

    # An unknown referent type: the fold notices it and the plain GROUP BY runs instead.
    orient(session, person(session, AS_OF - dt.timedelta(days=60)), AS_OF - dt.timedelta(days=20),
           referent_type="ccas")
    packed, plain = _hist_rows(session, f, True), _hist_rows(session, f, False)
    assert packed == plain and any(r.k == "ccas" for r in plain)
    assert _geo_month(plain) == _by_hand(session, f)
