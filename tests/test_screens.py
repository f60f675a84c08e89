"""Issue 18: the screens without a browser (test client): landing per role, navigation, French
error pages for browsers and JSON for the API, CSRF on forms, forms refusing what the API refuses."""

from __future__ import annotations

import datetime as dt
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


def test_the_person_file_says_what_the_rules_would_decide_only_for_someone_undecided(rt, client, make_user, counter):
    """A person without any decision: the file says what today's rules would propose (which reads all
    their facts); a person with a decision: its explanation, and the facts are not read."""
    import datetime as dt

    from tests.factories import make_person
    from tests.screens_world import TODAY

    ids = build(rt)
    with rt.session() as s:
        undecided = make_person(s, clock_start=TODAY - dt.timedelta(days=3), last_name="NOUVEAU",
                                activities=[("MAL", dt.date(2025, 1, 1), None)]).id
        s.commit()
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    html = client.get(f"/personnes/{undecided}", headers=HTML).get_data(as_text=True)
    assert "Pas encore orientée." in html and "Les règles d'aujourd'hui proposeraient" in html
    counter.clear()
    html = client.get(f"/personnes/{ids['joelle']}", headers=HTML).get_data(as_text=True)
    assert "Les règles d'aujourd'hui proposeraient" not in html and 'id="orientation"' in html
    assert not [st for st in counter if "FROM activity" in st]  # the facts were not read


def test_error_pages_html_for_browsers_json_for_the_api(client, make_user):
    user, bearer = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    _login(client, user)
    r = client.get("/dashboard", headers=HTML)
    assert r.status_code == 403 and r.mimetype == "text/html"
    assert "Accès refusé" in r.get_data(as_text=True) and 'lang="fr"' in r.get_data(as_text=True)
    r = client.get("/nulle-part", headers=HTML)
    assert r.status_code == 404 and "Page introuvable" in r.get_data(as_text=True)
    # the API keeps JSON, in French, with the message the code gave
    r = client.get("/api/v1/reports/persons?list=nope", headers={**bearer, **HTML})
    assert r.status_code == 422 and r.is_json
    r = client.get("/dashboard", headers=bearer)
    assert r.status_code == 403 and r.is_json and "rôle" in r.json["message"]
    r = client.get("/api/v1/persons/99999999", headers=bearer)
    assert r.status_code == 404 and r.json["message"] == "Personne introuvable"
    r = client.post("/api/v1/persons/1/exit", json={}, headers=bearer)
    assert r.status_code in (404, 422) and r.is_json


def test_api_validation_messages_in_french(rt, client, make_user):
    ids = build(rt)
    _, manager = make_user("manager")
    r = client.post(f"/api/v1/persons/{ids['followed']}/exit", json={"reason": "training"}, headers=manager)
    assert r.status_code == 422
    assert r.json["errors"]["json"]["exit_on"] == ["Ce champ est obligatoire."]


def test_forms_need_the_csrf_token(rt, client, make_user):
    ids = build(rt)
    user, _ = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    _login(client, user)
    url = f"/personnes/{ids['followed']}/sortie"
    r = client.post(url, data={"exit_on": "2026-11-01", "reason": "training"}, headers=HTML)
    assert r.status_code == 400  # no token: refused before anything is written
    token = _csrf(client, f"/personnes/{ids['followed']}")
    r = client.post(url, data={"exit_on": "2026-11-01", "reason": "nope", "csrf_token": token}, headers=HTML)
    assert r.status_code == 422 and "Valeur non prévue" in r.get_data(as_text=True)


def test_page_and_api_refuse_the_same_contract(rt, client, make_user):
    """Fewer than 15 hours without a legal reason: the service refuses it, through both doors."""
    ids = build(rt)
    user, bearer = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    api = client.post(f"/api/v1/persons/{ids['followed']}/contracts", json={"signed_on": "2026-11-02",
                                                                           "weekly_hours": 5}, headers=bearer)
    assert api.status_code == 422
    message = next(iter(api.json["errors"].values()))[0]
    _login(client, user)
    token = _csrf(client, f"/personnes/{ids['followed']}")
    page = client.post(f"/personnes/{ids['followed']}/contrat", headers=HTML,
                       data={"signed_on": "2026-11-02", "weekly_hours": "5", "csrf_token": token})
    assert page.status_code == 422
    import html

    assert message in html.unescape(page.get_data(as_text=True))


