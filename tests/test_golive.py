"""Going live on a real Département (issue 16): monthly snapshots, SDD 1→0→1, the legal clock from
receipt, VRSD0301, mis-encoded files, the take-over of the existing stock, old contracts; and the
flow reader's limits (issue 22 items 1 and 2: tag caps, depth, DOCTYPE anywhere, UTF-16 in .gz)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import func, select

from cases.models import CaseEvent, Contract, Exit, Person, StatusChange
from cases.models import Path as CasePath
from imports import service
from imports.flux import FluxError, FluxReader, read_header
from imports.generator import (
    _footer,
    _header,
    convert_to_vrsd,
    generate_monthly,
    to_vrsd_household,
    vrsd_header,
)
from imports.models import ImportBatch, RejectedRecord
from kiosque.models import Invitation
from orientation.messaging.models import Message
from orientation.models import Notification, Orientation
from tests.test_imports_flux import (
    close_household,
    household,
    make_single,
    only_person,
    person_el,
    set_path,
    snapshot,
    text,
    write_flux,
)

REPO = Path(__file__).resolve().parent.parent


# --- helpers ------------------------------------------------------------------------------------------

def _pending_proposal(s, person_id: int, path_id: int, on: dt.date) -> int:
    o = Orientation(person_id=person_id, path_id=path_id, referent_type="actipro", mode="propose", origin="auto",
                    status="proposed", decided_on=on, algorithmic=True)
    s.add(o)
    s.flush()
    return o.id


def _invitation(s, person_id: int, path_id: int, on: dt.date, *, sent: bool) -> int:
    from kiosque.sessions import create_session
    from referents.service import structure_by_code

    mds = structure_by_code(s, "MDS-MURET")
    ks = create_session(s, mds_id=mds.id, starts_at=dt.datetime.combine(on + dt.timedelta(days=40), dt.time(9, 30)),
                        now=dt.datetime.combine(on, dt.time(9, 0)))  # planned on the day of the invitation
    inv = Invitation(person_id=person_id, path_id=path_id, session_id=ks.id, invited_on=on, status="pending")
    s.add(inv)
    s.flush()
    s.add(Message(person_id=person_id, invitation_id=inv.id, kind="invitation", channel="letter",
                  status="sent" if sent else "queued", send_on=on))
    s.flush()
    return inv.id


def _open_path(s, person_id):
    return s.scalar(select(CasePath).where(CasePath.person_id == person_id, CasePath.closed_on.is_(None)))


# --- 3. monthly flows are snapshots --------------------------------------------------------------------

def test_monthly_to_monthly_closes_households_gone_and_winds_down(rt, tmp_path):
    a, b, c = (make_single(i, dt.date(2026, 8, 31)) for i in (0, 60, 120))
    write_flux(tmp_path / "m1.xml", [text(a), text(b), text(c)], dt.date(2026, 8, 31))
    assert service.import_files(rt, [tmp_path / "m1.xml"])[0]["status"] == "imported"
    with rt.session() as s, s.begin():
        pb, pc = only_person(s, b), only_person(s, c)
        path_b = _open_path(s, pb.id)
        proposal = _pending_proposal(s, pb.id, path_b.id, dt.date(2026, 9, 2))
        inv = _invitation(s, pb.id, path_b.id, dt.date(2026, 9, 2), sent=True)
        inv_c = _invitation(s, pc.id, _open_path(s, pc.id).id, dt.date(2026, 9, 2), sent=False)
    # a daily flow never closes by absence (only `a` in it)
    write_flux(tmp_path / "d1.xml", [text(a)], dt.date(2026, 9, 10), typeflux="I", created=dt.date(2026, 9, 10))
    # next monthly: b and c are gone
    write_flux(tmp_path / "m2.xml", [text(a)], dt.date(2026, 9, 30))
    d1, m2 = service.import_files(rt, [tmp_path / "d1.xml", tmp_path / "m2.xml"])
    assert d1["closed_absent"] == 0 and m2["closed_absent"] == 2 and m2["status"] == "imported"
    with rt.session() as s:
        assert household(s, a).right_state == "2" and household(s, a).last_monthly_batch_id == m2["batch_id"]
        for el in (b, c):
            h = household(s, el)
            assert (h.right_state, h.closure_on) == ("5", dt.date(2026, 9, 30))
            p = only_person(s, el)
            (path,) = s.scalars(select(CasePath).where(CasePath.person_id == p.id)).all()
            assert (path.closed_on, path.close_reason) == (dt.date(2026, 9, 30), "exit:absent_flux_mensuel")
            (ex,) = s.scalars(select(Exit).where(Exit.person_id == p.id)).all()
            assert (ex.reason, ex.source, ex.positive) == ("absent_flux_mensuel", "flow", False)
            change = s.scalar(select(StatusChange).where(StatusChange.household_id == h.id,
                                                         StatusChange.reason == "absent_flux_mensuel"))
            assert (change.old_value, change.new_value, change.effective_on) == ("2", "5", dt.date(2026, 9, 30))
        o = s.get(Orientation, proposal)
        assert (o.status, o.end_reason) == ("ended", "absent_flux_mensuel")
        assert s.get(Invitation, inv).status == "cancelled" and s.get(Invitation, inv_c).status == "cancelled"
        # an invitation already sent: a short notice; one still queued: its message is cancelled
        notice = s.scalar(select(Message).where(Message.invitation_id == inv, Message.kind == "invitation_cancelled"))
        assert notice is not None and notice.status == "queued" and notice.channel == "letter"
        assert s.scalar(select(Message.status).where(Message.invitation_id == inv_c)) == "cancelled"
        assert s.scalar(select(func.count()).select_from(Message)
                        .where(Message.invitation_id == inv_c, Message.kind == "invitation_cancelled")) == 0
    # the same file again changes nothing; a third monthly without b closes nothing more
    assert service.import_files(rt, [tmp_path / "m2.xml"])[0]["status"] == "duplicate"
    write_flux(tmp_path / "m3.xml", [text(a)], dt.date(2026, 10, 31))
    assert service.import_files(rt, [tmp_path / "m3.xml"])[0]["closed_absent"] == 0
    # b comes back within 12 months: it reopens as today (a reopening path, clock = receipt)
    write_flux(tmp_path / "m4.xml", [text(a), text(b)], dt.date(2026, 11, 30))
    (m4,) = service.import_files(rt, [tmp_path / "m4.xml"])
    assert m4["closed_absent"] == 0
    with rt.session() as s:
        p = only_person(s, b)
        paths = s.scalars(select(CasePath).where(CasePath.person_id == p.id).order_by(CasePath.id)).all()
        assert [(x.opening_reason, x.closed_on is None) for x in paths] == [("entry", False), ("reopening", True)]
        assert paths[1].clock_start == dt.date(2026, 12, 1) == p.legal_clock_start
        assert household(s, b).right_state == "2"


def test_an_older_monthly_imported_late_closes_nothing(rt, tmp_path):
    a, b = make_single(0, dt.date(2026, 8, 31)), make_single(60, dt.date(2026, 8, 31))
    write_flux(tmp_path / "new.xml", [text(a), text(b)], dt.date(2026, 9, 30))
    write_flux(tmp_path / "old.xml", [text(a)], dt.date(2026, 8, 31))
    service.import_file(rt, tmp_path / "new.xml")
    assert service.import_file(rt, tmp_path / "old.xml")["closed_absent"] == 0
    with rt.session() as s:
        assert household(s, b).right_state == "2"


# --- 4. SDD 1→0→1, 5. the legal clock from receipt ----------------------------------------------------

def test_sdd_one_zero_one(rt, tmp_path):
    el = make_single(0, dt.date(2026, 8, 31))
    # DDSOUDRODEV years old: a fact, not the clock
    calc = person_el(el, 0).find("MontantCalculDroitRSAPersonne")
    etree.SubElement(calc, "DDSOUDRODEV").text = "2019-04-01"
    write_flux(tmp_path / "m1.xml", [text(el)], dt.date(2026, 8, 31), created=dt.date(2026, 9, 4))
    service.import_files(rt, [tmp_path / "m1.xml"])
    with rt.session() as s, s.begin():
        p = only_person(s, el)
        assert p.legal_clock_start == dt.date(2026, 9, 4) and p.sdd_start_on == dt.date(2019, 4, 1)
        path = _open_path(s, p.id)
        assert path.clock_start == dt.date(2026, 9, 4)
        proposal = _pending_proposal(s, p.id, path.id, dt.date(2026, 9, 8))
        inv = _invitation(s, p.id, path.id, dt.date(2026, 9, 8), sent=True)
    set_path(person_el(el, 0), "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA", "0")
    write_flux(tmp_path / "d1.xml", [text(el)], dt.date(2026, 9, 15), typeflux="I", created=dt.date(2026, 9, 15))
    (d1,) = service.import_files(rt, [tmp_path / "d1.xml"])
    assert d1["sdd_ended"] == 1
    with rt.session() as s:
        p = only_person(s, el)
        assert p.sdd is False and _open_path(s, p.id) is None
        (path,) = s.scalars(select(CasePath).where(CasePath.person_id == p.id)).all()
        assert (path.closed_on, path.close_reason) == (dt.date(2026, 9, 15), "sdd_ended")
        assert s.scalar(select(func.count()).select_from(Exit)) == 0  # the right goes on: no exit
        assert s.get(Orientation, proposal).status == "ended"
        assert s.get(Invitation, inv).status == "cancelled"
        assert s.scalar(select(Message.kind).where(Message.invitation_id == inv, Message.status == "queued")) == \
            "invitation_cancelled"
        kinds = {e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.person_id == p.id))}
        assert {"orientation.cancelled", "kiosque.invitation_cancelled", "flow.sdd_changed"} <= kinds
    # 0→1 later: re-enters with the clock of that flow's receipt (not DDSOUDRODEV)
    set_path(person_el(el, 0), "MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA", "1")
    write_flux(tmp_path / "m2.xml", [text(el)], dt.date(2026, 10, 31), created=dt.date(2026, 11, 3))
    service.import_files(rt, [tmp_path / "m2.xml"])
    with rt.session() as s:
        p = only_person(s, el)
        paths = s.scalars(select(CasePath).where(CasePath.person_id == p.id).order_by(CasePath.id)).all()
        assert [(x.clock_start, x.closed_on) for x in paths] == [
            (dt.date(2026, 9, 4), dt.date(2026, 9, 15)), (dt.date(2026, 11, 3), None)]
        assert p.legal_clock_start == dt.date(2026, 11, 3) and p.sdd_start_on == dt.date(2019, 4, 1)
        # the request date stays the DREES clock
        assert paths[1].request_date == household(s, el).dtdemrsa


def test_cancellation_notice_is_sent_through_the_outbox(rt, tmp_path):
    import kiosque.messaging  # noqa: F401  (registers kiosque's templates)
    from orientation.messaging.templates import render

    subject, body = render("invitation_cancelled", "email", {
        "first_name": "Léa", "last_name": "MARTIN", "mds_name": "MDS Muret", "session_date": "10/12/2026",
        "session_time": "09h30", "phone": "05 00 00 00 00"})
    assert "annulée" in subject and "Vous n'avez pas à vous y rendre" in body
    assert "annulée" in render("invitation_cancelled", "sms", {"session_date": "x", "session_time": "y",
                                                              "phone": "z"})[1]


# --- 7. encoding ------------------------------------------------------------------------------------------

def _flux_bytes(body: str, *, declared: str, encoding: str) -> bytes:
    head = _header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31))
    head = head.replace('encoding="windows-1252"', f'encoding="{declared}"')
    return (head + body + _footer(1)).encode(encoding)


@pytest.mark.parametrize("declared,encoding,reason", [
    ("windows-1252", "utf-8", "son contenu est en UTF-8"),
    ("UTF-8", "cp1252", "octets invalides en UTF-8"),
])
def test_mis_encoded_files_are_refused_and_change_nothing(rt, tmp_path, declared, encoding, reason):
    el = make_single(0, dt.date(2026, 8, 31))
    person_el(el, 0).find("Identification/PRENOM").text = "HERVÉ"
    person_el(el, 0).find("Identification/NOM").text = "LEFÈVRE"
    before = snapshot(rt)
    path = tmp_path / "RSABEM_mis.xml"
    data = _flux_bytes(text(el), declared=declared, encoding=encoding)
    if encoding == "utf-8":  # every byte is defined in windows-1252: only the check refuses it
        data.decode("cp1252")
    path.write_bytes(data)
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "failed" and reason in r["error"] and "rien n'est importé" in r["error"]
    assert snapshot(rt)["households"] == before["households"] and snapshot(rt)["persons"] == before["persons"]
    # correctly declared, the same names import as written
    path.write_bytes(_flux_bytes(text(el), declared="UTF-8" if encoding == "utf-8" else "windows-1252",
                                 encoding=encoding))
    (ok,) = service.import_files(rt, [path])
    assert ok["status"] == "imported", ok["error"]
    with rt.session() as s:
        assert (only_person(s, el).first_name, only_person(s, el).last_name) == ("HERVÉ", "LEFÈVRE")


def test_undeclared_or_exotic_encodings(tmp_path):
    el = make_single(0, dt.date(2026, 8, 31))
    p = tmp_path / "f.xml"
    p.write_bytes(_flux_bytes(text(el), declared="ebcdic-cp-us", encoding="cp1252"))
    with pytest.raises(FluxError, match="encodage déclaré 'ebcdic-cp-us' non accepté"):
        list(FluxReader(p))


# --- 6. VRSD0301 ----------------------------------------------------------------------------------------

def test_vrsd0301_generated_sample_imports_like_vrsb0801(rt, tmp_path):
    vrsb = tmp_path / "RSABEM_vrsb.xml"
    generate_monthly(vrsb, households=40, seed=7, month="2026-08")
    vrsd = tmp_path / "RSABEM_vrsd.xml"
    convert_to_vrsd(vrsb, vrsd)
    raw = vrsd.read_bytes()
    assert b"<VERSIONFLUX>VRSD0301</VERSIONFLUX>" in raw and b"<FonctionPersonneRSA>" in raw
    assert b"<Prestations>" not in raw and b"<CalculDroitRSAPersonne>" in raw and b"<ROLEPERS>BEN<" in raw
    assert read_header(vrsd).schema == "VRSD0301"
    old = {rec.key: rec.data for rec in FluxReader(vrsb)}
    new = {rec.key: rec.data for rec in FluxReader(vrsd)}
    assert old.keys() == new.keys()
    for key, d in old.items():
        n = new[key]
        assert [(p["role"], p["sdd"], p["nir"], p["last_name"]) for p in d["persons"]] == \
            [(p["role"], p["sdd"], p["nir"], p["last_name"]) for p in n["persons"]]
        assert (d["right_state"], d["commune_insee"], d["dtdemrsa"]) == (n["right_state"], n["commune_insee"],
                                                                         n["dtdemrsa"])
        assert [a["code"] for p in d["persons"] for a in p["activities"]] == \
            [a["code"] for p in n["persons"] for a in p["activities"]]
    (r,) = service.import_files(rt, [vrsd])
    assert r["status"] == "imported" and r["created"] == 40 and r["rejected"] == 0
    with rt.session() as s:
        roles = set(s.scalars(select(Person.role)))
        assert {"DEM"} <= roles and "BEN" not in roles
        assert s.scalar(select(func.count()).select_from(CasePath)) == sum(
            1 for d in new.values() for p in d["persons"]
            if p["sdd"] and p["role"] in ("DEM", "CJT") and d["right_state"] in "234")
        batch = s.get(ImportBatch, r["batch_id"])
        assert batch.header["VERSIONFLUX"] == "VRSD0301"


def _vrsd_file(tmp_path, el, name="v.xml"):
    to_vrsd_household(el, dt.date(2026, 8, 31))
    path = tmp_path / name
    with open(path, "w", encoding="cp1252") as f:
        f.write(vrsd_header(_header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31))))
        f.write(text(el) + "\n" + _footer(1))
    return path


@pytest.mark.parametrize("remove,block", [("FonctionPersonneRSA", "FonctionPersonneRSA"),
                                          ("CalculDroitRSAPersonne", "CalculDroitRSAPersonne")])
def test_vrsd0301_without_a_needed_block_is_refused_naming_it(rt, tmp_path, remove, block):
    el = make_single(0, dt.date(2026, 8, 31))
    path = _vrsd_file(tmp_path, el)
    tree = etree.parse(str(path))
    for node in tree.iter(remove):
        node.getparent().remove(node)
    tree.write(str(path), encoding="windows-1252", xml_declaration=True)
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "failed" and block in r["error"] and "VRSD0301" in r["error"]
    assert snapshot(rt)["households"] == []


def test_unknown_flow_version_and_mixed_layout_are_refused(rt, tmp_path):
    el = make_single(0, dt.date(2026, 8, 31))
    path = tmp_path / "x.xml"
    write_flux(path, [text(el)], dt.date(2026, 8, 31))
    path.write_bytes(path.read_bytes().replace(b"</IdentificationFlux>",
                                               b"<VERSIONFLUX>VRSD0401</VERSIONFLUX></IdentificationFlux>"))
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "failed" and "version de flux inconnue 'VRSD0401'" in r["error"]
    # VRSD0301 persons in a file without VERSIONFLUX: never imported with empty roles
    el2 = make_single(0, dt.date(2026, 8, 31))
    to_vrsd_household(el2)
    write_flux(tmp_path / "y.xml", [text(el2)], dt.date(2026, 8, 31))
    (r2,) = service.import_files(rt, [tmp_path / "y.xml"])
    assert r2["status"] == "failed" and "FonctionPersonneRSA" in r2["error"]
    assert snapshot(rt)["households"] == []


def test_vrsd0301_closure_motives_map_to_exits(rt, tmp_path):
    el = make_single(3, dt.date(2026, 8, 31))
    p1 = _vrsd_file(tmp_path, el, "v1.xml")
    service.import_files(rt, [p1])
    el = make_single(3, dt.date(2026, 8, 31))
    close_household(el, "ECH", dt.date(2026, 9, 10))
    to_vrsd_household(el, dt.date(2026, 9, 30))
    p2 = tmp_path / "v2.xml"
    with open(p2, "w", encoding="cp1252") as f:
        f.write(vrsd_header(_header(False, "M", dt.date(2026, 10, 5), "01:00:00.0000", dt.date(2026, 9, 30))))
        f.write(text(el) + "\n" + _footer(1))
    (r,) = service.import_files(rt, [p2])
    assert r["status"] == "imported"
    with rt.session() as s:
        (ex,) = s.scalars(select(Exit)).all()
        assert ex.reason == "end_of_right_resources" and household(s, el).closure_reason == "CMD"


# --- issue 22, items 1 and 2: the reader's limits --------------------------------------------------------

def test_doctype_after_a_large_comment_is_refused(rt, tmp_path):
    el = make_single(0, dt.date(2026, 8, 31))
    head = _header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31))
    decl, rest = head.split("\n", 1)
    evil = decl + "\n<!--" + "x" * 70_000 + '-->\n<!DOCTYPE Racine [<!ENTITY a "aaaa">]>\n' + rest
    path = tmp_path / "RSABEM_doctype.xml"
    path.write_bytes((evil + text(el) + _footer(1)).encode("cp1252"))
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "failed" and "DOCTYPE" in r["error"] and "où qu'elle soit" in r["error"]
    # the same file gzipped, and the header reader used to order files
    gz = tmp_path / "RSABEM_doctype.xml.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(FluxError, match="DOCTYPE"):
        list(FluxReader(gz))
    with pytest.raises(FluxError, match="DOCTYPE"):
        read_header(gz)
    assert snapshot(rt)["households"] == []


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_inside_gzip_is_refused(tmp_path, codec):
    el = make_single(0, dt.date(2026, 8, 31))
    xml = (_header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31))
           .replace("windows-1252", "UTF-16") + text(el) + _footer(1))
    gz = tmp_path / "RSABEM_16.xml.gz"
    gz.write_bytes(gzip.compress(xml.encode(codec)))  # no BOM
    with pytest.raises(FluxError, match="UTF-16"):
        list(FluxReader(gz))


def test_excessive_depth_is_refused_in_french(tmp_path):
    head = _header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31))
    path = tmp_path / "deep.xml"
    path.write_bytes((head + "<x>" * 300 + "</x>" * 300 + _footer(0)).encode("cp1252"))
    with pytest.raises(FluxError, match="profondeur d'imbrication XML excessive"):
        list(FluxReader(path))


_BOMB = r"""
import datetime as dt, gzip, json, resource, sys
limit = int(sys.argv[2]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from imports.flux import FluxError, FluxReader
from imports.flux_worker import peak_rss_mb
try:
    for _ in FluxReader(sys.argv[1]):
        pass
    out = {"status": "read"}
except FluxError as exc:
    out = {"status": "refused", "reason": str(exc)}
out["peak_mb"] = peak_rss_mb()
print(json.dumps(out))
"""


def test_gzip_bomb_of_empty_elements_is_refused_with_flat_memory(rt, tmp_path):
    """82 KB of gzip holding 20M empty elements: refused cleanly, in French, under a memory limit
    (it reached 2.6 GB before the cap), and the import records a failed batch."""
    head = _header(False, "M", dt.date(2026, 9, 5), "01:00:00.0000", dt.date(2026, 8, 31)).encode("cp1252")
    gz = tmp_path / "RSABEM_bomb.xml.gz"
    with gzip.open(gz, "wb", compresslevel=9) as f:
        f.write(head)
        block = b"<x/>" * 1_000_000
        for _ in range(20):
            f.write(block)
        f.write(_footer(0).encode())
    assert gz.stat().st_size < 200_000
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _BOMB, str(gz), "600"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "refused" and "balises XML sans fin de foyer" in out["reason"]
    assert out["peak_mb"] is None or out["peak_mb"] < 250, out
    (r,) = service.import_files(rt, [gz])
    assert r["status"] == "failed" and "balises XML" in r["error"]
    with rt.session() as s:
        assert s.get(ImportBatch, r["batch_id"]).status == "failed"


# --- 1. taking over the stock ---------------------------------------------------------------------------

STOCK_HEADERS = ["nir", "matricule", "role", "nom", "prenom", "date_naissance", "organisme", "structure",
                 "referent", "date_orientation", "type_contrat", "date_contrat"]


def _flow_persons(rt, tmp_path, n=8):
    """A first monthly flow with n single SDD persons; returns [(element, person dict)]."""
    els = [make_single(i * 40, dt.date(2026, 8, 31)) for i in range(n)]
    write_flux(tmp_path / "RSABEM_first.xml", [text(e) for e in els], dt.date(2026, 8, 31),
               created=dt.date(2026, 9, 5))
    assert service.import_files(rt, [tmp_path / "RSABEM_first.xml"])[0]["status"] == "imported"
    out = []
    for e in els:
        ident = person_el(e, 0).find("Identification")
        out.append((e, {"nir": ident.findtext("NIR"), "matricule": e.findtext("IdentificationRSA/Organisme/MATRICULE"),
                        "nom": ident.findtext("NOM"), "prenom": ident.findtext("PRENOM"),
                        "dtnai": dt.date.fromisoformat(ident.findtext("DTNAI"))}))
    return out


def _write_stock(path: Path, rows: list[list]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(";".join(STOCK_HEADERS) + "\n")
        for r in rows:
            f.write(";".join("" if v is None else str(v) for v in r) + "\n")
    return path


def _stock_rows(people):
    (e0, p0), (e1, p1), (e2, p2), (e3, p3), (e4, p4), (e5, p5), (e6, p6), (e7, p7) = people
    fr = lambda d: d.strftime("%d/%m/%Y")  # noqa: E731
    return [
        # matched by NIR (13 characters), ActiPro with its structure and an old CER
        [p0["nir"], "", "", "", "", "", "actipro", "ACTIPRO-TLS-EST", "", "15/03/2021", "CER", "02/04/2021"],
        # matched by matricule + role; France Travail with a PPAE; ISO dates
        ["", p1["matricule"], "DEM", "", "", "", "france_travail", "", "", "2024-06-01", "PPAE", "2024-06-20"],
        # matched by name + birth date; MDS with a contrat d'engagement (not an old contract)
        ["", "", "", p2["nom"].title(), p2["prenom"].title(), fr(p2["dtnai"]), "mds", "MDS-MURET", "",
         "10/02/2025", "CE", "01/03/2025"],
        # organismes the product does not have yet: kept on the decision
        [p3["nir"] + "00", "", "", "", "", "", "ccas", "", "Mme Dupont", "05/05/2023", "", ""],
        [p4["nir"], "", "", "", "", "", "mission_locale", "", "", "06/06/2023", "", ""],
        [p5["nir"], "", "", "", "", "", "cap_emploi", "", "", "07/07/2023", "", ""],
        # rejects: unknown person, unknown organisme, impossible date, future date, contract without date,
        # unknown structure, the same person twice
        ["1850575123456", "", "", "", "", "", "mds", "", "", "01/01/2024", "", ""],
        [p6["nir"], "", "", "", "", "", "departement", "", "", "01/01/2024", "", ""],
        [p6["nir"], "", "", "", "", "", "mds", "", "", "31/02/2024", "", ""],
        [p6["nir"], "", "", "", "", "", "mds", "", "", "01/01/2030", "", ""],
        [p6["nir"], "", "", "", "", "", "mds", "", "", "01/01/2024", "CER", ""],
        [p7["nir"], "", "", "", "", "", "actipro", "NOPE-42", "", "01/01/2024", "", ""],
        [p0["nir"], "", "", "", "", "", "mds", "", "", "01/01/2022", "", ""],
        [],  # blank line: skipped
    ]


def test_stock_file_with_every_kind_of_row(rt, tmp_path):
    people = _flow_persons(rt, tmp_path)
    path = _write_stock(tmp_path / "reprise.csv", _stock_rows(people))
    before = snapshot(rt)
    dry = service_stock(rt, path, dry_run=True)
    assert dry["status"] == "dry_run" and dry["counts"]["taken_over"] == 6 and dry["rejected"] == 7
    assert snapshot(rt) == before
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(Orientation)) == 0
    report = service_stock(rt, path)
    assert report["status"] == "imported", report
    c = report["counts"]
    assert (c["rows"], c["taken_over"], c["rejected"]) == (13, 6, 7)
    assert (c["matched_nir"], c["matched_household_role"], c["matched_names"]) == (4, 1, 1)
    assert (c["contracts"], c["legacy_contracts"]) == (3, 2)
    assert c["organisme_ccas"] == c["organisme_mission_locale"] == c["organisme_cap_emploi"] == 1
    reasons = sorted(r["reason"] for r in report["rejects"])
    assert any("personne introuvable" in r for r in reasons)
    assert any("organisme inconnu « departement »" in r for r in reasons)
    assert any("date impossible" in r for r in reasons)
    assert any("date future" in r for r in reasons)
    assert any("date du contrat manquante" in r for r in reasons)
    assert any("structure inconnue « NOPE-42 »" in r for r in reasons)
    assert any("déjà reprise à la ligne 2" in r for r in reasons)
    with rt.session() as s:
        orientations = s.scalars(select(Orientation).order_by(Orientation.id)).all()
        assert len(orientations) == 6 and {o.origin for o in orientations} == {"reprise"}
        assert all(o.status == "validated" and not o.algorithmic for o in orientations)
        assert s.scalar(select(func.count()).select_from(Notification)) == 0  # no notice sent again
        o0 = next(o for o in orientations if o.facts["reprise"]["organisme"] == "actipro")
        assert (o0.referent_type, o0.decided_on, o0.validated_on) == ("actipro", dt.date(2021, 3, 15),
                                                                     dt.date(2021, 3, 15))
        assert o0.structure_id is not None
        by_org = {o.facts["reprise"]["organisme"]: o.referent_type for o in orientations}
        assert by_org == {"actipro": "actipro", "france_travail": "pole_emploi", "mds": "mds", "ccas": "mds",
                          "mission_locale": "pole_emploi", "cap_emploi": "pole_emploi"}
        # the path counts as oriented on the historic date (the reports read Path.oriented_*)
        case_path = s.get(CasePath, o0.path_id)
        assert (case_path.oriented_on, case_path.oriented_origin, case_path.oriented_referent_type) == (
            dt.date(2021, 3, 15), "reprise", "actipro")
        assert case_path.clock_start == dt.date(2021, 3, 15) and case_path.opening_reason == "reprise"
        kinds = sorted((k.kind, k.signed_on) for k in s.scalars(select(Contract)))
        assert kinds == [("cer_pro", dt.date(2021, 4, 2)), ("engagement", dt.date(2025, 3, 1)),
                         ("ppae", dt.date(2024, 6, 20))]
        assert s.scalar(select(func.count()).select_from(RejectedRecord)
                        .where(RejectedRecord.batch_id == report["batch_id"])) == 7
    # the same file again: recognised; another export with the same rows: unchanged, nothing added
    assert service_stock(rt, path)["status"] == "duplicate"
    again = _write_stock(tmp_path / "reprise2.csv", _stock_rows(people)[:6])
    r2 = service_stock(rt, again)
    assert r2["status"] == "imported" and r2["counts"].get("taken_over", 0) == 0 and r2["counts"]["unchanged"] == 6
    with rt.session() as s:
        assert s.scalar(select(func.count()).select_from(Orientation)) == 6


def service_stock(rt, path, **kw):
    from imports.stock import import_stock

    return import_stock(rt, path, as_of=dt.date(2026, 11, 20), **kw)


def test_taken_over_persons_are_never_reoriented_and_count_as_oriented(rt, tmp_path):
    from orientation import service as orientation
    from reports.indicators import _open_unoriented

    people = _flow_persons(rt, tmp_path, n=3)
    rows = [[p["nir"], "", "", "", "", "", "mds", "MDS-MURET", "", "01/10/2022", "", ""] for _e, p in people[:2]]
    assert service_stock(rt, _write_stock(tmp_path / "r.csv", rows))["counts"]["taken_over"] == 2
    as_of = dt.date(2026, 11, 20)
    with rt.session() as s:
        # the backlog (the reports' one definition) holds only the person not taken over
        backlog = s.scalars(select(CasePath.person_id).where(_open_unoriented(as_of))).all()
        assert backlog == [only_person(s, people[2][0]).id]
    with rt.session() as s, s.begin():
        result = orientation.run(s, as_of)
    assert result["considered"] == 1  # `rsa orient run` never re-orients a taken-over person
    with rt.session() as s:
        taken = [only_person(s, e).id for e, _p in people[:2]]
        assert s.scalar(select(func.count()).select_from(Orientation)
                        .where(Orientation.person_id.in_(taken))) == 2
        assert s.scalar(select(func.count()).select_from(Notification)
                        .join(Orientation, Orientation.id == Notification.orientation_id)
                        .where(Orientation.person_id.in_(taken))) == 0
        assert all(_open_path(s, pid).oriented_on == dt.date(2022, 10, 1) for pid in taken)


def test_stock_reject_is_replayed_once_the_flow_brings_the_person(rt, tmp_path):
    from imports.stock import replay

    people = _flow_persons(rt, tmp_path, n=1)
    late = make_single(400, dt.date(2026, 9, 30))
    ident = person_el(late, 0).find("Identification")
    rows = [[people[0][1]["nir"], "", "", "", "", "", "ati", "", "", "01/02/2024", "", ""],
            [ident.findtext("NIR"), "", "", "", "", "", "ati", "", "", "02/02/2024", "", ""]]
    report = service_stock(rt, _write_stock(tmp_path / "r.csv", rows))
    assert report["counts"]["taken_over"] == 1 and report["rejected"] == 1
    with rt.session() as s:
        rej = s.scalar(select(RejectedRecord).where(RejectedRecord.batch_id == report["batch_id"]))
    assert replay(rt, rej.id, dt.date(2026, 11, 20))["status"] == "pending"
    write_flux(tmp_path / "m2.xml", [text(people[0][0]), text(late)], dt.date(2026, 9, 30))
    service.import_files(rt, [tmp_path / "m2.xml"])
    assert replay(rt, rej.id, dt.date(2026, 11, 20))["status"] == "replayed"
    with rt.session() as s:
        p = only_person(s, late)
        o = s.scalar(select(Orientation).where(Orientation.person_id == p.id))
        assert (o.origin, o.referent_type, o.decided_on) == ("reprise", "ati", dt.date(2024, 2, 2))


def test_stock_cli_json_and_missing_column(rt, tmp_path, base_settings):
    from config.cli import main as cli

    env = {"RSA_DATABASE_URL": base_settings.database_url, "RSA_SECRET_KEY": base_settings.secret_key,
           "RSA_NIR_KEY": base_settings.nir_key}

    people = _flow_persons(rt, tmp_path, n=1)
    path = _write_stock(tmp_path / "r.csv", [[people[0][1]["nir"], "", "", "", "", "", "mds", "", "",
                                              "01/02/2024", "", ""]])
    res = CliRunner().invoke(cli, ["import", "stock", str(path), "--dry-run", "--json", "--as-of", "2026-11-20"],
                            env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["status"] == "dry_run" and data["counts"]["taken_over"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("nir;nom\n1;x\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["import", "stock", str(bad), "--json"], env=env)
    assert res.exit_code == 1 and "colonne(s) obligatoire(s) absente(s)" in json.loads(res.output)["error"]


# --- 2. old contracts -------------------------------------------------------------------------------------

def test_old_contracts_working_list_and_indicator(rt, tmp_path):
    from reports.old_contracts import indicator, working_list

    people = _flow_persons(rt, tmp_path)
    service_stock(rt, _write_stock(tmp_path / "reprise.csv", _stock_rows(people)))
    with rt.session() as s:
        ind = indicator(s, dt.date(2026, 11, 20))
        assert (ind["legacy_persons"], ind["replaced"], ind["pending"]) == (2, 0, 2)
        assert ind["deadline"] == "2027-01-01" and ind["days_left"] == 42
        listed = working_list(s, dt.date(2026, 11, 20))
        assert [x["contract"] for x in listed] == ["cer_pro", "ppae"]
        # one of them signs a contrat d'engagement: replaced
        pid = listed[0]["person_id"]
        s.add(Contract(person_id=pid, kind="engagement", signed_on=dt.date(2026, 11, 2), status="signed"))
        s.commit()
        ind = indicator(s, dt.date(2026, 11, 20))
        assert (ind["replaced"], ind["pending"], ind["share_replaced"]) == (1, 1, 0.5)
        assert [x["person_id"] for x in working_list(s, dt.date(2026, 11, 20))] != [pid]
        # before the engagement was signed, it was still pending
        assert indicator(s, dt.date(2026, 11, 1))["pending"] == 2
        assert indicator(s, dt.date(2027, 1, 1))["overdue"] == 1


def test_generate_flux_cli_writes_a_vrsd0301_sample(rt, tmp_path, base_settings):
    from config.cli import main as cli

    env = {"RSA_DATABASE_URL": base_settings.database_url, "RSA_SECRET_KEY": base_settings.secret_key,
           "RSA_NIR_KEY": base_settings.nir_key}
    out = tmp_path / "RSABEM_vrsd.xml"
    res = CliRunner().invoke(cli, ["import", "generate-flux", "--households", "12", "--seed", "5", "--month",
                                   "2026-09", "--vrsd0301", str(out), "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["version"] == "VRSD0301" and not list(tmp_path.glob("*.tmp"))
    assert read_header(out).schema == "VRSD0301"
    res = CliRunner().invoke(cli, ["import", "flux", str(out), "--json"], env=env)
    assert res.exit_code == 0, res.output
    (f,) = json.loads(res.output)["files"]
    assert (f["status"], f["created"], f["closed_absent"], f["sdd_ended"]) == ("imported", 12, 0, 0)


def test_stock_xlsx_with_date_cells_and_a_title_line(rt, tmp_path):
    from openpyxl import Workbook

    people = _flow_persons(rt, tmp_path, n=2)
    wb = Workbook()
    ws = wb.active
    ws.append(["Export WebRSA du 01/12/2026"])  # a title above the header, as exports have
    ws.append(["NIR", "Matricule", "Rôle", "Nom", "Prénom", "Date de naissance", "Organisme", "Structure",
               "Référent", "Date d'orientation", "Type de contrat", "Date du contrat"])
    ws.append([people[0][1]["nir"], None, None, None, None, None, "ActiPro", "ACTIPRO-TLS-EST", None,
               dt.datetime(2022, 5, 3), "cer", dt.datetime(2022, 6, 1)])
    ws.append([None, people[1][1]["matricule"], "CJT", None, None, None, "mds", None, None, dt.date(2023, 1, 2),
               None, None])
    path = tmp_path / "reprise.xlsx"
    wb.save(path)
    report = service_stock(rt, path)
    assert report["status"] == "imported", report
    assert report["counts"]["taken_over"] == 1 and report["rejected"] == 1
    assert "personne introuvable" in report["rejects"][0]["reason"] and report["rejects"][0]["row"] == 4
    with rt.session() as s:
        o = s.scalar(select(Orientation))
        assert (o.referent_type, o.decided_on, o.facts["reprise"]["contrat"]) == ("actipro", dt.date(2022, 5, 3), "CER")
