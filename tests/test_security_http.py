"""HTTP hygiene (issue 6): security headers, strict CORS, upload limits and type checks, JSON errors
without stack traces."""

from __future__ import annotations

import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException

from config.auth import check_upload, public
from config.runtime import Runtime


def _app(rt, **settings):
    from config.app import create_app

    runtime = Runtime(settings=rt.settings.with_(**settings), engine=rt.engine, sessions=rt.sessions, vault=rt.vault)
    return create_app(runtime=runtime)


def test_security_headers_everywhere(client, make_user):
    _, headers = make_user("manager")
    for url, h in (("/healthz", {}), ("/api/v1/me", headers), ("/login", {}), ("/api/v1/nothing-here", {})):
        r = client.get(url, headers=h)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["Referrer-Policy"] == "same-origin" and r.headers["Cache-Control"] == "no-store"
        assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_is_off_by_default_and_follows_the_allowlist(client, rt, make_user):
    _, headers = make_user("manager")
    r = client.get("/api/v1/me", headers={**headers, "Origin": "https://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = client.options("/api/v1/me", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in r.headers
    app = _app(rt, cors_origins="https://tableau.haute-garonne.fr")
    c = app.test_client()
    ok = c.get("/api/v1/me", headers={**headers, "Origin": "https://tableau.haute-garonne.fr"})
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://tableau.haute-garonne.fr"
    assert "Access-Control-Allow-Credentials" not in ok.headers
    bad = c.get("/api/v1/me", headers={**headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_errors_are_json_without_stack_traces(rt):
    app = _app(rt)

    @app.get("/boom")
    @public
    def boom():
        raise RuntimeError("secret internal detail /work/main/config/app.py")

    r = app.test_client().get("/boom")
    assert r.status_code == 500 and r.is_json
    body = r.get_data(as_text=True)
    assert "Traceback" not in body and "secret internal detail" not in body and ".py" not in body
    r = app.test_client().get("/api/v1/nope")
    assert r.status_code == 404 and r.is_json and r.json["code"] == 404
    r = app.test_client().get("/api/v1/me")
    assert r.status_code == 401 and r.is_json


def test_request_size_limit_answers_413_json(rt, make_user):
    app = _app(rt, max_upload_mb=1)
    _, headers = make_user("admin")
    r = app.test_client().post("/api/v1/users", data=b"x" * (1024 * 1024 + 10), headers={
        **headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.is_json


def _file(name: str, content: bytes) -> FileStorage:
    return FileStorage(stream=io.BytesIO(content), filename=name)


def test_check_upload_accepts_real_formats(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    path = tmp_path / "liste.xlsx"
    wb.save(path)
    assert check_upload(_file("liste.xlsx", path.read_bytes()), {"xlsx", "csv"}) == "liste.xlsx"
    assert check_upload(_file("flux 09-2026.xml", b'\xef\xbb\xbf<?xml version="1.0" encoding="windows-1252"?><x/>'),
                        {".xml"}) == "flux_09-2026.xml"
    assert check_upload(_file("inscrits.csv", "nir;nom\n1;é\n".encode("cp1252")), {"csv"}) == "inscrits.csv"
    f = _file("ok.csv", b"a;b\n")
    check_upload(f, {"csv"})
    assert f.stream.read() == b"a;b\n"  # the stream is left where it was


@pytest.mark.parametrize("name,content,allowed,code", [
    ("script.exe", b"MZ\x90\x00", {"xlsx", "csv"}, 415),
    ("fake.xlsx", b"<html>not a workbook</html>", {"xlsx"}, 415),
    ("binary.csv", b"a;b\x00\x01\x02", {"csv"}, 415),
    ("flux.xml", b"PK\x03\x04 zip pretending to be xml", {"xml"}, 415),
    ("../../etc/passwd.csv", b"a;b", {"xml"}, 415),
    ("", b"", {"csv"}, 400),
    ("big.csv", b"a;b\n" * 1000, {"csv"}, 413),
])
def test_check_upload_refuses(name, content, allowed, code):
    with pytest.raises(HTTPException) as exc:
        check_upload(_file(name, content), allowed, max_bytes=1000)
    assert exc.value.code == code


def test_path_traversal_names_are_sanitised():
    assert check_upload(_file("../../etc/flux.xml", b"<x/>"), {"xml"}) == "etc_flux.xml"


def test_log_handlers_mask_nir_shaped_numbers():
    import logging

    from config.logging import RedactNir

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "rejet: NIR %s inconnu (ligne %d)",
                               ("1 85 05 31 555 123 45", 12), None)
    RedactNir().filter(record)
    assert record.getMessage() == "rejet: NIR [NIR masqué] inconnu (ligne 12)"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "batch 1850531555123 / dossier 12345", None, None)
    RedactNir().filter(record)
    assert "1850531555123" not in record.getMessage() and "12345" in record.getMessage()
