"""The reading process's output is pinned (issue 21, item 1: a faster reader, the same data).

What the reading process sends the importer (`imports.flux_worker._child`: records with their data,
keys, digests, errors, compressed fragments and NIR hashes/ciphertexts; header, totals) is reduced to a
canonical digest for the public samples, generated CAF/MSA/VRSD0301 flows and a set of deliberately
broken households (missing or duplicated blocks, impossible dates, bad codes, moved elements). The
expected digests were computed with the reader as it was before its speed-up (commit d214f8a), so
any change in what is extracted, refused or with which French reason fails here. Ciphertexts are
random: they are decrypted and compared as the NIR they hold (and must not be the clear NIR).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import pickle
import random
from pathlib import Path

import pytest
from lxml import etree

from cases.nir import NirVault
from imports import flux, flux_worker
from imports.generator import convert_to_vrsd, generate_monthly
from imports.known import KnownHouseholds

DATA = Path(__file__).resolve().parent / "data"
SECRET = "frames-secret"


def _plain(value):
    """JSON-able, exact: dates tagged, bytes as their SHA-256."""
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "tolist"):  # array.array of skipped households
        return value.tolist()
    return value


def _record(rec, vault: NirVault) -> dict:
    d = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
    raw_gz, fragment = d.pop("raw_gz"), d.pop("fragment")
    if raw_gz:
        assert gzip.decompress(raw_gz).startswith(b"<InfosFoyerRSA")
    d["xml"] = flux_worker.fragment_of(rec) if raw_gz or fragment else b""
    data = copy.deepcopy(d["data"])
    for p in (data or {}).get("persons", ()):
        token = p.pop("nir_encrypted", None)
        if token is not None:
            assert p["nir13"] and p["nir13"].encode() not in token  # encrypted, not in clear
            assert vault.decrypt(token) == p["nir13"]
            p["nir_encrypted"] = "decrypts to nir13"
    d["data"] = data
    return _plain(d)


def frames_digest(path: Path) -> tuple[str, int]:
    """Digest of everything the reading process sends for this file, and how many records it sent."""
    out = io.BytesIO()
    flux_worker._child(out, str(path), KnownHouseholds.empty(), SECRET)
    vault, blob, pos, items, n = NirVault(SECRET), out.getvalue(), 0, [], 0
    while pos < len(blob):
        _more, size = flux_worker._FRAME.unpack_from(blob, pos)
        pos += flux_worker._FRAME.size
        msg = pickle.loads(blob[pos:pos + size])
        pos += size
        if msg[0] == "records":
            _, records, skipped, header, bytes_read = msg
            n += len(records)
            items.append(["records", [_record(r, vault) for r in records], _plain(list(skipped)), _plain(header),
                          bytes_read])
        elif msg[0] == "end":
            items.append(["end", _plain(msg[1]), _plain(msg[2]), msg[4]])  # (not msg[3]: the peak RSS)
        else:
            items.append(list(msg))
    return hashlib.sha256(json.dumps(items, sort_keys=True, ensure_ascii=True).encode()).hexdigest(), n


# Values a broken household may carry (impossible dates, codes out of the schema, empty, spaces).
_VALUES = ["", " ", "2026-02-30", "2026-02-28", " 2026-01-05 ", "2026-01-05Z", "2026-01-05+01:00", "0000-00-00",
           "1e308", "nan", "-1", "ZZZ", "DEM", "RSA", "rsa", "ENF", "BEN", "1", "0", "true", "5", "7", "ABS", "x" * 50,
           "9" * 16, " 31000 ", "2A", "CAF", "MSA", "msa", "XYZ", "1051131100000", "123", None]
_TAGS = ["DTODRSA", "DDSOUDRODEV", "DFSOUDRODEV", "Anomalie", "FonctionPersonneRSA", "DossierPoleEmploi", "IDASSEDIC",
         "NATPF", "RSASocle", "FinDroit", "SuspensionDroit", "OrganismeCedant", "OrganismePrenant", "Prestations",
         "ROLEPERS", "NATPREST", "{urn:x}Personne", "EtatDossierRSA", "ETATDOSRSA", "Adresse", "AdresseDetailleeFrance"]


def _mutate(root, rng: random.Random) -> None:
    """One to four edits: a leaf's value, an element removed, duplicated (with a new value), moved, renamed,
    or an element added where the extraction looks (first/last occurrence, nested paths, descendants)."""
    for _ in range(rng.randint(1, 4)):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        e, k = rng.choice(elements), rng.random()
        parent = e.getparent()
        if k < 0.35:
            if len(e) == 0:
                e.text = rng.choice(_VALUES)
        elif k < 0.5 and parent is not None:
            parent.remove(e)
        elif k < 0.65 and parent is not None:
            c = copy.deepcopy(e)
            leaves = [x for x in c.iter() if len(x) == 0]
            rng.choice(leaves).text = rng.choice(_VALUES)
            parent.insert(rng.randint(0, len(parent)), c)
        elif k < 0.8:
            sub = etree.SubElement(e, rng.choice(_TAGS))
            sub.text = rng.choice(_VALUES)
            if rng.random() < 0.5:
                etree.SubElement(sub, rng.choice(["NATPF", "ROLEPERS", "IDASSEDIC", "TOPRESPDOS", "ETATDOSRSA",
                                                  "NUMCOM"])).text = rng.choice(_VALUES)
        elif k < 0.9 and parent is not None:
            parent.remove(e)
            parent.insert(rng.randint(0, len(parent)), e)
        else:
            e.tag = rng.choice(["Personne", "Identification", "Prestations", "Activite", "DossierCafMsa", e.tag])


def broken_digest(path: Path, seed: int, per_household: int) -> tuple[str, dict]:
    """Digest of the extraction (data, or the reason of the reject, or of the file's refusal) of mutated
    copies of each household of `path`; and how many ended each way."""
    rng, header, out, kinds = random.Random(seed), None, [], {}
    for _ev, el in etree.iterparse(str(path), tag=("IdentificationFlux", "InfosFoyerRSA"), remove_comments=True):
        if el.tag == "IdentificationFlux":
            header = flux.parse_header(el)
            continue
        for _ in range(per_household):
            tree = copy.deepcopy(el)
            _mutate(tree, rng)
            try:
                rec = flux.parse_household(tree, 1, header, digest="-")
                got = ["record", _plain(rec.data), rec.error, _plain(rec.key)]
                kind = "rejected" if rec.error else "ok"
            except flux.FluxError as exc:
                got, kind = ["file refused", str(exc)], "file refused"
            kinds[kind] = kinds.get(kind, 0) + 1
            out.append(got)
    return hashlib.sha256(json.dumps(out, sort_keys=True, ensure_ascii=True).encode()).hexdigest(), kinds


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("frames")
    caf, msa, vrsd = d / "caf.xml", d / "msa.xml", d / "vrsd.xml"
    generate_monthly(caf, households=60, seed=41, month="2026-09")
    generate_monthly(msa, households=40, seed=42, month="2026-09", msa=True)
    convert_to_vrsd(caf, vrsd)
    return {"caf": caf, "msa": msa, "vrsd": vrsd, "RSABEM": DATA / "RSABEM.xml",
            "RSABEM-ouvert": DATA / "RSABEM-ouvert.xml", "RSABEI_invalid": DATA / "RSABEI_invalid.xml"}


# (digest, records sent) computed with the reader of commit d214f8a.
EXPECTED_FRAMES = {
    "RSABEM": ("9986585e7a8972766e89eddad31a35f354fc4ea61c2fd43baf45c3a572f2af5a", 2),
    "RSABEM-ouvert": ("21035103039885de4a1387e01641702fef3108a0119c031b5e250be4d00693b8", 1),
    "RSABEI_invalid": ("11a2ced9950b81f93044dcbb794cf3fbb36db78b0268c7135fa58805e6d599c9", 1),
    "caf": ("e31dd91f0a6f3e81793c14bbf8271b0da18979ed6d9f720d37b368e8325a7c4c", 60),
    "msa": ("64f908872631e189cda75ab597ba6ab1e7a6c3d95bd0f9d5d60758cec414dfb2", 40),
    "vrsd": ("c8b472396f7703456a0c8051c867f0f369eac0d3c9d10d4dbe3be24d25fabfff", 60),
}
# (digest, outcomes) of 12 mutated copies of each household, seed 7.
EXPECTED_BROKEN = {
    "caf": ("c897b4996aaaaf29d54d1846ff7187080819127da921ed05fe2a8486b8525c50", {"ok": 578, "rejected": 142}),
    "msa": ("6a7520d4bdd4f2c2f618a0230691ee4d03a6ba5dd30f1efcd6361f80230745cc", {"ok": 393, "rejected": 87}),
    "vrsd": ("3ba7e6d6f549abb317faa4854d0f98941ca095c7f5526c6bc3601d44487a3f5a",
             {"ok": 582, "rejected": 124, "file refused": 14}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FRAMES))
def test_reading_process_sends_the_same_frames(flows, name):
    assert frames_digest(flows[name]) == EXPECTED_FRAMES[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_BROKEN))
def test_broken_households_get_the_same_data_and_reasons(flows, name):
    assert broken_digest(flows[name], seed=7, per_household=12) == EXPECTED_BROKEN[name]


def test_fragments_compressed_on_either_side_reach_the_importer_the_same(flows):
    """On SQLite the importer's side compresses the fragments (the reading process is the critical path):
    what the importer iterates is the same records, with the same compressed bytes, as on PostgreSQL."""
    vault = NirVault(SECRET)
    seen = []
    for compress_fragments in (True, False):
        reader = flux_worker.WorkerReader(flows["caf"], SECRET, compress_fragments=compress_fragments)
        records = list(reader)
        assert all(r.raw_gz and not r.fragment for r in records if r.error is None)
        seen.append(([_record(r, vault) for r in records], [(r.raw_gz, r.fragment) for r in records],
                     _plain(reader.header), _plain(reader.totals), reader.parsed))
    assert len(seen[0][0]) == 60
    assert seen[0] == seen[1]


@pytest.mark.parametrize("name", ["caf", "msa", "RSABEI_invalid"])
def test_a_thread_reader_yields_what_the_reader_yields(flows, name):
    """ThreadReader (a re-import read by a thread of the importer) yields the reader's own records, in
    order, in batches larger and smaller than one message, and ends with its header, totals and counts."""
    import threading

    direct = flux.FluxReader(flows[name], skipped_runs=True)
    expected = [_plain(r) for r in direct]
    for batch in (7, flux_worker.BATCH):
        threaded = flux_worker.ThreadReader(flux.FluxReader(flows[name], skipped_runs=True))
        old, flux_worker.BATCH = flux_worker.BATCH, batch
        try:
            got = [_plain(r) for r in threaded]
        finally:
            flux_worker.BATCH = old
        assert got == expected
        assert _plain(threaded.header) == _plain(direct.header) and _plain(threaded.totals) == _plain(direct.totals)
        assert threaded.parsed == direct.parsed and threaded.bytes_read == direct.bytes_read
    assert not [t for t in threading.enumerate() if t.name == "rsa-flux-read"]


def test_a_thread_reader_stops_with_its_importer_and_passes_on_its_errors(flows, tmp_path):
    """An importer that stops consuming (its transaction failed) stops the reading thread; a broken file
    is the reader's own FluxError, raised in the importer's thread."""
    import threading
    import time

    threaded = flux_worker.ThreadReader(flux.FluxReader(flows["caf"], skipped_runs=True))
    items = iter(threaded)
    next(items)
    items.close()
    deadline = time.monotonic() + 5
    while [t for t in threading.enumerate() if t.name == "rsa-flux-read"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "rsa-flux-read"]
    cut = tmp_path / "cut.xml"
    data = flows["caf"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(flux.FluxError, match="tronqué"):
        list(flux_worker.ThreadReader(flux.FluxReader(cut, skipped_runs=True)))
