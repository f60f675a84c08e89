"""CAF/MSA flow ingestion (issue 3): samples, history, paths and exits, idempotency, rejects,
broken files, crash safety, inbox, CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import delete, func, select

from cases.models import Activity, CaseEvent, Exit, Household, Person, StatusChange
from cases.models import Path as CasePath
from imports import flux_worker, service
from imports.flux import FluxReader
from imports.generator import _footer, _header, derive_flux, generate_monthly, household_xml
from imports.models import ImportBatch, RawRecord, RejectedRecord

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent
WORKER_ENV = flux_worker.MIN_BYTES_ENV


# --- helpers ----------------------------------------------------------------------------------------

def write_flux(path: Path, fragments: list[str], dtref: dt.date, *, typeflux="M", created=None, time="02:00:00.0000",
               total=None) -> Path:
    """A flow file made of the given InfosFoyerRSA fragments (text)."""
    created = created or dtref + dt.timedelta(days=1)
    with open(path, "w", encoding="cp1252", errors="xmlcharrefreplace") as f:
        f.write(_header(False, typeflux, created, time, dtref))
        for frag in fragments:
            f.write(frag + "\n")
        f.write(_footer(len(fragments) if total is None else total))
    return path


def hh(index: int, dtref: dt.date, seed: int = 11, **kw):
    """A generated household as an lxml element, for editing."""
    return etree.fromstring(household_xml(seed, index, dtref, **kw).encode("utf-8"))


def text(el) -> str:
    return etree.tostring(el, encoding="unicode")


def set_path(el, path: str, value: str):
    el.find(path).text = value
    return el


def person_el(household, n: int):
    return list(household.iterchildren("Personne"))[n]


def make_single(index: int, dtref: dt.date, *, state="2", sdd="1", seed=11):
    """A household with exactly one DEM, in the given right state and SDD flag."""
    for i in range(index, index + 500):
        el = hh(i, dtref, seed=seed, state=state, transfer_in=False)
        persons = list(el.iterchildren("Personne"))
        if len(persons) == 1:
            set_path(persons[0], "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA", sdd)
            return el
    raise AssertionError("no single-person household drawn")


def close_household(el, motive: str, on: dt.date):
    from imports.generator import _SITUATION_ORDER, _el, _insert_ordered, _set_state

    _set_state(el, "5", None, on)
    sit = el.find("PrestationRSA/SituationDossierRSA")
    _insert_ordered(sit, _el("FinDroit", MOTICLORSA=motive, DTCLORSA=on.isoformat()), _SITUATION_ORDER)
    return el


def count(rt, model, *where) -> int:
    with rt.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def matricule(el) -> str:
    return el.findtext("IdentificationRSA/Organisme/MATRICULE")


def household(s, el) -> Household:
    return s.scalar(select(Household).where(Household.matricule == matricule(el)))


def only_person(s, el) -> Person:
    return s.scalar(select(Person).join(Household).where(Household.matricule == matricule(el)))


MY_TABLES = (CaseEvent, Exit, CasePath, StatusChange, Activity, RawRecord, Person, Household, RejectedRecord,
             ImportBatch)


def snapshot(rt) -> dict:
    """The imported content, without ids or timestamps: equal snapshots = equal databases."""
    with rt.session() as s:
        hh_key = {h.id: (h.organism, h.matricule) for h in s.scalars(select(Household))}
        persons = {p.id: (p.nir_hash, p.last_name, p.first_name, p.birth_date) for p in s.scalars(select(Person))}
        return {
            "households": sorted((h.organism, h.matricule, h.right_state, h.right_state_on, h.commune_insee, h.mds_id,
                                  h.closure_reason, h.transferred_from, h.transferred_to, h.last_flow_on)
                                 for h in s.scalars(select(Household))),
            "persons": sorted((hh_key.get(p.household_id), p.role, p.sdd, p.last_name, p.first_name, p.birth_date,
                               p.nir_hash, p.legal_clock_start) for p in s.scalars(select(Person))),
            "activities": sorted((persons[a.person_id], a.code, a.start_on, a.end_on) for a in s.scalars(select(Activity))),
            "paths": sorted((persons[p.person_id], p.clock_start, p.request_date, p.opening_reason, p.closed_on,
                             p.close_reason, p.mds_id or 0, p.territory_id or 0)
                            for p in s.scalars(select(CasePath))),
            "status": sorted((hh_key.get(c.household_id) or (), persons.get(c.person_id) or (), c.field, c.old_value or "",
                              c.new_value or "", c.effective_on) for c in s.scalars(select(StatusChange))),
            "exits": sorted((persons[e.person_id], e.exit_on, e.reason) for e in s.scalars(select(Exit))),
            "events": sorted((persons[e.person_id], e.kind, e.occurred_on) for e in s.scalars(select(CaseEvent))),
            "raw": sorted((hh_key[r.household_id], r.content_hash) for r in s.scalars(select(RawRecord))),
            "batches": sorted((b.file_name, b.status, json.dumps(b.counts, sort_keys=True)) for b in
                              s.scalars(select(ImportBatch))),
        }


def wipe(rt):
    with rt.session() as s:
        for model in MY_TABLES:
            s.execute(delete(model))


# --- the public samples ------------------------------------------------------------------------------

def test_public_samples_import_in_creation_order_outside_sectorisation(rt):
    results = service.import_files(rt, [DATA / "RSABEM-ouvert.xml", DATA / "RSABEI_invalid.xml", DATA / "RSABEM.xml"])
    # RSABEI (2021-12-24) first; the two monthly files share DTCREAFLUX/HEUCREAFLUX: command-line order kept.
    assert [Path(r["path"]).name for r in results] == ["RSABEI_invalid.xml", "RSABEM-ouvert.xml", "RSABEM.xml"]
    bei, ouvert, bem = results
    # RSABEI_invalid: well-formed, but its only household lacks DonneesAdministratives/PrestationRSA:
    # the record is rejected with its reason, the (empty) rest of the file imports.
    assert bei["status"] == "imported" and bei["rejected"] == 1 and bei["created"] == 0
    with rt.session() as s:
        rej = s.scalar(select(RejectedRecord))
        assert rej.record_key == "CAF:034614500000000" and "DonneesAdministratives manquant" in rej.reason
        assert rej.raw.startswith(b"<InfosFoyerRSA") and b"034614500000000" in rej.raw
    assert ouvert["status"] == "imported" and ouvert["created"] == 1
    assert bem["status"] == "imported" and bem["created"] == 1 and bem["updated"] == 1
    assert any("hors sectorisation" in w and "92044" in w for w in bem["warnings"])
    assert any("NBTOTDOSRSATRANSM=1" in w for w in bem["warnings"])  # the sample's control total is wrong
    with rt.session() as s:
        rows = s.scalars(select(Household).order_by(Household.matricule)).all()
        assert [(h.matricule, h.right_state, h.mds_id, h.departement) for h in rows] == [
            ("205599000000000", "5", None, "052"), ("208956400000000", "4", None, "052")]
        assert rows[1].suspension_reason == "V06" and rows[0].closure_reason == "PCG"
        bullock = s.scalar(select(Person).where(Person.last_name == "BULLOCK"))
        assert bullock.role == "CJT" and bullock.sdd is True
        assert rt.vault.decrypt(bullock.nir_encrypted) == "2730799404078"
        assert bullock.nir_hash == rt.vault.hash("2730799404078")
        # opened by RSABEM-ouvert (state 2), suspended by RSABEM (state 4): one path, still open; its legal
        # clock starts on the receipt of the flow (DTCREAFLUX 2022-03-05, issue 16), not on DTREF
        paths = s.scalars(select(CasePath).where(CasePath.person_id == bullock.id)).all()
        assert [(p.clock_start, p.request_date, p.opening_reason, p.closed_on) for p in paths] == [
            (dt.date(2022, 3, 5), dt.date(2018, 8, 6), "entry", None)]
        assert bullock.legal_clock_start == dt.date(2022, 3, 5)
        assert [a.code for a in bullock.activities] == ["SAL", "CHO"]
        kinds = sorted(e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.person_id == bullock.id)))
        assert kinds == ["flow.right_opened", "flow.right_suspended"]
        # a household first seen closed: no path, no exit
        tifour = s.scalar(select(Person).where(Person.last_name == "TIFOUR"))
        assert s.scalar(select(func.count()).select_from(CasePath).where(CasePath.person_id == tifour.id)) == 0
        assert s.scalar(select(func.count()).select_from(Exit)) == 0
        # the clear NIR is stored nowhere in the person table
        for p in s.scalars(select(Person)):
            assert all("2730799404078" not in str(v) for v in (p.nir_hash, p.last_name, p.external_ids, p.idassedic))


# --- history, paths, exits --------------------------------------------------------------------------

def test_monthly_then_daily_then_monthly_follow_the_latest_flow(rt, tmp_path):
    m1 = tmp_path / "RSABEM_1.xml"
    generate_monthly(m1, households=60, seed=5, month="2026-07")
    d = tmp_path / "RSABEI_1.xml"
    daily = derive_flux([m1], d, seed=5, daily=True, change_rate=0.3, new_households=3)
    m2 = tmp_path / "RSABEM_2.xml"
    monthly = derive_flux([m1, d], m2, seed=5, daily=False, change_rate=0.1, new_households=4)
    results = service.import_files(rt, [m2, d, m1])
    assert [Path(r["path"]).name for r in results] == ["RSABEM_1.xml", "RSABEI_1.xml", "RSABEM_2.xml"]
    assert all(r["status"] == "imported" and r["rejected"] == 0 for r in results)
    assert results[1]["households"] == daily["households"] and results[1]["created"] == 3
    assert results[2]["created"] == 4 and results[2]["updated"] == monthly["changed"]
    assert results[2]["unchanged"] == monthly["households"] - 4 - monthly["changed"]
    # each household holds the state of the latest flow that carries it
    latest = {}
    for f in (m1, d, m2):
        reader = FluxReader(f)
        for rec in reader:
            latest[rec.key] = (rec.data["right_state"], reader.header.flow_date)
    with rt.session() as s:
        got = {(h.organism, h.matricule): h.right_state for h in s.scalars(select(Household))}
        assert got == {k: v[0] for k, v in latest.items()}
        d_ref = dt.date.fromisoformat(daily["dtref"])
        changed_in_daily = s.scalars(select(StatusChange).where(StatusChange.field == "right_state",
                                                                StatusChange.old_value.is_not(None))).all()
        assert changed_in_daily and {c.effective_on for c in changed_in_daily} <= {d_ref, dt.date(2026, 9, 30)}
        # history rows are dated by the flow, one per change, never rewritten
        first = s.scalars(select(StatusChange).where(StatusChange.old_value.is_(None),
                                                     StatusChange.field == "right_state")).all()
        assert {c.effective_on for c in first} <= {dt.date(2026, 7, 31), d_ref, dt.date(2026, 9, 30)}
        assert len(first) == len(latest)
        # every open SDD DEM/CJT has exactly one open path whose clock started with a flow
        for p in s.scalars(select(Person).join(Household).where(Person.sdd.is_(True), Person.role.in_(("DEM", "CJT")),
                                                                Household.right_state.in_(("2", "3", "4")))):
            open_paths = s.scalars(select(CasePath).where(CasePath.person_id == p.id, CasePath.closed_on.is_(None))).all()
            assert len(open_paths) == 1 and open_paths[0].clock_start == p.legal_clock_start
        assert s.scalar(select(func.count()).select_from(Household).where(Household.mds_id.is_(None))) == 0
        # Every path carries its household's sector (the copy the reports read), moves included.
        pairs = s.execute(select(CasePath.mds_id, CasePath.territory_id, Household.mds_id, Household.territory_id)
                          .join(Household, Household.id == CasePath.household_id)).all()
        assert pairs and all(p[:2] == p[2:] for p in pairs) and len({p[0] for p in pairs}) > 5


def test_sdd_zero_to_one_gives_history_and_clock_start(rt, tmp_path):
    m1 = make_single(0, dt.date(2026, 8, 31), sdd="0")
    write_flux(tmp_path / "m1.xml", [text(m1)], dt.date(2026, 8, 31))
    set_path(person_el(m1, 0), "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA", "1")
    write_flux(tmp_path / "d1.xml", [text(m1)], dt.date(2026, 9, 12), typeflux="I", created=dt.date(2026, 9, 12))
    service.import_files(rt, [tmp_path / "m1.xml"])
    with rt.session() as s:
        p = only_person(s, m1)
        assert p.sdd is False and p.legal_clock_start is None
        assert s.scalar(select(func.count()).select_from(CasePath)) == 0
    service.import_files(rt, [tmp_path / "d1.xml"])
    with rt.session() as s:
        p = only_person(s, m1)
        assert p.sdd is True and p.legal_clock_start == dt.date(2026, 9, 12)
        rows = s.scalars(select(StatusChange).where(StatusChange.person_id == p.id, StatusChange.field == "sdd")).all()
        assert [(r.old_value, r.new_value, r.effective_on) for r in rows] == [("0", "1", dt.date(2026, 9, 12))]
        (path,) = s.scalars(select(CasePath).where(CasePath.person_id == p.id)).all()
        assert path.clock_start == dt.date(2026, 9, 12) and path.opening_reason == "entry"
        assert path.request_date == household(s, m1).dtdemrsa
        kinds = {e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.person_id == p.id))}
        assert kinds == {"flow.sdd_changed", "flow.right_opened"}


@pytest.mark.parametrize("motive,reason", [("ECH", "end_of_right_resources"), ("RFD", "striking_off"),
                                           ("PCG", "other")])
def test_closure_closes_the_path_and_records_an_exit(rt, tmp_path, motive, reason):
    m1 = make_single(3, dt.date(2026, 8, 31))
    write_flux(tmp_path / "m1.xml", [text(m1)], dt.date(2026, 8, 31))
    close_household(m1, motive, dt.date(2026, 9, 10))
    write_flux(tmp_path / "d1.xml", [text(m1)], dt.date(2026, 9, 11), typeflux="I", created=dt.date(2026, 9, 11))
    results = service.import_files(rt, [tmp_path / "d1.xml", tmp_path / "m1.xml"])
    assert [r["status"] for r in results] == ["imported", "imported"]
    with rt.session() as s:
        p = only_person(s, m1)
        (path,) = s.scalars(select(CasePath).where(CasePath.person_id == p.id)).all()
        # through cases.service.record_exit: close reason "exit:<reason>", the positive-exit mapping
        assert (path.closed_on, path.close_reason) == (dt.date(2026, 9, 10), f"exit:{reason}")
        (ex,) = s.scalars(select(Exit).where(Exit.person_id == p.id)).all()
        assert (ex.exit_on, ex.reason, ex.source, ex.positive, ex.path_id) == (
            dt.date(2026, 9, 10), reason, "flow", reason == "end_of_right_resources", path.id)
        kinds = sorted(e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.person_id == p.id)))
        assert kinds == ["exit.recorded", "flow.right_closed", "flow.right_opened"]
        h = household(s, m1)
        assert (h.right_state, h.closure_reason, h.closure_on) == ("5", motive, dt.date(2026, 9, 10))
    # the right reopens next month: a new path, opened as a reopening
    from imports.generator import _set_state

    _set_state(m1, "2", None, dt.date(2026, 10, 1))
    write_flux(tmp_path / "m2.xml", [text(m1)], dt.date(2026, 10, 31))
    service.import_files(rt, [tmp_path / "m2.xml"])
    with rt.session() as s:
        p = only_person(s, m1)
        paths = s.scalars(select(CasePath).where(CasePath.person_id == p.id).order_by(CasePath.id)).all()
        assert [(x.opening_reason, x.closed_on is None) for x in paths] == [("entry", False), ("reopening", True)]
        assert p.legal_clock_start == dt.date(2026, 11, 1)  # the receipt of m2 (DTCREAFLUX), issue 16


def test_reopening_more_than_12_months_after_the_closure_is_a_new_entry(rt, tmp_path):
    from imports.generator import _set_state

    m1 = make_single(3, dt.date(2025, 5, 31))
    write_flux(tmp_path / "m1.xml", [text(m1)], dt.date(2025, 5, 31))
    close_household(m1, "ECH", dt.date(2025, 6, 10))
    write_flux(tmp_path / "m2.xml", [text(m1)], dt.date(2025, 6, 30))
    _set_state(m1, "2", None, dt.date(2026, 8, 1))  # 14 months later
    write_flux(tmp_path / "m3.xml", [text(m1)], dt.date(2026, 8, 31))
    results = service.import_files(rt, [tmp_path / "m1.xml", tmp_path / "m2.xml", tmp_path / "m3.xml"])
    assert [r["status"] for r in results] == ["imported"] * 3
    with rt.session() as s:
        p = only_person(s, m1)
        paths = s.scalars(select(CasePath).where(CasePath.person_id == p.id).order_by(CasePath.id)).all()
        assert [(x.opening_reason, x.closed_on) for x in paths] == [("entry", dt.date(2025, 6, 10)), ("entry", None)]
        assert s.scalar(select(func.count()).select_from(Exit).where(Exit.person_id == p.id)) == 1

def test_transfers_out_and_in(rt, tmp_path):
    from imports.generator import _IDENT_ORDER, _el, _insert_ordered

    out_el = make_single(10, dt.date(2026, 8, 31))
    in_el = make_single(40, dt.date(2026, 8, 31))
    write_flux(tmp_path / "m1.xml", [text(out_el), text(in_el)], dt.date(2026, 8, 31))
    close_household(out_el, "MUT", dt.date(2026, 9, 5))
    _insert_ordered(out_el.find("IdentificationRSA"), _el("OrganismePrenant", FONORGPRENMUT="CAF", NUMORGPRENMUT="321",
                                                         DDDEPAMUT="2026-09-04"), _IDENT_ORDER)
    _insert_ordered(in_el.find("IdentificationRSA"), _el("OrganismeCedant", FONORGCEDMUT="CAF", NUMORGCEDMUT="811",
                                                        DDARRMUT="2026-09-08"), _IDENT_ORDER)
    write_flux(tmp_path / "d1.xml", [text(out_el), text(in_el)], dt.date(2026, 9, 9), typeflux="I",
               created=dt.date(2026, 9, 9))
    service.import_files(rt, [tmp_path / "m1.xml", tmp_path / "d1.xml"])
    # the same transfers seen again next month restart nothing (even with the leaving right still open)
    from imports.generator import _set_state

    _set_state(out_el, "2", None, dt.date(2026, 9, 30))
    write_flux(tmp_path / "m2.xml", [text(in_el), text(out_el)], dt.date(2026, 9, 30))
    service.import_files(rt, [tmp_path / "m2.xml"])
    with rt.session() as s:
        p_out = only_person(s, out_el)
        (path,) = s.scalars(select(CasePath).where(CasePath.person_id == p_out.id)).all()
        assert (path.closed_on, path.close_reason) == (dt.date(2026, 9, 4), "exit:transfer")
        (ex,) = s.scalars(select(Exit).where(Exit.person_id == p_out.id)).all()
        assert ex.reason == "transfer"
        assert "flow.transfer_out" in {e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.person_id == p_out.id))}
        assert household(s, out_el).transferred_to == "CAF 321"
        p_in = only_person(s, in_el)
        paths = s.scalars(select(CasePath).where(CasePath.person_id == p_in.id).order_by(CasePath.id)).all()
        assert [(x.opening_reason, x.closed_on, x.close_reason) for x in paths] == [
            ("entry", dt.date(2026, 9, 8), "transfer_in"), ("transfer_in", None, None)]
        assert paths[1].clock_start == dt.date(2026, 9, 9) == p_in.legal_clock_start
        assert s.scalar(select(func.count()).select_from(Exit).where(Exit.person_id == p_in.id)) == 0


def test_absent_person_leaves_the_household_with_history(rt, tmp_path):
    el = None
    for i in range(200):
        cand = hh(i, dt.date(2026, 8, 31), state="2")
        roles = [p.findtext("Prestations[NATPREST='RSA']/ROLEPERS") for p in cand.iterchildren("Personne")]
        if roles[:2] == ["DEM", "CJT"]:
            el = cand
            break
    write_flux(tmp_path / "m1.xml", [text(el)], dt.date(2026, 8, 31))
    el.remove(person_el(el, 1))
    write_flux(tmp_path / "m2.xml", [text(el)], dt.date(2026, 9, 30))
    service.import_files(rt, [tmp_path / "m1.xml", tmp_path / "m2.xml"])
    with rt.session() as s:
        cjt = s.scalar(select(Person).join(Household).where(Household.matricule == matricule(el),
                                                            Person.role.is_(None)))
        assert cjt is not None and cjt.sdd is False
        rows = {(r.field, r.old_value, r.new_value) for r in
                s.scalars(select(StatusChange).where(StatusChange.person_id == cjt.id))}
        assert ("role", "CJT", None) in rows


# --- identity -----------------------------------------------------------------------------------------

def test_identity_matching_and_conflicting_nir_is_rejected_then_replayed(rt, tmp_path):
    a = make_single(60, dt.date(2026, 8, 31))
    write_flux(tmp_path / "m1.xml", [text(a)], dt.date(2026, 8, 31))
    service.import_files(rt, [tmp_path / "m1.xml"])
    # the same NIR (15 characters, as the MSA sends it) with another birth date in another household
    b = make_single(90, dt.date(2026, 8, 31))
    nir13 = person_el(a, 0).findtext("Identification/NIR")
    set_path(person_el(b, 0), "Identification/NIR", nir13 + f"{97 - int(nir13) % 97:02d}")
    true_birth = person_el(b, 0).findtext("Identification/DTNAI")
    assert true_birth != person_el(a, 0).findtext("Identification/DTNAI")
    write_flux(tmp_path / "m2.xml", [text(b)], dt.date(2026, 9, 30))
    (r,) = service.import_files(rt, [tmp_path / "m2.xml"])
    assert r["status"] == "imported" and r["rejected"] == 1 and r["created"] == 0
    with rt.session() as s:
        rej = s.scalar(select(RejectedRecord))
        assert "conflit d'identité" in rej.reason and nir13 not in rej.reason
        assert s.scalar(select(func.count()).select_from(Person)) == 1
    # the agent corrects the birth date of the known person: the replay now matches (no duplicate)
    with rt.session() as s:
        only_person(s, a).birth_date = dt.date.fromisoformat(true_birth)
    out = service.replay(rt, rej.id)
    assert out["status"] == "replayed"
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 1
        p = s.scalar(select(Person))
        assert p.household_id == household(s, b).id and p.nir_hash == rt.vault.hash(nir13)
        assert s.get(RejectedRecord, rej.id).status == "replayed"
    with pytest.raises(service.ReplayError):
        service.replay(rt, rej.id)


def test_persons_without_nir_match_by_role_then_by_name(rt, tmp_path):
    el = make_single(120, dt.date(2026, 8, 31))
    ident = person_el(el, 0).find("Identification")
    for tag in ("NIR", "TOPVALIEC"):
        ident.remove(ident.find(tag))
    write_flux(tmp_path / "m1.xml", [text(el)], dt.date(2026, 8, 31))
    set_path(ident, "NOM", "NOUVEAU-NOM")  # a new last name: matched on (household, role) + birth date
    write_flux(tmp_path / "m2.xml", [text(el)], dt.date(2026, 9, 30))
    service.import_files(rt, [tmp_path / "m1.xml", tmp_path / "m2.xml"])
    with rt.session() as s:
        (p,) = s.scalars(select(Person)).all()
        assert p.last_name == "NOUVEAU-NOM" and p.nir_hash is None


# --- idempotency, rejects -------------------------------------------------------------------------

def test_identical_reimport_changes_nothing(rt, tmp_path):
    m1 = tmp_path / "RSABEM_a.xml"
    generate_monthly(m1, households=80, seed=8, month="2026-09")
    service.import_files(rt, [m1])
    before = snapshot(rt)
    copy = tmp_path / "RSABEM_copie.xml"
    shutil.copy(m1, copy)
    results = service.import_files(rt, [m1, copy])
    assert [r["status"] for r in results] == ["duplicate", "duplicate"]
    assert snapshot(rt) == before
    # the same households under a new header (another file): every household unchanged, no history
    m1b = tmp_path / "RSABEM_b.xml"
    generate_monthly(m1b, households=80, seed=8, month="2026-09")
    text_b = m1b.read_text(encoding="cp1252").replace("<HEUCREAFLUX>02:10:00.0000", "<HEUCREAFLUX>03:10:00.0000")
    m1b.write_text(text_b, encoding="cp1252")
    (r,) = service.import_files(rt, [m1b])
    assert r["status"] == "imported" and r["unchanged"] == 80 and r["updated"] == r["created"] == 0
    after = snapshot(rt)
    assert {k: v for k, v in after.items() if k != "batches"} == {k: v for k, v in before.items() if k != "batches"}


def test_one_bad_household_among_1000(rt, tmp_path):
    good = tmp_path / "RSABEM_ok.xml"
    generate_monthly(good, households=1000, seed=9, month="2026-09")
    raw = good.read_text(encoding="cp1252")
    lines = raw.split("\n")
    # line 0 = declaration, 1 = Racine, 2 = IdentificationFlux, then one household per line
    bad = lines[2 + 500]
    target = etree.fromstring(bad.encode("utf-8"))
    target.find("Personne/Identification/DTNAI").text = "1985-13-45"
    lines[2 + 500] = etree.tostring(target, encoding="unicode")
    path = tmp_path / "RSABEM_1bad.xml"
    path.write_text("\n".join(lines), encoding="cp1252")
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "imported"
    assert (r["households"], r["created"], r["rejected"]) == (1000, 999, 1)
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(Household)) == 999
        (rej,) = s.scalars(select(RejectedRecord)).all()
        assert rej.record_key == f"CAF:{matricule(target)}" and "DTNAI" in rej.reason and "1985-13-45" in rej.reason
        rows = service.list_rejects(s, batch_id=r["batch_id"])
        assert [x["id"] for x in rows] == [rej.id]
    # replaying without a correction keeps it rejected with its reason
    out = service.replay(rt, rej.id)
    assert out["status"] == "pending" and "DTNAI" in out["reason"]


# --- broken files ------------------------------------------------------------------------------------

XXE = """<?xml version="1.0" encoding="windows-1252"?>
<!DOCTYPE Racine [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Racine><IdentificationFlux><APPLIEME>CRI</APPLIEME><NUMVERSIONAPPLIEME>6200</NUMVERSIONAPPLIEME>
<TYPEFLUX>M</TYPEFLUX><NATFLUX>D</NATFLUX><DTCREAFLUX>2026-10-05</DTCREAFLUX><HEUCREAFLUX>01:00:00</HEUCREAFLUX>
<DTREF>2026-09-30</DTREF></IdentificationFlux>{household}
<TransmissionFlux><NBTOTDOSRSATRANSM>1</NBTOTDOSRSATRANSM><NBTOTDOSRSATRANSMANO>0</NBTOTDOSRSATRANSMANO></TransmissionFlux>
</Racine>"""

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Racine><IdentificationFlux><DTREF>2026-09-30</DTREF></IdentificationFlux><InfosFoyerRSA>&lol3;</InfosFoyerRSA></Racine>"""


def broken_files(tmp_path) -> dict[str, Path]:
    good = tmp_path / "good.xml"
    generate_monthly(good, households=30, seed=12, month="2026-09")
    data = good.read_bytes()
    el = hh(1, dt.date(2026, 9, 30), seed=12)
    set_path(el, "Personne/Identification/NOM", "&xxe;")
    files = {
        "truncated": data[: len(data) // 2],
        "xxe": XXE.format(household=text(el).replace("&amp;xxe;", "&xxe;")).encode("cp1252"),
        "laughs": LAUGHS.encode(),
        "wrong_root": data.replace(b"<Racine", b"<Foyers").replace(b"</Racine>", b"</Foyers>"),
        "bad_encoding": data.replace(b'encoding="windows-1252"', b'encoding="utf-8"'),
        "empty": b"",
        "not_xml": b"nom;prenom\nDUPONT;JEAN\n",
        "no_transmission": data[: data.index(b"<TransmissionFlux>")] + b"</Racine>\n",
    }
    out = {}
    for name, content in files.items():
        p = tmp_path / f"RSABEM_{name}.xml"
        p.write_bytes(content)
        out[name] = p
    return out


def test_broken_files_change_nothing_and_say_why(rt, tmp_path):
    base = tmp_path / "RSABEM_base.xml"
    generate_monthly(base, households=20, seed=13, month="2026-08")
    service.import_files(rt, [base])
    before = snapshot(rt)
    files = broken_files(tmp_path)
    expected = {"truncated": "tronqué", "xxe": "DOCTYPE", "laughs": "DOCTYPE", "wrong_root": "racine",
                "bad_encoding": "encodage", "empty": "vide", "not_xml": "XML", "no_transmission": "TransmissionFlux"}
    for name, path in files.items():
        (r,) = service.import_files(rt, [path])
        assert r["status"] == "failed", name
        assert expected[name].lower() in r["error"].lower(), (name, r["error"])
        assert "\n" not in r["error"] and not r["error"].startswith("erreur inattendue")
        with rt.session() as s:
            b = s.get(ImportBatch, r["batch_id"])
            assert (b.status, b.error) == ("failed", r["error"])
    after = snapshot(rt)
    assert {k: v for k, v in after.items() if k != "batches"} == {k: v for k, v in before.items() if k != "batches"}
    assert count(rt, ImportBatch, ImportBatch.status == "failed") == len(files)


def test_broken_file_in_the_middle_rolls_back_everything(rt, tmp_path):
    good = tmp_path / "RSABEM_big.xml"
    generate_monthly(good, households=300, seed=14, month="2026-09")
    data = good.read_bytes()
    cut = tmp_path / "RSABEM_cut.xml"
    cut.write_bytes(data[: int(len(data) * 0.9)])  # 270 households readable, then garbage
    (r,) = service.import_files(rt, [cut])
    assert r["status"] == "failed" and "tronqué" in r["error"]
    assert count(rt, Household) == 0 and count(rt, Person) == 0 and count(rt, RawRecord) == 0


@pytest.mark.parametrize("worker", ["in-process", "reading process"])
def test_crash_mid_file_then_rerun_equals_a_clean_run(rt, tmp_path, base_settings, worker):
    path = tmp_path / "RSABEM_crash.xml"
    generate_monthly(path, households=300, seed=15, month="2026-09")
    env = {**os.environ, "RSA_DATABASE_URL": base_settings.database_url, "RSA_SECRET_KEY": base_settings.secret_key,
           "RSA_NIR_KEY": base_settings.nir_key, "RSA_LOG_LEVEL": "WARNING",
           WORKER_ENV: "0" if worker == "reading process" else "-1"}
    # kill -9 once the households are written inside the open transaction (tests/kill9.py); run under
    # sh, which reports a SIGKILLed child as 128 + 9, like an operator's shell
    proc = subprocess.run(["sh", "-c", '"$0" "$@"; exit $?', sys.executable, str(REPO / "tests" / "kill9.py"),
                           "household", "import", "flux", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    assert "kill -9 after writing into household" in proc.stderr  # killed mid-import, rows in flight
    assert count(rt, Household) == 0 and count(rt, ImportBatch) == 0  # killed: nothing committed
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "imported" and r["created"] == 300
    rerun = snapshot(rt)
    wipe(rt)
    service.import_files(rt, [path])
    assert snapshot(rt) == rerun


def test_reading_process_gives_the_same_database_as_in_process(rt, tmp_path, monkeypatch):
    """Large files are read by a second process (a first import, a small re-import) or by a thread of
    the importer (a large re-import): same result as read in the importer's loop, same safety."""
    m1 = tmp_path / "RSABEM_1.xml"
    generate_monthly(m1, households=150, seed=21, month="2026-07")
    m2 = tmp_path / "RSABEM_2.xml"
    derive_flux([m1], m2, seed=21, daily=False, change_rate=0.3, new_households=5)
    results = {}
    for mode, threshold, forced in (("automatic", "0", ""), ("process", "0", "process"), ("thread", "0", "thread"),
                                    ("in-process", "-1", "")):
        monkeypatch.setenv(WORKER_ENV, threshold)
        monkeypatch.setenv(flux_worker.READER_ENV, forced)
        assert flux_worker.use_worker(m1) is (mode != "in-process")
        res = service.import_files(rt, [m2, m1, m1])
        assert [r["status"] for r in res] == ["imported", "duplicate", "imported"]
        assert [r["reading"] for r in res] == {"automatic": ["process", None, "process"],
                                               "in-process": ["inline", None, "inline"]}.get(mode, [mode, None, mode])
        results[mode] = ([{k: r[k] for k in ("households", "persons", "created", "updated", "unchanged",
                                             "rejected", "warnings")} for r in res], snapshot(rt))
        wipe(rt)
    assert results["automatic"] == results["process"] == results["thread"] == results["in-process"]
    assert results["process"][0][2]["updated"] > 0 and results["process"][1]["paths"]
    # a broken file read by the second process or by a thread: failed with its reason, nothing written
    monkeypatch.setenv(WORKER_ENV, "0")
    data = m1.read_bytes()
    cut = tmp_path / "RSABEM_cut.xml"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    for forced in ("process", "thread"):
        monkeypatch.setenv(flux_worker.READER_ENV, forced)
        (r,) = service.import_files(rt, [cut])
        assert r["status"] == "failed" and "tronqué" in r["error"], forced
        assert count(rt, Household) == 0 and count(rt, Person) == 0 and count(rt, RawRecord) == 0


def test_a_large_re_import_is_read_by_a_thread_when_most_of_its_many_households_are_known(tmp_path, monkeypatch):
    """A first import is read by a second process (the parse is most of its work), and so is a re-import
    of fewer than THREAD_FROM_KNOWN households (faster: the reading has a core of its own); a large
    re-import is read by a thread of the importer (no second interpreter holding the known households'
    lookup): told apart by the households the database holds against the file's size."""
    path = tmp_path / "RSABEM_1.xml"
    households = 2 * flux_worker.THREAD_FROM_KNOWN
    with open(path, "wb") as f:
        f.truncate(flux_worker.HOUSEHOLD_BYTES * households)  # a sparse file of that size
    monkeypatch.setenv(WORKER_ENV, "0")
    monkeypatch.delenv(flux_worker.READER_ENV, raising=False)
    assert flux_worker.reading_mode(path, lambda: 0) == "process"
    assert flux_worker.reading_mode(path, lambda: households // 2 - 1) == "process"
    assert flux_worker.reading_mode(path, lambda: households // 2) == "thread"
    assert flux_worker.reading_mode(path, lambda: 2 * households) == "thread"
    small = tmp_path / "RSABEM_2.xml"
    with open(small, "wb") as f:
        f.truncate(flux_worker.HOUSEHOLD_BYTES * 1000)
    assert flux_worker.reading_mode(small, lambda: 1000) == "process"  # a re-import under THREAD_FROM_KNOWN
    assert flux_worker.reading_mode(small, lambda: flux_worker.THREAD_FROM_KNOWN) == "thread"
    monkeypatch.setenv(flux_worker.READER_ENV, "process")
    assert flux_worker.reading_mode(path, lambda: 2 * households) == "process"
    monkeypatch.setenv(WORKER_ENV, str(path.stat().st_size + 1))  # under the size for reading beside: in the loop
    assert flux_worker.reading_mode(path, lambda: 1 / 0) == "inline"  # the database is not asked


# --- inbox, job, CLI, demo ---------------------------------------------------------------------------

def test_inbox_archives_imported_and_quarantines_broken(rt, tmp_path):
    inbox, archive, quarantine = (Path(rt.settings.inbox), Path(rt.settings.archive), Path(rt.settings.quarantine))
    for d in (inbox, archive, quarantine):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    generate_monthly(inbox / "RSABEM_202609.xml", households=10, seed=16, month="2026-09")
    (inbox / "RSABEI_casse.xml").write_bytes(b'<?xml version="1.0"?><Racine><IdentificationFlux>')
    (inbox / "RSABEI_encours.xml.part").write_bytes(b"...")
    result = service.process_inbox(rt)
    by_name = {Path(f["path"]).name: f for f in result["files"]}
    assert by_name["RSABEM_202609.xml"]["status"] == "imported"
    assert by_name["RSABEI_casse.xml"]["status"] == "failed"
    assert (archive / "RSABEM_202609.xml").exists() and (quarantine / "RSABEI_casse.xml").exists()
    assert sorted(p.name for p in inbox.iterdir()) == ["RSABEI_encours.xml.part"]
    assert count(rt, Household) == 10
    # the scheduled job leaves a file that is still being written (recent mtime) for its next run
    from imports.jobs import JOBS, inbox_job

    assert any(j.id == "imports.inbox" and j.every_minutes for j in JOBS)
    shutil.copy(archive / "RSABEM_202609.xml", inbox / "RSABEM_again.xml")
    assert inbox_job(rt, dt.date(2026, 10, 6))["files"] == []
    old = (dt.datetime.now() - dt.timedelta(minutes=5)).timestamp()
    os.utime(inbox / "RSABEM_again.xml", (old, old))
    out = inbox_job(rt, dt.date(2026, 10, 6))
    assert out["duplicate"] == 1 and (archive / "RSABEM_again.xml").exists()


def test_cli_flux_rejects_replay_generate(rt, tmp_path, base_settings):
    from config.cli import main

    env = {"RSA_DATABASE_URL": base_settings.database_url, "RSA_SECRET_KEY": base_settings.secret_key,
           "RSA_NIR_KEY": base_settings.nir_key}
    runner = CliRunner()
    out = tmp_path / "RSABEM_cli.xml"
    res = runner.invoke(main, ["import", "generate-flux", "--households", "15", "--seed", "3", "--month", "2026-09",
                               str(out)], env=env)
    assert res.exit_code == 0, res.output
    daily = tmp_path / "RSABEI_cli.xml"
    res = runner.invoke(main, ["import", "generate-flux", "--households", "15", "--seed", "3", "--month", "2026-10",
                               "--daily-from", str(out), "--change-rate", "0.5", str(daily)], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["import", "flux", str(daily), str(out), str(DATA / "RSABEI_invalid.xml"), "--json"],
                        env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [Path(f["path"]).name for f in data["files"]] == ["RSABEI_invalid.xml", "RSABEM_cli.xml", "RSABEI_cli.xml"]
    keys = {"path", "status", "households", "persons", "created", "updated", "unchanged", "rejected", "error"}
    assert all(keys <= set(f) and f["status"] == "imported" for f in data["files"])
    res = runner.invoke(main, ["import", "flux", str(out)], env=env)
    assert res.exit_code == 0 and "déjà importé" in res.output
    res = runner.invoke(main, ["import", "rejects", "--json"], env=env)
    rows = json.loads(res.output)
    assert len(rows) == 1 and "DonneesAdministratives" in rows[0]["reason"]
    res = runner.invoke(main, ["import", "replay", str(rows[0]["id"])], env=env)
    assert res.exit_code == 1 and "toujours rejeté" in res.output
    bad = tmp_path / "RSABEM_bad.xml"
    bad.write_bytes(b"<Racine>")
    res = runner.invoke(main, ["import", "flux", str(bad)], env=env)
    assert res.exit_code == 1 and "ÉCHEC" in res.output


def test_demo_step_imports_generated_flows_and_the_sample(rt, tmp_path):
    from config.demo import DemoContext
    from imports import demo

    lines = []
    ctx = DemoContext(runtime=rt, as_of=dt.date(2026, 11, 20), workdir=tmp_path, echo=lines.append)
    result = demo.demo(ctx)
    assert len(lines) == 6 and all(f["status"] == "imported" for f in result["files"])
    assert "hors sectorisation" in lines[-1]
    with rt.session() as s:
        starts = {p.clock_start for p in s.scalars(select(CasePath).join(Household, Household.id == CasePath.household_id)
                                                   .where(Household.departement == "031"))}
        assert min(starts) >= dt.date(2026, 7, 1) and len(starts) >= 4  # clocks spread over the months
        assert s.scalar(select(func.count()).select_from(Household).where(Household.mds_id.is_not(None))) >= 300


def test_progress_reports_every_byte_once_and_gzip_is_read(rt, tmp_path):
    import gzip

    path = tmp_path / "RSABEM_p.xml"
    generate_monthly(path, households=50, seed=17, month="2026-09")
    done = []
    (r,) = service.import_files(rt, [path], progress=done.append)
    assert r["status"] == "imported" and sum(done) == path.stat().st_size and len(done) > 1
    gz = tmp_path / "RSABEM_p2.xml.gz"
    generate_monthly(tmp_path / "p2.xml", households=5, seed=18, month="2026-09")
    gz.write_bytes(gzip.compress((tmp_path / "p2.xml").read_bytes()))
    (r,) = service.import_files(rt, [gz])
    assert r["status"] == "imported" and r["created"] == 5


@pytest.mark.parametrize("worker", [False, True])
def test_a_household_repeated_later_in_the_file_takes_its_last_record(rt, tmp_path, monkeypatch, worker):
    """Known households are skipped when unchanged (imports.known), but a household met again later in
    the same file, in another chunk, is read again: the last record wins, even when it equals what
    the database held before the file."""
    monkeypatch.setenv(WORKER_ENV, "0" if worker else str(10**12))
    d1, d2 = dt.date(2026, 8, 31), dt.date(2026, 9, 30)
    base = make_single(0, d1)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", [text(base)], d1)])
    changed = set_path(etree.fromstring(text(base)), "PrestationRSA/SituationDossierRSA/EtatDossierRSA/ETATDOSRSA", "3")
    filler = [text(hh(i, d2)) for i in range(1000, 2100)]  # more than one chunk between the two records
    f2 = write_flux(tmp_path / "RSABEM_2.xml", [text(changed), *filler, text(base)], d2)
    (r,) = service.import_files(rt, [f2])
    assert r["status"] == "imported" and r["rejected"] == 0
    with rt.session() as s:
        assert household(s, base).right_state == "2"


def test_batch_records_the_size_of_files_over_2_gb(rt):
    """A national or large département flow exceeds 2 GB: its size is kept (it overflowed a 32-bit
    column on PostgreSQL and failed the whole import, found by the 1M-household benchmark)."""
    from imports.models import ImportBatch

    with rt.session() as s:
        s.add(ImportBatch(kind="flux", file_name="RSABEM_national.xml", sha256="0" * 64, size_bytes=4_233_923_910,
                          status="failed"))
        s.commit()
        assert s.scalar(select(ImportBatch.size_bytes).where(ImportBatch.file_name == "RSABEM_national.xml")) \
            == 4_233_923_910
