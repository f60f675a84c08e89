"""France Travail in the loop (issue 17): its préconisations, orientations and contracts read from a
file or the partner API (a real HTTP server on 127.0.0.1), leaving its list, and our decisions sent
once through the outbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cases import followup
from cases.models import Alert, CaseEvent, Contract, FranceTravailRecord, Path
from cases.nir import key_check
from config.cli import main
from imports import france_travail as ft_lists
from imports import france_travail_dispatch as dispatch
from imports import france_travail_orientation as fto
from imports.france_travail_partner import (
    WRITE_PATH,
    FranceTravailClient,
    PartnerError,
    make_record,
    nir15,
    read_file,
)
from imports.jobs import france_travail_send
from imports.models import FranceTravailDispatch
from kiosque import service as ks
from kiosque.models import Invitation
from orientation.deadlines import deadlines
from orientation.facts import build_facts
from orientation.models import Orientation
from orientation.service import record_orientation, to_orient_query
from referents.vocabulary import (
    FT_ORGANISME_CODES,
    FT_PARCOURS_CODES,
    Organisme,
    Parcours,
    ft_organisme_code,
    ft_parcours_code,
    organisme_of_ft_code,
    parcours_of_ft_code,
)
from reports import service as reports
from reports.indicators import ReportFilter
from tests.conftest import DATA
from tests.factories import make_person
from tests.ft_server import CLIENT_ID, CLIENT_SECRET, FakeFranceTravail
from tests.kiosque_helpers import awaiting, kiosque

SAMPLES = DATA / "france_travail"
NIR_A, BIRTH_A = "1850531555123", dt.date(1985, 5, 17)
NIR_B, BIRTH_B = "2900731555456", dt.date(1990, 7, 2)
NIR_C, BIRTH_C = "1790131555789", dt.date(1979, 1, 3)
CLOCK = dt.date(2026, 10, 1)  # the legal clock: D+42 is 2026-11-12


@pytest.fixture
def fake():
    server = FakeFranceTravail().start()
    yield server
    server.stop()


def api_runtime(rt, fake, **changes):
    settings = rt.settings.with_(ft_mode="api", ft_api_url=fake.url, ft_token_url=fake.url + "/token",
                                 ft_client_id=CLIENT_ID, ft_client_secret=CLIENT_SECRET, ft_timeout_seconds=1,
                                 **changes)
    return dataclasses.replace(rt, settings=settings)


def person(rt, nir13, birth, **kw):
    with rt.session() as s:
        p = make_person(s, birth_date=birth, nir_hash=rt.vault.hash(nir13), clock_start=kw.pop("clock_start", CLOCK),
                        **kw)
        p.nir_encrypted = rt.vault.encrypt(nir13)
        return p.id


# --------------------------------------------------------------------------- the codes, once


def test_parcours_and_organisme_codes_read_both_ways():
    assert FT_PARCOURS_CODES == {Parcours.EMPLOI: "PED", Parcours.SOCIO_PROFESSIONNEL: "PSP",
                                 Parcours.SOCIAL: "PSO"}
    for parcours in Parcours:
        assert parcours_of_ft_code(ft_parcours_code(parcours.value)) == parcours.value
    for code in ("PED", "PSP", "PSO"):
        assert ft_parcours_code(parcours_of_ft_code(code)) == code
    assert parcours_of_ft_code("pso") == "social" and parcours_of_ft_code("PSP") == "socio_professionnel"
    assert parcours_of_ft_code("EO") is None and parcours_of_ft_code("IND") is None
    assert ft_parcours_code(None) == "IND"
    with pytest.raises(ValueError, match="code parcours France Travail inconnu « PXX »"):
        parcours_of_ft_code("PXX")
    for organisme in Organisme:
        assert organisme_of_ft_code(ft_organisme_code(organisme.value)) == organisme.value
    assert sorted(FT_ORGANISME_CODES.values()) == ["CD", "CE", "DCD", "FT", "ML"]
    assert organisme_of_ft_code("IND") is None and ft_organisme_code(None) == "IND"
    assert nir15(NIR_A) == NIR_A + "80" and nir15("1850531555123")[13:] == "80"
    corsica = nir15("285052A123456")  # Corsica: the key is computed with 2A read as 19
    assert corsica[:13] == "285052A123456" and key_check(corsica) and key_check(nir15(NIR_B))


# --------------------------------------------------------------------------- the file


def test_sample_csv_imported_once_with_its_reject(rt, tmp_path):
    a = person(rt, NIR_A, BIRTH_A)
    report = fto.import_file(rt, SAMPLES / "orientations_ft_sample.csv", as_of=dt.date(2026, 10, 20))
    assert report["status"] == "imported", report
    assert report["counts"]["rows"] == 5 and report["rejected"] == 1
    assert report["rejects"][0]["row"] == 6 and report["rejects"][0]["column"] == "parcours"
    assert "PXX" in report["rejects"][0]["reason"]
    assert report["counts"]["stored"] == 4 and report["counts"]["matched"] == 1 and report["counts"]["unmatched"] == 3
    again = fto.import_file(rt, SAMPLES / "orientations_ft_sample.csv", as_of=dt.date(2026, 10, 20))
    assert again["status"] == "duplicate"
    with rt.session() as s:
        assert s.scalar(select(func.count(FranceTravailRecord.id))) == 4
        # The préconisation is a fact the rules read.
        facts = build_facts(s, [a], dt.date(2026, 10, 20))[a]
        assert facts["ft.preconisation"] == "socio_professionnel"
        assert facts["ft.preconisation_on"] == dt.date(2026, 10, 3)
        assert facts["ft.followed"] is False


def test_sample_json_gives_the_same_facts(rt, tmp_path):
    parsed = read_file(SAMPLES / "orientations_ft_sample.json")
    assert not parsed.rejects
    kinds = [(r.kind, r.nir13, r.parcours, r.organisme, r.effective_on) for _, r in parsed.records]
    assert kinds == [("preconisation", NIR_A, "socio_professionnel", None, dt.date(2026, 10, 3)),
                     ("orientation", NIR_B, "emploi", "france_travail", dt.date(2026, 11, 15)),
                     ("contract", NIR_B, None, None, dt.date(2026, 11, 20)),
                     ("orientation", NIR_C, "social", "departement", dt.date(2026, 9, 1))]
    csv_records = {(r.kind, r.nir13, r.effective_on) for _, r in read_file(SAMPLES / "orientations_ft_sample.csv").records}
    assert {(k, n, d) for k, n, _, _, d in kinds} == csv_records


def test_broken_files_change_nothing(rt, tmp_path):
    bad_json = tmp_path / "orientations_ft_bad.json"
    bad_json.write_text('[{"type": "orientation", "nir": ')
    no_header = tmp_path / "orientations_ft_bad.csv"
    no_header.write_text("orientation;1850531555123;17/05/1985;PED;FT\n")
    for path in (bad_json, no_header):
        report = fto.import_file(rt, path)
        assert report["status"] == "failed" and report["error"], report
    with rt.session() as s:
        assert s.scalar(select(func.count(FranceTravailRecord.id))) == 0
    with pytest.raises(Exception, match="date"):
        make_record({"type": "orientation", "nir": NIR_A, "date_naissance": "31/02/1985", "date": "01/01/2026",
                     "parcours": "PED", "organisme": "FT"})


# --------------------------------------------------------------------------- the partner API client


def test_client_token_reuse_renewal_and_errors(rt, fake):
    runtime = api_runtime(rt, fake)
    fake.person(nir15(NIR_A), BIRTH_A.isoformat(), [{"parcours": "PSO", "statut": "PRECONISE",
                                                     "date_creation": "2026-10-03"}])
    client = FranceTravailClient(runtime.settings)
    token = client.user_token(NIR_A, BIRTH_A)
    assert client.read_orientation(token)[0]["parcours"] == "PSO"
    assert fake.token_requests == 1  # the token is reused
    assert client.user_token(NIR_B, BIRTH_B) is None  # unknown to France Travail

    fake.revoke_tokens()  # 401: renewed once, then the call succeeds
    assert client.read_orientation(token)
    assert fake.token_requests == 2

    for status, transient in (("500", True), ("429", True)):
        fake.faults["/partenaire/orientationusager/v1/lectureOrientation"].append(status)
        with pytest.raises(PartnerError) as err:
            client.read_orientation(token)
        assert err.value.transient is transient and err.value.status == int(status)
    fake.faults["/partenaire/orientationusager/v1/lectureOrientation"].append(("sleep", 1.5))
    with pytest.raises(PartnerError, match="délai dépassé") as err:
        client.read_orientation(token)
    assert err.value.transient

    wrong = FranceTravailClient(runtime.settings.with_(ft_client_secret="wrong"))
    with pytest.raises(PartnerError, match="secret client invalide") as err:
        wrong.user_token(NIR_A, BIRTH_A)
    assert not err.value.transient
    fake.faults[WRITE_PATH].extend(["401", "401"])  # refused even with a new token: not transient
    with pytest.raises(PartnerError, match="401") as err:
        client.send_orientation(token, {"parcours": "PED"}, "k1")
    assert not err.value.transient
    with pytest.raises(PartnerError, match="non configurée"):
        FranceTravailClient(rt.settings)


# --------------------------------------------------------------------------- the round trip


def test_round_trip_past_d42_france_travail_orients_then_signs_the_contract(rt, fake):
    """D+42 passes without our decision → France Travail's orientation read from its API → the path is
    oriented by France Travail, the kiosque invitation cancelled, the indicator counts it apart; then
    the contract signed with France Travail closes the contract deadline."""
    runtime = api_runtime(rt, fake)
    with rt.session() as s:
        p = awaiting(s, clock_start=CLOCK, email="camille@example.org")
        p.nir_hash, p.nir_encrypted = rt.vault.hash(NIR_B), rt.vault.encrypt(NIR_B)
        p.birth_date = BIRTH_B
        pid = p.id
        kiosque(s, "MDS-RANGUEIL", dt.date(2026, 11, 24))
        assert ks.plan(s, dt.date(2026, 11, 5)).as_dict()["invited"] == 1
        make_person(s, clock_start=CLOCK)  # not oriented at all: the control
    item = {"parcours": "PED", "organisme": "FT", "statut": "DECIDE", "etat": "OUVERT",
            "date_entree_parcours": "2026-11-15",
            "decision": {"date_decision": "2026-11-15", "organisme_decision": "FT",
                         "structure": {"libelle_structure": "France Travail Toulouse Rangueil"}}}
    jeton = fake.person(nir15(NIR_B), BIRTH_B.isoformat())

    # Read on D+35: France Travail has nothing to say yet (204); the person stays in our backlog.
    early = fto.read_api(runtime, dt.date(2026, 11, 5))
    assert early["persons_read"] == 1 and early["stored"] == 0 and early["unknown_to_france_travail"] == 0
    fake.orientations[jeton].append(item)  # France Travail decides on D+45

    # Read on D+47: France Travail decided on D+45 → recorded as such.
    late = fto.read_api(runtime, dt.date(2026, 11, 17))
    assert late["stored"] == 1 and late["orientations_recorded"] == 1, late
    with rt.session() as s:
        o = s.scalars(select(Orientation).where(Orientation.person_id == pid, Orientation.status == "validated")).one()
        assert (o.origin, o.referent_type, o.parcours, o.organisme) == ("france_travail", "pole_emploi", "emploi",
                                                                         "france_travail")
        assert o.validated_on == dt.date(2026, 11, 15) and "France Travail" in o.explanation
        assert s.scalar(select(func.count(Orientation.id)).where(Orientation.person_id == pid,
                                                                 Orientation.status == "kiosque")) == 0
        path = s.scalars(select(Path).where(Path.person_id == pid)).one()
        assert (path.oriented_on, path.oriented_origin) == (dt.date(2026, 11, 15), "france_travail")
        inv = s.scalars(select(Invitation).where(Invitation.person_id == pid)).one()
        assert inv.status == "cancelled"
        assert pid not in {r.id for r in s.execute(to_orient_query(dt.date(2026, 11, 17)))}
        assert pid not in {d["person_id"] for d in deadlines(s, dt.date(2026, 11, 17))}
        kinds = set(s.scalars(select(CaseEvent.kind).where(CaseEvent.person_id == pid)))
        assert {"orientation.validated", "kiosque.cancelled"} <= kinds
        # The indicator: "orienté par France Travail" apart from the Département's decisions.
        report = reports.delays(s, ReportFilter(as_of=dt.date(2026, 11, 17), start=dt.date(2026, 10, 1)),
                                breakdowns=("origin",))
        by_origin = {r["key"]: r for r in report["clocks"]["legal"]["by_origin"]}
        assert by_origin["france_travail"]["label"] == "Orienté par France Travail"
        assert by_origin["france_travail"]["oriented"] == 1
        assert by_origin[None]["cohort_size"] == 1  # the control person, not oriented yet

    # The contract signed with France Travail closes the contract deadline (due 15/12/2026).
    item["contrat_engagement"] = {"date_signature": "2026-11-20"}
    signed = fto.read_api(runtime, dt.date(2026, 11, 21))
    assert signed["contracts_recorded"] == 1, signed
    again = fto.read_api(runtime, dt.date(2026, 11, 22))
    assert again["contracts_recorded"] == 0 and again["stored"] == 0
    with rt.session() as s:
        c = s.scalars(select(Contract).where(Contract.person_id == pid)).one()
        assert (c.status, c.signed_on, c.source, c.kind) == ("signed", dt.date(2026, 11, 20), "france_travail",
                                                            "engagement")
        manager = followup._system_user()
        assert pid not in {r["person_id"] for r in followup.overdue_contracts(s, manager, dt.date(2026, 12, 20))}
        due = followup._due_dates(s, [pid], dt.date(2026, 12, 20))[pid]
        assert due["contract_overdue"] is False


def test_contract_deadline_is_overdue_without_france_travail_contract(rt):
    """The control of the round trip: oriented by France Travail, no contract read → overdue after a month."""
    pid = person(rt, NIR_C, BIRTH_C)
    rec = make_record({"type": "orientation", "nir": NIR_C, "date_naissance": BIRTH_C, "parcours": "PED",
                       "organisme": "FT", "date": "2026-11-15"})
    with rt.session() as s:
        fto.store_records(s, rt.vault, [rec], source="file")
        assert fto.apply_pending(s, dt.date(2026, 11, 16))["orientations_recorded"] == 1
        manager = followup._system_user()
        late = {r["person_id"]: r for r in followup.overdue_contracts(s, manager, dt.date(2026, 12, 20))}
        assert late[pid]["contract_due_on"] == "2026-12-15"


def test_our_decision_first_wins_and_france_travail_record_is_set_aside(rt):
    pid = person(rt, NIR_A, BIRTH_A)
    with rt.session() as s:
        record_orientation(s, pid, "actipro", origin="agent", decided_on=dt.date(2026, 11, 10))
        rec = make_record({"type": "orientation", "nir": NIR_A, "date_naissance": BIRTH_A, "parcours": "PED",
                           "organisme": "FT", "date": "2026-11-14"})
        fto.store_records(s, rt.vault, [rec], source="file")
        out = fto.apply_pending(s, dt.date(2026, 11, 20))
        assert out["orientations_recorded"] == 0
        r = s.scalars(select(FranceTravailRecord)).one()
        assert r.handled_on == dt.date(2026, 11, 20) and r.outcome == "écartée: parcours déjà orienté"
        assert s.scalar(select(func.count(Orientation.id)).where(Orientation.origin == "france_travail")) == 0


# --------------------------------------------------------------------------- sending our decisions


def _our_decision(rt, nir13, birth, on=dt.date(2026, 11, 20)):
    pid = person(rt, nir13, birth)
    with rt.session() as s:
        o = record_orientation(s, pid, "actipro", origin="agent", decided_on=on)
        assert o.status == "validated"
        return pid, o.id


def test_decision_sent_once_even_when_the_first_try_fails(rt, fake):
    runtime = api_runtime(rt, fake)
    fake.person(nir15(NIR_A), BIRTH_A.isoformat())
    pid, oid = _our_decision(rt, NIR_A, BIRTH_A)
    now = dt.datetime(2026, 11, 20, 10, 0)
    fake.faults[WRITE_PATH].append("500")
    first = france_travail_send(runtime, dt.date(2026, 11, 20), now=now)
    assert (first["queued"], first["sent"], first["retry"], first["failed"]) == (1, 0, 1, 0), first
    assert fake.stored == {}
    with rt.session() as s:
        d = s.scalars(select(FranceTravailDispatch)).one()
        assert d.status == "queued" and d.attempts == 1 and "500" in d.last_error
        assert d.next_attempt_at == now + dt.timedelta(minutes=30)
        key = d.idempotency_key
    # Too early: nothing is tried again.
    assert france_travail_send(runtime, dt.date(2026, 11, 20), now=now + dt.timedelta(minutes=10))["sent"] == 0
    # The retry: the answer is lost after France Travail recorded it (the client times out)…
    fake.faults[WRITE_PATH].append(("late", 1.5))
    lost = france_travail_send(runtime, dt.date(2026, 11, 20), now=now + dt.timedelta(minutes=31))
    assert lost["retry"] == 1 and fake.writes_received == 1 and list(fake.stored) == [key]
    # …so the next try sends the same key, and France Travail keeps one decision.
    ok = france_travail_send(runtime, dt.date(2026, 11, 20), now=now + dt.timedelta(hours=3))
    assert ok["sent"] == 1 and ok["queued"] == 0
    assert fake.writes_received == 2 and list(fake.stored) == [key]
    sent = fake.stored[key]
    assert (sent["parcours"], sent["organisme"], sent["date_decision"]) == ("PSP", "DCD", "2026-11-20")
    assert "nir" not in json.dumps(sent)  # the NIR goes in the person search only
    # Nothing more to send, ever: a later run queues nothing and sends nothing.
    later = france_travail_send(runtime, dt.date(2026, 11, 21), now=now + dt.timedelta(days=1))
    assert (later["queued"], later["sent"]) == (0, 0) and fake.writes_received == 2
    with rt.session() as s:
        d = s.scalars(select(FranceTravailDispatch)).one()
        assert (d.status, d.attempts, d.orientation_id) == ("sent", 3, oid)
        report = dispatch.reconciliation(s, runtime.settings, dt.date(2026, 11, 20))
        assert report["validated"] == 1 and report["of_which_sent"] == 1 and report["balanced"]


def test_refused_or_exhausted_dispatch_fails_with_an_alert(rt, fake):
    runtime = api_runtime(rt, fake, ft_max_attempts=2)
    pid, oid = _our_decision(rt, NIR_A, BIRTH_A)  # unknown to France Travail: tried again, then failed
    now = dt.datetime(2026, 11, 20, 10, 0)
    assert france_travail_send(runtime, dt.date(2026, 11, 20), now=now)["retry"] == 1
    assert france_travail_send(runtime, dt.date(2026, 11, 20), now=now + dt.timedelta(hours=2))["failed"] == 1
    with rt.session() as s:
        d = s.scalars(select(FranceTravailDispatch)).one()
        assert d.status == "failed" and "inconnue de France Travail" in d.last_error
        alert = s.scalars(select(Alert).where(Alert.kind == "france_travail.dispatch_failed")).one()
        assert alert.person_id == pid and alert.severity == "critical"
        report = dispatch.reconciliation(s, runtime.settings, dt.date(2026, 11, 20))
        assert not report["balanced"] and report["failed"][0]["orientation_id"] == oid
        assert NIR_A not in json.dumps(report)
        assert dispatch.retry_failed(s) == 1
    fake.person(nir15(NIR_A), BIRTH_A.isoformat())
    assert france_travail_send(runtime, dt.date(2026, 11, 21), now=now + dt.timedelta(days=1))["sent"] == 1
    assert len(fake.stored) == 1


def test_daily_file_transport_writes_each_decision_once(rt, database_url):
    _our_decision(rt, NIR_A, BIRTH_A)
    france_travail_orientations = france_travail_send(rt, dt.date(2026, 11, 20))
    assert france_travail_orientations["transport"] == "file" and france_travail_orientations["sent"] == 1
    path = rt.settings.outbox_dir + "/france_travail/orientations_031_20261120.csv"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = open(path, encoding="utf-8").read().splitlines()
    sample = (SAMPLES / "orientations_031_20261120.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == sample[0]
    values = dict(zip(lines[0].split(";"), lines[1].split(";"), strict=True))
    assert values["nir"] == NIR_A + "80" and values["date_naissance"] == "1985-05-17"
    assert (values["parcours"], values["organisme"], values["departement"]) == ("PSP", "DCD", "031")
    assert france_travail_send(rt, dt.date(2026, 11, 20))["sent"] == 0  # never written twice
    _our_decision(rt, NIR_B, BIRTH_B)
    second = france_travail_send(rt, dt.date(2026, 11, 20))
    assert second["sent"] == 1 and second["file"].endswith("orientations_031_20261120_2.csv")
    result = CliRunner().invoke(main,
                                ["--database-url", database_url, "france-travail", "report", "--as-of",
                                 "2026-11-20", "--json"], env={"RSA_SECRET_KEY": "test-secret"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["validated"] == 2 and report["of_which_sent"] == 2 and report["balanced"]
    assert report["files"] == ["orientations_031_20261120.csv", "orientations_031_20261120_2.csv"]


# --------------------------------------------------------------------------- leaving the list


def _stock(tmp_path, name, rows):
    path = tmp_path / name
    header = "nir;identifiantpe;nom;prenom;dtnai;date;code;nir2"
    path.write_text("\r\n".join([header, *rows]) + "\r\n", encoding="utf-8")
    return path


def test_cessation_and_absence_from_stock_files_alert_the_referent(rt, tmp_path):
    a = person(rt, NIR_A, BIRTH_A)
    b = person(rt, NIR_B, BIRTH_B)
    with rt.session() as s:
        o = record_orientation(s, a, "pole_emploi", origin="agent", decided_on=dt.date(2026, 10, 20))
        structure = o.structure_id
    line_a = f"{NIR_A};1A;MARTIN;Paul;17/05/1985;02/03/2026;1;"
    line_b = f"{NIR_B};2B;DURAND;Inès;02/07/1990;10/04/2026;1;"
    assert ft_lists.import_file(rt, "stock", _stock(tmp_path, "stock1.csv", [line_a, line_b]))["status"] == "imported"
    r2 = ft_lists.import_file(rt, "stock", _stock(tmp_path, "stock2.csv", [line_b, f"{NIR_C};3C;X;Y;03/01/1979;01/01/2026;1;"]))
    assert r2["counts"]["absent_from_stock"] == 0  # absent from one file only
    r3 = ft_lists.import_file(rt, "stock", _stock(tmp_path, "stock3.csv", [line_b]))
    assert r3["counts"]["absent_from_stock"] == 1, r3
    with rt.session() as s:
        status = ft_lists.ft_status(s, a)
        assert status["state"] == "absent" and not status["registered"]
        alert = s.scalars(select(Alert).where(Alert.kind == "france_travail.left", Alert.person_id == a)).one()
        assert alert.structure_id == structure and "absent" in alert.message
        assert s.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.person_id == a,
                                                               CaseEvent.kind == "france_travail.absent")) == 1
        assert ft_lists.ft_status(s, b)["state"] == "registered"
    # A fourth file without A: nothing new (A already left).
    r4 = ft_lists.import_file(rt, "stock", _stock(tmp_path, "stock4.csv", [line_b, f"{NIR_C};3C;X;Y;03/01/1979;01/01/2026;1;"]))
    assert r4["counts"]["absent_from_stock"] == 0
    # A radiation of B: timeline event and alert (B has no referent yet: no structure).
    rad = tmp_path / "radiations.csv"
    rad.write_text(f"{NIR_B};2B;DURAND;Inès;02/07/1990;15/11/2026;RAD;absence au contrôle;\r\n", encoding="utf-8")
    assert ft_lists.import_file(rt, "radiations", rad)["status"] == "imported"
    with rt.session() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "france_travail.left", Alert.person_id == b)).one()
        assert alert.structure_id is None and "radié" in alert.message


def test_followed_reads_france_travail_orientation_and_contract_not_the_ppae_alone(rt, tmp_path):
    a = person(rt, NIR_A, BIRTH_A)
    stock = _stock(tmp_path, "stock.csv", [f"{NIR_A};1A;MARTIN;Paul;17/05/1985;02/03/2026;1;"])
    ft_lists.import_file(rt, "stock", stock)
    with rt.session() as s:
        assert ft_lists.ft_status(s, a)["followed"] is False  # registered, no PPAE, nothing else
        rec = make_record({"type": "contrat", "nir": NIR_A, "date_naissance": BIRTH_A, "date": "2026-10-05"})
        fto.store_records(s, rt.vault, [rec], source="file")
    with rt.session() as s:
        status = ft_lists.ft_status(s, a)
        assert status["followed"] is True and status["contract_signed_on"] == dt.date(2026, 10, 5)
        assert build_facts(s, [a], dt.date(2026, 10, 20))[a]["ft.followed"] is True


def test_france_travail_decision_waits_for_d42(rt):
    """A decision France Travail sent before D+42 waits: the Département may still decide."""
    pid = person(rt, NIR_A, BIRTH_A)
    rec = make_record({"type": "orientation", "nir": NIR_A, "date_naissance": BIRTH_A, "parcours": "PSO",
                       "organisme": "CD", "date": "2026-11-08"})
    with rt.session() as s:
        fto.store_records(s, rt.vault, [rec], source="file")
        assert fto.apply_pending(s, dt.date(2026, 11, 10))["waiting"] == 1
        r = s.scalars(select(FranceTravailRecord)).one()
        assert r.handled_on is None and r.outcome == "dans le délai légal de 42 jours (jusqu'au 12/11/2026)"
        out = fto.apply_pending(s, dt.date(2026, 11, 12))
        assert out["orientations_recorded"] == 1
        o = s.scalars(select(Orientation).where(Orientation.person_id == pid)).one()
        assert (o.referent_type, o.parcours, o.organisme, o.origin) == ("mds", "social", "departement",
                                                                         "france_travail")
        assert fto.apply_pending(s, dt.date(2026, 11, 13))["considered"] == 0  # idempotent


def test_api_mode_without_configuration_leaves_the_queue_untouched(rt):
    _our_decision(rt, NIR_A, BIRTH_A)
    runtime = dataclasses.replace(rt, settings=rt.settings.with_(ft_mode="api"))
    out = france_travail_send(runtime, dt.date(2026, 11, 20))
    assert out["queued"] == 1 and out["sent"] == 0 and "non configurée" in out["error"]
    with rt.session() as s:
        d = s.scalars(select(FranceTravailDispatch)).one()
        assert (d.status, d.attempts) == ("queued", 0)


def test_windows_1252_file_is_read_and_said(rt, tmp_path):
    path = tmp_path / "orientations_ft_1252.csv"
    path.write_bytes(("type;nir;date_naissance;parcours;organisme;statut;etat;date;structure;identifiant\r\n"
                      f"orientation;{NIR_A};17/05/1985;PED;FT;DECIDE;OUVERT;15/11/2026;Agence Mirail-Université;X1\r\n")
                     .encode("cp1252"))
    report = fto.import_file(rt, path, as_of=dt.date(2026, 11, 16))
    assert report["status"] == "imported" and report["warnings"] == ["encodage détecté: windows-1252"]
    with rt.session() as s:
        assert s.scalars(select(FranceTravailRecord.structure)).one() == "Agence Mirail-Université"
