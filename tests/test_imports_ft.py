"""France Travail lists (issue 9): history, PPAE, late matching, rejects, idempotency, API."""

from __future__ import annotations

import datetime as dt
import io
import shutil

from sqlalchemy import func, select

from cases.models import CaseEvent, FranceTravailEvent, StatusChange
from imports import france_travail as ft
from imports.models import ImportBatch, RejectedRecord
from tests.conftest import DATA
from tests.factories import make_person

NIR_A = "1850531555123"
NIR_B = "2900731555456"
NIR_LATE = "1790131555789"
BIRTH_A, BIRTH_B, BIRTH_LATE = dt.date(1985, 5, 17), dt.date(1990, 7, 2), dt.date(1979, 1, 3)


def write(tmp_path, name, lines, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def person_with_nir(rt, nir13, birth):
    with rt.session() as s:
        p = make_person(s, birth_date=birth, nir_hash=rt.vault.hash(nir13))
        return p.id


def count(rt, model, *where):
    with rt.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def stock_lines():
    header = "nir;identifiantpe;nom;prenom;dtnai;date;code;nir2;codeinsee;localite;adresse;ale;" \
             "date_signature_ppae;modalite"
    return [header,
            f"{NIR_A};1234567A;MARTIN;Paul;17/05/1985;02/03/2026;1;;31555;TOULOUSE;1 RUE X;ALE TLS CENTRE;"
            "15/03/2026;REN",
            f"{NIR_B};7654321B;DURAND;Inès;02/07/1990;10/04/2026;1;;31555;TOULOUSE;2 RUE Y;ALE TLS MIRAIL;;",
            f"{NIR_LATE};1111111C;LEROY;Jean;03/01/1979;01/02/2026;1;;31069;BLAGNAC;3 RUE Z;ALE BLAGNAC;"
            "01/03/2026;GUI"]


def test_stock_marks_followed_then_cessation_ends_it(rt, tmp_path):
    pid_a = person_with_nir(rt, NIR_A, BIRTH_A)
    pid_b = person_with_nir(rt, NIR_B, BIRTH_B)
    report = ft.import_file(rt, "stock", write(tmp_path, "stock.csv", stock_lines()))
    assert report["status"] == "imported", report
    assert report["counts"]["matched"] == 2 and report["counts"]["unmatched"] == 1
    assert report["rejected"] == 0
    with rt.session() as s:
        a, b = ft.ft_status(s, pid_a), ft.ft_status(s, pid_b)
        assert a["registered"] and a["followed"] and a["ppae_modality"] == "REN"
        assert a["ppae_signed_on"] == dt.date(2026, 3, 15) and a["agency"] == "ALE TLS CENTRE"
        assert b["registered"] and not b["followed"]  # registered without PPAE: not followed
        kinds = s.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == pid_a)).all()
        assert kinds == ["france_travail.registered"]
        assert s.scalar(select(CaseEvent.source).where(CaseEvent.person_id == pid_a)) == "france_travail"

    # Later: a cessation for A (header-less file, motif column present)
    lines = [f"{NIR_A};1234567A;MARTIN;Paul;17/05/1985;12/09/2026;CES;reprise d'emploi;"]
    report = ft.import_file(rt, "cessations", write(tmp_path, "cessations.csv", lines))
    assert report["status"] == "imported" and report["counts"]["matched"] == 1, report
    with rt.session() as s:
        a = ft.ft_status(s, pid_a)
        assert a["state"] == "ceased" and not a["registered"] and not a["followed"]
        history = s.execute(select(StatusChange.old_value, StatusChange.new_value, StatusChange.effective_on)
                            .where(StatusChange.person_id == pid_a, StatusChange.field == "ft_registration")
                            .order_by(StatusChange.id)).all()
        assert history == [(None, "registered", dt.date(2026, 3, 2)),
                           ("registered", "ceased", dt.date(2026, 9, 12))]
        event = s.scalars(select(CaseEvent).where(CaseEvent.person_id == pid_a,
                                                  CaseEvent.kind == "france_travail.ceased")).one()
        assert event.data["motif"] == "reprise d'emploi"


