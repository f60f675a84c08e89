"""Issue 4: the rule language and the rule set v1 on hand-built facts (no database). v1 is no longer the
default (v2, the référentiel, is: tests/test_orientation_referentiel.py) but stays loadable."""

from __future__ import annotations

import datetime as dt

import pytest

from orientation.rules import (
    CONSTRAINT_KEYS,
    V1_RULES_PATH,
    RuleSetError,
    explain,
    load_file,
    months_before,
    normalise_education,
    parse_rule_set,
    parse_yaml,
)

AS_OF = dt.date(2026, 11, 20)


def facts(**kw) -> dict:
    """A full facts dict (what orientation.facts builds) with defaults: no activity, nothing known."""
    f = {"role": "DEM", "age": 40, "sdd": True, "right_state": "2", "household.adults": 1,
         "household.children_count": 0, "household.family_situation": None, "household.benefit_nature": None,
         "no_fixed_address": False, "commune": "31555", "postal_code": "31400",
         "current_activity.code": None, "current_activity.start_on": None, "current_activity.end_on": None,
         "activities": [], "activities.count": 0, "ft.registered": False, "ft.registered_on": None,
         "ft.ppae": False, "ft.ppae_signed_on": None, "ft.ppae_modality": None, "diagnostic.present": False,
         "diagnostic.recorded_on": None, "diagnostic.education_level": None, "diagnostic.can_seek_work": None,
         **{f"diagnostic.{k}": None for k in CONSTRAINT_KEYS}, "path.clock_start": dt.date(2026, 10, 1)}
    acts = kw.pop("acts", None)
    if acts is not None:
        items = [{"code": c, "start_on": s, "end_on": e, "current": e is None or e >= AS_OF} for c, s, e in acts]
        f["activities"], f["activities.count"] = items, len(items)
        current = [i for i in items if i["current"] and (i["start_on"] or dt.date.min) <= AS_OF]
        if current:
            cur = max(current, key=lambda i: i["start_on"] or dt.date.min)
            f["current_activity.code"], f["current_activity.start_on"] = cur["code"], cur["start_on"]
            f["current_activity.end_on"] = cur["end_on"]
    for k, v in kw.items():
        f[k.replace("__", ".")] = v
    return f


@pytest.fixture(scope="module")
def ev():
    spec, _ = load_v1()
    spec.version = 1
    return spec.compile(AS_OF)


def decide(ev, f):
    d = ev.evaluate(f)
    return d.rule.id, d.rule.outcome, d.rule.mode, d.variant


def load_v1():
    return load_file(V1_RULES_PATH)


def test_v1_rule_set_loads_in_order():
    spec, text = load_v1()
    assert [r.id for r in spec.rules] == ["FT_ACCOMPANIED", "SELF_EMPLOYED", "TRAINING_OR_STUDIES", "SOCIAL_PRIORITY",
                                          "JOB_READY", "PROJECT_SUPPORT", "INSUFFICIENT_DATA"]
    assert spec.version == 1 and "Règles" in spec.name and spec.fallback.outcome == "kiosque"
    assert "FT_ACCOMPANIED" in text


def test_ft_accompanied_needs_registration_and_ppae(ev):
    reg = dict(ft__registered=True, ft__registered_on=dt.date(2026, 9, 1))
    assert decide(ev, facts(**reg, ft__ppae=True, ft__ppae_signed_on=dt.date(2026, 9, 15),
                            acts=[("ETI", dt.date(2025, 3, 1), None)])) == \
        ("FT_ACCOMPANIED", "pole_emploi", "auto", None)
    # registered without PPAE: not this rule (falls to the next applicable one)
    assert decide(ev, facts(**reg, acts=[("ETI", dt.date(2025, 3, 1), None)]))[0] == "SELF_EMPLOYED"
    assert decide(ev, facts(ft__ppae=True))[0] == "INSUFFICIENT_DATA"


@pytest.mark.parametrize("code", ["ETI", "EXP", "MAR", "CJT"])
def test_self_employed(ev, code):
    assert decide(ev, facts(acts=[(code, dt.date(2025, 3, 1), None)])) == ("SELF_EMPLOYED", "ati", "auto", None)


@pytest.mark.parametrize("code", ["ETU", "ETS", "EBO", "SFP", "APP", "PIL", "SNR"])
def test_training_or_studies(ev, code):
    assert decide(ev, facts(acts=[(code, dt.date(2026, 9, 1), None)])) == ("TRAINING_OR_STUDIES", "ati", "auto", None)


