"""The households a re-import skips unparsed come as runs (issue 21 item 2): FluxReader(skipped_runs=True)
yields one SkippedRun per run of them, carrying exactly what a record each carried (known position,
person count, anomaly flag), and the households around them keep their numbers; the known set's key
hash is the same in every process; key_from_bytes's fast path reads what its general path reads."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from lxml import etree

from imports import flux
from imports.flux import FluxReader, SkippedRun, key_from_bytes
from imports.known import DIGEST_BYTES, KnownHouseholds, key_hash, key_hash32
from tests.test_imports_flux import hh, set_path, text, write_flux

D1 = dt.date(2026, 8, 31)
ROOT = Path(__file__).resolve().parent.parent


def _households() -> list[str]:
    frags = []
    for i in range(9):
        el = hh(i, D1, seed=43)
        if i in (1, 6):  # an anomaly block (a direct child, as the CNAF writes it)
            anomaly = etree.SubElement(el, "Anomalie")
            etree.SubElement(anomaly, "LIBANO").text = "adresse incomplète"
        frags.append(text(el))
    return frags


def _known(path: Path) -> KnownHouseholds:
    return KnownHouseholds.build((r.key[0] + r.key[1], r.content_hash, 100 + n, None)
                                 for n, r in enumerate(FluxReader(path)))


def test_skipped_runs_carry_what_one_record_each_carried(tmp_path):
    frags = _households()
    first = write_flux(tmp_path / "RSABEM_1.xml", frags, D1)
    known = _known(first)
    changed = hh(4, D1, seed=43)
    set_path(changed, "Personne/Identification/PRENOM", "ÉLISE")
    again = write_flux(tmp_path / "RSABEM_2.xml", frags[:4] + [text(changed)] + frags[5:], D1, time="03:00:00")

    one_each = FluxReader(again, want_data=known.want_filter())
    recs = list(one_each)
    runs_reader = FluxReader(again, want_data=known.want_filter(), skipped_runs=True)
    items = list(runs_reader)

    skipped = [r for r in recs if r.skipped]
    assert len(skipped) == 8 and [r.index for r in recs if not r.skipped] == [5]
    assert [bool(r.anomaly) for r in skipped] == [False, True, False, False, False, True, False, False]
    assert [type(x).__name__ for x in items] == ["SkippedRun", "HouseholdRecord", "SkippedRun"]
    runs = [x for x in items if isinstance(x, SkippedRun)]
    assert [len(r) for r in runs] == [4, 4]
    assert [p for r in runs for p in r.positions] == [r.known_index for r in skipped] == [0, 1, 2, 3, 5, 6, 7, 8]
    assert [n for r in runs for n in r.persons] == [r.person_count for r in skipped]
    assert [p.count("<Personne>") for p in frags[:4] + frags[5:]] == [r.person_count for r in skipped]
    assert [a for r in runs for a in r.anomalies] == [int(r.anomaly) for r in skipped]
    (parsed,) = [x for x in items if not isinstance(x, SkippedRun)]
    assert parsed.index == 5 and parsed.key == recs[4].key and parsed.data == recs[4].data
    assert runs_reader.records_seen == one_each.records_seen == 9
    assert runs_reader.parsed == one_each.parsed == 1
    assert [known.id_at(i) for i in runs[1].positions] == [105, 106, 107, 108]


def test_long_runs_are_cut_and_every_household_is_in_one(tmp_path, monkeypatch):
    """Long runs are cut (one placeholder per RUN_MAX households): none lost or counted twice."""
    frags = [text(hh(i, D1, seed=44)) for i in range(12)]
    first = write_flux(tmp_path / "RSABEM_1.xml", frags, D1)
    known = _known(first)
    again = write_flux(tmp_path / "RSABEM_2.xml", frags, D1, time="03:00:00")
    monkeypatch.setattr(flux, "_READ_BYTES", 512)  # households span reads
    monkeypatch.setattr(flux, "RUN_MAX", 5)
    reader = FluxReader(again, want_data=known.want_filter(), skipped_runs=True)
    items = list(reader)
    assert all(isinstance(x, SkippedRun) for x in items) and [len(x) for x in items] == [5, 5, 2]
    assert reader.records_seen == 12 and reader.parsed == 0
    assert [p for r in items for p in r.positions] == list(range(12))


def test_skip_filter_position_is_the_known_position_once_then_minus_one():
    digest = bytes(range(32))
    rows = [("CAF1", "aa" * 32, 5, None), ("CAF2", digest.hex(), 6, None)]
    want = _through_a_pipe(rows).want_filter()  # the reading process's side
    assert want.position(("CAF", "2"), digest) == 1
    assert want.position(("CAF", "2"), digest) == -1  # met again in the same file: parsed
    assert want.position(("CAF", "1"), digest) == -1  # known, changed
    assert want.position(("CAF", "1"), bytes.fromhex("aa" * 32)) == -1  # already met (asked once)
    assert want.position(("CAF", "3"), digest) == -1  # new
    assert want(("CAF", "X"), "00" * 32) is True


def test_key_hash_is_the_same_in_another_process():
    """The reading process looks up, in a table built by the importer, keys it hashes itself: a salted
    hash (str's hash, PYTHONHASHSEED) would skip nothing."""
    keys = ["CAF100310000000001", "MSA12", "CAF", "CAF999999999999999"]
    code = f"from imports.known import key_hash; print([key_hash(k) for k in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == str([key_hash(k) for k in keys])
    assert all(0 <= key_hash(k) < 1 << 64 for k in keys)
    # neighbouring matricules spread over the table (the slot is the 32-bit hash modulo its size)
    slots = {key_hash32(f"CAF1003100000{n:05d}") % 28_573 for n in range(20_000)}
    assert len(slots) > 14_000  # ~14,650 expected of random values
    assert all(0 <= key_hash32(k) < 1 << 32 for k in keys)


def test_key_from_bytes_fast_and_general_paths_agree():
    header = flux.FlowHeader("CRI", None, "M", None, D1, None, D1)
    msa = flux.FlowHeader("AGO", None, "M", None, D1, None, D1)
    usual = text(hh(3, D1, seed=43)).encode("cp1252", "xmlcharrefreplace")
    assert flux._KEY_RE.search(usual) is not None
    assert key_from_bytes(usual, header) == key_from_bytes(usual.replace(b"<NUMORG>", b"<NUMORG >"), header)
    assert key_from_bytes(b"<InfosFoyerRSA><FONORG> msa </FONORG><MATRICULE> 56 </MATRICULE>", header) == ("MSA", "56")
    assert key_from_bytes(b"<InfosFoyerRSA><MATRICULE>78</MATRICULE>", msa) == ("MSA", "78")
    assert key_from_bytes(b"<InfosFoyerRSA><MATRICULE></MATRICULE>", header) is None
    assert key_from_bytes(b"<InfosFoyerRSA><FONORG>CAF</FONORG><MATRICULE>\xe9</MATRICULE>", header) is None


def test_fragments_are_gzipped_by_isal_deterministically_and_read_back_by_gzip():
    import gzip

    from imports import flux_worker

    assert flux_worker._deflater().__name__ == "isal.isal_zlib"  # setup.cfg's dependency is the one at work
    xml = text(hh(2, D1, seed=43)).encode("utf-8")
    blob = flux_worker.compress(xml)
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    assert blob == flux_worker.compress(xml) and gzip.decompress(blob) == xml and len(blob) < len(xml) / 2


def test_the_reading_process_pipe_is_widened_on_linux():
    """A message of records (~0.7 MB) fits the pipe: the reading process does not wait for the importer's
    pipe thread between two of its reads (tests/test_imports_reimport.py runs imports through it)."""
    from imports import flux_worker

    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE)
    try:
        size = flux_worker.widen_pipe(proc.stdout)
    finally:
        proc.communicate()
    if sys.platform.startswith("linux"):
        max_size = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert size is not None and size >= min(flux_worker.PIPE_BYTES, max_size) > 64 << 10
    else:
        assert size is None


