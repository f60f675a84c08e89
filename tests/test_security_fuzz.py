"""Fuzzing the OpenAPI document with schemathesis (issue 6): no operation answers 500, whatever
the input. Kept short: a few examples per operation, with a manager's token (the widest scope
below admin); admin-only operations are fuzzed with an admin token.

The operations are driven from one test (schemathesis' lazy pytest loader does not support the
pytest version in use): every failure is collected, then reported together."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.security_world import build_world

EXAMPLES = 2


def test_openapi_fuzz_never_500(app, rt):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    world = build_world(rt)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        role = "admin" if operation.path.startswith(("/api/v1/users", "/api/v1/audit")) else "manager"
        _fuzzer(operation, world.headers[role], failures)()
    assert operations > 5
    assert not failures, "\n".join(failures[:20])


def _fuzzer(operation, headers: dict, failures: list):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy())
    def fuzz(case):
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} {case.query or ''} → "
                            f"{response.status_code}: {response.text[:200]}")

    return fuzz
