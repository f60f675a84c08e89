"""Robust API edges (issue 22, item 10): deep JSON, date-times with their zone, documented file
content types, security headers on the server's own errors, a script CSP without 'unsafe-inline'."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from config.edges import MAX_JSON_DEPTH, json_depth
from tests.conftest import REPO

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_json_nested_100000_deep_answers_400(client, make_user):
    _, headers = make_user("admin")
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/v1/users", data=deep, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.is_json and "imbriqué" in r.json["message"]
    assert r.headers["X-Frame-Options"] == "DENY"
    # strings do not count, and an ordinary body goes through to validation
    assert json_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    r = client.post("/api/v1/users", json={"email": "x@test.local", "role": "manager",
                                           "display_name": "[" * (MAX_JSON_DEPTH * 2)}, headers=headers)
    assert r.status_code == 201


def test_timestamps_carry_their_time_zone(client, make_user, rt):
    from tests.security_world import build_world

    w = build_world(rt)
    admin = w.headers["admin"]
    tokens = client.get(f"/api/v1/users/{w.victim_user}/tokens", headers=admin).json
    assert tokens and all(RFC3339.match(t["created_at"]) and t["created_at"].endswith("+00:00") for t in tokens)
    user = client.get(f"/api/v1/users/{w.victim_user}", headers=admin).json
    assert RFC3339.match(user["created_at"])
    pid = w.person_of["manager"]
    r = client.post(f"/api/v1/persons/{pid}/appointments", json={"scheduled_at": "2026-11-02T10:00:00",
                                                                  "status": "planned"}, headers=w.headers["manager"])
    assert r.status_code == 201 and r.json["scheduled_at"] == "2026-11-02T10:00:00+01:00"  # Paris wall clock
    # an offset given by the client is honoured (15:00 UTC = 16:00 in Paris in November)
    r = client.post(f"/api/v1/persons/{pid}/appointments", json={"scheduled_at": "2026-11-03T15:00:00Z",
                                                                  "status": "planned"}, headers=w.headers["manager"])
    assert r.json["scheduled_at"] == "2026-11-03T16:00:00+01:00"
    entries = client.get("/api/v1/audit", headers=admin).json["items"]
    assert entries and all(RFC3339.match(e["at"]) for e in entries)


def test_every_date_time_of_the_document_is_zoned(client):
    """Every property the OpenAPI document types as date-time is produced by a zoned field."""
    from marshmallow import fields as ma

    doc = client.get("/api/v1/openapi.json").json
    declared = [name for name, schema in doc["components"]["schemas"].items()
                for prop in schema.get("properties", {}).values() if prop.get("format") == "date-time"]
    assert declared
    import cases.schemas  # noqa: E401,I001
    import imports.schemas
    import kiosque.schemas
    import orientation.schemas
    import referents.schemas
    from referents.fields import _ZonedDateTime
    for module in (cases.schemas, imports.schemas, kiosque.schemas, orientation.schemas, referents.schemas):
        for schema in vars(module).values():
            declared_fields = getattr(schema, "_declared_fields", {})
            for name, field in declared_fields.items():
                if type(field) is ma.DateTime:
                    pytest.fail(f"{module.__name__}.{schema.__name__}.{name}: naive fields.DateTime")
                if isinstance(field, ma.NaiveDateTime):
                    assert field.timezone is not None, name  # inputs read in a declared zone
                elif isinstance(field, ma.DateTime):
                    assert isinstance(field, _ZonedDateTime | ma.AwareDateTime), name


def test_file_downloads_are_documented_with_their_content_type(client):
    doc = client.get("/api/v1/openapi.json").json
    files = {p: op["get"] for p, op in doc["paths"].items()
             if "get" in op and (p.endswith((".xlsx", ".pdf")) or p.endswith("provider-template"))}
    assert len(files) == 4, sorted(files)
    for path, op in files.items():
        content = op["responses"]["200"]["content"]
        expected = "application/pdf" if path.endswith(".pdf") else \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        assert list(content) == [expected], path
        assert content[expected]["schema"] == {"type": "string", "format": "binary"}


def test_script_csp_has_a_nonce_and_no_unsafe_inline(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script and "'nonce-" in script
    nonce = re.search(r"'nonce-([^']+)'", script).group(1)
    html = r.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
    assert nonce != re.search(r"'nonce-([^']+)'", client.get("/api/v1/docs").headers["Content-Security-Policy"]).group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_oversized_request_line_gets_the_security_headers(rt, tmp_path):
    """gunicorn answers an oversized request line itself, before the app: `rsa serve` makes that
    answer carry the same headers. Its access log says how long each answer took and never
    carries a query string (a search's name or birth date)."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "RSA_DATABASE_URL": rt.settings.database_url, "RSA_SECRET_KEY": "test-secret",
           "RSA_SECURE_COOKIES": "false", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "config.cli", "serve", "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--threads", "1"], cwd=REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                ok = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("rsa serve did not start")
        assert ok.startswith(b"HTTP/1.1 200") and b"X-Frame-Options: DENY" in ok
        for request in (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n"):
            answer = _raw(port, request)
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin1")
            assert head.startswith("HTTP/1.1 4"), head
            for name in ("X-Content-Type-Options: nosniff", "X-Frame-Options: DENY", "Content-Security-Policy:",
                         "Referrer-Policy: same-origin", "Cache-Control: no-store"):
                assert name in head, (name, head)
            assert "unsafe-inline" not in head.split("script-src", 1)[1].split(";")[0]
        answer = _raw(port, b"GET /healthz?q=JOELLE+MARTIN&naissance=01/02/1980 HTTP/1.1\r\nHost: x\r\n"
                            b"Referer: http://x/personnes?q=DURAND\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
        for _ in range(40):  # the access line is written after the answer is sent
            lines = [line for line in log.read_text().splitlines() if '"GET /healthz"' in line]
            if lines:
                break
            time.sleep(0.1)
        assert lines and all(re.search(r" 200 \d+ \d+ms$", line) for line in lines), lines
        text = log.read_text()
        assert "MARTIN" not in text and "DURAND" not in text and "1980" not in text
        # the worker built its templates and mappers, then froze its heap (config.app.settle)
        frozen = re.search(r"worker \d+ settled: (\d+) objects frozen", text)
        assert frozen and int(frozen.group(1)) > 50_000, text[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_settle_compiles_the_pages_and_freezes_the_heap(rt):
    """A serving process's application is prepared once (config.app.settle): every page template
    compiled, then the heap out of the cyclic collector's full passes."""
    import gc

    from config.app import create_app, settle

    app = create_app(runtime=rt)
    before = gc.get_freeze_count()
    try:
        frozen = settle(app)
        assert frozen > before and frozen == gc.get_freeze_count()
        compiled = {t for t in app.jinja_env.cache.keys()} if app.jinja_env.cache is not None else set()
        pages = set(app.jinja_env.list_templates(filter_func=lambda n: n.endswith(".html")))
        assert pages and {name for _loader, name in compiled} >= pages
    finally:
        gc.unfreeze()