def test_provider_batches_in_the_api_are_its_own(rt, client, make_user, tmp_path):
    from imports import provider_returns as pr

    build(rt)
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")
    _, other = make_user("provider", structure_code="ACTIPRO-TLS-NORD")
    _, manager = make_user("manager")
    data = client.get("/api/v1/imports/provider-template", headers=provider).data
    (tmp_path / "m.xlsx").write_bytes(data)
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "m.xlsx")
    ws = wb["Retour"]
    headers = [c.value for c in ws[1]]
    assert "NIR" not in headers and pr.COLUMNS["nir"][0] not in headers
    ws.cell(row=2, column=headers.index("Identifiant RSA31") + 1, value=99999999)
    ws.cell(row=2, column=headers.index("Étape actuelle") + 1, value="x")
    wb.save(tmp_path / "r.xlsx")

    def post():
        return client.post("/api/v1/imports/provider-returns", headers=provider,
                           data={"file": ((tmp_path / "r.xlsx").open("rb"), "r.xlsx")})

    first = post().json
    assert first["status"] == "imported" and first["rejected"] == 1
    again = post().json
    assert again["status"] == "duplicate" and again["rejected"] == 1
    assert [r["row"] for r in again["rejects"]] == [r["row"] for r in first["rejects"]] == [2]
    assert again["rejects"][0]["reason"] == first["rejects"][0]["reason"]
    mine = client.get("/api/v1/imports/batches", headers=provider)
    assert mine.status_code == 200 and [b["id"] for b in mine.json] == [first["batch_id"]]
    assert client.get("/api/v1/imports/batches", headers=other).json == []
    assert client.get(f"/api/v1/imports/batches/{first['batch_id']}/rejects", headers=other).status_code == 404
    rejects = client.get(f"/api/v1/imports/batches/{first['batch_id']}/rejects", headers=provider)
    assert rejects.status_code == 200 and len(rejects.json) == 1
    assert client.get("/api/v1/imports/batches", headers=manager).status_code == 200


