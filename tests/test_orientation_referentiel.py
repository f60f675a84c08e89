"""Issue 15: the default rule set v2 (the national référentiel applied by the Département) on hand-built
facts, and the loader's refusal of automatic validation on rules that read sensitive data."""

from __future__ import annotations

import datetime as dt

import pytest

from orientation.rules import (
    V1_RULES_PATH,
    V2_RULES_PATH,
    RuleSetError,
    explain,
    load_default,
    load_file,
    parse_rule_set,
    parse_yaml,
)
from referents.vocabulary import Organisme, Parcours
from tests.test_orientation_rules import AS_OF, facts


@pytest.fixture(scope="module")
def ev():
    spec, _ = load_default()
    return spec.compile(AS_OF)


def decide(ev, f):
    d = ev.evaluate(f)
    return d.rule.id, d.rule.parcours, d.rule.organisme, d.rule.mode


def test_v2_is_the_default_and_every_decision_rule_has_parcours_organisme_and_source():
    spec, text = load_default()
    assert spec.version == 2 and load_file(V2_RULES_PATH)[1] == text
    for rule in spec.rules:
        assert rule.source, rule.id
        if rule.outcome == "kiosque":
            assert rule.parcours is None and rule.organisme is None
        else:
            assert rule.parcours in Parcours.codes() and rule.organisme in Organisme.codes(), rule.id
    assert spec.fallback.source and spec.warnings == []
    # The five organismes of the law and the three parcours are all reachable.
    assert {r.organisme for r in spec.rules} - {None} == set(Organisme.codes())
    assert {r.parcours for r in spec.rules} - {None} == set(Parcours.codes())


def test_automatic_rules_read_no_sensitive_fact_and_come_first():
    spec, _ = load_default()
    auto = [r for r in spec.rules if r.mode == "auto"]
    assert [r.id for r in auto] == ["FT_ACCOMPANIED", "FT_GLOBAL", "SELF_EMPLOYED", "TRAINING_OR_STUDIES", "JOB_READY"]
    assert all(not r.sensitive for r in auto)
    first_sensitive = next(i for i, r in enumerate(spec.rules) if r.sensitive)
    assert all(spec.rules.index(r) < first_sensitive for r in auto)


def test_job_ready_cases_go_to_france_travail_in_the_emploi_parcours(ev):
    # A job seeker today, no diagnostic: automatic.
    assert decide(ev, facts(acts=[("CHR", dt.date(2026, 6, 1), None)])) == \
        ("JOB_READY", "emploi", "france_travail", "auto")
    # A job ended within the last two years (both bounds), no current activity.
    two_years = dt.date(2024, 11, 20)
    assert decide(ev, facts(acts=[("SAL", dt.date(2020, 1, 1), two_years)]))[0] == "JOB_READY"
    # Older than two years: not job-ready; a known activity → project building with ActiPro.
    assert decide(ev, facts(acts=[("SAL", dt.date(2020, 1, 1), two_years - dt.timedelta(days=1))])) == \
        ("PROJECT_SUPPORT", "socio_professionnel", "delegataire", "propose")
    # A recent job but a current sickness code: never sent to France Travail automatically.
    sick = facts(acts=[("SAL", dt.date(2020, 1, 1), dt.date(2026, 1, 1)), ("MAL", dt.date(2026, 2, 1), None)])
    assert decide(ev, sick)[0] != "JOB_READY" and decide(ev, sick)[3] == "propose"
    # With a diagnostic: an agent validates (the diagnostic holds health data).
    diag = dict(diagnostic__present=True, diagnostic__can_seek_work=True, diagnostic__education_level="cap",
                diagnostic__health="none", diagnostic__mobility="none")
    assert decide(ev, facts(**diag)) == ("JOB_READY_DIAGNOSED", "emploi", "france_travail", "propose")
    assert decide(ev, facts(**{**diag, "diagnostic__mobility": "medium"}))[:3] == \
        ("PROJECT_SUPPORT", "socio_professionnel", "delegataire")
    assert decide(ev, facts(**{**diag, "diagnostic__education_level": "none"}))[0] == "PROJECT_SUPPORT"


