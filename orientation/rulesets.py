"""Rule sets: every version stored (`rule_set` rows), one active; the default YAML (v1) stored on
first use. The rules themselves (parsing, evaluation, explanation) are orientation.rules."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from orientation.errors import OrientationError
from orientation.models import RuleSet
from orientation.rules import (
    RuleSetSpec,
    load_default,
    parse_rule_set,
    parse_yaml,
)


def _document(spec: RuleSetSpec) -> list:
    doc = spec.as_document()
    return [*doc["rules"], {**doc["fallback"], "fallback": True}]


# Parsed rule sets by stored version. A version is never edited, only added (orientation.models.
# RuleSet), so a row's identity (id, version, name, creation instant) names its content: the person
# file, the proposals and the explanation read the stored rules (10 KB of JSON) and validate them
# once per process and version instead of on every request. The specs are shared between requests
# and threads: read them, never change them.
_SPECS: dict[tuple, RuleSetSpec] = {}
_SPECS_MAX = 32  # versions kept (a Département adds a few a year; tests add many databases)
_SPECS_LOCK = threading.Lock()


def _spec_key(row: RuleSet) -> tuple | None:
    if row.id is None or row.created_at is None:  # not stored yet: nothing names its content
        return None
    return (row.id, row.version, row.name, row.created_at)


def _parse_row(row: RuleSet) -> RuleSetSpec:
    rules = [dict(r) for r in row.rules if not r.get("fallback")]
    fallback = next((dict(r) for r in row.rules if r.get("fallback")), None)
    if fallback is not None:
        fallback.pop("fallback")
    spec = parse_rule_set({"name": row.name, "rules": rules, "fallback": fallback})
    spec.version = row.version
    return spec


def spec_of(row: RuleSet) -> RuleSetSpec:
    """The validated rules of a stored version (parsed once per process and version: see _SPECS)."""
    key = _spec_key(row)
    spec = _SPECS.get(key) if key is not None else None
    if spec is None:
        spec = _parse_row(row)
        if key is not None:
            with _SPECS_LOCK:
                if len(_SPECS) >= _SPECS_MAX:
                    _SPECS.clear()
                _SPECS[key] = spec
    return spec


def active_rule_set(session: Session) -> tuple[RuleSet, RuleSetSpec]:
    """The active rule set; the default YAML (v1) is stored on first use. The row comes without its
    rules and source text (loaded on first access): the spec of a version already parsed by this
    process needs neither."""
    row = session.scalar(select(RuleSet).options(defer(RuleSet.rules), defer(RuleSet.source_text))
                         .where(RuleSet.active.is_(True)).order_by(RuleSet.version.desc()).limit(1))
    if row is None:
        spec, text = load_default()
        row = store_rule_set(session, spec, text)
    return row, spec_of(row)


def store_rule_set(session: Session, spec: RuleSetSpec, source_text: str | None = None,
                   user_id: int | None = None, base_version: int | None = None) -> RuleSet:
    """Store a validated rule set as the new active version (every version is kept). Loading the
    same rules as the active version changes nothing. base_version guards against concurrent edits."""
    current = session.scalar(select(RuleSet).where(RuleSet.active.is_(True)).order_by(RuleSet.version.desc()).limit(1))
    if base_version is not None and (current.version if current else 0) != base_version:
        raise OrientationError(f"le jeu de règles a changé entre-temps (version active: "
                               f"{current.version if current else 'aucune'}, attendue: {base_version})")
    document = _document(spec)
    if current is not None and current.rules == document and current.name == spec.name:
        return current
    top = session.scalar(select(func.max(RuleSet.version))) or 0
    version = top + 1
    if spec.version is not None and spec.version > top:
        version = spec.version
    if current is not None:
        session.execute(update(RuleSet).where(RuleSet.active.is_(True)).values(active=False))
    row = RuleSet(version=version, name=spec.name, rules=document, source_text=source_text, active=True,
                  created_by=user_id)
    session.add(row)
    session.flush()
    return row


def load_rules_text(session: Session, text: str, user_id: int | None = None) -> RuleSet:
    """Validate a YAML rule set and make it the active version (RuleSetError when invalid)."""
    return store_rule_set(session, parse_yaml(text), text, user_id)


def load_rules_document(session: Session, doc: dict, user_id: int | None = None,
                        base_version: int | None = None) -> RuleSet:
    spec = parse_rule_set(doc)
    return store_rule_set(session, spec, json.dumps(doc, ensure_ascii=False, indent=2), user_id, base_version)


def rule_set_versions(session: Session) -> list[RuleSet]:
    return list(session.scalars(select(RuleSet).order_by(RuleSet.version)))


def get_rule_set(session: Session, version: int | None = None) -> RuleSet | None:
    if version is None:
        return active_rule_set(session)[0]
    return session.scalar(select(RuleSet).where(RuleSet.version == version))