def test_unmatched_row_is_matched_when_the_person_arrives(rt, tmp_path):
    ft.import_file(rt, "stock", write(tmp_path, "stock.csv", stock_lines()))
    with rt.session() as s:
        pending = s.scalars(select(FranceTravailEvent).where(FranceTravailEvent.person_id.is_(None))).all()
        assert len(pending) == 3
        assert ft.match_pending(s) == 0  # nobody arrived yet
    pid = person_with_nir(rt, NIR_LATE, BIRTH_LATE)
    person_with_nir(rt, NIR_B, dt.date(1991, 1, 1))  # same NIR, other birth date: never linked
    with rt.session() as s:
        assert ft.match_pending(s) == 1
    with rt.session() as s:
        status = ft.ft_status(s, pid)
        assert status["followed"] and status["ppae_modality"] == "GUI"
        assert s.scalar(select(func.count()).select_from(StatusChange)
                        .where(StatusChange.person_id == pid, StatusChange.field == "ft_registration")) == 1
        assert ft.match_pending(s) == 0  # idempotent


def test_reimport_is_recognised_and_changes_nothing(rt, tmp_path):
    person_with_nir(rt, NIR_A, BIRTH_A)
    path = write(tmp_path, "stock.csv", stock_lines())
    assert ft.import_file(rt, "stock", path)["status"] == "imported"
    before = (count(rt, FranceTravailEvent), count(rt, CaseEvent), count(rt, StatusChange), count(rt, ImportBatch))
    again = ft.import_file(rt, "stock", path)
    assert again["status"] == "duplicate"
    assert (count(rt, FranceTravailEvent), count(rt, CaseEvent), count(rt, StatusChange),
            count(rt, ImportBatch)) == before
    # Next month's stock repeats the same registrations in another file: nothing new either.
    lines = stock_lines() + [""]
    report = ft.import_file(rt, "stock", write(tmp_path, "stock2.csv", lines))
    assert report["status"] == "imported" and report["counts"]["unchanged"] == 3 and report["counts"]["stored"] == 0
    assert (count(rt, FranceTravailEvent), count(rt, CaseEvent), count(rt, StatusChange)) == before[:3]


def test_broken_file_changes_nothing(rt, tmp_path):
    person_with_nir(rt, NIR_A, BIRTH_A)
    lines = stock_lines()
    lines[0] = lines[0].replace("dtnai;", "naissance;")  # mandatory column missing
    report = ft.import_file(rt, "stock", write(tmp_path, "stock.csv", lines))
    assert report["status"] == "failed" and "dtnai" in report["error"]
    assert count(rt, FranceTravailEvent) == 0 and count(rt, CaseEvent) == 0
    with rt.session() as s:
        batch = s.scalars(select(ImportBatch)).one()
        assert batch.status == "failed" and "dtnai" in batch.error


def test_row_errors_name_row_and_column(rt, tmp_path):
    pid = person_with_nir(rt, NIR_A, dt.date(1985, 5, 18))  # conflicting birth date
    lines = stock_lines()
    lines[2] = lines[2].replace("02/07/1990", "31/02/1990")  # impossible date
    lines.append(lines[3])  # duplicate row
    lines.append("123;X;NOM;Prénom;01/01/1980;01/02/2026;1;;;;;;;")  # bad NIR
    lines.append(f"{NIR_LATE[:-1]}8;X;NOM;Prénom;01/01/1980;01/02/2026;1;;;;;;;ZZZ")  # bad modality
    report = ft.import_file(rt, "stock", write(tmp_path, "stock.csv", lines, encoding="cp1252"))
    assert report["status"] == "imported"
    got = {(r["row"], r["column"]) for r in report["rejects"]}
    assert got == {(3, "dtnai"), (5, None), (6, "nir"), (7, "modalite"), (2, "dtnai")}
    dup = next(r for r in report["rejects"] if r["row"] == 5)
    assert "double de la ligne 4" in dup["reason"]
    assert report["counts"]["stored"] == 1  # only the LEROY row is good
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(RejectedRecord)) == 5
        reasons = s.scalars(select(RejectedRecord.reason)).all()
        assert any(r.startswith("ligne 3, colonne « dtnai »") for r in reasons)
        assert ft.ft_status(s, pid) is None  # the conflicting row was not linked