@pytest.mark.parametrize("kw", [
    dict(no_fixed_address=True),
    dict(acts=[("MAL", dt.date(2026, 1, 1), None)]),
    dict(acts=[("SSA", dt.date(2025, 1, 1), None)], diagnostic__present=True, diagnostic__housing="strong"),
    dict(diagnostic__present=True, diagnostic__caregiver="strong"),
    dict(diagnostic__present=True, diagnostic__language="strong", diagnostic__can_seek_work=True),
])
def test_social_priority_cases_go_to_the_departement_in_the_social_parcours(ev, kw):
    assert decide(ev, facts(**kw)) == ("SOCIAL_PRIORITY", "social", "departement", "propose")


def test_strong_obstacle_with_recent_activity_is_socio_professional(ev):
    f = facts(acts=[("SAL", dt.date(2024, 1, 1), dt.date(2026, 3, 1))], diagnostic__present=True,
              diagnostic__housing="strong", no_fixed_address=True)
    assert decide(ev, f)[:3] == ("PROJECT_SUPPORT", "socio_professionnel", "delegataire")


@pytest.mark.parametrize("code", ["SSA", "SIN"])
def test_project_support_does_not_fire_on_no_or_unknown_activity(ev, code):
    f = facts(acts=[(code, dt.date(2024, 1, 1), None)])
    assert decide(ev, f)[0] == "INSUFFICIENT_DATA"
    assert decide(ev, facts(acts=[(code, dt.date(2024, 1, 1), None), ("SAL", dt.date(2010, 1, 1),
                                                                       dt.date(2012, 1, 1))]))[0] == "PROJECT_SUPPORT"


def test_self_employed_training_ft_followed_disabled_and_young(ev):
    assert decide(ev, facts(acts=[("ETI", dt.date(2025, 3, 1), None)])) == \
        ("SELF_EMPLOYED", "socio_professionnel", "departement", "auto")
    assert decide(ev, facts(acts=[("SFP", dt.date(2026, 9, 1), None)])) == \
        ("TRAINING_OR_STUDIES", "socio_professionnel", "departement", "auto")
    ft = dict(ft__registered=True, ft__registered_on=dt.date(2026, 1, 5), ft__ppae=True,
              ft__ppae_signed_on=dt.date(2026, 2, 1))
    assert decide(ev, facts(**ft, ft__ppae_modality="REN")) == ("FT_ACCOMPANIED", "emploi", "france_travail", "auto")
    assert decide(ev, facts(**ft))[0] == "FT_ACCOMPANIED"  # modality unknown
    assert decide(ev, facts(**ft, ft__ppae_modality="GLO")) == \
        ("FT_GLOBAL", "socio_professionnel", "france_travail", "auto")
    assert decide(ev, facts(acts=[("HAN", dt.date(2020, 1, 1), None)])) == \
        ("CAP_EMPLOI_BOE", "emploi", "cap_emploi", "propose")
    assert decide(ev, facts(acts=[("HAN", dt.date(2020, 1, 1), None)], diagnostic__present=True,
                            diagnostic__health="strong"))[0] == "SOCIAL_PRIORITY"
    assert decide(ev, facts(age=24, acts=[("SSA", dt.date(2025, 1, 1), None)])) == \
        ("YOUTH_MISSION_LOCALE", "socio_professionnel", "mission_locale", "propose")
    assert decide(ev, facts(age=26, acts=[("SSA", dt.date(2025, 1, 1), None)]))[0] == "INSUFFICIENT_DATA"
    assert decide(ev, facts(age=24, acts=[("CHO", dt.date(2026, 1, 1), None)]))[0] == "JOB_READY"


def test_explanation_names_parcours_and_organisme_and_says_nobody_intervened(ev):
    f = facts(acts=[("CHR", dt.date(2026, 6, 1), None)])
    d = ev.evaluate(f)
    text = explain(d.rule, d.variant, 2, f, d.rule.facts_used)
    assert "parcours emploi, organisme référent France Travail" in text and "règle JOB_READY v2" in text
    assert "sans intervention humaine" in text
    assert "frein santé" not in text  # only the facts its own rule read


