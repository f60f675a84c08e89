"""Property-based tests of the flow parser/importer (issue 3): arbitrary mutations of a valid file
never end in an unhandled exception — the file imports (with rejects) or fails with its reason."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from imports import service
from imports.flux import FluxError, FluxReader
from imports.generator import generate_monthly

_DIR = Path(tempfile.mkdtemp(prefix="rsa-flux-props-"))  # removed at the module's end (_remove_dir)
BASE = _DIR / "base.xml"
generate_monthly(BASE, households=3, seed=77, month="2026-09")
DATA = BASE.read_bytes()
LEAVES = [e for e in etree.fromstring(DATA).iter() if len(e) == 0]


@pytest.fixture(scope="module", autouse=True)
def _remove_dir():
    """Every mutated file lives under _DIR: a run leaves nothing in the temporary folder."""
    yield
    shutil.rmtree(_DIR, ignore_errors=True)

SNIPPETS = [b"<", b">", b"</InfosFoyerRSA>", b"<InfosFoyerRSA>", b"&", b"&amp;", b"<!DOCTYPE x>", b"\x00", b"\xff\xfe",
            b"<Personne></Personne>", b"]]>", b"<![CDATA[x]]>", b"\xe9\xe8", b"<?pi x?>", b"<!-- c -->"]

byte_mutation = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, len(DATA))),
    st.tuples(st.just("flip"), st.integers(0, len(DATA) - 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, len(DATA)), st.sampled_from(SNIPPETS)),
    st.tuples(st.just("delete"), st.integers(0, len(DATA) - 1), st.integers(1, 400)),
)
cp1252_text = st.text(st.characters(codec="cp1252", exclude_categories=("Cs", "Cc")), max_size=60)
text_mutation = st.tuples(st.integers(0, len(LEAVES) - 1),
                          st.one_of(cp1252_text, st.sampled_from(["", "9" * 40, "2026-02-30", "1e308", "nan", "-1",
                                                                  "0000-00-00", "99999999999999999999", "100000000", "¹²", " 2 ",
                                                                  "3" * 15, "1" * 16, "ZZZ", "DEM", "5", "7"])))


def apply_bytes(data: bytes, mutations) -> bytes:
    for m in mutations:
        if m[0] == "cut":
            data = data[: m[1]]
        elif m[0] == "flip" and data:
            i = m[1] % len(data)
            data = data[:i] + bytes([m[2]]) + data[i + 1:]
        elif m[0] == "insert":
            data = data[: m[1]] + m[2] + data[m[1]:]
        elif m[0] == "delete":
            data = data[: m[1]] + data[m[1] + m[2]:]
    return data


def apply_text(mutations) -> bytes:
    root = etree.fromstring(DATA)
    leaves = [e for e in root.iter() if len(e) == 0]
    for index, value in mutations:
        leaves[index].text = value
    return etree.tostring(root, encoding="windows-1252", xml_declaration=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(byte_mutation, min_size=1, max_size=4))
def test_reader_raises_only_flux_errors(mutations):
    data = apply_bytes(DATA, mutations)
    try:
        for rec in FluxReader(io.BytesIO(data)):
            assert rec.error is None or isinstance(rec.error, str)
    except FluxError as exc:
        assert str(exc) and "\n" not in str(exc)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_muts=st.lists(byte_mutation, max_size=3), text_muts=st.lists(text_mutation, max_size=6))
def test_importer_never_crashes_on_mutated_files(rt, byte_muts, text_muts):
    data = apply_bytes(apply_text(text_muts), byte_muts)
    path = Path(tempfile.mkdtemp(dir=_DIR)) / "RSABEM_mut.xml"
    path.write_bytes(data)
    (r,) = service.import_files(rt, [path])
    assert r["status"] in ("imported", "duplicate", "failed")
    if r["status"] == "failed":
        assert r["error"] and "\n" not in r["error"]
        assert not r["error"].startswith("erreur inattendue"), r["error"]
    else:
        assert r["households"] == r["created"] + r["updated"] + r["unchanged"] + r["rejected"]


def test_every_field_too_long_is_a_reject_or_a_clear_failure_never_an_unexpected_error(rt):
    """Found by the property test on PostgreSQL (which enforces column lengths): a 40-character
    ROLEPERS failed the whole file. Deterministic sweep: each distinct field, one at a time."""
    first_of_field: dict[str, int] = {}
    for i, leaf in enumerate(LEAVES):
        first_of_field.setdefault(_field_path(leaf), i)
    unexpected = []
    for tag, index in sorted(first_of_field.items()):
        path = Path(tempfile.mkdtemp(dir=_DIR)) / "RSABEM_long.xml"
        path.write_bytes(apply_text([(index, "X" * 40)]))
        (r,) = service.import_files(rt, [path])
        if r["status"] == "failed" and r["error"].startswith("erreur inattendue"):
            unexpected.append(f"{tag}: {r['error'][:120]}")
    assert unexpected == []


def _field_path(leaf) -> str:
    """A leaf's path from the root, with the benefit nature of Prestations blocks (the RSA one is
    the one read): one entry per distinct field of the flow."""
    parts = []
    while leaf is not None:
        tag = leaf.tag
        if tag == "Prestations":
            tag += f"[{leaf.findtext('NATPREST')}]"
        parts.append(tag)
        leaf = leaf.getparent()
    return "/".join(reversed(parts))
