"""Issue 18: the screens without a browser (test client): landing per role, navigation, French
error pages for browsers and JSON for the API, CSRF on forms, forms refusing what the API refuses."""

from __future__ import annotations

import re

import pytest

from tests.screens_world import PASSWORD, build

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _login(client, user):
    page = client.get("/login", headers=HTML)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}, headers=HTML)
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    return r


def _csrf(client, url):
    html = client.get(url, headers=HTML).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("role,structure,landing", [
    ("mds_worker", "MDS-RANGUEIL", "/propositions"),
    ("provider", "ACTIPRO-TLS-EST", "/suivi"),
    ("ati", "ATI-TOULOUSE", "/suivi"),
    ("manager", None, "/dashboard"),
])
def test_each_role_lands_on_its_work_page(client, make_user, role, structure, landing):
    user, _ = make_user(role, structure_code=structure, password=PASSWORD)
    r = _login(client, user)
    assert r.headers["Location"].endswith("/")
    r = client.get("/", headers=HTML)
    assert r.status_code == 303 and r.headers["Location"].endswith(landing)
    page = client.get(landing, headers=HTML)
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    html = page.get_data(as_text=True)
    assert 'aria-label="Navigation principale"' in html and 'lang="fr"' in html
    assert ("Tableau de bord" in html) == (role == "manager")


def test_smoke_pages(rt, client, make_user):
    ids = build(rt)
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    for url in ("/propositions", f"/personnes/{ids['joelle']}", "/suivi", "/suivi?perimetre=sector",
                "/personnes?q=joelle"):
        r = client.get(url, headers=HTML)
        assert r.status_code == 200, (url, r.get_data(as_text=True)[:3000])