@pytest.fixture
def empty_database_url(tmp_path):
    """A database with nothing in it, of the kind the suite runs on."""
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = os.environ.get("RSA_TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_path / 'vide.sqlite3'}"
        return
    base = make_url(server).set(drivername="postgresql+psycopg")
    name = f"rsa_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_cli_on_an_uninitialised_database_says_so_in_french(empty_database_url):
    from click.testing import CliRunner

    from config.cli import main

    result = CliRunner().invoke(main, ["--database-url", empty_database_url, "import", "mappings", "list"])
    assert result.exit_code == 3
    assert "n'est pas initialisée" in result.output and "rsa init" in result.output
    assert "Traceback" not in result.output and "sqlalchemy" not in result.output.lower()


def test_provider_corrects_an_exit_recorded_by_mistake_within_30_days(rt, client, make_user):
    import datetime as dt

    from sqlalchemy import select, update

    from cases.models import Exit, Path
    from orientation.models import Orientation

    ids = build(rt)
    pid = ids["followed"]
    user, _ = make_user("provider", structure_code="ACTIPRO-TLS-EST", password=PASSWORD)
    other, _ = make_user("provider", structure_code="ACTIPRO-TLS-NORD", password=PASSWORD)
    _login(client, user)
    token = _csrf(client, f"/personnes/{pid}")
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    r = client.post(f"/personnes/{pid}/sortie", headers=HTML,
                    data={"exit_on": yesterday, "reason": "training", "csrf_token": token})
    assert r.status_code == 303
    with rt.session() as s:
        assert s.scalar(select(Path.closed_on).where(Path.person_id == pid)) is not None
        exit_id = s.scalar(select(Exit.id).where(Exit.person_id == pid))
    # exited, the person left the provider's scope; the recent exit is listed with its correction
    assert client.get(f"/personnes/{pid}", headers=HTML).status_code == 404
    page = client.get("/suivi", headers=HTML).get_data(as_text=True)
    assert f"/sorties/{exit_id}/correction" in page
    url = f"/sorties/{exit_id}/correction"
    r = client.post(url, headers=HTML, data={"reason": "employment_permanent", "csrf_token": token})
    assert r.status_code == 303
    with rt.session() as s:
        assert s.scalar(select(Exit.reason).where(Exit.person_id == pid)) == "employment_permanent"
    r = client.post(url, headers=HTML, data={"cancel": "true", "csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/personnes/{pid}")
    with rt.session() as s:
        assert s.scalar(select(Exit.id).where(Exit.person_id == pid)) is None
        assert s.scalar(select(Path.closed_on).where(Path.person_id == pid)) is None
        assert s.scalar(select(Orientation.status).where(Orientation.person_id == pid,
                                                         Orientation.referent_type == "actipro")) == "validated"
    # after 30 days: refused, in French, nothing changes
    client.post(f"/personnes/{pid}/sortie", headers=HTML,
                data={"exit_on": yesterday, "reason": "training", "csrf_token": token})
    with rt.session() as s:
        exit_id = s.scalar(select(Exit.id).where(Exit.person_id == pid))
        s.execute(update(Exit).values(recorded_at=dt.datetime.now() - dt.timedelta(days=31)))
        s.commit()
    r = client.post(f"/sorties/{exit_id}/correction", headers=HTML, data={"cancel": "true", "csrf_token": token})
    assert r.status_code == 422 and "30 jours" in r.get_data(as_text=True)
    with rt.session() as s:
        assert s.scalar(select(Exit.id).where(Exit.person_id == pid)) is not None
    # another provider cannot reach it
    client.post("/logout", headers=HTML, data={"csrf_token": token})
    _login(client, other)
    assert client.get(f"/sorties/{exit_id}/correction", headers=HTML).status_code == 404


def test_moving_a_kiosque_session_tells_the_invitees_who_knew_the_old_date(rt, client, make_user):
    import datetime as dt

    from sqlalchemy import select

    from kiosque.models import Invitation, Message
    from orientation.messaging.outbox import process_outbox
    from orientation.messaging.text import french_date
    from orientation.messaging.transports import gateways_for

    ids = build(rt)
    told, untold = ids["invited"]
    with rt.session() as s:
        inv = {pid: s.scalar(select(Invitation.id).where(Invitation.person_id == pid)) for pid in ids["invited"]}
        s.add(Message(person_id=told, invitation_id=inv[told], kind="invitation", channel="sms",
                      recipient="0611223344", status="sent", attempts=1, send_on=dt.date.today()))
        s.add(Message(person_id=untold, invitation_id=inv[untold], kind="invitation", channel="sms",
                      recipient="0611223344", status="queued", attempts=0, send_on=dt.date.today()))
        s.commit()
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    token = _csrf(client, f"/kiosque/sessions/{ids['session']}")
    new_day = dt.date.today() + dt.timedelta(days=9)
    while new_day.weekday() >= 5:
        new_day += dt.timedelta(days=1)
    r = client.post(f"/kiosque/sessions/{ids['session']}/deplacer", headers=HTML,
                    data={"starts_at": f"{new_day.isoformat()}T14:00", "csrf_token": token})
    assert r.status_code == 303, r.get_data(as_text=True)[:3000]
    with rt.session() as s:
        moved = s.scalars(select(Message).where(Message.kind == "session_moved")).all()
        assert [m.person_id for m in moved] == [told]  # the other one's invitation will carry the new date
        process_outbox(s, rt.settings, as_of=dt.date.today(), gateways=gateways_for(rt.settings, email="file"))
        s.commit()
        m = s.scalar(select(Message).where(Message.kind == "session_moved"))
        assert m.status == "sent" and "change de date" in m.body
        assert f"{french_date(new_day)} à 14 h" in m.body


def test_api_corrects_an_exit_like_the_page(rt, client, make_user):
    import datetime as dt

    ids = build(rt)
    pid = ids["followed"]
    _, provider = make_user("provider", structure_code="ACTIPRO-TLS-EST")
    _, other = make_user("provider", structure_code="ACTIPRO-TLS-NORD")
    url = f"/api/v1/persons/{pid}/exit/correction"
    assert client.post(url, json={"cancel": True}, headers=provider).json["errors"]["exit"] \
        == ["aucune sortie enregistrée à corriger"]
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert client.post(f"/api/v1/persons/{pid}/exit", json={"exit_on": yesterday, "reason": "training"},
                       headers=provider).status_code == 201
    assert client.post(url, json={"cancel": True}, headers=other).status_code == 404
    r = client.post(url, json={"reason": "employment_permanent"}, headers=provider)
    assert r.status_code == 200 and r.json["reason"] == "employment_permanent"
    before = (dt.date.today() - dt.timedelta(days=400)).isoformat()
    r = client.post(url, json={"exit_on": before}, headers=provider)
    assert r.status_code == 422 and "début du parcours" in r.json["errors"]["exit_on"][0]
    assert client.post(url, json={"cancel": True}, headers=provider).status_code == 200
    assert client.get(f"/api/v1/persons/{pid}", headers=provider).status_code == 200  # back in its caseload


def test_search_ignores_accents_and_case_and_takes_french_dates(rt, client, make_user):
    ids = build(rt)
    user, bearer = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    for q in ("joelle", "JOELLE", "joël", "Joëlle-Mar", "joëlle joelle"):
        r = client.get("/api/v1/persons", query_string={"q": q}, headers=bearer)
        assert [i["id"] for i in r.json["items"]] == [ids["joelle"]], q
    assert client.get("/api/v1/persons", query_string={"q": "joelle_"}, headers=bearer).json["total"] == 0
    r = client.get("/api/v1/persons", query_string={"birth_date": "14/03/1979"}, headers=bearer)
    assert [i["id"] for i in r.json["items"]] == [ids["joelle"]]
    r = client.get("/api/v1/persons", query_string={"birth_date": "31/02/1979"}, headers=bearer)
    assert r.status_code == 422 and "JJ/MM/AAAA" in str(r.json["errors"])
    _login(client, user)
    page = client.get("/personnes?q=joelle&naissance=14/03/1979", headers=HTML).get_data(as_text=True)
    assert "JOËLLE-MARTIN" in page and "1 personne trouvée" in page


def test_search_page_pages_through_many_results(rt, client, make_user):
    """A common surname gives more persons than a page: the page says which ones it shows, how to
    narrow the search, and leads to the next page and back, the criteria kept."""
    from tests.factories import make_person

    build(rt)
    with rt.session() as s:
        for k in range(57):  # Toulouse 31400: the Rangueil MDS's sector
            make_person(s, last_name="QUESNEL", first_name=f"Prénom{k:02d}", birth_date=dt.date(1980, 1, 1 + k % 28))
        s.commit()
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    first = client.get("/personnes?q=quesnel", headers=HTML).get_data(as_text=True)
    assert "57 personnes trouvées" in first and "Personnes 1 à 50 sur 57" in first
    assert "Ajoutez le prénom ou la date de naissance" in first
    assert first.count("Prénom") >= 50 and "Prénom50" not in first and 'rel="prev"' not in first
    following = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "q=quesnel" in following and "page=2" in following
    second = client.get(following, headers=HTML).get_data(as_text=True)
    assert "Personnes 51 à 57 sur 57" in second and "Prénom56" in second and "Prénom00" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    narrowed = client.get("/personnes?q=quesnel+pr%C3%A9nom05", headers=HTML).get_data(as_text=True)
    assert "1 personne trouvée" in narrowed and 'class="pager"' not in narrowed
    beyond = client.get("/personnes?q=quesnel&page=9", headers=HTML).get_data(as_text=True)
    assert "au-delà des résultats" in beyond and 'rel="prev"' in beyond


def test_search_page_says_more_than_the_cap(rt, client, make_user, monkeypatch):
    """Past the count's cap the page says "plus de", and its pages stop at the cap."""
    from cases import views
    from tests.factories import make_person

    build(rt)
    with rt.session() as s:
        for k in range(57):
            make_person(s, last_name="QUESNEL", first_name=f"Prénom{k:02d}")
        s.commit()
    monkeypatch.setattr(views, "SEARCH_COUNT_CAP", 55)
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    first = client.get("/personnes?q=quesnel", headers=HTML).get_data(as_text=True)
    assert "Plus de 55 personnes trouvées" in first and "Personnes 1 à 50 sur plus de 55" in first
    second = client.get("/personnes?q=quesnel&page=2", headers=HTML).get_data(as_text=True)
    assert "Personnes 51 à 57 sur plus de 55" in second and 'rel="next"' not in second


def test_proposals_filtered_by_the_age_of_the_legal_clock(rt, client, make_user):
    build(rt)
    user, _ = make_user("mds_worker", structure_code="MDS-RANGUEIL", password=PASSWORD)
    _login(client, user)
    everyone = client.get("/propositions", headers=HTML).get_data(as_text=True)
    assert "DURAND" in everyone and "JOËLLE-MARTIN" in everyone
    old = client.get("/propositions?age=42", headers=HTML).get_data(as_text=True)
    assert "DURAND" in old and "JOËLLE-MARTIN" not in old  # 45 days against 25
    assert "1 proposition" in old