def test_current_activity_boundaries(ev):
    # DFACT = as-of: still the current activity
    assert decide(ev, facts(acts=[("ETI", dt.date(2020, 1, 1), AS_OF)]))[0] == "SELF_EMPLOYED"
    # DFACT the day before: a past activity only → project support
    assert decide(ev, facts(acts=[("ETI", dt.date(2020, 1, 1), AS_OF - dt.timedelta(days=1))]))[0] == \
        "PROJECT_SUPPORT"


@pytest.mark.parametrize("kw", [
    {"no_fixed_address": True},
    {"acts": [("MAL", dt.date(2026, 1, 1), None)]},
    {"acts": [("HAN", dt.date(2026, 1, 1), None)]},
    {"diagnostic__present": True, "diagnostic__health": "strong"},
    {"diagnostic__present": True, "diagnostic__housing": "strong"},
    {"diagnostic__present": True, "diagnostic__family": "strong"},
])
def test_social_priority(ev, kw):
    assert decide(ev, facts(**kw)) == ("SOCIAL_PRIORITY", "mds", "propose", None)


def test_social_priority_not_for_medium_constraints(ev):
    f = facts(diagnostic__present=True, diagnostic__health="medium", diagnostic__housing="medium",
              acts=[("SSA", dt.date(2025, 1, 1), None)])
    assert decide(ev, f)[0] == "PROJECT_SUPPORT"


def test_self_employed_comes_before_social_priority(ev):
    assert decide(ev, facts(no_fixed_address=True, acts=[("ETI", dt.date(2025, 1, 1), None)]))[0] == "SELF_EMPLOYED"


@pytest.mark.parametrize("code", ["CHO", "CHR", "ASS", "INT", "TSA"])
def test_job_ready_job_seekers(ev, code):
    assert decide(ev, facts(acts=[(code, dt.date(2026, 6, 1), None)])) == ("JOB_READY", "pole_emploi", "auto", None)


def test_job_ready_salaried_ended_within_24_months_boundaries(ev):
    exactly = months_before(AS_OF, 24)
    assert exactly == dt.date(2024, 11, 20)
    assert decide(ev, facts(acts=[("SAL", dt.date(2020, 1, 1), exactly)]))[0] == "JOB_READY"
    assert decide(ev, facts(acts=[("SAL", dt.date(2020, 1, 1), exactly - dt.timedelta(days=1))]))[0] == \
        "PROJECT_SUPPORT"
    # ended on the as-of date itself: within the 24 months
    assert decide(ev, facts(acts=[("SAL", dt.date(2024, 1, 1), AS_OF)]))[0] == "JOB_READY"
    # another code ended recently does not count
    assert decide(ev, facts(acts=[("SSA", dt.date(2024, 1, 1), dt.date(2026, 1, 1))]))[0] == "PROJECT_SUPPORT"


def test_project_support_and_diplomes_variant(ev):
    base = dict(acts=[("SSA", dt.date(2025, 1, 1), None)])
    assert decide(ev, facts(**base)) == ("PROJECT_SUPPORT", "actipro", "propose", None)
    assert decide(ev, facts(**base, diagnostic__present=True, diagnostic__education_level="bac+5")) == \
        ("PROJECT_SUPPORT", "actipro", "propose", "diplomes")
    assert decide(ev, facts(**base, diagnostic__present=True, diagnostic__education_level="bac+4"))[3] == "diplomes"
    assert decide(ev, facts(**base, diagnostic__present=True, diagnostic__education_level="bac+3"))[3] is None
    assert normalise_education("Master") == "bac+5" and normalise_education("M1") == "bac+4"
    assert normalise_education("n'importe quoi") is None


def test_insufficient_data_and_fallback(ev):
    assert decide(ev, facts()) == ("INSUFFICIENT_DATA", "kiosque", "kiosque", None)
    # a diagnostic without strong constraint and no activity: no rule applies → the fallback (kiosque)
    assert decide(ev, facts(diagnostic__present=True, diagnostic__health="none")) == \
        ("NO_RULE_MATCHED", "kiosque", "kiosque", None)


