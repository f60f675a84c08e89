"""The tests written for the Département's v1 rules pin them: v2 (the référentiel) is the default since
issue 15, v1 stays loadable, and the engine's behaviour these tests check does not depend on which."""

from __future__ import annotations

from orientation.rules import V1_RULES_PATH


def use_rules_v1(session) -> None:
    """Make rules_v1.yaml the active rule set (version 1) before anything stores the default."""
    from orientation.rulesets import load_rules_text

    load_rules_text(session, V1_RULES_PATH.read_text(encoding="utf-8"))
