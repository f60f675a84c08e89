"""Re-imports recognise unchanged households from their raw bytes, without building their tree
(issue 21 item 2), and every safety check of the flow reader still holds for the bytes skipped."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io

import pytest
from sqlalchemy import select, update

from cases.models import CaseEvent, Household, Person, StatusChange
from imports import flux, service
from imports.flux import FluxError, FluxReader, parse_fragment
from imports.known import KnownHouseholds
from imports.models import RawRecord, RejectedRecord
from tests.test_imports_flux import WORKER_ENV, count, hh, matricule, set_path, snapshot, text, write_flux

D1 = dt.date(2026, 8, 31)
D2 = dt.date(2026, 9, 30)
MODES = ["in-process", "reading process"]


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    monkeypatch.setenv(WORKER_ENV, "0" if request.param == "reading process" else "-1")
    return request.param


def households(n: int, dtref: dt.date = D1, start: int = 0) -> list[str]:
    return [text(hh(i, dtref, seed=41)) for i in range(start, start + n)]


def same_flow_again(tmp_path, frags, name: str, time: str, dtref=D2, **kw):
    """The same households in a new file (another creation time: not the same file's SHA-256)."""
    return write_flux(tmp_path / name, frags, dtref, time=time, **kw)


def test_unchanged_households_are_not_parsed_changed_and_new_ones_are(rt, tmp_path, mode, monkeypatch):
    frags = households(12)
    (r1,) = service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    assert r1["status"] == "imported" and r1["created"] == 12 and r1["parsed"] == 12
    changed = hh(3, D1, seed=41)
    set_path(changed, "Personne/Identification/PRENOM", "HÉLÈNE")  # windows-1252 accents in a changed fragment
    frags2 = frags[:3] + [text(changed)] + frags[4:] + households(1, start=50)
    calls = []
    real = flux.parse_household
    monkeypatch.setattr(flux, "parse_household", lambda *a, **k: calls.append(1) or real(*a, **k))
    (r2,) = service.import_files(rt, [write_flux(tmp_path / "RSABEM_2.xml", frags2, D2)])
    assert r2["status"] == "imported", r2["error"]
    assert (r2["households"], r2["unchanged"], r2["updated"], r2["created"]) == (13, 11, 1, 1)
    assert r2["parsed"] == 2  # the changed and the new household: the 11 others never had a tree
    if mode == "in-process":
        assert len(calls) == 2
    with rt.session() as s:
        person = s.scalar(select(Person).join(Household).where(Household.matricule == matricule(changed),
                                                              Person.first_name == "HÉLÈNE"))
        assert person is not None
        flows = {h.matricule: h.last_flow_on for h in s.scalars(select(Household))}
        assert set(flows.values()) == {D2}  # unchanged households still carry the latest flow's date
        digests = dict(s.execute(select(Household.matricule, RawRecord.content_hash)
                                 .join(RawRecord, RawRecord.household_id == Household.id)).all())
    assert digests[matricule(changed)] == raw_digest_of(text(changed))


def raw_digest_of(fragment: str) -> str:
    return flux.raw_digest(fragment.encode("cp1252"), "windows-1252", flux.VRSB)


def test_a_household_split_across_read_blocks_and_gzip_give_the_same_records(tmp_path, monkeypatch):
    path = write_flux(tmp_path / "RSABEM_b.xml", households(6), D1)
    ref = [(r.key, r.content_hash, r.data) for r in FluxReader(path)]
    gz = tmp_path / "RSABEM_b.xml.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    monkeypatch.setattr(flux, "_READ_BYTES", 97)  # every household spans many reads
    monkeypatch.setattr(flux, "_FEED_BYTES", 13)
    assert [(r.key, r.content_hash, r.data) for r in FluxReader(path)] == ref
    assert [(r.key, r.content_hash, r.data) for r in FluxReader(gz)] == ref
    known = KnownHouseholds.build((k[0] + k[1], digest, n, None) for n, (k, digest, _) in enumerate(ref))
    reader = FluxReader(gz, want_data=known.want_filter())
    recs = list(reader)
    assert reader.parsed == 0 and [r.skipped for r in recs] == [True] * 6
    assert [r.key for r in recs] == [k for k, _, _ in ref] and [r.index for r in recs] == list(range(1, 7))
    assert sorted(known.id_at(r.known_index) for r in recs) == list(range(6))


def test_gzip_reimport_skips_unchanged_households(rt, tmp_path, mode):
    frags = households(5)
    for name, time, parsed in (("RSABEM_1.xml", "01:00:00", 5), ("RSABEM_2.xml", "02:00:00", 0)):
        plain = write_flux(tmp_path / name, frags, D1, time=time)
        gz = tmp_path / (name + ".gz")
        gz.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
        (r,) = service.import_files(rt, [gz])
        assert r["status"] == "imported" and r["parsed"] == parsed and r["households"] == 5, r


BROKEN = {
    # each: (how the bytes around skipped households are broken, expected words of the reason)
    "doctype between households": (lambda d: _between(d, b'<!DOCTYPE x [<!ENTITY e "x">]>'), "DOCTYPE"),
    "NUL byte between households": (lambda d: _between(d, b"\x00"), "octets nuls"),
    "unclosed comment before a household": (lambda d: _between(d, b"<!-- "), "tronqué"),
    "unclosed element between households": (lambda d: _between(d, b"<Extra>"), "racine"),
    "stray end tag between households": (lambda d: _between(d, b"</Racine>"), "XML"),
    "households nested in another element": (
        lambda d: _between(d, b"<Lot>").replace(b"<TransmissionFlux>", b"</Lot><TransmissionFlux>"), "racine"),
    "truncated after the last household": (lambda d: d[:d.index(b"<TransmissionFlux>")], "tronqué"),
    "no totals": (lambda d: d[:d.index(b"<TransmissionFlux>")] + b"</Racine>\n", "TransmissionFlux"),
    "wrong root": (lambda d: d.replace(b"<Racine", b"<Foyers").replace(b"</Racine>", b"</Foyers>"), "racine"),
    "malformed inside a household otherwise unchanged": (lambda d: d.replace(b"</NOM>", b"</NOX>", 2), "XML"),
    "declared UTF-8, accents in windows-1252": (
        lambda d: d.replace(b'encoding="windows-1252"', b'encoding="utf-8"'), "encodage"),
}


def _between(data: bytes, junk: bytes) -> bytes:
    """junk inserted after the second household (the bytes before and after are skipped households)."""
    i = data.index(b"</InfosFoyerRSA>", data.index(b"</InfosFoyerRSA>") + 1) + len(b"</InfosFoyerRSA>")
    return data[:i] + junk + data[i:]


def test_broken_bytes_around_skipped_households_still_refuse_the_file(rt, tmp_path, mode):
    frags = households(6)
    changed_name = hh(0, D1, seed=41)
    set_path(changed_name, "Personne/Identification/NOM", "ÉLOÏSE")  # accents: the encoding check has work
    frags[0] = text(changed_name)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    good = same_flow_again(tmp_path, frags, "RSABEM_ok.xml", "03:00:00")
    before = snapshot(rt)
    for n, (name, (breaks, reason)) in enumerate(BROKEN.items()):
        path = tmp_path / f"RSABEM_broken{n}.xml"
        path.write_bytes(breaks(good.read_bytes()))
        (r,) = service.import_files(rt, [path])
        assert r["status"] == "failed" and reason.lower() in r["error"].lower(), (name, r["error"])
        assert not r["error"].startswith("erreur inattendue"), name
    after = snapshot(rt)
    assert {k: v for k, v in after.items() if k != "batches"} == {k: v for k, v in before.items() if k != "batches"}
    (r,) = service.import_files(rt, [good])  # the same bytes unbroken: every household skipped
    assert r["status"] == "imported" and r["parsed"] == 0 and r["unchanged"] == 6


def test_error_lines_are_the_files_even_after_skipped_households(tmp_path):
    pretty = [f.replace("><Personne>", ">\n<Personne>") for f in households(4)]  # households over several lines
    first = write_flux(tmp_path / "RSABEM_1.xml", pretty, D1)
    known = KnownHouseholds.build((r.key[0] + r.key[1], r.content_hash, n, None)
                                  for n, r in enumerate(FluxReader(first)))
    data = same_flow_again(tmp_path, pretty, "RSABEM_2.xml", "02:00:00").read_bytes()
    i = data.index(b"<TransmissionFlux>")
    line = data[:i].count(b"\n") + 1
    reader = FluxReader(io.BytesIO(data[:i] + b"<Extra></Wrong>" + data[i:]), want_data=known.want_filter())
    with pytest.raises(FluxError, match=f"ligne {line}:"):
        for _ in reader:
            pass
    assert reader.parsed == 0 and reader.records_seen == 4 and line > 8


def test_a_household_repeated_in_the_file_last_wins_even_when_one_is_skipped(rt, tmp_path, mode):
    v1 = hh(7, D1, seed=41, state="2")
    v2 = set_path(hh(7, D1, seed=41, state="2"), "PrestationRSA/SituationDossierRSA/EtatDossierRSA/ETATDOSRSA", "3")
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", [text(v1)], D1)])
    for n, (order, state) in enumerate((([v2, v1], "2"), ([v1, v2], "3"), ([v1, v1], "2"))):
        path = write_flux(tmp_path / f"RSABEI_{n}.xml", [text(e) for e in order], D2, typeflux="I",
                          time=f"0{n + 4}:00:00")
        (r,) = service.import_files(rt, [path])
        assert r["status"] == "imported" and r["households"] == 2, r
        with rt.session() as s:
            assert s.scalar(select(Household.right_state)) == state, (n, order)


def test_commented_out_household_is_not_counted_nor_skipped(rt, tmp_path, mode):
    frags = households(4)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    path = same_flow_again(tmp_path, frags, "RSABEI_2.xml", "02:00:00", typeflux="I", total=3)
    data = path.read_bytes()
    i = data.index(b"<InfosFoyerRSA>", data.index(b"<InfosFoyerRSA>") + 1)
    j = data.index(b"</InfosFoyerRSA>", i) + len(b"</InfosFoyerRSA>")
    path.write_bytes(data[:i] + b"<!-- " + data[i:j] + b" -->" + data[j:])
    (r,) = service.import_files(rt, [path])
    assert r["status"] == "imported" and r["households"] == 3 and r["unchanged"] == 3
    assert not [w for w in r["warnings"] if "NBTOTDOSRSATRANSM=" in w]


def test_digests_stored_before_raw_digests_are_recognised_then_replaced(rt, tmp_path, mode):
    """Digests stored by earlier versions (SHA-256 of the serialised tree) still mean "unchanged":
    the first re-import parses every household but writes nothing but the new digests."""
    frags = households(8)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    with rt.session() as s, s.begin():
        for hid, gz in s.execute(select(RawRecord.household_id, RawRecord.raw_gz)).all():
            s.execute(update(RawRecord).where(RawRecord.household_id == hid)
                      .values(content_hash=hashlib.sha256(gzip.decompress(gz)).hexdigest()))
    history = (count(rt, StatusChange), count(rt, CaseEvent))
    (r,) = service.import_files(rt, [same_flow_again(tmp_path, frags, "RSABEM_2.xml", "02:00:00")])
    assert (r["status"], r["parsed"], r["unchanged"], r["updated"]) == ("imported", 8, 8, 0), r
    assert (count(rt, StatusChange), count(rt, CaseEvent)) == history
    with rt.session() as s:
        assert sorted(s.scalars(select(RawRecord.content_hash))) == sorted(raw_digest_of(f) for f in frags)
    (r,) = service.import_files(rt, [same_flow_again(tmp_path, frags, "RSABEM_3.xml", "03:00:00")])
    assert (r["parsed"], r["unchanged"]) == (0, 8)


def test_reject_of_a_changed_household_keeps_a_replayable_utf8_fragment(rt, tmp_path, mode):
    frags = households(3)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    bad = hh(1, D1, seed=41)
    set_path(bad, "Personne/Identification/PRENOM", "ÉLODIE")
    set_path(bad, "Personne/Identification/DTNAI", "1985-13-45")
    (r,) = service.import_files(rt, [write_flux(tmp_path / "RSABEM_2.xml", [frags[0], text(bad), frags[2]], D2)])
    assert (r["status"], r["rejected"], r["unchanged"], r["parsed"]) == ("imported", 1, 2, 1), r
    with rt.session() as s:
        (rej,) = s.scalars(select(RejectedRecord)).all()
        raw = rej.raw
    assert "ÉLODIE" in raw.decode("utf-8")
    header = flux.FlowHeader("CRI", None, "M", None, D2, None, D2)
    again = parse_fragment(raw, 1, header)
    assert again.key == ("CAF", matricule(bad)) and "DTNAI" in again.error
    out = service.replay(rt, rej.id)
    assert out["status"] == "pending" and "DTNAI" in out["reason"]


def test_reader_refuses_a_bomb_hidden_in_a_household_it_would_otherwise_skip(tmp_path):
    """The tag cap holds inside households, whatever the skip decision."""
    frags = households(2)
    bomb = frags[1].replace("<Personne>", "<Personne>" + "<a/>" * (flux.MAX_TAGS_PER_RECORD + 10), 1)
    data = write_flux(tmp_path / "RSABEM_bomb.xml", [frags[0], bomb], D1).read_bytes()
    want = KnownHouseholds.build(iter([])).want_filter()
    with pytest.raises(FluxError, match="balises XML"):
        for _ in FluxReader(io.BytesIO(data), want_data=want):
            pass


def test_a_lean_reimport_writes_what_a_whole_chunk_reimport_writes(rt, tmp_path, mode, monkeypatch):
    """A re-import runs in small chunks (service.LEAN_CHUNK, for its memory) until it has created
    LEAN_UNTIL_CREATED households, then in full chunks: the chunk sizes change nothing written."""
    from imports.generator import derive_flux, generate_monthly
    from tests.test_imports_flux import wipe

    m1, m2 = tmp_path / "RSABEM_1.xml", tmp_path / "RSABEM_2.xml"
    generate_monthly(m1, households=120, seed=23, month="2026-07")
    derive_flux([m1], m2, seed=23, daily=False, change_rate=0.3, new_households=12)
    chunks = []
    real = service.FlowImporter._process
    monkeypatch.setattr(service.FlowImporter, "_process",
                        lambda self, recs: (chunks.append((self._lean, len(recs))) if recs else None,
                                            real(self, recs))[1])
    results = {}
    for sizes, (lean_chunk, until) in {"lean": (2, 5), "whole": (10_000, 10**9)}.items():
        monkeypatch.setattr(service, "LEAN_CHUNK", lean_chunk)
        monkeypatch.setattr(service, "LEAN_UNTIL_CREATED", until)
        first = service.import_files(rt, [m1])
        assert first[0]["created"] == 120 and not any(lean for lean, _ in chunks)  # a first import: full chunks
        chunks.clear()
        (r,) = service.import_files(rt, [m2])
        assert r["status"] == "imported", r["error"]
        results[sizes] = ({k: r[k] for k in ("households", "persons", "created", "updated", "unchanged", "rejected",
                                             "warnings")}, snapshot(rt))
        if sizes == "lean":  # chunks of 2 until 5 households were created, then whole ones
            assert chunks[0] == (True, 2) and max(n for lean, n in chunks if lean) == 2 and not chunks[-1][0]
        else:
            assert len(chunks) == 1
        chunks.clear()
        wipe(rt)
    assert results["lean"] == results["whole"]
    assert results["lean"][0]["updated"] > 10 and results["lean"][0]["created"] == 12


def test_a_changed_household_rewrites_only_its_persons_whose_fields_changed(rt, tmp_path, mode):
    """A household whose bytes changed is planned again in full, but a person whose stored fields all
    equal the flow's is not rewritten (updated_at left as it was); a person whose name changed is."""
    frags = households(6)
    service.import_files(rt, [write_flux(tmp_path / "RSABEM_1.xml", frags, D1)])
    old = dt.datetime(2001, 1, 1)
    with rt.session() as s, s.begin():
        s.execute(update(Person).values(updated_at=old))
    street = hh(1, D1, seed=41)  # only the household's street changes: its persons stay as they are
    street.find(".//NOMVOIE").text = "RUE NOUVELLE"
    renamed = hh(2, D1, seed=41)
    set_path(renamed, "Personne/Identification/PRENOM", "HÉLÈNE")
    frags2 = frags[:1] + [text(street), text(renamed)] + frags[3:]
    (r2,) = service.import_files(rt, [write_flux(tmp_path / "RSABEM_2.xml", frags2, D2)])
    assert r2["status"] == "imported", r2["error"]
    assert (r2["unchanged"], r2["updated"]) == (4, 2)
    with rt.session() as s:
        def persons(el):
            return s.execute(select(Person.first_name, Person.updated_at).join(Household)
                             .where(Household.matricule == matricule(el)).order_by(Person.id)).all()

        assert persons(street) and all(at == old for _, at in persons(street))
        assert s.scalar(select(Household.address_line).where(Household.matricule == matricule(street))) \
            .endswith("RUE NOUVELLE")
        first, *others = persons(renamed)
        assert first == ("HÉLÈNE", first[1]) and first[1] > old
        assert all(at == old for _, at in others)
