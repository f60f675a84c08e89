"""Exports never carry formulas; imports flag control characters (issue 22, item 9)."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from cases.models import Person
from imports import spreadsheets as sp
from referents.cells import DANGEROUS_PREFIXES, control_reason, safe_text
from tests.kiosque_helpers import AS_OF, awaiting, kiosque

HOSTILE = ["=CMD|' /C CALC'!A0", "+33+SUM(A1)", "-2+3", "@HYPERLINK(\"http://x\")", "\tTAB", "\rCR"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _assert_no_formula(data: bytes) -> list[str]:
    """Every cell of every sheet: no formula cell, no string a spreadsheet would evaluate."""
    texts = []
    wb = load_workbook(io.BytesIO(data))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value!r}"
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(DANGEROUS_PREFIXES), (ws.title, cell.coordinate, cell.value)
                    texts.append(cell.value)
    return texts


def test_the_one_guard():
    assert safe_text("=1+1") == "'=1+1" and safe_text("Dupont") == "Dupont" and safe_text(3) == 3
    from reports import export

    assert export.safe_text is safe_text  # the reports export uses the same definition


def test_phoning_list_never_carries_a_formula(client, rt, make_user):
    with rt.session() as s:
        k = kiosque(s, "MDS-RANGUEIL", AS_OF.replace(day=1).replace(month=12))
        for i, name in enumerate(HOSTILE):
            awaiting(s, clock_start=AS_OF, phone="+33612345678", last_name=name, first_name=HOSTILE[-1 - i])
        sid = k.id
    _, h = make_user("manager")
    assert client.post("/api/v1/kiosque/planning", json={"as_of": AS_OF.isoformat()}, headers=h).status_code == 200
    r = client.get(f"/api/v1/kiosque/sessions/{sid}/phoning.xlsx", headers=h)
    assert r.status_code == 200 and r.mimetype == XLSX
    texts = _assert_no_formula(r.data)
    # names are shown as written (after the apostrophe), not evaluated
    assert "'=CMD|' /C CALC'!A0".upper() in texts and "'@HYPERLINK(\"HTTP://X\")" in texts


def test_reports_workbook_never_carries_a_formula(client, rt, make_user):
    from tests.factories import make_person

    with rt.session() as s:
        for name in HOSTILE:
            make_person(s, last_name=name, first_name=name, clock_start=AS_OF.replace(month=8))
    _, h = make_user("manager")
    r = client.get("/api/v1/reports/export.xlsx", query_string={"as_of": AS_OF.isoformat(), "persons": "true"},
                   headers=h)
    assert r.status_code == 200 and r.mimetype == XLSX
    texts = _assert_no_formula(r.data)
    assert "'=CMD|' /C CALC'!A0" in texts or "'=CMD|' /C CALC'!A0".upper() in texts  # the persons sheet


def test_imports_keep_names_verbatim_but_reject_control_characters(rt, tmp_path):
    assert control_reason("Dupont\u0081") and "U+0081" in control_reason("Dupont\u0081")
    assert control_reason("Rue des Lilas\nBât. B") is None  # line breaks in a cell are allowed
    csv = tmp_path / "liste.csv"
    csv.write_text("Nom bénéficiaire;Prénom bénéficiaire;Date de naissance;N° Allocataire\n"
                   "=1+1;Inès;22/09/1987;1234567\n"
                   "Dupont\u0081;Éric;18/02/1982;7654321\n"
                   "Martin;Jo\x07;18/02/1983;7654322\n", encoding="utf-8")
    report = sp.import_file(rt, csv, "rdvi-usagers")
    assert report["status"] == "imported", report
    assert report["counts"]["created"] == 1
    got = {r["row"]: (r["column"], r["reason"]) for r in report["rejects"]}
    assert set(got) == {3, 4}
    assert got[3][0] == "Nom bénéficiaire" and "U+0081" in got[3][1]
    assert got[4][0] == "Prénom bénéficiaire" and "U+0007" in got[4][1]
    with rt.session() as s:
        assert s.scalars(select(Person.last_name)).all() == ["=1+1"]  # verbatim
