"""Robust edges of the HTTP service (issue 22, item 10), besides config.app.

- A JSON body nested 100,000 deep made the parser overflow Python's stack (RecursionError → 500):
  its nesting is measured on the raw bytes, before any parser, and beyond MAX_JSON_DEPTH it is a 400.
- An oversized request line (or header) is answered by gunicorn itself, before the application:
  `install_gunicorn_error_headers` makes those answers carry the same security headers (and a JSON
  body) as the application's. Behind a reverse proxy, the proxy answers first: docs/security.md
  gives its configuration (`add_header … always`)."""

from __future__ import annotations

import json
import re

from flask import abort

MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes, limit: int | None = None) -> int:
    """The nesting depth of a JSON text (strings ignored); stops counting past `limit`."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if limit is not None and deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def check_json_depth(request) -> None:
    """400 for a JSON body nested deeper than MAX_JSON_DEPTH (read once, cached for the view)."""
    if not request.is_json or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    data = request.get_data(cache=True)
    if data and json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        abort(400, description=f"JSON trop imbriqué (plus de {MAX_JSON_DEPTH} niveaux)")


def _security_header_lines() -> str:
    from config.app import SECURITY_HEADERS, content_security_policy

    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = content_security_policy()
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items())


def install_gunicorn_error_headers() -> None:
    """Replace gunicorn's error writer (oversized request line, bad request, header limits) by one
    that sends the application's security headers and a JSON body."""
    from gunicorn import util

    if getattr(util.write_error, "_rsa", False):
        return

    def write_error(sock, status_int, reason, mesg):
        body = json.dumps({"code": int(status_int), "status": reason, "message": str(mesg)[:200]}).encode()
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{_security_header_lines()}\r\n").encode("latin1")
        util.write_nonblock(sock, head + body)

    write_error._rsa = True
    util.write_error = write_error


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"


def file_response(content_type: str, description: str) -> dict:
    """OpenAPI documentation of a file download (`@blp.doc(**file_response(XLSX, "…"))`): the 200
    response with its real content type, as a binary string."""
    return {"responses": {"200": {"description": description, "content": {
        content_type: {"schema": {"type": "string", "format": "binary"}}}}}}
