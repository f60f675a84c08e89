"""What a re-import writes (issue 21 item 2): a changed household's row gets only the columns whose
value changed, and a large flow no earlier batch has the size of is hashed while it is imported."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from cases.models import Household
from imports import batches, service
from imports.generator import derive_flux, generate_monthly
from imports.models import ImportBatch
from tests.test_imports_flux import wipe

# the household columns that follow the last record alone (not its history: right_state_on,
# right_opened_on, transferred_from, last_monthly_batch_id)
RECORD_COLUMNS = ("organism", "numorg", "matricule", "departement", "numdemrsa", "dtdemrsa", "right_state",
                  "suspension_reason", "suspension_on", "closure_reason", "closure_on", "family_situation",
                  "children_count", "benefit_nature", "rsa_amount", "no_fixed_address", "commune_insee",
                  "postal_code", "city", "address_line", "mds_id", "territory_id", "transferred_to", "last_flow_on")


def _households(rt) -> dict:
    with rt.session() as s:
        return {(h.organism, h.matricule): tuple(getattr(h, c) for c in RECORD_COLUMNS)
                for h in s.scalars(select(Household))}


def test_a_re_import_leaves_each_household_as_its_new_record_alone_would(rt, tmp_path):
    """Households changed in every way (amounts, states, closures, addresses, members), many in one
    chunk, each updated with its own set of columns: each row as an import of the new file alone."""
    base = tmp_path / "RSABEM_1.xml"
    generate_monthly(base, households=120, seed=31, month="2026-07")
    changed = tmp_path / "RSABEM_2.xml"
    derive_flux([base], changed, seed=31, daily=False, change_rate=0.6)
    (first,) = service.import_files(rt, [base])
    before = _households(rt)
    (second,) = service.import_files(rt, [changed])
    assert first["status"] == second["status"] == "imported" and second["updated"] >= 50
    after = _households(rt)
    wipe(rt)
    (alone,) = service.import_files(rt, [changed])
    fresh = _households(rt)
    assert alone["status"] == "imported"
    assert {k: after[k] for k in fresh} == fresh
    # the new file did change those households, in more than one column (not two equal files compared)
    moved = [k for k in fresh if before.get(k) != fresh[k]]
    assert len(moved) >= 50
    assert len({tuple(i for i, (a, b) in enumerate(zip(before[k], fresh[k], strict=True)) if a != b)
                for k in moved if k in before}) >= 3


def test_a_stored_value_is_the_same_only_when_equal_and_of_the_same_type():
    assert service._same_value(512.3, Decimal("512.30"))
    assert not service._same_value(512.31, Decimal("512.30"))
    assert service._same_value(None, None) and not service._same_value("", None)
    assert service._same_value(dt.date(2026, 7, 1), dt.date(2026, 7, 1))
    assert not service._same_value(1, True) and not service._same_value(True, 1)  # a bool is written again


def test_a_large_flow_of_a_new_size_is_hashed_while_imported(rt, tmp_path, monkeypatch):
    """Its batch ends with the file's SHA-256 as if hashed first: the same file again is recognised; a
    file of an earlier batch's size is hashed first (it may be that file); a broken one fails with
    its real digest."""
    monkeypatch.setattr(service, "HASH_BESIDE_FROM", 0)
    started = []
    monkeypatch.setattr(service, "FileDigest", lambda path: started.append(path) or batches.FileDigest(path))
    m1 = tmp_path / "RSABEM_1.xml"
    generate_monthly(m1, households=20, seed=5, month="2026-07")
    (r,) = service.import_files(rt, [m1])
    assert r["status"] == "imported" and started == [m1]
    with rt.session() as s:
        assert s.get(ImportBatch, r["batch_id"]).sha256 == batches.sha256_file(m1)
    (again,) = service.import_files(rt, [m1])  # its size and header are known now: hashed first, recognised
    assert again["status"] == "duplicate" and again["batch_id"] == r["batch_id"] and started == [m1]
    # the same size with another header (re-sent with a new creation time): a new file, hashed beside
    resent = tmp_path / "RSABEM_1b.xml"
    data = m1.read_bytes()
    time = data[data.index(b"<HEUCREAFLUX>") + 13:data.index(b"</HEUCREAFLUX>")]
    resent.write_bytes(data.replace(b"<HEUCREAFLUX>%s<" % time, b"<HEUCREAFLUX>%s<" % time.replace(b"0", b"1", 1), 1))
    assert resent.stat().st_size == m1.stat().st_size and resent.read_bytes() != data
    (r2,) = service.import_files(rt, [resent])
    assert r2["status"] == "imported" and started == [m1, resent]
    with rt.session() as s:
        assert s.get(ImportBatch, r2["batch_id"]).sha256 == batches.sha256_file(resent)
    cut = tmp_path / "RSABEM_cut.xml"
    cut.write_bytes(m1.read_bytes()[:-200])
    (broken,) = service.import_files(rt, [cut])
    assert broken["status"] == "failed" and started == [m1, resent, cut]
    with rt.session() as s:
        assert s.get(ImportBatch, broken["batch_id"]).sha256 == batches.sha256_file(cut)
        assert not s.scalar(select(ImportBatch).where(ImportBatch.sha256.like("calcul en cours%")))


def test_a_file_may_repeat_when_a_batch_has_its_size_and_header_or_none_recorded(rt):
    head = {"TYPEFLUX": "M", "DTCREAFLUX": "2026-08-05"}
    with rt.session() as s, s.begin():
        s.add(ImportBatch(kind="flux", file_name="a.xml", sha256="a" * 64, size_bytes=1000, header=head,
                          status="imported"))
        s.add(ImportBatch(kind="flux", file_name="c.xml", sha256="c" * 64, size_bytes=2000, header=None,
                          status="failed"))
        s.add(ImportBatch(kind="spreadsheet", file_name="b.xlsx", sha256="b" * 64, size_bytes=None,
                          status="imported"))
    with rt.session() as s:
        assert batches.may_repeat(s, "flux", 1000) and not batches.may_repeat(s, "flux", 1001)
        assert batches.may_repeat(s, "flux", 1000, head)
        assert not batches.may_repeat(s, "flux", 1000, {**head, "DTCREAFLUX": "2026-09-05"})
        assert batches.may_repeat(s, "flux", 2000, head)  # a batch without its header: it may be that file
        assert batches.may_repeat(s, "spreadsheet", 7)  # a batch without its size: any file may be it


def test_a_failed_attempt_never_marks_the_same_file_s_imported_batch_failed(rt, tmp_path):
    """Two imports of one file at once (the inbox job beside a command): the one that commits second
    fails on the SHA-256's uniqueness, and its failure leaves the first one's batch imported."""
    path = tmp_path / "RSABEM_1.xml"
    generate_monthly(path, households=3, seed=5, month="2026-07")
    (r,) = service.import_files(rt, [path])
    failed = batches.fail(rt.sessions, "flux", path, batches.sha256_file(path), "erreur inattendue: IntegrityError")
    assert failed.id == r["batch_id"] and failed.status == "imported"
    with rt.session() as s:
        b = s.get(ImportBatch, r["batch_id"])
        assert (b.status, b.error) == ("imported", None)