def _doc(rule: dict) -> dict:
    base = {"id": "R1", "label": "r", "outcome": "pole_emploi", "mode": "auto", "explain": "x"}
    return {"name": "t", "rules": [{**base, **rule}],
            "fallback": {"id": "FB", "label": "f", "outcome": "kiosque", "explain": "y"}}


@pytest.mark.parametrize("rule, what", [
    ({"id": "HEALTH_FIRST", "when": {"fact": "diagnostic.health", "eq": "none"}}, "frein santé"),
    ({"id": "DISABLED_TO_FT", "when": {"fact": "current_activity.code", "in": ["SAL", "HAN"]}},
     "activité actuelle (ACT) ∈ {HAN}"),
    ({"id": "NOT_SICK", "when": {"not": {"fact": "current_activity.code", "eq": "MAL"}}}, "{MAL}"),
    ({"id": "PAST_INVALIDITY", "when": {"some": "activities", "where": {"fact": "code", "in": ["INV"]}}}, "{INV}"),
    ({"id": "VARIANT_READS", "when": {"fact": "age", "gte": 18},
      "variants": [{"when": {"fact": "diagnostic.health", "eq": "none"}, "variant": "diplomes"}]}, "frein santé"),
    ({"id": "TELLS_HEALTH", "when": {"fact": "age", "gte": 18}, "explain": "santé: {diagnostic.health}"},
     "frein santé (cité par l'explication)"),
])
def test_automatic_validation_refused_on_a_rule_reading_sensitive_data(rule, what):
    with pytest.raises(RuleSetError) as exc:
        parse_rule_set(_doc(rule))
    message = str(exc.value)
    assert f"validation automatique est refusée pour la règle {rule['id']}" in message and what in message
    assert "art. 47" in message
    # The same rule with an agent's validation loads.
    assert parse_rule_set(_doc({**rule, "mode": "propose"})).rules[0].sensitive


def test_non_sensitive_conditions_and_v1_load(ev):
    ok = parse_rule_set(_doc({"when": {"all": [{"fact": "current_activity.code", "in": ["SAL", "CHO"]},
                                               {"fact": "current_activity.code", "present": True}]},
                              "parcours": "emploi", "source": "Référentiel §II"}))
    assert ok.rules[0].sensitive == () and ok.rules[0].parcours == "emploi" and ok.rules[0].organisme == "france_travail"
    with pytest.raises(RuleSetError, match="parcours inconnu 'pro'"):
        parse_rule_set(_doc({"when": {"fact": "age", "gte": 18}, "parcours": "pro"}))
    with pytest.raises(RuleSetError, match="ne donne pas de parcours"):
        parse_rule_set({"name": "t", "rules": [{"id": "KIO", "label": "k", "outcome": "kiosque", "parcours": "social",
                                                "when": {"fact": "age", "gte": 18}, "explain": "x"}],
                        "fallback": {"id": "FB", "label": "f", "outcome": "kiosque", "explain": "y"}})
    v1, _ = load_file(V1_RULES_PATH)
    # v1 loads: its rules default to the parcours of their referent type, with a warning on JOB_READY.
    assert [r.parcours for r in v1.rules][:5] == ["emploi", "socio_professionnel", "socio_professionnel", "social",
                                                  "emploi"]
    assert len(v1.warnings) == 1 and "JOB_READY" in v1.warnings[0] and "SOCIAL_PRIORITY" in v1.warnings[0]


def test_yaml_anchors_expand_into_the_stored_document():
    spec = parse_yaml(V2_RULES_PATH.read_text(encoding="utf-8"))
    doc = spec.as_document()
    job_ready = next(r for r in doc["rules"] if r["id"] == "JOB_READY")
    assert "*recent_activity" not in str(job_ready) and "within_months_before_as_of" in str(job_ready)
    assert "definitions" not in doc
