"""Fuzzing the whole OpenAPI document with schemathesis (issues 6 and 22): with each role's token,
every operation answers within its documentation — no 500, a documented status code and content
type, a body matching the documented schema (date-time formats included), documented headers.
Kept short (a few examples per operation and role: RSA_FUZZ_EXAMPLES to raise it); the figures of a
longer run are in docs/security.md.

The operations are driven from one test (schemathesis' lazy pytest loader does not support the
pytest version in use): every failure is collected, then reported together."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.config import SchemathesisConfig

from tests.security_world import ROLES, build_world

EXAMPLES = int(os.environ.get("RSA_FUZZ_EXAMPLES", "2"))
# Every check of schemathesis runs. One is tuned: a request valid for the schema may still be refused
# by a business rule the schema cannot say (an unknown mapping, structure or territory code, a date
# outside 2000–2100, a file of the wrong type or size): such refusals are 4xx with a French message,
# so the positive-data check accepts 400, 413, 415 and 422 besides its defaults — and a 5xx is
# still a failure.
CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {"expected-statuses": [
    "2xx", "3xx", "400", "401", "403", "404", "409", "413", "415", "422", "429"]}}})


@pytest.mark.parametrize("role", ROLES)
def test_openapi_fuzz_finds_no_failure_of_any_kind(app, rt, role, capsys):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)
    world = build_world(rt)
    failures, calls, operations = [], [0], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _fuzzer(operation, world.headers[role], failures, calls)()
    assert operations > 5 and calls[0] >= operations
    with capsys.disabled():
        print(f"\n  schemathesis {role}: {operations} operations, {calls[0]} calls, {len(failures)} failures")
    assert not failures, f"{len(failures)} failures for {role}:\n" + "\n".join(failures[:30])


def _fuzzer(operation, headers: dict, failures: list, calls: list):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy())
    def fuzz(case):
        response = case.call(headers=headers)
        calls[0] += 1
        try:
            case.validate_response(response, headers=headers)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a schemathesis failure (group): collected, reported at the end
            text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:400]
            failures.append(f"{case.method} {case.formatted_path} {case.query or ''} → {response.status_code}: {text}")

    return fuzz