def test_explanation_in_french_names_rule_version_facts_and_algorithm(ev):
    f = facts(acts=[("ETI", dt.date(2025, 3, 1), None)])
    d = ev.evaluate(f)
    text = explain(d.rule, d.variant, 1, f, d.facts_read)
    assert text.startswith("Travailleur indépendant (ACT=ETI depuis le 2025-03-01) → ATI")
    assert "règle SELF_EMPLOYED v1" in text and "algorithme" in text
    assert "inscrit(e) à France Travail = non" in text and "activité actuelle (ACT) = ETI" in text
    assert d.facts_read == ("ft.registered", "ft.ppae", "current_activity.code")


def _doc(when, **rule):
    return {"name": "t", "rules": [{"id": "R1", "label": "r", "outcome": "ati", "mode": "auto", "when": when,
                                    "explain": "x", **rule}],
            "fallback": {"id": "FB", "label": "f", "outcome": "kiosque", "explain": "y"}}


@pytest.mark.parametrize("when, message", [
    ({"fact": "curent_activity.code", "in": ["ETI"]}, "fait inconnu 'curent_activity.code'"),
    ({"fact": "current_activity.code", "among": ["ETI"]}, "opérateur inconnu 'among'"),
    ({"fact": "age", "at_least": "bac"}, "ne s'applique pas"),
    ({"fact": "diagnostic.health", "eq": "severe"}, "niveau inconnu 'severe'"),
    ({"fact": "current_activity.code", "in": []}, "liste non vide"),
    ({"every": []}, "forme de condition inconnue"),
    ({"some": "activities", "where": {"fact": "kode", "eq": "SAL"}}, "fait inconnu 'kode'"),
    ({"some": "age", "where": {"fact": "code", "eq": "SAL"}}, "fait liste"),
    ({"fact": "activities.count", "gte": -1}, "entier positif"),
    ({"fact": ["age"], "eq": 1}, "fait inconnu"),
    ({"some": ["activities"], "where": {"fact": "code", "eq": "SAL"}}, "fait liste"),
    ([{"fact": "age", "eq": 1}], "condition attendue"),
])
def test_invalid_conditions_rejected_at_load(when, message):
    with pytest.raises(RuleSetError) as exc:
        parse_rule_set(_doc(when))
    assert message in str(exc.value) and "R1" in str(exc.value)


def test_invalid_rule_sets_rejected():
    ok = {"fact": "age", "gte": 18}
    with pytest.raises(RuleSetError, match="résultat inconnu"):
        parse_rule_set(_doc(ok, outcome="prefecture"))
    with pytest.raises(RuleSetError, match="mode 'kiosque'"):
        parse_rule_set(_doc(ok, mode="kiosque"))
    with pytest.raises(RuleSetError, match="fait inconnu"):
        parse_rule_set(_doc(ok, explain="âge {agee}"))
    doc = _doc(ok)
    doc["rules"].append(dict(doc["rules"][0]))
    with pytest.raises(RuleSetError, match="en double"):
        parse_rule_set(doc)
    doc = _doc(ok)
    del doc["fallback"]
    with pytest.raises(RuleSetError, match="fallback"):
        parse_rule_set(doc)
    with pytest.raises(RuleSetError, match="YAML illisible"):
        parse_yaml("rules: [unclosed")


def test_language_operators():
    doc = _doc({"all": [{"fact": "age", "gte": 25}, {"not": {"fact": "role", "eq": "CJT"}},
                        {"any": [{"fact": "diagnostic.mobility", "at_least": "medium"},
                                 {"fact": "ft.registered_on", "within_months_before_as_of": 1}]}]})
    ev = parse_rule_set(doc).compile(AS_OF)
    assert ev.evaluate(facts(age=30, diagnostic__mobility="strong")).rule.id == "R1"
    assert ev.evaluate(facts(age=24, diagnostic__mobility="strong")).rule.id == "FB"
    assert ev.evaluate(facts(age=30, role="CJT", diagnostic__mobility="strong")).rule.id == "FB"
    assert ev.evaluate(facts(age=30, ft__registered_on=dt.date(2026, 10, 20))).rule.id == "R1"
    assert ev.evaluate(facts(age=30, ft__registered_on=dt.date(2026, 10, 19))).rule.id == "FB"
    assert ev.evaluate(facts(age=None)).rule.id == "FB"


def test_months_before_clamps_month_end():
    assert months_before(dt.date(2026, 3, 31), 1) == dt.date(2026, 2, 28)
    assert months_before(dt.date(2026, 1, 15), 24) == dt.date(2024, 1, 15)
