"""Provider return files (issue 9): template, facts recorded through the cases services,
scope (a provider only touches people oriented to its own structure), idempotency, API."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import load_workbook
from sqlalchemy import func, select

from cases import service as cases_service
from cases.models import Appointment, CaseEvent, Contract, Exit
from imports import provider_returns as pr
from orientation.models import Orientation
from referents.service import structure_by_code
from tests.factories import make_person

EST, NORD = "ACTIPRO-TLS-EST", "ACTIPRO-TLS-NORD"


def oriented_person(rt, code, **kw):
    with rt.session() as s:
        p = make_person(s, **kw)
        s.add(Orientation(person_id=p.id, referent_type="actipro", structure_id=structure_by_code(s, code).id,
                          status="validated", decided_on=dt.date(2026, 10, 5), validated_on=dt.date(2026, 10, 5),
                          notified_on=dt.date(2026, 10, 6)))
        return p.id, p.household.matricule if p.household else None


def fill(template, out, rows):
    """Write rows (dicts keyed by our field names) into the published template."""
    wb = load_workbook(template)
    ws = wb["Retour"]
    order = [c.value for c in ws[1]]  # the template's own header (it has no NIR column)
    for i, row in enumerate(rows, start=2):
        for field, value in row.items():
            ws.cell(row=i, column=order.index(pr.COLUMNS[field][0]) + 1, value=value)
    wb.save(out)
    return out


def events(rt, person_id):
    with rt.session() as s:
        return sorted(s.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == person_id)).all())


def test_template_has_dropdowns(tmp_path):
    path = pr.write_template(tmp_path / "modele.xlsx")
    wb = load_workbook(path)
    ws = wb["Retour"]
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["Identifiant RSA31", "N° allocataire", "Organisme"]
    assert "Statut du 1er rendez-vous" in headers and "Motif de sortie" in headers
    lists = {str(dv.sqref).split(":")[0][0]: dv.formula1 for dv in ws.data_validations.dataValidation
             if dv.type == "list"}
    status_col = chr(ord("A") + headers.index("Statut du 1er rendez-vous"))
    reason_col = chr(ord("A") + headers.index("Motif de sortie"))
    assert status_col in lists and reason_col in lists
    listed = wb["Listes"]
    statuses = [c.value for c in listed["A"][1:] if c.value]
    assert statuses == ["Honoré", "Absent non excusé", "Excusé"]
    reasons = [c.value for c in listed["B"][1:] if c.value]
    assert len(reasons) == 10 and "Emploi durable (CDI)" in reasons
    assert wb["Listes"].sheet_state == "hidden"


def test_return_records_facts_and_rejects_other_structures(rt, tmp_path):
    mine, matricule = oriented_person(rt, EST)
    theirs, _ = oriented_person(rt, NORD)
    nobody_id, _ = oriented_person(rt, EST)
    template = pr.write_template(tmp_path / "modele.xlsx")
    rows = [
        {"caf_number": matricule, "role": "DEM", "appointment_at": dt.datetime(2026, 10, 20, 9, 30),
         "appointment_status": "Honoré", "contract_signed_on": dt.date(2026, 10, 28), "weekly_hours": 15,
         "step": "Atelier CV", "details": "RAS"},
        {"person_id": theirs, "appointment_at": dt.date(2026, 10, 21), "appointment_status": "Excusé",
         "exit_on": dt.date(2026, 11, 2), "exit_reason": "Formation qualifiante"},
        {"person_id": nobody_id, "appointment_at": "22/10/2026", "appointment_status": "peut-être"},
        {"person_id": 99999999, "step": "x"},
    ]
    path = fill(template, tmp_path / "retour_octobre.xlsx", rows)
    report = pr.import_file(rt, path, EST, as_of=dt.date(2026, 11, 5))
    assert report["status"] == "imported", report
    by_row = {r["row"]: r for r in report["rejects"]}
    assert set(by_row) == {3, 4, 5}
    assert "non orientée vers ActiPro Toulouse Est" in by_row[3]["reason"]
    assert by_row[4]["column"] == "Statut du 1er rendez-vous"
    assert by_row[5]["reason"] == by_row[3]["reason"]  # unknown or someone else's: the same answer
    assert report["counts"]["updated"] == 1
    assert events(rt, mine) == ["appointment.honoured", "appointment.planned", "contract.signed", "provider.step"]
    assert events(rt, theirs) == [] and events(rt, nobody_id) == []  # nothing at all for the rejected rows
    with rt.session() as s:
        appt = s.scalars(select(Appointment).where(Appointment.person_id == mine)).one()
        assert (appt.status, appt.kind, appt.source, appt.scheduled_at) == (
            "honoured", "first", "provider", dt.datetime(2026, 10, 20, 9, 30))
        assert appt.structure_id == structure_by_code(s, EST).id
        contract = s.scalars(select(Contract).where(Contract.person_id == mine)).one()
        assert (contract.signed_on, float(contract.weekly_hours), contract.source) == (dt.date(2026, 10, 28), 15, "provider")
        assert s.scalar(select(func.count()).select_from(Exit)) == 0

    # Next month: the same facts again plus the exit; nothing is recorded twice.
    rows[0].update(exit_on=dt.date(2026, 11, 15), exit_reason="Emploi durable (CDI)")
    path = fill(template, tmp_path / "retour_novembre.xlsx", rows[:1])
    report = pr.import_file(rt, path, EST, as_of=dt.date(2026, 12, 3))
    assert report["counts"]["exit"] == 1 and report["counts"]["appointment"] == 0 and report["counts"]["contract"] == 0
    with rt.session() as s:
        ex = s.scalars(select(Exit).where(Exit.person_id == mine)).one()
        assert (ex.reason, ex.positive, ex.source) == ("employment_permanent", True, "provider")
    before = events(rt, mine)
    # December: the exited person is still listed; recognised, not an error, not recorded again.
    rows[0]["details"] = "Toujours en emploi"
    path = fill(template, tmp_path / "retour_decembre.xlsx", rows[:1])
    report = pr.import_file(rt, path, EST, as_of=dt.date(2027, 1, 5))
    assert report["status"] == "imported"
    assert report["rejected"] == 0 and report["counts"]["unchanged"] == 1
    assert events(rt, mine) == before
    assert pr.import_file(rt, path, EST)["status"] == "duplicate"


def test_file_and_services_produce_the_same_events(rt, tmp_path):
    """What the API does (the cases services) and what a return file does give the same timeline."""
    by_file, _ = oriented_person(rt, EST)
    by_api, _ = oriented_person(rt, EST)
    with rt.session() as s:
        cases_service.record_appointment(s, by_api, dt.datetime(2026, 10, 20, 9, 0), "no_show", kind="first",
                                         source="provider")
        cases_service.record_contract(s, by_api, dt.date(2026, 10, 30), weekly_hours=10,
                                      hours_reduction_reason="health", source="provider")
        cases_service.record_exit(s, by_api, dt.date(2026, 11, 10), "training", source="provider")
    path = fill(pr.write_template(tmp_path / "m.xlsx"), tmp_path / "r.xlsx", [
        {"person_id": by_file, "appointment_at": dt.datetime(2026, 10, 20, 9, 0), "appointment_status": "no_show",
         "contract_signed_on": dt.date(2026, 10, 30), "weekly_hours": 10, "hours_reduction_reason": "Santé",
         "exit_on": dt.date(2026, 11, 10), "exit_reason": "training"}])
    report = pr.import_file(rt, path, EST)
    assert report["rejected"] == 0, report
    assert events(rt, by_file) == events(rt, by_api)


def test_contract_rule_violation_rejects_the_whole_row(rt, tmp_path):
    pid, _ = oriented_person(rt, EST)
    path = fill(pr.write_template(tmp_path / "m.xlsx"), tmp_path / "r.xlsx", [
        {"person_id": pid, "appointment_at": dt.date(2026, 10, 20), "appointment_status": "Honoré",
         "contract_signed_on": dt.date(2026, 10, 30), "weekly_hours": 8}])  # < 15 h without a legal reason
    report = pr.import_file(rt, path, EST)
    assert [(r["row"], r["column"]) for r in report["rejects"]] == [(2, "Heures hebdomadaires")]
    assert events(rt, pid) == []  # the appointment of that row was rolled back with it


def test_missing_identification_columns_fail_the_file(rt, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("Nom;Prénom;Date de sortie\nA;B;01/11/2026\n", encoding="utf-8")
    report = pr.import_file(rt, path, EST)
    assert report["status"] == "failed" and "identification" in report["error"]


def test_api_provider_only_for_its_own_structure(client, make_user, rt, tmp_path):
    pid, _ = oriented_person(rt, EST)
    _, provider = make_user("provider", EST)
    _, manager = make_user("manager")
    _, worker = make_user("mds_worker", "MDS-MURET")
    r = client.get("/api/v1/imports/provider-template", headers=provider)
    assert r.status_code == 200 and r.data[:2] == b"PK"
    (tmp_path / "m.xlsx").write_bytes(r.data)
    data = fill(tmp_path / "m.xlsx", tmp_path / "r.xlsx", [{"person_id": pid, "step": "Immersion"}]).read_bytes()

    def post(headers, query=""):
        return client.post(f"/api/v1/imports/provider-returns{query}", headers=headers,
                           data={"file": (io.BytesIO(data), "retour.xlsx")})

    assert post(worker).status_code == 403
    assert post(provider, f"?structure={NORD}").status_code == 403
    r = post(provider)
    assert r.status_code == 200 and r.get_json()["counts"]["step"] == 1, r.get_json()
    assert events(rt, pid) == ["provider.step"]
    # The same file for another structure by a manager: the person is not oriented there.
    data = fill(tmp_path / "m.xlsx", tmp_path / "r2.xlsx", [{"person_id": pid, "step": "Autre"}]).read_bytes()
    r = post(manager, f"?structure={NORD}")
    assert r.get_json()["rejected"] == 1 and events(rt, pid) == ["provider.step"]
    assert post(manager).status_code == 422  # a manager says which structure
