"""The permission matrix, generated from the app's URL map and tests/permissions.yaml (issue 6).

For every endpoint × role × (own scope / other scope) the expected status: 401 without
credentials, 403 for a role not declared, 404 for a person out of scope, a normal answer in scope.
An endpoint of the app that permissions.yaml does not declare fails (format: see the yaml's header).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from config.auth import declared_roles
from config.db import Base
from tests.security_world import ROLES, SCOPED, build_world

SPEC_PATH = Path(__file__).resolve().parent / "permissions.yaml"
SKIPPED_ENDPOINTS = ("static",)
SKIPPED_PREFIXES = ("api-docs.",)
MISSING_PERSON = 99_999_999
_VAR = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def load_spec() -> dict:
    return _parse_spec(SPEC_PATH.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _parse_spec(_mtime: int) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader) or {}


def app_endpoints(app) -> dict[str, object]:
    """'METHOD RULE' → rule, for every endpoint that needs a declaration."""
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS or rule.endpoint.startswith(SKIPPED_PREFIXES):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out[f"{method} {rule.rule}"] = rule
    return out


def _collection_app():
    """An app built only to read its URL map at collection time."""
    from config.app import create_app
    from config.settings import Settings

    return create_app(Settings.from_env(env={}).with_(database_url="sqlite://", scheduler_enabled=False))


ENDPOINTS = sorted(app_endpoints(_collection_app()))


def roles_of(entry) -> tuple[str, ...] | str:
    roles = entry.get("roles")
    if roles == "public":
        return "public"
    if roles == "all":
        return ROLES
    return tuple(roles or ())


def test_permissions_yaml_declares_exactly_the_app_endpoints(app):
    spec = load_spec()
    present = app_endpoints(app)
    missing = sorted(set(present) - set(spec))
    stale = sorted(set(spec) - set(present))
    assert not missing, "endpoints absent from tests/permissions.yaml: " + ", ".join(missing)
    assert not stale, "tests/permissions.yaml lists endpoints the app no longer has: " + ", ".join(stale)


def _url(rule, entry, world, person_id=None) -> str:
    values = {}
    for var in _VAR.findall(rule.rule):
        if var == entry.get("person"):
            values[var] = person_id
            continue
        v = (entry.get("params") or {}).get(var, 999999)
        values[var] = {"$user": world.victim_user, "$token": world.victim_token,
                       "$structure": world.structure}.get(v, v)
    path = rule.rule
    for var, v in values.items():
        path = re.sub(rf"<(?:[^:<>]+:)?{re.escape(var)}>", str(v), path)
    return path


def _call(client, method, url, entry, headers=None):
    kwargs = {"headers": headers or {}, "query_string": entry.get("query") or {}}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = entry.get("body", {})
    return client.open(url, method=method, **kwargs)


def _in_scope_ok(status: int, entry, person_scoped: bool) -> bool:
    if entry.get("in_scope"):
        return status in entry["in_scope"]
    if status in (401, 403) or status >= 500:
        return False
    return not (person_scoped and status == 404)


def _empty_non_reference(runtime) -> None:
    from tests.conftest import REFERENCE_TABLES, _empty

    _empty(runtime, {t.name for t in Base.metadata.sorted_tables} - set(REFERENCE_TABLES))


@pytest.fixture(scope="module")
def read_only_world(_schema):
    """One world shared by the GET endpoints (they change nothing a later GET depends on), rebuilt
    if a write test emptied the tables meanwhile; emptied at the end of the module."""
    from referents.models import User

    runtime, _ = _schema
    state = {}

    def get():
        world = state.get("world")
        with runtime.session() as s:
            alive = world is not None and s.get(User, world.users["admin"]) is not None
        if not alive:
            _empty_non_reference(runtime)
            state["world"] = build_world(runtime)
        return state["world"]

    yield get
    _empty_non_reference(runtime)


@pytest.mark.parametrize("key", ENDPOINTS)
def test_permission_matrix(key, _app, request):
    method, _ = key.split(" ", 1)
    if method == "GET":
        app, world = _app, request.getfixturevalue("read_only_world")()
    else:  # a write: a fresh world (the GETs' world put aside first), emptied after the test
        app = request.getfixturevalue("app")
        rt = request.getfixturevalue("rt")
        _empty_non_reference(rt)
        world = build_world(rt)
    client = app.test_client()
    spec = load_spec()
    assert key in spec, f"{key} is not declared in tests/permissions.yaml (see its header for the format)"
    entry = spec[key] or {}
    rule = app_endpoints(app)[key]
    view = app.view_functions[rule.endpoint]
    declared = declared_roles(view, method)
    expected_roles = roles_of(entry)
    assert (declared == "public") == (expected_roles == "public"), f"{key}: code says {declared!r}"
    if declared != "public":
        assert set(declared) == set(expected_roles), f"{key}: code allows {sorted(declared)}, yaml {expected_roles}"
    person_var = entry.get("person")
    failures = []

    def check(label, response, ok):
        if not ok:
            failures.append(f"{label}: got {response.status_code} {response.get_data(as_text=True)[:200]}")

    if expected_roles == "public":
        r = _call(client, method, _url(rule, entry, world, world.other), entry)
        check("public call", r, _in_scope_ok(r.status_code, entry, False))
        assert not failures, f"{key}: " + "; ".join(failures)
        return

    # no credentials
    r = _call(client, method, _url(rule, entry, world, world.other), entry)
    html_redirect = (r.status_code == 303 and method == "GET" and not rule.rule.startswith("/api/")
                     and "/login" in r.headers.get("Location", ""))
    check("without credentials", r, r.status_code == 401 or html_redirect)
    for role in ROLES:
        headers = world.headers[role]
        if role not in expected_roles:
            r = _call(client, method, _url(rule, entry, world, world.person_of[role]), entry, headers)
            check(f"{role} (not allowed)", r, r.status_code == 403)
            continue
        if person_var and role in SCOPED:
            out = _call(client, method, _url(rule, entry, world, world.other), entry, headers)
            missing = _call(client, method, _url(rule, entry, world, MISSING_PERSON), entry, headers)
            same = out.status_code == missing.status_code
            allowed = (404,) if method in ("GET", "DELETE") else (404, 422)
            check(f"{role} other scope", out, same and out.status_code in allowed)
        r = _call(client, method, _url(rule, entry, world, world.person_of[role]), entry, headers)
        check(f"{role} own scope", r, _in_scope_ok(r.status_code, entry, bool(person_var)))
    assert not failures, f"{key}: " + "; ".join(failures)
