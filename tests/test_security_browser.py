"""The script CSP without 'unsafe-inline' in a real Chromium (issue 22, item 10): the pages still
work and the browser reports no violation; an injected inline script does not run."""

from __future__ import annotations

import pytest

from tests.reports_world import build_world
from tests.test_reports_browser import PASSWORD, QUERY, _login, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def _watch(page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def test_swagger_ui_runs_under_the_nonce_csp(browser, server):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    violations = _watch(page)
    page.goto(f"{server}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # rendered by the nonce'd inline script
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert violations == []
    # the same inline script without the nonce is refused by the browser
    page.evaluate("""() => { const s = document.createElement('script');
                            s.textContent = 'window.__injected = 1'; document.body.appendChild(s); }""")
    assert page.evaluate("window.__injected") is None
    context.close()


def test_dashboard_has_no_csp_violation(browser, server, rt, make_user):  # noqa: F811
    build_world(rt)
    manager, _ = make_user("manager", password=PASSWORD)
    context = browser.new_context()
    page = context.new_page()
    violations = _watch(page)
    _login(page, server, manager.email, f"/dashboard?{QUERY}")
    assert page.url.startswith(f"{server}/dashboard")
    assert page.locator("svg[role=img]").count() >= 4
    assert violations == []
    context.close()
