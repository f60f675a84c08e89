"""Stored reports (issue 21 item 5, reports/snapshots.py): a cached answer equals a fresh
computation, the scope is in the key, snapshots expire by age and after bulk changes (jobs, commands,
uploads), `refresh` recomputes now, concurrent requests compute once, the dashboard says when."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from config import clock
from config.cli import main
from config.scheduler import Job, run_job
from referents.models import Structure
from reports import jobs as report_jobs
from reports import service, snapshots
from reports.indicators import ReportFilter
from reports.models import ReportDataChange, ReportSnapshot
from tests.reports_world import build_world
from tests.test_reports_indicators import AS_OF, D, orient, person

Q = "as_of=2026-11-20&from=2026-01-01"
F = ReportFilter(as_of=AS_OF, start=D(2026, 1, 1))
NOON = dt.datetime(2026, 11, 20, 12, 0)
AGE = dt.timedelta(minutes=15)


@pytest.fixture
def world(rt):
    return build_world(rt)


@pytest.fixture
def frozen():
    """clock.freeze for the test, the system clock again after it."""
    clock.freeze(NOON)
    yield clock.freeze
    clock.freeze(None)


def _fresh(rt, name="delays", f=F):
    with rt.session() as s:
        return json.loads(json.dumps({"delays": service.delays, "full": service.full_report}[name](s, f)))


def _rows(rt) -> list:
    with rt.session() as s:
        return s.execute(select(ReportSnapshot.report, ReportSnapshot.scope, ReportSnapshot.data_version)
                         .order_by(ReportSnapshot.scope)).all()


def _version(rt) -> int:
    with rt.session() as s:
        return snapshots.data_version(s)[0]


def _add_june_oriented(rt, days=20):
    """One more June entrant oriented after `days`: changes the cohort size and the mean."""
    with rt.session() as s:
        june = D(2026, 6, 1)
        orient(s, person(s, june), june + dt.timedelta(days=days))


def test_cached_answer_equals_fresh_computation(client, make_user, rt, world, frozen):
    _, manager = make_user("manager")
    first = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert first.status_code == 200 and first.headers["X-Report-Snapshot"] == "miss"
    assert first.headers["X-Report-Computed-At"] == "2026-11-20T12:00:00"
    assert first.headers["Last-Modified"].endswith("GMT")
    frozen(NOON + dt.timedelta(minutes=5))
    second = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert second.headers["X-Report-Snapshot"] == "hit"
    assert second.headers["X-Report-Computed-At"] == "2026-11-20T12:00:00"  # when computed, not when read
    assert first.json == second.json == _fresh(rt)
    # the full report (dashboard, /full, xlsx): the same payload through the snapshot as computed now
    full = client.get(f"/api/v1/reports/full?{Q}", headers=manager)
    again = client.get(f"/api/v1/reports/full?{Q}", headers=manager)
    assert (full.headers["X-Report-Snapshot"], again.headers["X-Report-Snapshot"]) == ("miss", "hit")
    assert full.json == again.json == _fresh(rt, "full")
    with rt.session() as s:  # the computation gives JSON-native data: nothing changes through the table
        report = service.full_report(s, F)
    assert json.loads(json.dumps(report)) == report
    # the xlsx is built from the dashboard's snapshot and says when it was computed
    x = client.get(f"/api/v1/reports/export.xlsx?{Q}", headers=manager)
    assert x.status_code == 200 and x.headers["X-Report-Snapshot"] == "hit"
    ws = openpyxl.load_workbook(io.BytesIO(x.data))["Synthèse"]
    cells = {ws.cell(row=r, column=1).value: ws.cell(row=r, column=2).value for r in range(1, ws.max_row + 1)}
    assert cells["Chiffres calculés le"] == "20/11/2026 à 12:05"  # the full report's snapshot, computed at 12:05
    assert ws["B2"].value == full.json["clocks"]["legal"]["cohort_size"]
    # the normalised parameters: no period and the explicit default period are one snapshot
    a = client.get("/api/v1/reports/delays?as_of=2026-11-20", headers=manager)
    b = client.get("/api/v1/reports/delays?as_of=2026-11-20&from=2025-12-01&to=2026-11-20", headers=manager)
    assert (a.headers["X-Report-Snapshot"], b.headers["X-Report-Snapshot"]) == ("miss", "hit")
    assert a.json == b.json
    # admins and managers see everybody: one snapshot for both
    _, admin = make_user("admin")
    assert client.get(f"/api/v1/reports/delays?{Q}", headers=admin).headers["X-Report-Snapshot"] == "hit"


def test_scope_is_in_the_key_one_mds_never_sees_another(client, make_user, rt, frozen):
    with rt.session() as s:
        june = D(2026, 6, 1)
        toulouse = [person(s, june) for _ in range(3)]  # commune 31555: sectorised on a Toulouse MDS
        comminges = [person(s, june, commune="31001", postal_code=None) for _ in range(2)]  # Agassac
        for i, p in enumerate(toulouse):
            orient(s, p, june + dt.timedelta(days=10 + i))
        orient(s, comminges[0], june + dt.timedelta(days=80))
        from cases.models import Household, Person

        mds = {p.id: s.scalar(select(Household.mds_id).join(Person, Person.household_id == Household.id)
                              .where(Person.id == p.id)) for p in toulouse + comminges}
        code = dict(s.execute(select(Structure.id, Structure.code)).all())
    mds_a, mds_b = code[mds[toulouse[0].id]], code[mds[comminges[0].id]]
    assert mds_a != mds_b
    user_a, a = make_user("mds_worker", structure_code=mds_a)
    user_b, b = make_user("mds_worker", structure_code=mds_b)
    first_a = client.get(f"/api/v1/reports/delays?{Q}", headers=a)
    first_b = client.get(f"/api/v1/reports/delays?{Q}", headers=b)
    assert first_a.headers["X-Report-Snapshot"] == first_b.headers["X-Report-Snapshot"] == "miss"
    assert first_a.json["clocks"]["legal"]["cohort_size"] == 3
    assert first_b.json["clocks"]["legal"]["cohort_size"] == 2
    assert first_a.json == _fresh(rt, f=F.with_(user=user_a))
    assert first_b.json == _fresh(rt, f=F.with_(user=user_b))
    # a second worker of MDS A reads A's snapshot; B's worker still reads B's
    _, a2 = make_user("mds_worker", structure_code=mds_a)
    again_a = client.get(f"/api/v1/reports/delays?{Q}", headers=a2)
    again_b = client.get(f"/api/v1/reports/delays?{Q}", headers=b)
    assert again_a.headers["X-Report-Snapshot"] == again_b.headers["X-Report-Snapshot"] == "hit"
    assert again_a.json == first_a.json and again_b.json == first_b.json != first_a.json
    # and the manager's figures are the Département's, never a worker's snapshot
    _, manager = make_user("manager")
    m = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert m.headers["X-Report-Snapshot"] == "miss" and m.json["clocks"]["legal"]["cohort_size"] == 5
    assert {r.scope for r in _rows(rt)} == {snapshots.scope_key(user_a), snapshots.scope_key(user_b),
                                            snapshots.DEPARTEMENT}
    assert snapshots.scope_key(user_a) != snapshots.scope_key(user_b)


def test_snapshot_expires_after_its_age(client, make_user, rt, world, frozen):
    _, manager = make_user("manager")
    before = client.get(f"/api/v1/reports/delays?{Q}", headers=manager).json
    _add_june_oriented(rt)  # a single write (an agent's): not a bulk change
    frozen(NOON + dt.timedelta(minutes=14))
    cached = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert cached.headers["X-Report-Snapshot"] == "hit" and cached.json == before
    frozen(NOON + dt.timedelta(minutes=15))
    expired = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert expired.headers["X-Report-Snapshot"] == "miss"
    assert expired.headers["X-Report-Computed-At"] == "2026-11-20T12:15:00"
    assert expired.json == _fresh(rt) != before
    assert expired.json["clocks"]["legal"]["cohort_size"] == before["clocks"]["legal"]["cohort_size"] + 1


def test_refresh_recomputes_now(client, make_user, rt, world, frozen):
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")  # any role that sees the report
    _, manager = make_user("manager")
    before = client.get(f"/api/v1/reports/delays?{Q}", headers=manager).json
    _add_june_oriented(rt)
    frozen(NOON + dt.timedelta(minutes=1))
    now = client.get(f"/api/v1/reports/delays?{Q}&refresh=1", headers=manager)
    assert now.headers["X-Report-Snapshot"] == "miss" and now.headers["X-Report-Computed-At"] == "2026-11-20T12:01:00"
    assert now.json == _fresh(rt) != before
    assert client.get(f"/api/v1/reports/delays?{Q}", headers=manager).headers["X-Report-Snapshot"] == "hit"
    assert client.get(f"/api/v1/reports/delays?{Q}&refresh=1", headers=provider).status_code == 200
    # the person lists never come from a snapshot: no refresh parameter there
    from reports.schemas import PersonListQuerySchema, ReportQuerySchema

    assert "refresh" in ReportQuerySchema().fields and "refresh" not in PersonListQuerySchema().fields


def test_bulk_changes_make_snapshots_stale(client, make_user, rt, world, frozen, database_url):
    _, manager = make_user("manager")
    before = client.get(f"/api/v1/reports/delays?{Q}", headers=manager).json
    _add_june_oriented(rt)
    assert client.get(f"/api/v1/reports/delays?{Q}", headers=manager).json == before  # still the snapshot
    # a scheduled job (the orientation run, as every night)
    from orientation.jobs import JOBS as ORIENTATION_JOBS

    v0 = _version(rt)
    run_job(rt, next(j for j in ORIENTATION_JOBS if j.id == "orientation.run"), as_of=AS_OF)
    assert _version(rt) == v0 + 1 and _rows(rt) == []
    after = client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    assert after.headers["X-Report-Snapshot"] == "miss" and after.json == _fresh(rt) != before
    assert _rows(rt)[0].data_version == v0 + 1  # what data it reflects
    # jobs that change nothing the reports show do not: an empty inbox, the outbox
    from imports.jobs import JOBS as IMPORT_JOBS

    inbox = next(j for j in IMPORT_JOBS if j.id == "imports.inbox")
    assert run_job(rt, inbox, as_of=AS_OF)["imported"] == 0
    assert run_job(rt, Job("test.quiet", lambda _rt, _d: {}, reports_stale=False), as_of=AS_OF) == {}
    assert _version(rt) == v0 + 1
    # a job that fails after committing part of its work: stale as well
    def boom(_rt, _d):
        raise RuntimeError("partial")

    with pytest.raises(RuntimeError):
        run_job(rt, Job("test.boom", boom, reports_stale=lambda r: False), as_of=AS_OF)
    assert _version(rt) == v0 + 2
    # a bulk command
    r = CliRunner().invoke(main, ["--database-url", database_url, "orient", "run", "--as-of", "2026-11-20", "--json"])
    assert r.exit_code == 0, r.output
    assert _version(rt) == v0 + 3
    with rt.session() as s:
        assert s.scalar(select(ReportDataChange.source).order_by(ReportDataChange.id.desc()).limit(1)) == "rsa orient run"
    # a bulk change over HTTP (the orientation run); a refused one changes nothing
    _, worker = make_user("mds_worker", structure_code="MDS-SAINT-GAUDENS")
    assert client.post("/api/v1/orientation/run", json={"as_of": "2026-11-20"}, headers=worker).status_code == 403
    assert _version(rt) == v0 + 3
    assert client.post("/api/v1/orientation/run", json={"as_of": "2026-11-20"}, headers=manager).status_code == 200
    assert _version(rt) == v0 + 4
    # a computation that started before a bulk change is stale after it, even if stored after it
    client.get(f"/api/v1/reports/delays?{Q}", headers=manager)
    with rt.session() as s:
        s.execute(update(ReportSnapshot).values(data_version=v0 + 3))
    assert client.get(f"/api/v1/reports/delays?{Q}", headers=manager).headers["X-Report-Snapshot"] == "miss"


def test_every_declared_bulk_command_and_endpoint_exists(app):
    from config import app as app_module
    from config import cli

    paths = {path for path, _command in cli.commands(main)}
    assert cli.REPORTS_STALE_AFTER <= paths, cli.REPORTS_STALE_AFTER - paths
    assert app_module.REPORTS_STALE_AFTER <= set(app.view_functions), \
        app_module.REPORTS_STALE_AFTER - set(app.view_functions)


def test_concurrent_requests_compute_once(rt, world):
    calls, lock = [], threading.Lock()
    results, errors = [], []

    def compute(session):
        with lock:
            calls.append(1)
        time.sleep(0.5)  # long enough for every other request to find the claim
        return service.delays(session, F)

    def request():
        session = rt.sessions()
        try:
            snap = snapshots.cached(session, "delays", F, lambda: compute(session), max_age=AGE)
            results.append(snap)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 6
    assert len(calls) == 1
    assert sum(not r.cached for r in results) == 1
    assert all(r.payload == results[0].payload == _fresh(rt) for r in results)


def test_abandoned_or_failed_computation_is_taken_over(rt, world):
    def failing():
        raise RuntimeError("killed")

    with rt.session() as s:
        with pytest.raises(RuntimeError):
            snapshots.cached(s, "delays", F, failing, max_age=AGE)
        # the failed claim is released: the next request computes at once
        snap = snapshots.cached(s, "delays", F, lambda: service.delays(s, F), max_age=AGE)
        assert not snap.cached and snap.payload == _fresh(rt)
        # a claim whose worker died mid-computation (older than the lease) is taken over
        s.execute(update(ReportSnapshot).values(computing_since=dt.datetime(2020, 1, 1), computation="dead"))
        s.commit()
        again = snapshots.cached(s, "delays", F, lambda: service.delays(s, F), max_age=AGE, refresh=True)
        assert not again.cached
        assert s.scalar(select(ReportSnapshot.computing_since)) is None


def test_no_snapshot_when_switched_off(rt, world):
    with rt.session() as s:
        snap = snapshots.cached(s, "delays", F, lambda: service.delays(s, F), max_age=dt.timedelta(0))
        assert not snap.cached and snap.payload == _fresh(rt)
        assert s.scalar(select(func.count()).select_from(ReportSnapshot)) == 0


def test_dashboard_says_when_and_recomputes_on_demand(client, make_user, rt, world, frozen):
    _, manager = make_user("manager")
    html = client.get(f"/dashboard?{Q}", headers=manager).get_data(as_text=True)
    assert "Chiffres calculés le 20/11/2026 à 12:00" in html
    assert 'id="refresh"' in html and "Recalculer maintenant" in html
    assert 'name="refresh" value="1"' in html and 'name="from" value="2026-01-01"' in html
    _add_june_oriented(rt)
    frozen(NOON + dt.timedelta(minutes=3))
    html = client.get(f"/dashboard?{Q}", headers=manager).get_data(as_text=True)
    assert "Chiffres calculés le 20/11/2026 à 12:00" in html  # the snapshot, with its date
    r = client.get(f"/dashboard?{Q}&refresh=1", headers=manager)
    assert r.status_code == 302 and "refresh" not in r.headers["Location"]
    html = client.get(r.headers["Location"], headers=manager).get_data(as_text=True)
    assert "Chiffres calculés le 20/11/2026 à 12:03" in html
    fresh = _fresh(rt, "full")
    assert f'id="median-legal" data-value="{fresh["clocks"]["legal"]["median_days"]}"' in html
    # the dashboard and the /full API read the same snapshot
    api = client.get(f"/api/v1/reports/full?{Q}", headers=manager)
    assert api.headers["X-Report-Snapshot"] == "hit" and api.json == fresh


def test_warm_up_job_computes_the_default_reports(client, make_user, rt, world, frozen):
    user, worker = make_user("mds_worker", structure_code="MDS-SAINT-GAUDENS")
    make_user("mds_worker", structure_code="MDS-SAINT-GAUDENS")  # same scope: one snapshot
    _, manager = make_user("manager")
    job = next(j for j in report_jobs.JOBS if j.id == "reports.warm_dashboards")
    assert job.reports_stale is False
    v = _version(rt)
    done = run_job(rt, job, as_of=AS_OF)
    assert done["computed"] == 3 and done["fresh"] == 0 and _version(rt) == v
    assert sorted((r.report, r.scope) for r in _rows(rt)) == sorted([
        ("delays", snapshots.DEPARTEMENT), ("full", snapshots.DEPARTEMENT), ("delays", snapshots.scope_key(user))])
    # the morning's first requests, default filters: served from the warm-up's snapshots
    page = client.get("/dashboard", headers=manager)
    assert page.status_code == 200 and "Chiffres calculés le 20/11/2026 à 12:00" in page.get_data(as_text=True)
    r = client.get("/api/v1/reports/delays", headers=worker)
    assert r.headers["X-Report-Snapshot"] == "hit"
    assert r.json == _fresh(rt, f=ReportFilter(as_of=AS_OF, user=user))
    # ten minutes on: nothing is stale yet, but would be before the next warm-up: computed again
    frozen(NOON + dt.timedelta(minutes=6))
    again = run_job(rt, job, as_of=AS_OF)
    assert again["computed"] == 3
    frozen(NOON + dt.timedelta(minutes=7))
    assert run_job(rt, job, as_of=AS_OF)["fresh"] == 3