def test_only_plain_bytes_get_a_raw_digest_a_double_dash_does_not(tmp_path):
    """A household whose bytes hold `--` (or `<!`, `?`, `]]>`) is never given the digest of its raw
    bytes (so never skipped later): such bytes could close a comment opened before them."""
    dashed = hh(1, D1, seed=43)
    set_path(dashed, "Personne/Identification/NOM", "MARTIN--DUPONT")
    path = write_flux(tmp_path / "RSABEM_1.xml", [text(dashed), text(hh(2, D1, seed=43))], D1)
    frags = [line for line in path.read_bytes().split(b"\n") if line.startswith(b"<InfosFoyerRSA>")]
    recs = list(FluxReader(path))
    assert recs[0].error is None and recs[1].error is None
    assert recs[0].content_hash != flux.raw_digest(frags[0], "windows-1252", flux.VRSB)
    assert recs[1].content_hash == flux.raw_digest(frags[1], "windows-1252", flux.VRSB)
    assert not flux._plain(frags[0]) and flux._plain(frags[1])


def _rows(path: Path) -> list:
    return [(r.key[0] + r.key[1], r.content_hash, 100 + n, "31555" if n == 4 else None)
            for n, r in enumerate(FluxReader(path))]


def _through_a_pipe(rows, cut: int | None = None, sent: list | None = None) -> KnownHouseholds:
    """KnownHouseholds.send into a real OS pipe (a thread writes, as the importer's side does, in frames
    of 4 rows), read_lookup reading it; `cut`: the writer stops after that many bytes (a reading
    process's pipe broken); `sent`: gets what the writing side kept."""
    import io
    import threading

    r, w = os.pipe()
    with open(r, "rb") as reader, open(w, "wb") as writer:
        def write():
            if cut is None:
                kept = KnownHouseholds.send(iter(rows), writer, frame=4)
            else:
                buf = io.BytesIO()
                kept = KnownHouseholds.send(iter(rows), buf, frame=4)
                writer.write(buf.getvalue()[:cut])
            if sent is not None:
                sent.append(kept)
            writer.close()

        thread = threading.Thread(target=write)
        thread.start()
        try:
            return KnownHouseholds.read_lookup(reader)
        finally:
            thread.join()


