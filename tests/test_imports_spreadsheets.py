"""Spreadsheet beneficiary lists (issue 9): mappings, formats, identity, per-row errors, API.

Samples: tests/data/spreadsheets/ (copies of ../shared/formats/spreadsheets/, see tests/data/README.md).
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from sqlalchemy import func, select

from cases.models import Household, Person
from imports import spreadsheets as sp
from imports.models import ImportBatch, RejectedRecord
from imports.values import normalise_header, parse_date, parse_phone
from tests.conftest import DATA
from tests.factories import make_person

SAMPLES = DATA / "spreadsheets"


def persons(rt):
    with rt.session() as s:
        return s.scalar(select(func.count()).select_from(Person))


def test_header_and_value_normalisation():
    assert normalise_header("N°\nTéléphones") == normalise_header("n telephones") == "n telephones"
    assert normalise_header("ID IODAS\t") == normalise_header("Id Iodas")
    assert normalise_header("Date de\nNaissance") == "date de naissance"
    assert parse_date("16/02/1952") == parse_date("1952-02-16") == parse_date(19040) == dt.date(1952, 2, 16)
    assert parse_date("44927") == dt.date(2023, 1, 1)  # Excel serial written as text
    with pytest.raises(ValueError):
        parse_date("31/02/1980")
    assert parse_phone("06 63 60 35 10") == ("+33663603510", "mobile")
    assert parse_phone("698943255") == ("+33698943255", "mobile")  # leading zero lost by Excel
    assert parse_phone("05.61.00.00.00") == ("+33561000000", "landline")
    assert parse_phone("0692070098") == ("+262692070098", "mobile")  # La Réunion
    with pytest.raises(ValueError):
        parse_phone("0123")


@pytest.mark.parametrize("name,mapping,rows", [
    ("fichier_usager_600_lignes.csv", "rdvi-usagers", 600),
    ("fichier_usager_test.xlsx", "rdvi-usagers", 1),
    ("fichier_contact_test.csv", "rdvi-contacts", 1),
])
def test_samples_import_without_rejects(rt, name, mapping, rows):
    report = sp.import_file(rt, SAMPLES / name, mapping)
    assert report["status"] == "imported", report
    assert report["rejected"] == 0, report["rejects"][:5]
    assert report["counts"]["rows"] == rows and report["counts"]["created"] == rows


def test_samples_enrich_the_same_person(rt):
    sp.import_file(rt, SAMPLES / "fichier_usager_test.xlsx", "rdvi-usagers")
    with rt.session() as s:
        p = s.scalars(select(Person)).one()
        assert (p.civility, p.last_name, p.first_name, p.birth_date) == ("MR", "Crespo", "Hernan", dt.date(1980, 11, 21))
        assert (p.phone, p.phone_kind, p.email, p.role) == ("+33620022002", "mobile", "hernan@crespo.com", "DEM")
        assert p.nir_hash == rt.vault.hash("1803331476872") and rt.vault.decrypt(p.nir_encrypted) == "1803331476872"
        assert p.external_ids == {"iodas": "8383", "tags": "Cool"}
        h = s.get(Household, p.household_id)
        assert (h.organism, h.matricule, h.postal_code, h.city) == ("CAF", "ISQCJQO", "75007", "PARIS")
    # The contact file of the same household (matricule + role DEMANDEUR) updates that person.
    report = sp.import_file(rt, SAMPLES / "fichier_contact_test.csv", "rdvi-contacts")
    assert report["counts"]["updated"] == 1 and report["counts"]["created"] == 0
    with rt.session() as s:
        p = s.scalars(select(Person)).one()
        assert (p.phone, p.email) == ("+33698943255", "hernan.crespo@hotmail.fr")
        h = s.get(Household, p.household_id)
        assert (h.numdemrsa, h.dtdemrsa, h.right_opened_on) == ("1013473008", dt.date(2011, 11, 21),
                                                                dt.date(2012, 2, 1))


def test_reimport_is_recognised(rt):
    path = SAMPLES / "fichier_usager_600_lignes.csv"
    sp.import_file(rt, path, "rdvi-usagers")
    n = persons(rt)
    again = sp.import_file(rt, path, "rdvi-usagers")
    assert again["status"] == "duplicate" and persons(rt) == n
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 1


def test_missing_mandatory_column_changes_nothing(rt, tmp_path):
    text = (SAMPLES / "fichier_usager_600_lignes.csv").read_text(encoding="utf-8-sig")
    broken = tmp_path / "sans_nom.csv"
    broken.write_text(text.replace("Nom bénéficiaire", "Nom de famille du bénéficiaire", 1), encoding="utf-8")
    report = sp.import_file(rt, broken, "rdvi-usagers")
    assert report["status"] == "failed" and "Nom bénéficiaire" in report["error"]
    assert persons(rt) == 0
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(Household)) == 0
        assert s.scalar(select(ImportBatch.status)) == "failed"


def test_broken_rows_are_rejected_with_row_and_column(rt, tmp_path):
    lines = (SAMPLES / "fichier_usager_600_lignes.csv").read_text(encoding="utf-8-sig").splitlines()
    lines[4] = lines[4].replace(lines[4].split(";")[5], "31/13/1980")  # line 5: bad birth date
    lines[9] = lines[9].replace(lines[9].split(";")[3], "pas-une-adresse")  # line 10: bad e-mail
    lines.append(lines[20])  # line 602: duplicate of line 21
    broken = tmp_path / "casse.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="cp1252")  # and windows-1252 this time
    report = sp.import_file(rt, broken, "rdvi-usagers")
    assert report["status"] == "imported"
    got = {(r["row"], r["column"]) for r in report["rejects"]}
    assert got == {(5, "Date de Naissance"), (10, "Adresses Mails"), (602, None)}
    assert "ligne 21" in next(r["reason"] for r in report["rejects"] if r["row"] == 602)
    assert report["counts"]["created"] == 598 and persons(rt) == 598
    assert any("windows-1252" in w for w in report["warnings"])
    with rt.session() as s:
        reasons = s.scalars(select(RejectedRecord.reason)).all()
        assert any(r.startswith("ligne 5, colonne « Date de Naissance »") for r in reasons)
        bad = lines[4].split(";")
        assert s.scalar(select(func.count()).select_from(Person).where(Person.first_name == bad[1],
                                                                       Person.last_name == bad[2])) == 0


def test_other_formats_and_header_below_a_title(rt, tmp_path):
    frame = pd.DataFrame({
        "N° Allocataire": ["1234567", "7654321"], "Civilité": ["Madame", "M."],
        "Nom bénéficiaire": ["Dupont", "Martin"], "Prénom bénéficiaire": ["Inès", "Éric"],
        "Date de\nnaissance": ["1987-09-22", 30000], "CP Ville": ["31000 Toulouse", "31200 TOULOUSE"],
        "Rôle": ["DEM", "CJT"], "N°\nTéléphones": ["05 61 22 33 44", "0712345678"],
    })
    ods = tmp_path / "liste.ods"
    with pd.ExcelWriter(ods, engine="odf") as writer:
        pd.DataFrame([["Liste transmise par la MDS"], [None]]).to_excel(writer, index=False, header=False)
        frame.to_excel(writer, index=False, startrow=3)
    report = sp.import_file(rt, ods, "rdvi-usagers")
    assert report["status"] == "imported" and report["counts"]["created"] == 2, report
    with rt.session() as s:
        eric = s.scalars(select(Person).where(Person.first_name == "Éric")).one()
        assert eric.birth_date == dt.date(1982, 2, 18) and eric.role == "CJT" and eric.phone_kind == "mobile"
        ines = s.scalars(select(Person).where(Person.first_name == "Inès")).one()
        assert ines.phone_kind == "landline" and ines.civility == "MME"
        h = s.get(Household, ines.household_id)
        assert (h.commune_insee, h.postal_code) == ("31555", "31000") and h.mds_id is not None
    # The same list as a comma-separated CSV updates nothing (same values) and creates nobody.
    csv = tmp_path / "liste.csv"
    frame.to_csv(csv, index=False, sep=",", encoding="utf-8-sig")
    report = sp.import_file(rt, csv, "rdvi-usagers")
    assert report["counts"]["unchanged"] == 2 and report["counts"]["created"] == 0, report


def test_identity_matching_and_conflict(rt, tmp_path):
    nir = "1850531555123"
    with rt.session() as s:
        known = make_person(s, last_name="DURAND", first_name="PAUL", birth_date=dt.date(1985, 5, 17),
                            nir_hash=rt.vault.hash(nir)).id
        make_person(s, birth_date=dt.date(1990, 1, 1), nir_hash=rt.vault.hash("2900131555999"))
    csv = tmp_path / "nir.csv"
    csv.write_text("Nom;Prénom;Date de naissance;NIR;Téléphone\n"
                   f"Durand;Paul;17/05/1985;{nir}45;0612345678\n"
                   "Autre;Personne;18/05/1985;2900131555999;0612345679\n"
                   "Durand;Paul;17/05/1985;;0612345670\n", encoding="utf-8")
    report = sp.import_file(rt, csv, "rdvi-usagers")
    assert [(r["row"], r["column"]) for r in report["rejects"]] == [(3, "NIR")], report["rejects"]
    assert "autre date de naissance" in report["rejects"][0]["reason"]
    # line 2 matches by NIR (15 characters compared on 13), line 4 by names + birth date
    assert report["counts"]["updated"] == 2 and report["counts"]["created"] == 0
    with rt.session() as s:
        assert s.get(Person, known).phone == "+33612345670"  # the later line wins for contact details
        assert s.scalar(select(func.count()).select_from(Person)) == 2


def test_mapping_stored_in_database(rt, tmp_path):
    yaml_file = tmp_path / "ma.yaml"
    yaml_file.write_text("name: ma-liste\norganism: MSA\nfields:\n  caf_number: Dossier\n  last_name: NOM\n"
                         "  first_name: PRENOM\n  email: Courriel\nrequired: [caf_number]\n", encoding="utf-8")
    with rt.session() as s:
        sp.load_mapping_file(s, yaml_file)
    with rt.session() as s:
        assert {m["name"] for m in sp.list_mappings(s)} >= {"ma-liste", "rdvi-usagers", "rdvi-contacts"}
    csv = tmp_path / "msa.csv"
    csv.write_text("Dossier;NOM;PRENOM;Courriel\n0012345;Petit;Léa;lea.petit@exemple.fr\n", encoding="utf-8")
    report = sp.import_file(rt, csv, "ma-liste")
    assert report["counts"]["created"] == 1, report
    with rt.session() as s:
        assert s.scalar(select(Household.organism)) == "MSA"
    with rt.session() as s, pytest.raises(sp.MappingError):
        sp.save_mapping(s, {"name": "x", "fields": {"shoe_size": "Pointure"}})


def test_api_spreadsheet_upload_and_mappings(client, make_user, rt, tmp_path):
    _, manager = make_user("manager")
    _, provider = make_user("provider", "ACTIPRO-TLS-EST")
    data = (SAMPLES / "fichier_usager_test.xlsx").read_bytes()
    r = client.post("/api/v1/imports/spreadsheets?mapping=rdvi-usagers", headers=provider,
                    data={"file": (io.BytesIO(data), "liste.xlsx")})
    assert r.status_code == 403
    r = client.post("/api/v1/imports/spreadsheets?mapping=rdvi-usagers", headers=manager,
                    data={"file": (io.BytesIO(b"nom;prenom\n"), "liste.xlsx")})
    assert r.status_code == 415  # not an xlsx whatever its name
    r = client.post("/api/v1/imports/spreadsheets?mapping=inconnue", headers=manager,
                    data={"file": (io.BytesIO(data), "liste.xlsx")})
    assert r.status_code == 422
    r = client.post("/api/v1/imports/spreadsheets?mapping=rdvi-usagers", headers=manager,
                    data={"file": (io.BytesIO(data), "liste.xlsx")})
    assert r.status_code == 200 and r.get_json()["counts"]["created"] == 1, r.get_json()
    mapping = {"name": "ignored", "fields": {"last_name": ["Nom"], "first_name": "Prénom"}, "required": ["last_name"]}
    r = client.put("/api/v1/imports/mappings/api-liste", headers=manager, json=mapping)
    assert r.status_code == 200 and r.get_json()["name"] == "api-liste"
    r = client.get("/api/v1/imports/mappings/api-liste", headers=manager)
    assert r.get_json()["fields"]["first_name"] == ["Prénom"] and r.get_json()["source"] == "base de données"
    names = {m["name"] for m in client.get("/api/v1/imports/mappings", headers=manager).get_json()}
    assert {"api-liste", "rdvi-usagers"} <= names


def test_legacy_xls(rt):
    """A real .xls (BIFF8) with a title above the header, date cells and numeric phone numbers."""
    report = sp.import_file(rt, SAMPLES / "liste_usagers_legacy.xls", "rdvi-usagers")
    assert report["status"] == "imported" and report["rejected"] == 0, report
    assert report["counts"]["created"] == 20
    with rt.session() as s:
        paul = s.scalars(select(Person).where(Person.external_ids["iodas"].as_string() == "IODAS822920")).one()
        assert (paul.first_name, paul.birth_date, paul.phone) == ("Paul", dt.date(1952, 2, 16), "+33663603510")


def test_cli_commands(rt, tmp_path):
    import json

    from click.testing import CliRunner

    from config.cli import main

    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, list(args), obj={"runtime": rt}, catch_exceptions=False)
        return result

    r = run("import", "mappings", "list", "--json")
    assert {m["name"] for m in json.loads(r.output)} >= {"rdvi-usagers", "rdvi-contacts"}
    r = run("import", "mappings", "show", "rdvi-contacts", "--json")
    assert json.loads(r.output)["fields"]["caf_number"][0] == "MATRICULE"
    r = run("import", "spreadsheet", str(SAMPLES / "fichier_contact_test.csv"), "--mapping", "rdvi-contacts", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["counts"]["created"] == 1
    r = run("import", "spreadsheet", str(SAMPLES / "fichier_contact_test.csv"), "--mapping", "rdvi-contacts")
    assert "déjà importé" in r.output
    r = run("import", "spreadsheet", str(SAMPLES / "fichier_contact_test.csv"), "--mapping", "nope")
    assert r.exit_code != 0 and "inconnue" in r.output
    broken = tmp_path / "b.csv"
    broken.write_text("NOM;PRENOM\nA;B\n", encoding="utf-8")
    r = run("import", "spreadsheet", str(broken), "--mapping", "rdvi-contacts")
    assert r.exit_code == 1 and "ÉCHEC" in r.output and "MATRICULE" in r.output
    out = tmp_path / "modele.xlsx"
    r = run("import", "provider-template", str(out), "--json")
    assert json.loads(r.output)["path"] == str(out) and out.read_bytes()[:2] == b"PK"
    ft_file = tmp_path / "stock.csv"
    ft_file.write_text("1850531555123;1;A;B;17/05/1985;02/03/2026;1;\n", encoding="utf-8")
    r = run("import", "france-travail", "stock", str(ft_file), "--json")
    assert json.loads(r.output)["counts"]["unmatched"] == 1


def test_api_flux_upload(client, make_user, rt):
    _, manager = make_user("manager")
    data = (DATA / "RSABEM.xml").read_bytes()
    r = client.post("/api/v1/imports/flux", headers=manager,
                    data={"files": [(io.BytesIO(data), "RSABEM.xml")]})
    assert r.status_code == 200, r.get_json()
    files = r.get_json()["files"]
    assert [(f["path"], f["status"]) for f in files] == [("RSABEM.xml", "imported")]
    r = client.post("/api/v1/imports/flux", headers=manager,
                    data={"files": [(io.BytesIO(b"MZ\x00\x00"), "RSABEM.xml")]})
    assert r.status_code == 415
