"""Issue 15 on the database: parcours and organisme on every decision, a person in the loop, decisions that
store only their rule's facts, notices that tell the truth (PDF text), the decision export, the refusal
of automatic validation on sensitive rules at load (CLI and API)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from cases.models import Diagnostic
from orientation import service
from orientation.decisions_export import decision_rows, pseudonym, pseudonym_key, to_csv, to_xlsx
from orientation.messaging.letters import render_pdf
from orientation.models import Notification, Orientation
from orientation.notices import notification_letter
from orientation.rules import V1_RULES_PATH
from referents.models import Structure
from referents.vocabulary import Organisme, Parcours, organisme_of
from tests.factories import make_person

AS_OF = dt.date(2026, 11, 20)


def _orientation(session, person_id) -> Orientation:
    return session.scalars(select(Orientation).where(Orientation.person_id == person_id)
                           .order_by(Orientation.id.desc())).first()


def _code(session, sid) -> str | None:
    return session.scalar(select(Structure.code).where(Structure.id == sid)) if sid else None


def _pdf_text(letter) -> str:
    reader = PdfReader(io.BytesIO(render_pdf([letter])))
    # Words as read on the page: the lines wrapped by the layout joined again.
    return " ".join(" ".join(p.extract_text() for p in reader.pages).split())


def test_v2_run_stores_parcours_organisme_validation_and_only_its_rules_facts(session):
    cho = make_person(session, activities=[("CHR", dt.date(2026, 6, 1), None)], email="c@example.org")
    social = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])
    session.add(Diagnostic(person_id=social.id, recorded_on=dt.date(2026, 10, 1),
                           constraints={"health": "strong", "housing": "medium"}))
    young = make_person(session, birth_date=dt.date(2002, 1, 1), activities=[("SSA", dt.date(2025, 1, 1), None)])
    boe = make_person(session, commune="31069", postal_code="31700", activities=[("HAN", dt.date(2020, 1, 1), None)])
    nothing = make_person(session, activities=[("SIN", dt.date(2025, 1, 1), None)])
    session.flush()
    result = service.run(session, AS_OF)
    assert result["rule_set_version"] == 2

    o = _orientation(session, cho.id)
    assert (o.rule_id, o.parcours, o.organisme, o.status, o.validation) == \
        ("JOB_READY", "emploi", "france_travail", "validated", "auto")
    # Only the facts its own rule read (and the address used to assign): no diagnostic level.
    assert set(o.facts) == {"current_activity.code", "activities", "diagnostic.present", "commune", "postal_code"}
    assert "santé" not in o.explanation and "sans intervention humaine" in o.explanation
    assert session.scalar(select(func.count(Notification.id)).where(Notification.orientation_id == o.id)) >= 1

    o = _orientation(session, social.id)
    assert (o.rule_id, o.parcours, o.organisme, o.status, o.validation) == \
        ("SOCIAL_PRIORITY", "social", "departement", "proposed", None)
    assert o.facts["diagnostic.health"] == "strong"  # an agent will read it before validating
    # Not notified before an agent validated.
    assert session.scalar(select(func.count(Notification.id)).where(Notification.orientation_id == o.id)) == 0
    service.validate(session, [o.id], user_id=None, as_of=AS_OF)
    session.refresh(o)
    assert (o.status, o.validation) == ("validated", "agent")
    assert session.scalar(select(func.count(Notification.id)).where(Notification.orientation_id == o.id)) >= 1

    o = _orientation(session, young.id)
    assert (o.rule_id, o.parcours, o.organisme, _code(session, o.structure_id)) == \
        ("YOUTH_MISSION_LOCALE", "socio_professionnel", "mission_locale", "ML-TOULOUSE")
    o = _orientation(session, boe.id)  # Cap emploi has one structure for the whole Département
    assert (o.rule_id, o.parcours, o.organisme, _code(session, o.structure_id)) == \
        ("CAP_EMPLOI_BOE", "emploi", "cap_emploi", "CAPEMPLOI-31")
    o = _orientation(session, nothing.id)
    assert (o.rule_id, o.status, o.parcours, o.organisme) == ("INSUFFICIENT_DATA", "kiosque", None, None)

    explained = service.explain(session, cho.id, AS_OF)
    assert explained.current.parcours == "emploi" and explained.current.organisme == "france_travail"
    assert explained.rules_today.parcours == "emploi" and explained.rules_today.source


def test_decisions_made_by_a_person_carry_parcours_and_organisme(session):
    p = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])
    o = service.record_orientation(session, p.id, "actipro", origin="kiosque", decided_on=AS_OF)
    assert (o.parcours, o.organisme, o.validation, o.algorithmic) == \
        ("socio_professionnel", "delegataire", "agent", False)
    o2 = service.record_orientation(session, p.id, "pole_emploi", origin="agent", decided_on=AS_OF,
                                    parcours="socio_professionnel", reason="Accompagnement global")
    assert (o2.parcours, o2.organisme) == ("socio_professionnel", "france_travail")


def test_generated_flow_every_decision_has_parcours_and_organisme(rt, tmp_path):
    from cases.models import Activity, Person
    from imports.generator import generate_monthly
    from imports.service import import_file

    flow = tmp_path / "RSABEM_202610.xml"
    generate_monthly(flow, households=150, seed=4, month="2026-10")
    assert import_file(rt, flow)["status"] == "imported"
    with rt.session() as s:
        result = service.run(s, AS_OF)
        assert result["considered"] > 100 and result["rule_set_version"] == 2
    with rt.session() as s:
        rows = s.execute(select(Orientation, Person).join(Person, Person.id == Orientation.person_id)).all()
        assert rows
        checked = {"social": 0, "emploi": 0}
        for o, person in rows:
            if o.referent_type == "kiosque":
                assert o.parcours is None and o.organisme is None
                continue
            assert o.parcours in Parcours.codes() and o.organisme in Organisme.codes(), o.rule_id
            assert o.organisme == organisme_of(o.referent_type)
            acts = s.scalars(select(Activity).where(Activity.person_id == person.id)).all()
            current = [a for a in acts if a.start_on <= AS_OF and (a.end_on is None or a.end_on >= AS_OF)]
            recent = [a for a in acts if a.code in ("SAL", "INT", "TSA") and a.end_on is not None
                      and a.end_on >= dt.date(2024, 11, 20)]
            cur = max(current, key=lambda a: a.start_on).code if current else None
            if cur == "MAL" and not recent:  # social priority: référentiel §II, Département (MDS)
                assert (o.rule_id, o.parcours, o.organisme) == ("SOCIAL_PRIORITY", "social", "departement")
                checked["social"] += 1
            if cur in ("CHO", "CHR", "CNI", "ASS", "ANP"):  # job-ready: emploi, France Travail
                assert (o.rule_id, o.parcours, o.organisme, o.validation) == \
                    ("JOB_READY", "emploi", "france_travail", "auto")
                checked["emploi"] += 1
        assert checked["social"] > 0 and checked["emploi"] > 0, checked


def _validated(session, person, **kw) -> Orientation:
    service.run(session, AS_OF)
    o = _orientation(session, person.id)
    if o.status == "proposed":
        service.validate(session, [o.id], user_id=None, as_of=AS_OF)
        session.refresh(o)
    return o


MENTIONS = ("Décision d'orientation", "contrat d'engagement", "Dans le mois", "15 heures",
            "réduites, jusqu'à zéro", "droit d'obtenir les règles", "nouvelle orientation",
            "recours administratif", "Président du Conseil départemental", "tribunal administratif de Toulouse",
            "2 mois")


def test_letter_of_an_automatically_validated_decision(session):
    p = make_person(session, activities=[("CHR", dt.date(2026, 6, 1), None)], last_name="DUPRÉ")
    o = _validated(session, p)
    assert o.validation == "auto"
    text = _pdf_text(notification_letter(session, o))
    for mention in MENTIONS:
        assert mention in text, mention
    assert "Votre parcours : emploi" in text and "Votre organisme référent : France Travail" in text
    assert "sans intervention d'un agent" in text and "Un agent du Département a examiné" not in text
    assert "Kiosque Insertion" not in text.split("Objet")[0]  # headed as an orientation letter


def test_letter_of_an_agent_validated_decision(session):
    p = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)], last_name="MARTIN")
    session.add(Diagnostic(person_id=p.id, recorded_on=dt.date(2026, 10, 1), constraints={"housing": "strong"}))
    session.flush()
    o = _validated(session, p)
    assert (o.rule_id, o.validation) == ("SOCIAL_PRIORITY", "agent")
    text = _pdf_text(notification_letter(session, o))
    for mention in MENTIONS:
        assert mention in text, mention
    assert "Votre parcours : social" in text and "Votre organisme référent : Département" in text
    assert "Un agent du Département a examiné cette proposition" in text
    assert "sans intervention d'un agent" not in text


def test_letter_of_a_decision_taken_by_a_person_claims_no_algorithm(session):
    p = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])
    o = service.record_orientation(session, p.id, "ati", origin="kiosque", decided_on=AS_OF)
    text = _pdf_text(notification_letter(session, o))
    assert "sans recours à un traitement algorithmique" in text and "droit d'obtenir les règles" not in text
    assert "recours administratif" in text and "contrat d'engagement" in text


def test_decision_export_csv_and_xlsx(session):
    a = make_person(session, activities=[("CHR", dt.date(2026, 6, 1), None)])
    b = make_person(session, activities=[("ETI", dt.date(2026, 1, 1), None)])
    c = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])  # kiosque: not a decision
    service.run(session, AS_OF)
    rows = decision_rows(session, AS_OF, AS_OF, "secret")
    assert {r.key for r in rows} == {pseudonym(pseudonym_key("secret"), p.id) for p in (a, b)}
    assert pseudonym(pseudonym_key("other"), a.id) not in {r.key for r in rows}
    by_key = {r.key: r for r in rows}
    ra = by_key[pseudonym(pseudonym_key("secret"), a.id)]
    assert (ra.parcours, ra.organisme, ra.rule, ra.validation, ra.decided_on) == \
        ("emploi", "france_travail", "JOB_READY", "automatique", AS_OF)
    assert "activité actuelle (ACT)" in ra.criteria and "commune" not in ra.criteria
    assert decision_rows(session, AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=30), "secret") == []
    table = list(csv.reader(io.StringIO(to_csv(rows).decode("utf-8-sig")), delimiter=";"))
    assert table[0][:5] == ["cle_pseudonyme", "date_decision", "parcours", "parcours_libelle", "organisme"]
    assert len(table) == 3 and str(c.id) not in {t[0] for t in table[1:]}
    wb = load_workbook(io.BytesIO(to_xlsx(rows, AS_OF, AS_OF)))
    assert wb.sheetnames == ["Décisions", "Synthèse"] and wb["Décisions"].max_row == 3


def test_cli_export_explain_json_and_refused_rule_set(rt, database_url, tmp_path):
    from click.testing import CliRunner

    from config.cli import main

    with rt.session() as s:
        p = make_person(s, activities=[("CHR", dt.date(2026, 6, 1), None)])
        pid = p.id
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--database-url", database_url, "orient", *map(str, args)],
                             catch_exceptions=False)

    assert run("run", "--as-of", AS_OF, "--json").exit_code == 0
    r = run("explain", "--person", pid, "--as-of", AS_OF, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["current"]["parcours"] == "emploi" and out["current"]["organisme"] == "france_travail"

    target = tmp_path / "decisions.csv"
    r = run("export-decisions", "--from", AS_OF, "--to", AS_OF, target, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["decisions"] == 1 and target.read_bytes().startswith(b"\xef\xbb\xbf")
    r = run("export-decisions", "--from", AS_OF, "--to", AS_OF - dt.timedelta(days=1), tmp_path / "x.csv")
    assert r.exit_code != 0 and "période vide" in r.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrules:\n  - {id: HEALTH_AUTO, label: r, outcome: pole_emploi, mode: auto, explain: x,\n"
                   "     when: {fact: diagnostic.health, eq: none}}\nfallback: {id: FB, label: f,"
                   " outcome: kiosque, explain: y}\n", encoding="utf-8")
    r = run("rules", "load", bad)
    assert r.exit_code != 0 and "validation automatique est refusée pour la règle HEALTH_AUTO" in r.output
    r = run("rules", "load", V1_RULES_PATH, "--json")
    assert r.exit_code == 0 and "JOB_READY" in " ".join(json.loads(r.output)["warnings"])


def test_v1_stays_loadable_and_still_decides(session):
    service.load_rules_text(session, V1_RULES_PATH.read_text(encoding="utf-8"))
    p = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])
    service.run(session, AS_OF)
    o = _orientation(session, p.id)
    assert (o.rule_set_version, o.rule_id, o.parcours, o.organisme) == \
        (1, "PROJECT_SUPPORT", "socio_professionnel", "delegataire")


def test_api_refuses_automatic_validation_on_a_sensitive_rule_and_exposes_parcours(rt, client, make_user):
    _, manager = make_user("manager")
    current = client.get("/api/v1/orientation/rules", headers=manager).json
    assert current["version"] == 2 and all("parcours" in r for r in current["rules"] if r["outcome"] != "kiosque")
    rules = [dict(r) for r in current["rules"]]
    social = next(r for r in rules if r["id"] == "SOCIAL_PRIORITY")
    social["mode"] = "auto"
    r = client.put("/api/v1/orientation/rules", json={"base_version": 2, "name": "essai", "rules": rules,
                                                      "fallback": current["fallback"]}, headers=manager)
    assert r.status_code == 422
    assert "validation automatique est refusée pour la règle SOCIAL_PRIORITY" in json.dumps(r.json, ensure_ascii=False)
    with rt.session() as s:
        p = make_person(s, activities=[("CHR", dt.date(2026, 6, 1), None)])
        pid = p.id
    client.post("/api/v1/orientation/run", json={"as_of": AS_OF.isoformat()}, headers=manager)
    r = client.get(f"/api/v1/orientation/persons/{pid}/explain?as_of={AS_OF}", headers=manager)
    assert r.status_code == 200
    assert (r.json["current"]["parcours"], r.json["current"]["organisme"], r.json["current"]["validation"]) == \
        ("emploi", "france_travail", "auto")
    assert r.json["rules_today"]["parcours"] == "emploi"


def test_report_indicators_by_parcours_and_organisme(session, tmp_path):
    from reports.export import build_workbook
    from reports.indicators import ReportFilter
    from reports.service import full_report

    job = [make_person(session, activities=[("CHR", dt.date(2026, 6, 1), None)]) for _ in range(2)]
    eti = make_person(session, activities=[("ETI", dt.date(2026, 1, 1), None)])
    social = make_person(session, no_fixed_address=True)
    young = make_person(session, birth_date=dt.date(2002, 1, 1), activities=[("SSA", dt.date(2025, 1, 1), None)])
    waiting = make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)])  # kiosque: not oriented
    service.run(session, dt.date(2026, 10, 11))  # ten days after the clock start of 2026-10-01
    for p in (social, young):
        service.validate(session, [_orientation(session, p.id).id], user_id=None, as_of=dt.date(2026, 10, 21))
    report = full_report(session, ReportFilter(as_of=AS_OF))
    legal = report["clocks"]["legal"]
    by_parcours = {r["key"]: r for r in legal["by_parcours"]}
    assert {k: r["oriented"] for k, r in by_parcours.items()} == \
        {"emploi": 2, "socio_professionnel": 2, "social": 1, None: 0}
    assert by_parcours["emploi"]["median_days"] == 10.0 and by_parcours["social"]["median_days"] == 20.0
    assert by_parcours["emploi"]["label"] == "Emploi" and by_parcours[None]["cohort_size"] == 1
    by_org = {r["key"]: r for r in legal["by_organisme"]}
    assert {k: r["oriented"] for k, r in by_org.items()} == \
        {"france_travail": 2, "departement": 2, "mission_locale": 1, None: 0}
    assert by_org["departement"]["label"] == "Département" and by_org["mission_locale"]["median_days"] == 20.0
    # Beside the referent types, from the same decisions.
    by_rt = {r["key"]: r["oriented"] for r in legal["by_referent_type"]}
    assert by_rt["pole_emploi"] == 2 and by_rt["ati"] == 1 and by_rt["mds"] == 1
    wb = build_workbook(report)
    assert "Par parcours" in wb.sheetnames and "Par organisme référent" in wb.sheetnames
    labels = [c.value for c in wb["Par parcours"]["C"]][1:]
    assert "Socio-professionnel" in labels
    assert waiting.id and eti.id and all(p.id for p in job)


def test_dashboard_shows_parcours_and_organisme(rt, client, make_user):
    _, manager = make_user("manager")
    with rt.session() as s:
        make_person(s, activities=[("CHR", dt.date(2026, 6, 1), None)])
        service.run(s, dt.date(2026, 10, 11))
    page = client.get(f"/dashboard?as_of={AS_OF}", headers=manager)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="by-parcours"' in html and 'id="by-organisme"' in html
    assert "Par parcours du référentiel" in html and "France Travail" in html and "Emploi" in html


def test_api_decision_export(rt, client, make_user):
    _, manager = make_user("manager")
    _, worker = make_user("mds_worker", "MDS-RANGUEIL")
    with rt.session() as s:
        make_person(s, activities=[("CHR", dt.date(2026, 6, 1), None)])
        service.run(s, AS_OF)
    q = f"from={AS_OF}&to={AS_OF}"
    assert client.get(f"/api/v1/orientation/decisions/export?{q}", headers=worker).status_code == 403
    r = client.get(f"/api/v1/orientation/decisions/export?{q}&format=csv", headers=manager)
    assert r.status_code == 200 and "decisions-orientation-2026-11-20-2026-11-20.csv" in r.headers["Content-Disposition"]
    lines = r.data.decode("utf-8-sig").splitlines()
    assert len(lines) == 2 and ";emploi;Emploi;france_travail;" in lines[1]
    r = client.get(f"/api/v1/orientation/decisions/export?{q}", headers=manager)
    assert r.status_code == 200 and load_workbook(io.BytesIO(r.data))["Décisions"].max_row == 2
    r = client.get(f"/api/v1/orientation/decisions/export?from={AS_OF}&to=2026-11-01", headers=manager)
    assert r.status_code == 422 and "période vide" in json.dumps(r.json, ensure_ascii=False)


def test_email_and_sms_notices(session):
    from orientation.messaging.templates import render
    from orientation.notices import notification_context

    p = make_person(session, activities=[("CHR", dt.date(2026, 6, 1), None)], email="p@example.org",
                    phone="0612345678")
    o = _validated(session, p)
    channels = sorted(n.channel for n in session.scalars(select(Notification).where(
        Notification.orientation_id == o.id)))
    assert channels == ["email", "sms"]  # the SMS points to the e-mail
    subject, body = render("notification", "email", notification_context(session, o, channel="email"))
    assert subject.startswith("Décision d'orientation RSA") and "parcours emploi" in subject
    words = " ".join(body.split())
    for mention in ("contrat d'engagement", "15 heures", "droit d'obtenir les règles", "recours administratif",
                    "tribunal administratif de Toulouse", "sans intervention d'un agent", "nouvelle orientation"):
        assert mention in words, mention
    assert "## " not in body  # headings are marked for letters only
    _, sms = render("notification", "sms", notification_context(session, o, channel="sms"))
    assert len(sms) <= 320 and "courriel" in sms and "droits et recours" in sms
