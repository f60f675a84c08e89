"""Issue 18: each role's Monday morning in a real headless Chromium (Debian's, driven by Playwright),
with axe-core (axe-playwright-python) run on every page visited: no serious or critical violation.

- the MDS worker lands on the proposals, validates one, reads the person file, phones an invitee,
  takes the kiosque roll call and records the outcome of the present person;
- the provider lands on its caseload, records a first appointment and a contract, downloads the
  return-file template pre-filled with its people (no NIR column), uploads it with a bad row and reads
  the reject in French, sends it again and reads the same reject;
- the manager follows a drill-down link of the dashboard and lands on the list that makes the number.
Screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cases.models import Appointment, Contract
from kiosque.models import Invitation
from orientation.models import Orientation
from tests.screens_world import PASSWORD, TODAY, build
from tests.test_reports_browser import ARTIFACTS, browser, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
SEVERE = ("serious", "critical")


def axe_check(page, label: str) -> None:
    """axe-core on the page as displayed: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v.get("impact") in SEVERE]
    assert not bad, f"{label}: {bad}"


def login(page, base: str, email: str) -> None:
    page.goto(f"{base}/")
    assert "/login" in page.url
    axe_check(page, "login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_mds_worker_monday(browser, server, rt, make_user):  # noqa: F811
    ids = build(rt)
    worker, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    login(page, server, worker.email)
    assert page.url.endswith("/propositions")  # the MDS worker lands on the proposals
    assert page.locator("nav[aria-label='Navigation principale'] a[aria-current=page]").inner_text() \
        == "Propositions à valider"
    rows = page.locator("#proposals tbody tr")
    assert rows.count() == len(ids["proposals"]) >= 2
    assert "algorithme" in page.inner_text("#proposals")  # the explanation says how it was decided
    axe_check(page, "proposals")
    shot(page, "screens_proposals")

    # filter by rule: an unknown value is said on the page, not a crash
    page.goto(f"{server}/propositions?rule=NOPE")
    assert "règle inconnue" in page.inner_text("#filter-errors")
    page.goto(f"{server}/propositions")

    # the override form: a reason is mandatory, said next to the field
    second = ids["proposals"][1]
    page.goto(f"{server}/propositions/{second}/modifier")
    with page.expect_navigation():
        page.click("#override-submit")
    assert page.locator("#reason-error").count() == 1
    axe_check(page, "override with an error")
    page.goto(f"{server}/propositions")

    # validate one proposal
    first = ids["proposals"][0]
    with page.expect_navigation():
        page.click(f"#validate-{first}")
    assert "1 proposition validée" in page.inner_text("[role=status]")
    with rt.session() as s:
        assert s.get(Orientation, first).status in ("validated", "awaiting_capacity")
    assert page.locator(f"#proposal-{first}").count() == 0

    # the person file: identity without NIR, orientation explained, forms labelled
    page.goto(f"{server}/personnes/{ids['joelle']}")
    assert "JOËLLE-MARTIN" in page.inner_text("h1")
    assert page.inner_text("#birth-date") == "14/03/1979"
    assert "NIR" not in page.content()
    axe_check(page, "person file")
    shot(page, "screens_person")

    # search by name, and by birth date as people write it
    page.goto(f"{server}/personnes?q=durand")
    assert "DURAND" in page.inner_text("#results")
    axe_check(page, "search")
    page.goto(f"{server}/personnes?naissance=31/02/1979")
    assert "date impossible" in page.inner_text("#naissance-error")
    page.goto(f"{server}/compte")
    axe_check(page, "account")

    # follow-up lists, my people and my sector
    page.goto(f"{server}/suivi?perimetre=sector")
    axe_check(page, "follow-up")

    # kiosque: phoning, roll call, outcome → orientation
    page.goto(f"{server}/kiosque")
    axe_check(page, "kiosque sessions")
    with page.expect_navigation():
        page.click(f"a[href='/kiosque/sessions/{ids['session']}']")
    axe_check(page, "kiosque session")
    present, absent = ids["invited"]
    inv = {}
    with rt.session() as s:
        for pid in ids["invited"]:
            inv[pid] = s.scalar(select(Invitation.id).where(Invitation.person_id == pid))
    page.select_option(f"#outcome-{inv[present]}", "will_come")
    with page.expect_navigation():
        page.click(f"form[action$='/appels/{inv[present]}'] button")
    assert "Viendra" in page.inner_text("#phoning")
    page.select_option(f"#presence-{inv[present]}", "present")
    page.select_option(f"#presence-{inv[absent]}", "absent")
    with page.expect_navigation():
        page.click("#roll-call-submit")
    assert "Appel enregistré pour 2 personne(s)" in page.inner_text("[role=status]")
    with rt.session() as s:
        assert s.get(Invitation, inv[present]).status == "present"
        assert s.get(Invitation, inv[absent]).status == "absent"
    page.select_option(f"#referent-{inv[present]}", "actipro")
    with page.expect_navigation():
        page.click(f"form[action$='/choix/{inv[present]}'] button")
    assert "Orientation enregistrée" in page.inner_text("[role=status]")
    with rt.session() as s:
        o = s.scalar(select(Orientation).where(Orientation.person_id == present, Orientation.status == "validated"))
        assert o is not None and o.origin == "kiosque" and o.referent_type == "actipro"
    axe_check(page, "kiosque session after roll call")
    shot(page, "screens_kiosque")

    # a page out of reach: French HTML, not JSON
    response = page.goto(f"{server}/personnes/99999999")
    assert response.status == 404 and "Page introuvable" in page.inner_text("h1")
    axe_check(page, "404")
    response = page.goto(f"{server}/dashboard")
    assert response.status == 403 and "Accès refusé" in page.inner_text("h1")
    axe_check(page, "403")
    context.close()


def test_provider_monday(browser, server, rt, make_user, tmp_path):  # noqa: F811
    ids = build(rt)
    provider, _ = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR", accept_downloads=True)
    page = context.new_page()
    login(page, server, provider.email)
    assert page.url.endswith("/suivi")  # the caseload
    assert "BERNARD" in page.inner_text("#follow-up")
    axe_check(page, "caseload")
    shot(page, "screens_caseload")
    with page.expect_navigation():
        page.click(f"a[href='/personnes/{ids['followed']}']")
    axe_check(page, "provider person file")

    # record the first appointment, honoured yesterday
    when = dt.datetime.combine(TODAY - dt.timedelta(days=1), dt.time(10, 0))
    page.click("#rendez-vous summary")
    page.fill("#appt-at", when.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#appt-status", "honoured")
    with page.expect_navigation():
        page.click("#appt-submit")
    assert "Rendez-vous enregistré" in page.inner_text("[role=status]")
    assert "Honoré" in page.inner_text("#appointments")

    # a contract without the signature date: refused with the field named, nothing written
    page.click("#contrat summary")
    with page.expect_navigation():
        page.click("#contract-submit")
    assert page.locator("#signed_on-error").count() == 1
    assert page.get_attribute("#contract-signed", "aria-invalid") == "true"
    axe_check(page, "contract form with an error")
    page.fill("#contract-signed", (TODAY - dt.timedelta(days=1)).isoformat())
    with page.expect_navigation():
        page.click("#contract-submit")
    assert "Contrat enregistré" in page.inner_text("[role=status]")
    with rt.session() as s:
        assert s.scalar(select(func.count(Appointment.id)).where(Appointment.person_id == ids["followed"],
                                                                  Appointment.status == "honoured")) == 1
        assert s.scalar(select(Contract.status).where(Contract.person_id == ids["followed"])) == "signed"

    # the monthly return file: template pre-filled with my people, no NIR column
    page.goto(f"{server}/retours")
    axe_check(page, "returns")
    with page.expect_download() as info:
        page.click("#template-download")
    template = tmp_path / "modele.xlsx"
    info.value.save_as(template)
    wb = load_workbook(template)
    ws = wb["Retour"]
    headers = [c.value for c in ws[1]]
    assert "NIR" not in headers
    names = [r[headers.index("Nom")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert names == ["BERNARD"]
    ws.cell(row=2, column=headers.index("Étape actuelle") + 1, value="Atelier CV")
    ws.cell(row=2, column=headers.index("Statut du 1er rendez-vous") + 1, value="peut-être")
    ws.cell(row=2, column=headers.index("Date du 1er rendez-vous") + 1, value=TODAY - dt.timedelta(days=2))
    filled = tmp_path / "retour.xlsx"
    wb.save(filled)
    page.set_input_files("#file", str(filled))
    with page.expect_navigation():
        page.click("#upload-submit")
    assert "/lots/" in page.url
    rejects = page.inner_text("#rejects")
    assert "Statut du 1er rendez-vous" in rejects and "ligne" not in page.inner_text("#rejects thead")
    axe_check(page, "batch rejects")
    shot(page, "screens_return_rejects")
    # the same file again: "already received", and the rejects are repeated, not an empty list
    page.goto(f"{server}/retours")
    page.set_input_files("#file", str(filled))
    with page.expect_navigation():
        page.click("#upload-submit")
    assert "déjà été déposé" in page.inner_text("[role=alert]")
    assert "Statut du 1er rendez-vous" in page.inner_text("#rejects")
    page.goto(f"{server}/retours")
    assert page.locator("#batches tbody tr").count() == 1
    context.close()


def test_manager_follows_a_drill_down_link(browser, server, rt, make_user):  # noqa: F811
    from tests.reports_world import build_world

    build_world(rt)
    manager, _ = make_user("manager", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    login(page, server, manager.email)
    assert "/dashboard" in page.url
    page.goto(f"{server}/dashboard?as_of=2026-11-20&from=2026-01-01")
    axe_check(page, "dashboard")
    over = int(page.get_attribute("#backlog-over-42", "data-value"))
    assert over >= 1
    with page.expect_navigation():
        page.click("#backlog-over-42")
    assert page.locator("#persons tbody tr").count() == over  # the list that makes the number
    axe_check(page, "persons behind a number")
    page.goto(f"{server}/dashboard?mds=NOPE&from=2026-13-01")
    errors = page.inner_text("#filter-errors")
    assert "MDS inconnue" in errors and "date invalide" in errors
    page.goto(f"{server}/lots")
    axe_check(page, "batches")
    context.close()
