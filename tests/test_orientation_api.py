"""Issue 4: the orientation REST API (roles, scope, audit) and the `rsa orient` commands."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from sqlalchemy import func, select

from config.cli import main
from orientation.models import Orientation
from referents.models import AuditLog
from tests.factories import make_person
from tests.rules_helpers import use_rules_v1

AS_OF = "2026-11-20"


def _people(rt):
    """Toulouse 31400 (MDS Rangueil): an ActiPro proposal, an MDS proposal, a job seeker (validated);
    Muret: an ActiPro proposal."""
    with rt.session() as s:
        use_rules_v1(s)
        ids = {
            "ssa": make_person(s, activities=[("SSA", dt.date(2025, 1, 1), None)]).id,
            "mal": make_person(s, activities=[("MAL", dt.date(2025, 1, 1), None)]).id,
            "cho": make_person(s, activities=[("CHO", dt.date(2026, 1, 1), None)]).id,
            "muret": make_person(s, activities=[("SSA", dt.date(2025, 1, 1), None)], commune="31395",
                                 postal_code=None).id,
        }
    return ids


def _audits(rt, action):
    with rt.session() as s:
        return s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == action))


def test_run_queue_validate_with_scope_and_audit(rt, client, make_user):
    ids = _people(rt)
    _, manager = make_user("manager")
    r = client.post("/api/v1/orientation/run", json={"as_of": AS_OF}, headers=manager)
    assert r.status_code == 200, r.json
    assert r.json["considered"] == 4 and r.json["decisions"]["actipro"] == 2 and r.json["validated"] == 1

    _, rangueil = make_user("mds_worker", "MDS-RANGUEIL")
    _, muret = make_user("mds_worker", "MDS-MURET")
    q = client.get("/api/v1/orientation/queue", headers=rangueil).json
    assert {i["person_id"] for i in q["items"]} == {ids["ssa"], ids["mal"]} and q["total"] == 2
    assert "algorithme" in q["items"][0]["explanation"]
    q = client.get("/api/v1/orientation/queue?referent_type=actipro", headers=manager).json
    assert {i["person_id"] for i in q["items"]} == {ids["ssa"], ids["muret"]}
    assert client.get("/api/v1/orientation/queue?mds=NOPE", headers=manager).status_code == 422

    # the Muret worker cannot validate a Toulouse proposal; validates its own filtered queue
    toulouse_ids = [i["id"] for i in client.get("/api/v1/orientation/queue", headers=rangueil).json["items"]]
    r = client.post("/api/v1/orientation/validate", json={"ids": toulouse_ids}, headers=muret)
    assert r.status_code == 200 and r.json["validated"] == [] and len(r.json["skipped"]) == 2
    r = client.post("/api/v1/orientation/validate", json={"filter": {"referent_type": "actipro"}, "as_of": AS_OF},
                    headers=muret)
    assert r.status_code == 200 and len(r.json["validated"]) == 1
    assert client.post("/api/v1/orientation/validate", json={}, headers=muret).status_code == 422
    assert _audits(rt, "orientation.validate") == 1

    # override needs a reason; then the person's proposal is replaced
    mal_oid = next(i["id"] for i in client.get("/api/v1/orientation/queue", headers=rangueil).json["items"]
                   if i["person_id"] == ids["mal"])
    assert client.post(f"/api/v1/orientation/{mal_oid}/override", json={"referent_type": "pole_emploi"},
                       headers=rangueil).status_code == 422
    assert client.post(f"/api/v1/orientation/{mal_oid}/override",
                       json={"referent_type": "pole_emploi", "reason": "Souhaite chercher un emploi"},
                       headers=muret).status_code == 404  # out of scope
    r = client.post(f"/api/v1/orientation/{mal_oid}/override",
                    json={"referent_type": "pole_emploi", "reason": "Souhaite chercher un emploi"}, headers=rangueil)
    assert r.status_code == 200 and r.json["status"] == "validated" and r.json["structure"] == "FT-TLS-RANGUEIL"
    assert r.json["algorithmic"] is False
    assert _audits(rt, "orientation.override") == 1
    with rt.session() as s:
        assert s.get(Orientation, mal_oid).status == "overridden"


def test_explain_reorientation_and_deadlines(rt, client, make_user):
    ids = _people(rt)
    _, manager = make_user("manager")
    client.post("/api/v1/orientation/run", json={"as_of": AS_OF}, headers=manager)
    r = client.get(f"/api/v1/orientation/persons/{ids['cho']}/explain?as_of={AS_OF}", headers=manager)
    assert r.status_code == 200
    assert "règle JOB_READY v1" in r.json["explanation"] and "algorithme" in r.json["explanation"]
    assert r.json["current"]["facts"]["current_activity.code"] == "CHO"
    assert r.json["rules_today"]["rule"] == "JOB_READY"
    assert _audits(rt, "read") == 1
    # a provider sees only people oriented to its structure
    _, provider = make_user("provider", "ACTIPRO-TLS-SUD")
    assert client.get(f"/api/v1/orientation/persons/{ids['ssa']}/explain", headers=provider).status_code == 404
    ssa_oid = client.get("/api/v1/orientation/queue?referent_type=actipro&mds=MDS-RANGUEIL",
                         headers=manager).json["items"][0]["id"]
    client.post("/api/v1/orientation/validate", json={"ids": [ssa_oid]}, headers=manager)
    assert client.get(f"/api/v1/orientation/persons/{ids['ssa']}/explain", headers=provider).status_code == 200
    # the referent asks for a réorientation; a manager accepts it
    r = client.post(f"/api/v1/orientation/persons/{ids['ssa']}/reorientation",
                    json={"reason": "Problème de logement urgent", "wanted_referent_type": "mds"}, headers=provider)
    assert r.status_code == 201 and r.json["status"] == "pending"
    assert client.get("/api/v1/orientation/reorientations", headers=provider).status_code == 403
    pending = client.get("/api/v1/orientation/reorientations", headers=manager).json
    assert [p["id"] for p in pending] == [r.json["id"]]
    d = client.post(f"/api/v1/orientation/reorientations/{r.json['id']}/decision", json={"accept": True},
                    headers=manager)
    assert d.status_code == 200 and d.json["status"] == "accepted" and d.json["new_orientation_id"]
    # the provider no longer follows the person
    assert client.get(f"/api/v1/orientation/persons/{ids['ssa']}/explain", headers=provider).status_code == 404
    assert _audits(rt, "orientation.reorientation_request") == 1
    assert _audits(rt, "orientation.reorientation_decision") == 1

    dl = client.get("/api/v1/orientation/deadlines?as_of=2026-11-25", headers=manager).json
    assert dl["total"] == 2 and dl["counts"]["d35"] == 0 and dl["counts"]["d21"] == 0
    dl = client.get("/api/v1/orientation/deadlines?as_of=2026-11-12", headers=manager).json
    assert dl["counts"]["past_limit"] == 2  # clock 2026-10-01 → legal limit 2026-11-12


def test_rules_get_and_put_versions(rt, client, make_user):
    with rt.session() as s:
        use_rules_v1(s)
    _, manager = make_user("manager")
    _, worker = make_user("mds_worker", "MDS-RANGUEIL")
    r = client.get("/api/v1/orientation/rules", headers=worker)
    assert r.status_code == 200 and r.json["version"] == 1 and r.json["rules"][0]["id"] == "FT_ACCOMPANIED"
    body = {"base_version": 1, "name": "v2", "rules": r.json["rules"][1:], "fallback": r.json["fallback"]}
    assert client.put("/api/v1/orientation/rules", json=body, headers=worker).status_code == 403
    bad = dict(body, rules=[dict(body["rules"][0], when={"fact": "nope", "eq": 1})])
    r = client.put("/api/v1/orientation/rules", json=bad, headers=manager)
    assert r.status_code == 422 and "fait inconnu 'nope'" in r.json["errors"]["_schema"][0]
    r = client.put("/api/v1/orientation/rules", json=body, headers=manager)
    assert r.status_code == 201 and r.json["version"] == 2 and len(r.json["rules"]) == 6
    r = client.put("/api/v1/orientation/rules", json=body, headers=manager)
    assert r.status_code == 409 and "changé entre-temps" in r.json["message"]
    versions = client.get("/api/v1/orientation/rules/versions", headers=worker).json
    assert [(v["version"], v["active"], v["rules"]) for v in versions] == [(1, False, 7), (2, True, 6)]
    assert client.get("/api/v1/orientation/rules/1", headers=worker).json["rules"][0]["id"] == "FT_ACCOMPANIED"
    assert client.get("/api/v1/orientation/rules/9", headers=worker).status_code == 404
    assert client.get(f"/api/v1/orientation/rules/{2**40}", headers=worker).status_code == 404
    assert client.get(f"/api/v1/orientation/persons/{2**40}/explain", headers=manager).status_code == 404
    assert client.post("/api/v1/orientation/validate", json={"ids": [2**40]}, headers=manager).status_code == 422


def _cli(database_url, *args):
    result = CliRunner().invoke(main, ["--database-url", database_url, "orient", *args], catch_exceptions=False)
    return result


def test_cli_run_explain_validate_rules(rt, database_url, tmp_path):
    ids = _people(rt)
    r = _cli(database_url, "run", "--as-of", AS_OF, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["considered"] == 4 and out["decisions"] == {"pole_emploi": 1, "actipro": 2, "ati": 0, "mds": 1,
                                                           "kiosque": 0}
    assert (out["validated"], out["proposed"], out["awaiting_capacity"]) == (1, 3, 0)
    again = json.loads(_cli(database_url, "run", "--as-of", AS_OF, "--json").output)
    assert sum(again["decisions"].values()) == 0 and again["unchanged"] == 3

    r = _cli(database_url, "explain", "--person", str(ids["cho"]), "--as-of", AS_OF)
    assert r.exit_code == 0 and "règle JOB_READY v1" in r.output and "algorithme" in r.output
    assert _cli(database_url, "explain", "--person", "999999").exit_code != 0

    r = _cli(database_url, "validate", "--all-proposed", "--referent-type", "actipro", "--as-of", AS_OF, "--json")
    assert r.exit_code == 0 and len(json.loads(r.output)["validated"]) == 2
    assert _audits(rt, "orientation.validate") == 2
    q = json.loads(_cli(database_url, "queue", "--json").output)
    assert q["total"] == 1
    r = _cli(database_url, "override", "--id", str(q["items"][0]["id"]), "--referent-type", "ati", "--reason",
             "Créateur d'entreprise", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "validated"

    shown = json.loads(_cli(database_url, "rules", "show", "--json").output)
    assert shown["version"] == 1 and len(shown["rules"]) == 7
    assert "FT_ACCOMPANIED" in _cli(database_url, "rules", "show").output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrules:\n  - {id: R1, label: r, outcome: ati, mode: auto, explain: x,\n"
                   "     when: {fact: current_activity.code, among: [ETI]}}\nfallback: {id: FB, label: f,"
                   " outcome: kiosque, explain: y}\n", encoding="utf-8")
    r = _cli(database_url, "rules", "load", str(bad))
    assert r.exit_code != 0 and "opérateur inconnu 'among'" in r.output
    good = tmp_path / "good.yaml"
    good.write_text(bad.read_text(encoding="utf-8").replace("among", "in"), encoding="utf-8")
    r = _cli(database_url, "rules", "load", str(good), "--json")
    assert r.exit_code == 0 and json.loads(r.output) == {"version": 2, "changed": True, "rules": 1}
    assert json.loads(_cli(database_url, "rules", "load", str(good), "--json").output)["changed"] is False

    r = _cli(database_url, "deadlines", "--as-of", "2026-11-12", "--alerts", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["past_limit"] == 0  # everyone is oriented now
