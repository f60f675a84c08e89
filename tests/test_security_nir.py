"""No NIR leaves the Département's side, no person leaks out of scope (issue 6): crawl every GET
endpoint (JSON, xlsx, PDF) with each scoped role's token after creating persons with NIRs; providers
and ATIs never receive a NIR (nor its masked form), MDS workers never the full one, nobody sees the
name of a person outside their scope, and no NIR reaches the logs."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import pytest

from cases.nir import nir_view
from tests.security_world import NIRS, build_world
from tests.test_security_matrix import SKIPPED_ENDPOINTS, SKIPPED_PREFIXES, load_spec

_VAR = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def _texts(response) -> list[str]:
    """Everything a client could read in a response: the body, files inside an xlsx/zip, headers."""
    data = response.get_data()
    out = [data.decode("utf-8", "replace"), str(response.headers)]
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            out += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
    if data[:5] == b"%PDF-":
        from pypdf import PdfReader

        out += [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    return out


def _get_urls(app, world) -> list[str]:
    spec = load_spec()
    persons = sorted(set(world.person_of.values()) | {world.other})
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS or rule.endpoint.startswith(SKIPPED_PREFIXES):
            continue
        if "GET" not in rule.methods or rule.rule.startswith("/api/v1/docs"):
            continue
        entry = spec.get(f"GET {rule.rule}") or {}
        variables = _VAR.findall(rule.rule)
        candidates = [{}]
        for conv, name in variables:
            if name == entry.get("person") or name == "person_id":
                values = persons
            elif name in (entry.get("params") or {}):
                v = entry["params"][name]
                values = [{"$user": world.victim_user, "$token": world.victim_token,
                           "$structure": world.structure}.get(v, v)]
            elif conv == "int":
                values = [1, 2, 3]
            else:
                continue  # an unknown string variable: nothing sensible to try
            candidates = [dict(c, **{name: v}) for c in candidates for v in values]
        for values in candidates:
            if len(values) != len(variables):
                continue
            url = rule.rule
            for name, v in values.items():
                url = re.sub(rf"<(?:[^:<>]+:)?{re.escape(name)}>", str(v), url)
            urls.append(url)  # with the matrix's query (if any) and without: lists unfiltered too
            query = entry.get("query") or {}
            if query:
                urls.append(url + "?" + "&".join(f"{k}={v}" for k, v in query.items()))
    return urls


def _nir_patterns(nir: str) -> list[re.Pattern]:
    """The NIR as digits, with its key, spaced or dotted; and the masked form's visible prefix+mask."""
    spaced = r"[\s.\-]?".join([nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13]])
    return [re.compile(re.escape(nir)), re.compile(spaced)]


@pytest.mark.parametrize("role", ["provider", "ati", "mds_worker"])
def test_no_nir_through_any_get_endpoint(role, app, client, rt, caplog):
    caplog.set_level(logging.DEBUG)
    world = build_world(rt)
    urls = _get_urls(app, world)
    assert any("/persons/" in u for u in urls) or len(urls) > 5
    seen_person = False
    foreign = {name for pid, name in world.names.items() if pid != world.person_of[role]}
    for url in urls:
        r = client.get(url, headers=world.headers[role])
        assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])
        if r.status_code == 200 and f"/persons/{world.person_of[role]}" in url:
            seen_person = True
        for text in _texts(r):
            leaked = [n for n in foreign if n in text]
            assert not leaked, f"{role} saw persons out of scope ({leaked}) through {url}"
            for nir in NIRS:
                for pattern in _nir_patterns(nir):
                    assert not pattern.search(text), f"{role} got a NIR from {url}"
                if role in ("provider", "ati"):
                    masked = nir_view("mds_worker", nir)
                    assert masked not in text, f"{role} got a masked NIR from {url}"
    if any(u.startswith("/api/v1/persons/") for u in urls):
        assert seen_person, f"{role} could not read their own person: the crawl would prove nothing"
    for nir in NIRS:
        assert nir not in caplog.text


def test_manager_reads_nir_but_logs_never_contain_it(app, client, rt, caplog):
    caplog.set_level(logging.DEBUG)
    world = build_world(rt)
    pid = world.person_of["manager"]
    urls = [u for u in _get_urls(app, world) if f"/persons/{pid}" in u or u.startswith("/api/v1/reports")]
    bodies = ""
    for url in urls:
        r = client.get(url, headers=world.headers["manager"])
        assert r.status_code < 500, url
        bodies += "".join(_texts(r))
    manager_nir = NIRS[list(world.person_of).index("manager")]
    assert manager_nir in bodies  # the manager does read it: the log check below has teeth
    for nir in NIRS:
        assert nir not in caplog.text


def test_nir_view_rule():
    nir = NIRS[0]
    assert nir_view("admin", nir) == nir and nir_view("manager", nir) == nir
    masked = nir_view("mds_worker", nir)
    assert masked and masked != nir and masked[:5] == nir[:5] and nir[5:] not in masked
    assert nir_view("provider", nir) is None and nir_view("ati", nir) is None


def test_nir_is_encrypted_at_rest(rt):
    from sqlalchemy import text

    build_world(rt)
    with rt.engine.connect() as conn:
        rows = conn.execute(text("SELECT nir_hash, nir_encrypted FROM person")).all()
    assert rows and all(r[0] and r[1] for r in rows)
    blob = b"".join(bytes(r[1]) for r in rows) + "".join(r[0] for r in rows).encode()
    for nir in NIRS:
        assert nir.encode() not in blob