def test_known_households_stream_to_the_reading_process_which_alone_holds_the_lookup(tmp_path):
    """The reading process gets every key and digest in frames as the importer reads them, and its
    lookups answer as a set built whole would; the importer keeps only ids and communes, by the same
    positions."""
    path = write_flux(tmp_path / "RSABEM_1.xml", _households(), D1)
    rows = _rows(path)
    whole = KnownHouseholds.build(iter(rows))
    sent: list = []
    got = _through_a_pipe(rows, sent=sent)
    (kept,) = sent
    assert got.keys == whole.keys and bytes(got.digests) == bytes(whole.digests) and got.slots == whole.slots
    assert len(got) == len(whole) == len(kept) == 9 and len(got.ids) == 0  # ids stay with the importer
    assert len(kept.keys) == 0 and len(kept.digests) == 0 and kept.ids == whole.ids
    assert kept.outside_at == whole.outside_at == {4: "31555"} and kept.outside == whole.outside
    for rec in FluxReader(path):
        key = rec.key[0] + rec.key[1]
        i = whole.index(key)
        assert i >= 0 and got.index(key) == i and got.unchanged(i, rec.content_hash)
        assert kept.id_at(i) == whole.id_at(i)
    assert got.index("inconnu") == -1
    empty = _through_a_pipe([])  # a first import: nothing known
    assert len(empty) == 0 and empty.index("x") == -1


def test_a_known_households_stream_cut_short_is_an_error_not_a_smaller_set(tmp_path):
    import pytest

    path = write_flux(tmp_path / "RSABEM_1.xml", _households(), D1)
    rows = _rows(path)
    key = 4  # bytes of a key's hash
    frame = 4 + 4 * (key + DIGEST_BYTES)  # frames of 4 rows: 4, 4, 1, then the end frame (no rows)
    whole = 2 * frame + (4 + key + DIGEST_BYTES) + 4
    # in a frame's header, in its digests, between two frames, everything but the end frame, 1 byte short
    for cut in (2, 4 + 4 * key + 3, 2 * frame, whole - 4, whole - 1):
        with pytest.raises(EOFError):
            _through_a_pipe(rows, cut=cut)
    assert len(_through_a_pipe(rows, cut=whole)) == 9
