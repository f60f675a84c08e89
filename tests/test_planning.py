"""`rsa plan` (issue 20): the forecast replays inflow through the product's engine on a throwaway
database. Small sizes (a few dozen entrants a week, two weeks of entrants, the drain without new
inflow) keep each simulation to seconds; the properties are the issue's."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import create_engine, func, select, text

from config.db import Base
from config.planning import PlanInputs, inputs_from_today, simulate, spread
from reports.planning import search_capacity

START = dt.date(2026, 11, 2)  # a Monday


@pytest.fixture(scope="module")
def base_inputs(_schema) -> PlanInputs:
    runtime, _ = _schema
    inputs, _now = inputs_from_today(runtime, START, weeks=2, entrants_per_week=40, seed=3)
    return inputs.with_(drain_inflow=False)


@pytest.fixture(scope="module")
def live_url(_schema) -> str:
    runtime, _ = _schema
    # where a scratch database may be made: the schema owner's URL (the app's role may not create one)
    return runtime.settings.migrate_database_url or runtime.settings.database_url


_CACHE: dict = {}


def run(live_url: str, inputs: PlanInputs) -> dict:
    """Simulations are deterministic: each distinct input runs once per test session."""
    key = repr(inputs)
    if key not in _CACHE:
        _CACHE[key] = simulate(live_url, inputs)
    return _CACHE[key]


def _per_mds(inputs: PlanInputs, total: int) -> dict[str, int]:
    return spread(total, inputs.mds_weights)


def test_spread_keeps_the_total_and_the_proportions():
    out = spread(10, {"A": 1, "B": 2, "C": 7})
    assert out == {"A": 1, "B": 2, "C": 7}
    out = spread(7, {"A": 1, "B": 1, "C": 1})
    assert sum(out.values()) == 7 and max(out.values()) - min(out.values()) <= 1
    assert spread(0, {"A": 1}) == {"A": 0}


def test_a_simulation_forecasts_the_legal_delay_through_the_engine(live_url, base_inputs):
    r = run(live_url, base_inputs)
    sim = r["simulation"]
    # Entrants came through flow imports and the orientation engine decided each of them.
    assert sim["flows"] == 10 and sim["entrants_households"] > 0
    assert 60 <= r["cohort_size"] <= 100  # ~40 SDD entrants a week for two weeks
    assert sim["auto_validated"] > 0 and sim["agent_validated"] > 0 and sim["invited"] > 0
    assert sim["present"] > 0 and sim["first_appointments"] > 0
    assert r["oriented"] <= r["cohort_size"]
    for key in ("median_legal_days", "p90_legal_days", "share_within_30", "share_within_42"):
        assert r[key] is not None
    assert r["median_legal_days"] <= r["p90_legal_days"]
    assert 0 <= r["share_within_30"] <= r["share_within_42"] <= 1
    # The backlog week by week (two weeks of entrants and six of drain), and by MDS.
    assert len(r["backlog_weekly"]) == 8
    assert all(w["total"] == sum(w[s] for s in ("validation", "kiosque", "referent", "other"))
               for w in r["backlog_weekly"])
    assert len(r["by_mds"]) == 30
    assert sum(m["cohort_size"] for m in r["by_mds"]) == r["cohort_size"]
    assert all(m["bottleneck"] in ("validation", "kiosque", "referent", "other", "none") for m in r["by_mds"])
    assert r["inputs"]["seed"] == 3 and r["inputs"]["weeks"] == 2


def test_same_seed_same_result(live_url, base_inputs):
    first = simulate(live_url, base_inputs)
    again = run(live_url, base_inputs)
    for r in (first, again):
        r["simulation"].pop("seconds")  # timings, wall and CPU: not results
        r["simulation"].pop("cpu_seconds")
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(again, sort_keys=True, default=str)


@pytest.mark.parametrize("seed", [3, 11])
def test_more_seats_or_more_validations_never_worsen_the_forecast(live_url, base_inputs, seed):
    scarce = base_inputs.with_(seed=seed, seats=_per_mds(base_inputs, 12), validations=_per_mds(base_inputs, 3))
    more_seats = scarce.with_(seats=_per_mds(base_inputs, 300))
    more_validations = scarce.with_(validations=_per_mds(base_inputs, 200))
    few = run(live_url, scarce)
    for better in (run(live_url, more_seats), run(live_url, more_validations)):
        assert better["cohort_size"] == few["cohort_size"]  # the same inflow
        assert better["share_within_42"] >= few["share_within_42"]
        assert better["share_within_30"] >= few["share_within_30"]
        assert better["oriented"] >= few["oriented"]
        assert better["backlog_weekly"][-1]["late"] <= few["backlog_weekly"][-1]["late"]


def test_zero_validation_leaves_proposals_pending_and_the_share_within_42_falls(live_url, base_inputs):
    # Half of the summoned do not come (and nobody is reached by phone): the kiosque, which takes
    # the proposals left unvalidated a week, cannot make up for the missing validations.
    harsh = base_inputs.with_(absence_summoned=0.5, phoning_reach=0.0)
    zero = run(live_url, harsh.with_(validations={m: 0 for m in base_inputs.validations}))
    ample = run(live_url, harsh.with_(validations=_per_mds(base_inputs, 300)))
    assert zero["simulation"]["agent_validated"] == 0
    assert max(w["validation"] for w in zero["backlog_weekly"]) > 0
    assert zero["pending_proposals"] > 0
    assert zero["share_within_42"] < ample["share_within_42"]


def test_ample_capacity_keeps_95_percent_within_42_days(live_url, base_inputs):
    ample = base_inputs.with_(seats=_per_mds(base_inputs, 300), validations=_per_mds(base_inputs, 300),
                              referent_capacity={})
    r = run(live_url, ample)
    assert r["share_within_42"] >= 0.95


def test_capacity_search_finds_the_smallest_capacities_of_a_monotone_forecast():
    """search_capacity against a known monotone forecast: MDS A needs 7 seats and 4 validations,
    B needs 0 seats and 9 validations, C cannot reach the target whatever the capacity."""
    need = {"A": (7, 4), "B": (0, 9)}
    calls = []

    def fake_run(seats, validations):
        calls.append((dict(seats), dict(validations)))
        rows = []
        for m in ("A", "B", "C"):
            if m == "C":
                share = 0.5
            else:
                share = 1.0 if seats[m] >= need[m][0] and validations[m] >= need[m][1] else 0.6
            rows.append({"mds": m, "share_within_30": share})
        return {"by_mds": rows, "share_within_30": min(r["share_within_30"] for r in rows)}

    out = search_capacity(fake_run, today_seats={"A": 5, "B": 5, "C": 5}, today_validations={"A": 1, "B": 1, "C": 1},
                          weekly_inflow={"A": 10, "B": 10, "C": 10}, target_days=30, share=0.95, max_runs=20)
    rows = {r["mds"]: r for r in out["by_mds"]}
    assert (rows["A"]["seats_needed"], rows["A"]["validations_needed"]) == (7, 4)
    assert (rows["B"]["seats_needed"], rows["B"]["validations_needed"]) == (0, 9)
    assert rows["A"]["met"] and rows["B"]["met"]
    assert not rows["C"]["reachable"] and not rows["C"]["met"]
    assert rows["A"]["seats_today"] == 5
    assert len(calls) <= 20 and len(out["runs"]) == len(calls)
    # Bounded: with 3 runs the search stops and keeps capacities known to reach the target.
    small = search_capacity(fake_run, today_seats={"A": 5, "B": 5, "C": 5},
                            today_validations={"A": 1, "B": 1, "C": 1}, weekly_inflow={"A": 10, "B": 10, "C": 10},
                            max_runs=3)
    assert len(small["runs"]) == 3
    assert all(r["met"] for r in small["by_mds"] if r["mds"] != "C")
    with pytest.raises(ValueError):
        search_capacity(fake_run, today_seats={}, today_validations={}, weekly_inflow={}, target_days=31)


def _fingerprint(engine) -> dict:
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [func.count()]
            if "id" in table.c:
                cols.append(func.max(table.c.id))
            out[table.name] = tuple(conn.execute(select(*cols).select_from(table)).one())
    return out


def test_cli_simulate_never_touches_the_live_database_and_writes_json_xlsx_and_the_page(
        rt, tmp_path, monkeypatch, make_user, client):
    monkeypatch.setenv("RSA_REPORTS_DIR", rt.settings.reports_dir)
    monkeypatch.setenv("RSA_LOG_LEVEL", "WARNING")
    if rt.settings.migrate_database_url:  # as configured in production: the owner makes the scratch database
        monkeypatch.setenv("RSA_MIGRATE_DATABASE_URL", rt.settings.migrate_database_url)
    before = _fingerprint(rt.engine)
    pg = rt.engine.dialect.name == "postgresql"
    if pg:
        with rt.engine.connect() as conn:
            scratch_before = set(conn.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE 'rsa_plan_%'")))
    seats = tmp_path / "places.csv"
    seats.write_text("mds;places\nMDS-MURET;4\nMDS-CENTRE;6\n", encoding="utf-8")
    out = tmp_path / "prevision.xlsx"
    result = CliRunner().invoke(
        __import__("config.cli", fromlist=["main"]).main,
        ["--database-url", rt.settings.database_url, "plan", "simulate", "--weeks", "1", "--entrants-per-week", "20",
         "--kiosque-seats", str(seats), "--validations-per-week", "60", "--seed", "5", "--as-of", START.isoformat(),
         "--xlsx", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["inputs"]["seats"]["MDS-MURET"] == 4 and data["inputs"]["seats"]["MDS-BLAGNAC"] == 0
    assert data["inputs"]["validations_total"] == 60
    assert data["median_legal_days"] is not None and data["share_within_42"] is not None
    assert _fingerprint(rt.engine) == before  # the live database: not a row added, changed or removed
    if pg:
        with rt.engine.connect() as conn:
            after = set(conn.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE 'rsa_plan_%'")))
        assert after == scratch_before  # the scratch database was dropped
    wb = load_workbook(out)
    assert wb.sheetnames[:3] == ["Prévision", "Stock par semaine", "Par MDS"]
    assert wb["Stock par semaine"]._charts and wb["Par MDS"]._charts
    assert wb["Par MDS"].max_row == 31

    _user, headers = make_user("manager")
    page = client.get("/dashboard/prevision", headers=headers)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Délai légal médian" in html and "MDS Muret" in html and "<svg" in html
    download = client.get("/dashboard/prevision.xlsx", headers=headers)
    assert download.status_code == 200 and download.data[:2] == b"PK"
    dashboard = client.get("/dashboard", headers=headers)
    assert "/dashboard/prevision" in dashboard.get_data(as_text=True)


def test_cli_refuses_an_unknown_mds_and_a_bad_csv(rt, tmp_path):
    from config.cli import main

    bad = tmp_path / "places.csv"
    bad.write_text("MDS-NULLE-PART;3\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["--database-url", rt.settings.database_url, "plan", "simulate",
                                  "--kiosque-seats", str(bad)])
    assert r.exit_code != 0 and "MDS inconnue" in r.output
    worse = tmp_path / "valid.csv"
    worse.write_text("MDS-MURET;beaucoup\nMDS-CENTRE;x\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["--database-url", rt.settings.database_url, "plan", "simulate",
                                  "--validations-per-week", str(worse)])
    assert r.exit_code != 0 and "entier attendu" in r.output


def test_the_page_says_when_there_is_no_forecast(client, make_user):
    _user, headers = make_user("manager")
    page = client.get("/dashboard/prevision", headers=headers)
    assert page.status_code == 200 and "Aucune prévision" in page.get_data(as_text=True)
    assert client.get("/dashboard/prevision.xlsx", headers=headers).status_code == 404
    _worker, worker_headers = make_user("mds_worker", "MDS-MURET")
    assert client.get("/dashboard/prevision", headers=worker_headers).status_code in (302, 303, 403)


def test_scratch_database_is_a_temporary_file_or_a_scratch_postgresql_database_or_schema(rt):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from config.planning import scratch_database

    # made with the schema owner's rights where the suite has them (the app's role may create nothing)
    live = rt.settings.migrate_database_url or rt.settings.database_url
    with scratch_database(live) as url:
        assert url != live
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
        engine.dispose()
        if rt.engine.dialect.name == "sqlite":
            path = make_url(url).database
            assert __import__("os").path.exists(path)
    if rt.engine.dialect.name == "sqlite":
        assert not __import__("os").path.exists(path)
        return
    # PostgreSQL, a role without the right to create databases: a scratch schema of the live database.
    with scratch_database(live, pg_kind="schema") as url:
        schema = make_url(url).query["options"].split("=", 1)[1]
        engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
            assert conn.scalar(text("SELECT current_schema()")) == schema
        engine.dispose()
    with rt.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}) == 0
        assert conn.scalar(text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'probe'")) == 0


def test_from_history_takes_inflow_and_places_from_the_last_12_months(rt, tmp_path):
    from config.planning import _Flows
    from imports.generator import generate_monthly
    from imports.service import import_file

    flow = tmp_path / "RSABEM.xml"
    generate_monthly(flow, households=60, seed=4, month="2026-10")
    assert import_file(rt, flow)["status"] == "imported"
    inputs, now = inputs_from_today(rt, dt.date(2026, 11, 20), from_history=True)
    entrants = now["history"]["entrants"]
    assert entrants > 0 and inputs.entrants_per_week == pytest.approx(entrants / 52)
    assert inputs.commune_weights and sum(inputs.commune_weights.values()) <= entrants
    assert inputs.describe()["commune_weights"] == "historique"
    # The MDS weights are the history's: an MDS without entrants last year gets no seats from a total.
    weighted = {m for m, w in inputs.mds_weights.items() if w > 0}
    assert weighted == set(now["history"]["by_mds"])
    # The day's flow puts each new household in a (commune, postal code) of the history.
    flows = _Flows(inputs.with_(entrants_per_week=200), tmp_path)
    path = flows.write(dt.date(2026, 11, 24))
    raw = path.read_text(encoding="cp1252")
    import re

    places = set(re.findall(r"<NUMCOM>(\d+)</NUMCOM><CODEPOS>(\d*)</CODEPOS>", raw))
    assert places and places <= {(c, p or "31000") for c, p in inputs.commune_weights}
    assert "<TYPEFLUX>I</TYPEFLUX>" in raw and "<DTREF>2026-11-24</DTREF>" in raw


def test_the_simulation_takes_the_live_rule_set(rt):
    from orientation.rules import parse_rule_set
    from orientation.service import active_rule_set, load_rules_document

    with rt.session() as s:
        row, spec = active_rule_set(s)  # stores the bundled rule set as the live active version
        doc = {"name": "Règles du Département (test)", **spec.as_document()}
        doc["rules"] = doc["rules"][1:]  # the live rules differ from the bundled ones
        load_rules_document(s, doc)
    inputs, _now = inputs_from_today(rt, START)
    assert inputs.rules["name"] == "Règles du Département (test)"
    assert [r["id"] for r in inputs.rules["rules"]] == [r["id"] for r in doc["rules"]]
    assert parse_rule_set(inputs.rules).fallback.id == spec.fallback.id


# Figures of a small, kiosque-heavy run (one seat per MDS a week, 40 % of the summoned absent: many
# re-invitations and shortfalls, some exhausted), computed by the engine BEFORE the batch re-planning
# of a roll call's absents and the bulk appointments and contracts (issue 20, the year < 2 min):
# making the engine faster must not change one figure, invitation, message or event of the forecast.
FROZEN_STATS = {"entrants_households": 142, "flows": 15, "auto_validated": 103, "agent_validated": 30,
                "invited": 50, "phoned_reached": 49, "present": 42, "absent": 15, "excused": 28,
                "first_appointments": 61, "contracts": 46}
FROZEN_FORECAST = {"cohort_size": 176, "oriented": 171, "median_legal_days": 0.0, "p90_legal_days": 14.0,
                   "mean_legal_days": 4.6, "share_within_30": 0.9432, "share_within_42": 0.9716,
                   "pending_proposals": 0, "awaiting_capacity": 0, "bottleneck": "kiosque"}
FROZEN_BACKLOG = [(12, 0, 11), (30, 0, 26), (35, 0, 33), (26, 0, 26), (17, 2, 17), (11, 6, 11), (9, 9, 9), (6, 6, 6),
                  (5, 5, 5)]
FROZEN_INVITATIONS = (90, "a56f1e02488ba506")
FROZEN_EVENTS = {"appointment.honoured": 61, "appointment.planned": 61, "contract.signed": 46, "flow.right_opened": 175,
                 "flow.transfer_in": 1, "kiosque.absent": 15, "kiosque.attended": 42, "kiosque.excused": 28,
                 "kiosque.invited": 78, "kiosque.phoned": 85, "kiosque.reinvited": 12, "orientation.ended": 4,
                 "orientation.notified": 175, "orientation.proposed": 75, "orientation.validated": 175,
                 "review.scheduled": 12}


def test_a_fixed_seed_gives_the_same_figures_as_the_engine_before_its_speed_up(live_url, base_inputs):
    from config.planning import scratch_database
    from kiosque.models import Invitation

    mds = sorted(base_inputs.mds_weights)
    inputs = base_inputs.with_(weeks=3, entrants_per_week=60, seed=7, seats={m: 1 for m in mds},
                               validations=spread(30, {m: 1 for m in mds}), referent_capacity={}, rules=None,
                               absence_summoned=0.4, drain_inflow=False)
    with scratch_database(live_url) as url:
        r = simulate(live_url, inputs, scratch_url=url)
        engine = create_engine(url)
        with engine.connect() as conn:
            invitations = conn.execute(select(Invitation.id, Invitation.person_id, Invitation.session_id,
                                              Invitation.attempt, Invitation.status, Invitation.invited_on)
                                       .order_by(Invitation.id)).all()
            events = dict(conn.execute(text("SELECT kind, count(*) FROM case_event GROUP BY kind")).all())
            messages = dict(conn.execute(text("SELECT kind || '/' || channel, count(*) FROM message "
                                              "GROUP BY kind, channel")).all())
            alerts = conn.execute(text("SELECT count(*) FROM alert WHERE kind = 'kiosque.capacity_shortfall'")).scalar()
        engine.dispose()
    sim = {k: v for k, v in r["simulation"].items() if k not in ("seconds", "cpu_seconds")}
    assert sim == FROZEN_STATS
    assert {k: r[k] for k in FROZEN_FORECAST} == FROZEN_FORECAST
    assert [(w["total"], w["late"], w["kiosque"]) for w in r["backlog_weekly"]] == FROZEN_BACKLOG
    # Every invitation (who, which session, which attempt, its outcome, when) in the order written.
    lines = "\n".join(f"{i.id}:{i.person_id}:{i.session_id}:{i.attempt}:{i.status}:{i.invited_on}" for i in invitations)
    assert (len(invitations), hashlib.sha256(lines.encode()).hexdigest()[:16]) == FROZEN_INVITATIONS
    assert events == FROZEN_EVENTS
    assert messages == {"invitation/letter": 78, "reinvitation/letter": 12}
    assert alerts == 12