def test_header_less_layouts(rt, tmp_path):
    pid = person_with_nir(rt, NIR_A, BIRTH_A)
    lines = [f"{NIR_A};1234567A;MARTIN;Paul;1985-05-17;2026-03-02;1;",  # 8 columns, ISO dates
             f"{NIR_A};1234567A;MARTIN;Paul;17051985;05032026;2;;31555;TOULOUSE;1 RUE X;ALE 1;01/04/2026;SUI"]
    report = ft.import_file(rt, "inscriptions", write(tmp_path, "insc.csv", lines))
    assert report["counts"]["stored"] == 2 and report["rejected"] == 0, report
    with rt.session() as s:
        status = ft.ft_status(s, pid)
        assert status["since"] == dt.date(2026, 3, 5) and status["followed"]
    radiation = [f"{NIR_A};1234567A;MARTIN;Paul;17/05/1985;20/10/2026;RAD;absence au rendez-vous;"]
    ft.import_file(rt, "radiations", write(tmp_path, "rad.csv", radiation))
    with rt.session() as s:
        assert ft.ft_status(s, pid)["state"] == "struck_off"
        kinds = s.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == pid).order_by(CaseEvent.id)).all()
        assert kinds == ["france_travail.registered", "france_travail.struck_off"]


def test_api_upload_and_batches(client, make_user, rt):
    _, manager = make_user("manager")
    _, worker = make_user("mds_worker", "MDS-MURET")
    body = ("\r\n".join(stock_lines()) + "\r\n").encode()
    r = client.post("/api/v1/imports/france-travail/stock", headers=worker,
                    data={"file": (io.BytesIO(body), "stock.csv")})
    assert r.status_code == 403
    r = client.post("/api/v1/imports/france-travail/stock", headers=manager,
                    data={"file": (io.BytesIO(body), "stock.exe")})
    assert r.status_code == 415
    r = client.post("/api/v1/imports/france-travail/stock", headers=manager,
                    data={"file": (io.BytesIO(body), "stock.csv")})
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["status"] == "imported" and report["counts"]["unmatched"] == 3 and "path" not in report
    r = client.post("/api/v1/imports/france-travail/stock", headers=manager,
                    data={"file": (io.BytesIO(body), "stock.csv")})
    assert r.get_json()["status"] == "duplicate"
    batches = client.get("/api/v1/imports/batches", headers=manager).get_json()
    assert [b["kind"] for b in batches] == ["france_travail:stock"]
    assert client.get(f"/api/v1/imports/batches/{batches[0]['id']}/rejects", headers=manager).get_json() == []
    assert client.get("/api/v1/imports/batches", headers=worker).status_code == 403


def test_caf_flow_import_matches_pending_rows(rt, tmp_path):
    """The person arrives with the CAF flow (public sample RSABEM.xml): the flow import links the
    France Travail stock row kept unmatched before."""
    from imports.service import import_files

    lines = ["2820251108030;9999999Z;TIFOUR;SOPHIE;01/02/1982;05/01/2026;1;;;;;;10/01/2026;SUI"]
    ft.import_file(rt, "stock", write(tmp_path, "stock.csv", lines))
    assert count(rt, FranceTravailEvent, FranceTravailEvent.person_id.is_(None)) == 1
    results = import_files(rt, [DATA / "RSABEM.xml"])
    assert results[0]["status"] == "imported", results
    with rt.session() as s:
        event = s.scalars(select(FranceTravailEvent)).one()
        assert event.person_id is not None
        assert ft.ft_status(s, event.person_id)["followed"]
        assert s.scalar(select(CaseEvent.kind).where(CaseEvent.person_id == event.person_id,
                                                     CaseEvent.source == "france_travail")) == \
            "france_travail.registered"


def test_inbox_recognises_list_files(rt, tmp_path):
    from pathlib import Path

    from imports.service import process_inbox

    inbox = Path(rt.settings.inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    write(inbox, "ft_stock_202611.csv", stock_lines())
    shutil.copy(DATA / "spreadsheets" / "fichier_contact_test.csv", inbox / "tableur_rdvi-contacts_nov.csv")
    shutil.copy(DATA / "spreadsheets" / "fichier_contact_test.csv", inbox / "tableur_inconnue_nov.csv")
    result = process_inbox(rt)
    by_name = {Path(f["path"]).name: f for f in result["files"]}
    assert by_name["ft_stock_202611.csv"]["status"] == "imported"
    assert by_name["ft_stock_202611.csv"]["kind"] == "france_travail:stock"
    assert by_name["tableur_rdvi-contacts_nov.csv"]["status"] == "imported"
    assert by_name["tableur_inconnue_nov.csv"]["status"] == "failed"
    assert not any(inbox.iterdir())
    assert (Path(rt.settings.archive) / "ft_stock_202611.csv").exists()
    assert (Path(rt.settings.quarantine) / "tableur_inconnue_nov.csv").exists()
