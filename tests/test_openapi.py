"""The OpenAPI document describes every response field (issue 14: serialisation in schemas).

A response property that is an object must say what it holds: its properties, or (for a real map,
such as counts by code) `additionalProperties` with a typed value and a description saying what the
keys are. An untyped property (`fields.Raw`, a bare `fields.Dict()`) describes nothing."""

from __future__ import annotations

from cases.schemas import LIST_ROW_SCHEMAS, ListRowSchema
from orientation.rules import OPERATORS
from orientation.schemas import ConditionSchema
from tests.rules_helpers import use_rules_v1

UNIONS = ("oneOf", "anyOf", "allOf")
NULL = {"type": "object", "nullable": True}  # apispec's "or null" beside a nested schema (OpenAPI 3.0)
# Free JSON by design, whose shape depends on the event kind / audit action / file: left for their owners
# to describe (each is written by several modules). Anything else untyped fails.
FREE_JSON = {"AuditEntry.details", "TimelineEvent.data", "Batch.header", "Mapping.fields", "Mapping.external_ids"}


def _typed(schema: dict) -> bool:
    return "$ref" in schema or "type" in schema or any(k in schema for k in UNIONS)


def _problems(spec: dict) -> list[str]:
    components = spec.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    problems: list[str] = []

    def walk(schema: dict, where: str) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                walk(components[name], name)
            return
        if where in FREE_JSON:
            return
        for key in UNIONS:
            for i, member in enumerate(schema.get(key, [])):
                if member != NULL:
                    walk(member, f"{where}.{key}[{i}]")
        if not _typed(schema):
            problems.append(f"{where}: propriété sans type")
            return
        if schema.get("type") == "array":
            items = schema.get("items")
            if not items or not _typed(items):
                problems.append(f"{where}: liste d'éléments sans type")
            else:
                walk(items, f"{where}[]")
        if schema.get("type") == "object":
            extra = schema.get("additionalProperties")
            if not schema.get("properties") and not isinstance(extra, dict):
                problems.append(f"{where}: objet sans propriétés décrites")
            if isinstance(extra, dict):
                if not _typed(extra):
                    problems.append(f"{where}: table dont les valeurs n'ont pas de type")
                elif not schema.get("properties") and not schema.get("description"):
                    problems.append(f"{where}: table sans description de ses clés")
                else:
                    walk(extra, f"{where}{{}}")
        for name, prop in (schema.get("properties") or {}).items():
            walk(prop, f"{where}.{name}")

    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                for media in response.get("content", {}).values():
                    if "schema" in media:
                        walk(media["schema"], f"{method.upper()} {path} {status}")
    return problems


def test_every_response_property_is_described(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    problems = _problems(spec)
    assert problems == [], "\n".join(problems)


def test_the_walker_finds_an_untyped_object():
    spec = {"paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/X"}}}}}}}},
        "components": {"schemas": {"X": {"type": "object", "properties": {
            "ok": {"type": "integer"}, "bare": {"type": "object"}, "raw": {},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "rows": {"type": "array", "items": {"type": "object"}}}}}}}
    assert _problems(spec) == ["X.bare: objet sans propriétés décrites", "X.raw: propriété sans type",
                               "X.counts: table sans description de ses clés",
                               "X.rows[]: objet sans propriétés décrites"]


def test_condition_schema_knows_every_operator():
    """A rule is dumped through ConditionSchema: an operator it does not declare would be lost."""
    keys = {f.data_key or name for name, f in ConditionSchema().fields.items()}
    assert set(OPERATORS) <= keys


def test_list_rows_are_one_union_of_the_lists():
    union = set(ListRowSchema().fields)
    for schema in LIST_ROW_SCHEMAS.values():
        assert set(schema().fields) <= union


def test_a_rule_set_dumps_every_stored_key(session):
    """GET /orientation/rules feeds PUT: the schema must give back the stored rules unchanged."""
    from orientation.rulesets import active_rule_set
    from orientation.schemas import RuleSetSchema

    use_rules_v1(session)
    row, _spec = active_rule_set(session)
    doc = RuleSetSchema().dump(row)
    assert doc["rules"] == row.ordered_rules and len(doc["rules"]) == 7  # rules_v1 (v2 in the next test)
    assert doc["fallback"] == row.fallback_rule and doc["fallback"]["id"]


def test_the_default_rule_set_v2_dumps_parcours_and_sources(session):
    """v2's rules carry `parcours` and `source`: GET /orientation/rules gives them back for PUT."""
    from orientation.rulesets import active_rule_set
    from orientation.schemas import RuleSetSchema

    row, _spec = active_rule_set(session)
    doc = RuleSetSchema().dump(row)
    assert row.version == 2 and doc["rules"] == row.ordered_rules
    assert all(r["source"] for r in doc["rules"]) and doc["rules"][0]["parcours"] == "emploi"
