"""The managers' dashboard in a real headless Chromium (Debian's, driven by Playwright).

The app is served on 127.0.0.1 by werkzeug in a thread; the manager logs in through the login form,
the headline figures are compared with the JSON report, a filter is changed, a screenshot is saved
to tests/artifacts/ (gitignored); a provider gets 403.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from reports import service
from reports.indicators import ReportFilter
from tests.reports_world import build_world
from tests.test_reports_indicators import AS_OF, D

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "tableau de bord 2026!"
QUERY = "as_of=2026-11-20&from=2026-01-01"


@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        subprocess.run(["bash", str(Path(__file__).resolve().parent.parent / ".ci" / "chromium.sh")], check=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(page, base: str, email: str, target: str):
    page.goto(f"{base}{target}")
    assert "/login" in page.url  # the dashboard sends an anonymous visitor to the login form
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def _value(page, selector: str):
    raw = page.get_attribute(selector, "data-value")
    return None if raw in (None, "") else float(raw)


def test_dashboard_in_chromium(browser, server, rt, make_user):
    build_world(rt)
    manager, _ = make_user("manager", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    _login(page, server, manager.email, f"/dashboard?{QUERY}")
    assert page.url.startswith(f"{server}/dashboard")
    with rt.session() as s:
        report = service.delays(s, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    legal, demande = report["clocks"]["legal"], report["clocks"]["demande"]
    assert _value(page, "#median-legal") == legal["median_days"] == 20.0
    assert page.inner_text("#median-legal") == "20,0 j"
    assert _value(page, "#p90-legal") == legal["p90_days"]
    assert _value(page, "#share-42") == legal["share_within_42"]
    assert _value(page, "#median-demande") == demande["median_days"]
    assert _value(page, "#backlog-total") == legal["backlog_total"]
    assert _value(page, "#cohort-size") == legal["cohort_size"]
    assert page.locator("svg[role=img]").count() >= 4
    # accessibility: every filter has its label, the first Tab reaches the skip link
    for control in ("from", "to", "territory", "mds", "as_of"):
        assert page.locator(f"label[for={control}]").count() == 1, control
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports_dashboard.png"), full_page=True)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"

    # follow a number to the persons behind it
    with page.expect_navigation():
        page.click("#backlog-total")
    assert "/dashboard/personnes" in page.url and page.locator("#persons tbody tr").count() == legal["backlog_total"]
    page.go_back()

    # change a filter: an MDS with nobody in it empties the cohort
    other = page.eval_on_selector("#mds", "s => [...s.options].map(o => o.value).filter(v => v)[0]")
    page.select_option("#mds", other)
    with page.expect_navigation():
        page.click("#apply")
    assert f"mds={other}" in page.url
    with rt.session() as s:
        from sqlalchemy import select

        from referents.models import Structure

        mds_id = s.scalar(select(Structure.id).where(Structure.code == other))
        filtered = service.delays(s, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1), mds_id=mds_id))
    assert _value(page, "#cohort-size") == filtered["clocks"]["legal"]["cohort_size"]
    assert _value(page, "#median-legal") == filtered["clocks"]["legal"]["median_days"]
    page.screenshot(path=str(ARTIFACTS / "reports_dashboard_filtered.png"), full_page=True)
    context.close()


def test_provider_gets_403_in_chromium(browser, server, make_user):
    provider, _ = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    context = browser.new_context()
    page = context.new_page()
    _login(page, server, provider.email, "/login")
    response = page.goto(f"{server}/dashboard")
    assert response.status == 403
    context.close()
