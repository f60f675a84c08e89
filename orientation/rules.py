"""Orientation rules as data: a small declarative condition language over a person's facts.

A rule set is a YAML (or JSON) document, validated entirely when it is loaded: an unknown fact,
operator, outcome or template placeholder is refused with a message naming the rule, so that a
rule set that loads can always be evaluated. Conditions are compiled once per run into closures
(fast enough for 100,000 persons). The language is documented in docs/orientation.md.

Condition forms:
    {all: [c, ...]}   {any: [c, ...]}   {not: c}
    {fact: NAME, OP: VALUE}                      one comparison on one fact
    {some: activities, where: c}                 at least one item of a list fact matches c
                                                 (inside `where`, facts are the item's fields)
Operators: eq, ne, in, not_in, is, present, gt, gte, lt, lte (numbers), at_least, at_most (ordered
levels), within_months_before_as_of (dates: as_of - N months <= date <= as_of).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orientation.vocabulary import VARIANT_LABELS
from referents.vocabulary import OUTCOMES, ObstacleDomain, ObstacleImpact, Organisme, Outcome, Parcours
from referents.vocabulary import default_parcours_of as _default_parcours_of
from referents.vocabulary import organisme_of as _organisme_of

DATA_DIR = Path(__file__).resolve().parent / "data"
V1_RULES_PATH = DATA_DIR / "rules_v1.yaml"
V2_RULES_PATH = DATA_DIR / "rules_v2.yaml"
DEFAULT_RULES_PATH = V2_RULES_PATH  # the référentiel (v2) is the default; v1 stays loadable

MODES = ("auto", "propose", "kiosque")

CONSTRAINT_LEVELS = ObstacleImpact.codes()
CONSTRAINT_KEYS = ObstacleDomain.codes()
# CAF activity codes (ACT) that reveal health, disability or invalidity: a condition that names one of
# them reads sensitive data (art. 9 RGPD, art. 6 loi Informatique et Libertés).
SENSITIVE_ACTIVITY_CODES = frozenset({"MAL", "MLD", "INV", "INP", "HAN", "AAP", "CAT", "SAV", "INF", "CLD", "SCI",
                                      "SAC"})
EDUCATION_LEVELS = ("none", "cap", "bac", "bac+2", "bac+3", "bac+4", "bac+5", "bac+8")
EDUCATION_ALIASES = {
    "aucun": "none", "sans": "none", "primaire": "none", "college": "none", "brevet": "none",
    "bep": "cap", "cap_bep": "cap", "cap/bep": "cap",
    "bts": "bac+2", "dut": "bac+2", "deug": "bac+2",
    "licence": "bac+3", "bachelor": "bac+3",
    "master1": "bac+4", "master 1": "bac+4", "m1": "bac+4", "maitrise": "bac+4",
    "master": "bac+5", "master2": "bac+5", "master 2": "bac+5", "m2": "bac+5", "ingenieur": "bac+5",
    "doctorat": "bac+8", "phd": "bac+8",
}


def normalise_education(value: str | None) -> str | None:
    """The canonical level of a free-text education level (None when unknown)."""
    if not value:
        return None
    v = value.strip().lower().replace("é", "e").replace("î", "i")
    if v in EDUCATION_LEVELS:
        return v
    return EDUCATION_ALIASES.get(v)


@dataclass(frozen=True)
class FactSpec:
    kind: str  # str | int | bool | date | level | list
    label: str
    levels: tuple[str, ...] = ()
    item_fields: dict[str, FactSpec] = field(default_factory=dict)
    sensitive: bool = False  # any condition on it reads health / disability data
    sensitive_values: frozenset = frozenset()  # or only a condition naming one of these values


_ACTIVITY_ITEM = {
    "code": FactSpec("str", "code activité (ACT)", sensitive_values=SENSITIVE_ACTIVITY_CODES),
    "start_on": FactSpec("date", "début (DDACT)"),
    "end_on": FactSpec("date", "fin (DFACT)"),
    "current": FactSpec("bool", "activité en cours"),
}

FACTS: dict[str, FactSpec] = {
    "role": FactSpec("str", "rôle RSA"),
    "age": FactSpec("int", "âge"),
    "sdd": FactSpec("bool", "soumis aux droits et devoirs"),
    "right_state": FactSpec("str", "état du droit (ETATDOSRSA)"),
    "household.adults": FactSpec("int", "adultes du foyer (DEM/CJT)"),
    "household.children_count": FactSpec("int", "enfants du foyer"),
    "household.family_situation": FactSpec("str", "situation familiale"),
    "household.benefit_nature": FactSpec("str", "nature de la prestation"),
    "no_fixed_address": FactSpec("bool", "sans domicile fixe"),
    "commune": FactSpec("str", "commune (INSEE)"),
    "postal_code": FactSpec("str", "code postal"),
    "current_activity.code": FactSpec("str", "activité actuelle (ACT)", sensitive_values=SENSITIVE_ACTIVITY_CODES),
    "current_activity.start_on": FactSpec("date", "début de l'activité actuelle"),
    "current_activity.end_on": FactSpec("date", "fin de l'activité actuelle"),
    "activities.count": FactSpec("int", "nombre d'activités connues"),
    "activities": FactSpec("list", "activités connues", item_fields=_ACTIVITY_ITEM),
    "ft.registered": FactSpec("bool", "inscrit(e) à France Travail"),
    "ft.registered_on": FactSpec("date", "date d'inscription à France Travail"),
    "ft.ppae": FactSpec("bool", "PPAE signé"),
    "ft.ppae_signed_on": FactSpec("date", "date de signature du PPAE"),
    "ft.ppae_modality": FactSpec("str", "modalité d'accompagnement France Travail"),
    "ft.preconisation": FactSpec("str", "parcours préconisé par France Travail (emploi, socio_professionnel, social)"),
    "ft.preconisation_on": FactSpec("date", "date de la préconisation de France Travail"),
    "ft.followed": FactSpec("bool", "déjà accompagné(e) par France Travail (orientation ou contrat avec France "
                                    "Travail, ou PPAE)"),
    "diagnostic.present": FactSpec("bool", "diagnostic enregistré"),
    "diagnostic.recorded_on": FactSpec("date", "date du diagnostic"),
    "diagnostic.education_level": FactSpec("level", "niveau de formation", levels=EDUCATION_LEVELS),
    "diagnostic.can_seek_work": FactSpec("bool", "peut rechercher un emploi maintenant"),
    **{f"diagnostic.{d.value}": FactSpec("level", f"frein {d.label}", levels=CONSTRAINT_LEVELS,
                                         sensitive=d is ObstacleDomain.HEALTH) for d in ObstacleDomain},
    "path.clock_start": FactSpec("date", "début du délai légal"),
}

OPERATORS = {
    "eq": ("str", "int", "bool", "level", "date"),
    "ne": ("str", "int", "bool", "level", "date"),
    "in": ("str", "int", "level"),
    "not_in": ("str", "int", "level"),
    "is": ("bool",),
    "present": ("str", "int", "bool", "level", "date", "list"),
    "gt": ("int",), "gte": ("int",), "lt": ("int",), "lte": ("int",),
    "at_least": ("level",), "at_most": ("level",),
    "within_months_before_as_of": ("date",),
}
LIST_FACTS = {name for name, spec in FACTS.items() if spec.kind == "list"}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
_RULE_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,59}$")


class RuleSetError(ValueError):
    """A rule set that cannot be loaded; the message says where and why (in French)."""


def sensitive_reads(cond: Any, specs: dict[str, FactSpec] | None = None) -> list[str]:
    """What a (validated) condition reads of sensitive data, in French: the facts on health, disability
    or invalidity, and the activity codes that reveal them. Empty when the condition reads none."""
    specs = FACTS if specs is None else specs
    out: list[str] = []
    if not isinstance(cond, dict):
        return out
    if "all" in cond or "any" in cond:
        for c in cond.get("all") or cond.get("any") or ():
            out.extend(x for x in sensitive_reads(c, specs) if x not in out)
        return out
    if "not" in cond:
        return sensitive_reads(cond["not"], specs)
    if "some" in cond:
        item = specs[cond["some"]].item_fields
        return [f"{cond['some']} › {x}" for x in sensitive_reads(cond["where"], item)]
    name = cond["fact"]
    spec = specs[name]
    if spec.sensitive:
        return [spec.label]
    if spec.sensitive_values:
        op = next(k for k in cond if k != "fact")
        values = cond[op] if isinstance(cond[op], list) else [cond[op]]
        named = sorted(v for v in values if v in spec.sensitive_values)
        if named:
            return [f"{spec.label} ∈ {{{', '.join(named)}}}"]
    return out


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day N months earlier (clamped to the end of a shorter month)."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    m += 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(y, m, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


# --- validation ------------------------------------------------------------------------------

def _check_condition(cond: Any, where: str, facts: dict[str, FactSpec], used: set[str]) -> None:
    if not isinstance(cond, dict) or not cond:
        raise RuleSetError(f"{where}: condition attendue (dictionnaire), reçu {cond!r}")
    keys = set(cond)
    if keys == {"all"} or keys == {"any"}:
        op = next(iter(keys))
        items = cond[op]
        if not isinstance(items, list) or not items:
            raise RuleSetError(f"{where}: '{op}' attend une liste non vide de conditions")
        for i, c in enumerate(items, 1):
            _check_condition(c, f"{where} › {op}[{i}]", facts, used)
        return
    if keys == {"not"}:
        _check_condition(cond["not"], f"{where} › not", facts, used)
        return
    if keys == {"some", "where"}:
        name = cond["some"]
        spec = facts.get(name) if isinstance(name, str) else None
        if spec is None or spec.kind != "list":
            raise RuleSetError(f"{where}: 'some' attend un fait liste ({', '.join(sorted(LIST_FACTS))}), reçu {name!r}")
        used.add(name)
        _check_condition(cond["where"], f"{where} › some {name}", spec.item_fields, set())
        return
    if "fact" in keys:
        name = cond["fact"]
        if not isinstance(name, str) or name not in facts:
            raise RuleSetError(f"{where}: fait inconnu {name!r} (faits connus: {', '.join(sorted(facts))})")
        ops = keys - {"fact"}
        if len(ops) != 1:
            raise RuleSetError(f"{where}: une comparaison attend exactement un opérateur, reçu {sorted(ops)}")
        op = ops.pop()
        if op not in OPERATORS:
            raise RuleSetError(f"{where}: opérateur inconnu {op!r} (opérateurs: {', '.join(OPERATORS)})")
        spec = facts[name]
        if spec.kind not in OPERATORS[op]:
            raise RuleSetError(f"{where}: l'opérateur {op!r} ne s'applique pas au fait {name!r} ({spec.kind})")
        value = cond[op]
        _check_value(op, value, spec, f"{where} ({name} {op})")
        used.add(name)
        return
    raise RuleSetError(f"{where}: forme de condition inconnue {sorted(keys)} "
                       "(attendu: all, any, not, some/where ou fact + opérateur)")


def _check_value(op: str, value: Any, spec: FactSpec, where: str) -> None:
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleSetError(f"{where}: liste non vide attendue")
        values = value
    elif op in ("is", "present"):
        if not isinstance(value, bool):
            raise RuleSetError(f"{where}: true ou false attendu")
        return
    elif op in ("gt", "gte", "lt", "lte", "within_months_before_as_of"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RuleSetError(f"{where}: entier positif attendu")
        return
    else:
        values = [value]
    for v in values:
        if spec.kind == "level" and v not in spec.levels:
            raise RuleSetError(f"{where}: niveau inconnu {v!r} (niveaux: {', '.join(spec.levels)})")
        if spec.kind == "int" and (not isinstance(v, int) or isinstance(v, bool)):
            raise RuleSetError(f"{where}: entier attendu, reçu {v!r}")
        if spec.kind == "str" and not isinstance(v, str | int):
            raise RuleSetError(f"{where}: texte attendu, reçu {v!r}")


def _check_template(text: Any, where: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        raise RuleSetError(f"{where}: modèle d'explication (texte) manquant")
    names = _PLACEHOLDER.findall(text)
    for name in names:
        if name not in FACTS or FACTS[name].kind == "list":
            raise RuleSetError(f"{where}: le modèle cite un fait inconnu {{{name}}}")
    return names


@dataclass
class Rule:
    id: str
    label: str
    outcome: str
    mode: str
    when: dict | None
    explain: str
    variants: list[dict]
    facts_used: tuple[str, ...]  # the facts its conditions read (order of first use)
    parcours_code: str | None = None  # as written in the rule set (None: the referent type's default)
    source: str | None = None  # the article / line of the référentiel the rule applies
    sensitive: tuple[str, ...] = ()  # what its conditions read of health / disability data

    @property
    def parcours(self) -> str | None:
        """The parcours the rule gives (None for a kiosque invitation: no decision yet)."""
        return self.parcours_code or _default_parcours_of(self.outcome)

    @property
    def organisme(self) -> str | None:
        return _organisme_of(self.outcome)

    def as_dict(self) -> dict:
        d = {"id": self.id, "label": self.label, "outcome": self.outcome, "mode": self.mode,
             "explain": self.explain}
        if self.parcours_code is not None:
            d["parcours"] = self.parcours_code
        if self.source is not None:
            d["source"] = self.source
        if self.when is not None:
            d["when"] = self.when
        if self.variants:
            d["variants"] = self.variants
        return d


@dataclass
class RuleSetSpec:
    """A validated rule set (not yet bound to a date)."""

    name: str
    rules: list[Rule]
    fallback: Rule
    version: int | None = None
    # French notes on a valid rule set the Département should read (e.g. an automatic rule placed
    # after a rule reading sensitive data, whose decisions then depend on that data by exclusion).
    warnings: list[str] = field(default_factory=list)

    def as_document(self) -> dict:
        """The document stored in RuleSet.rules (and exported by `rules show`)."""
        return {"rules": [r.as_dict() for r in self.rules], "fallback": self.fallback.as_dict()}

    def rule(self, rule_id: str) -> Rule | None:
        for r in (*self.rules, self.fallback):
            if r.id == rule_id:
                return r
        return None

    def compile(self, as_of: dt.date) -> Evaluator:
        return Evaluator(self, as_of)


def _parse_rule(raw: Any, where: str, fallback: bool = False) -> Rule:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{where}: règle attendue (dictionnaire)")
    allowed = {"id", "label", "outcome", "mode", "when", "explain", "variants", "parcours", "source"}
    unknown = set(raw) - allowed
    if unknown:
        raise RuleSetError(f"{where}: clés inconnues {sorted(unknown)} (clés: {', '.join(sorted(allowed))})")
    rid = raw.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        raise RuleSetError(f"{where}: identifiant de règle invalide {rid!r} (MAJUSCULES_ET_CHIFFRES)")
    where = f"{where} ({rid})"
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        raise RuleSetError(f"{where}: libellé manquant")
    outcome = raw.get("outcome")
    if outcome not in OUTCOMES:
        raise RuleSetError(f"{where}: résultat inconnu {outcome!r} (résultats: {', '.join(OUTCOMES)})")
    mode = raw.get("mode", "kiosque" if outcome == "kiosque" else None)
    if mode not in MODES:
        raise RuleSetError(f"{where}: mode inconnu {mode!r} (modes: {', '.join(MODES)})")
    if (outcome == "kiosque") != (mode == "kiosque"):
        raise RuleSetError(f"{where}: le mode 'kiosque' va avec le résultat 'kiosque' et lui seul")
    parcours = raw.get("parcours")
    if parcours is not None:
        if outcome == "kiosque":
            raise RuleSetError(f"{where}: une invitation au Kiosque ne donne pas de parcours")
        if parcours not in Parcours.codes():
            raise RuleSetError(f"{where}: parcours inconnu {parcours!r} (parcours: {', '.join(Parcours.codes())})")
    source = raw.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise RuleSetError(f"{where}: 'source' attend le texte de la source (article, ligne du référentiel)")
    used: set[str] = set()
    when = raw.get("when")
    if fallback:
        if when is not None:
            raise RuleSetError(f"{where}: la règle par défaut ne prend pas de condition")
    else:
        if when is None:
            raise RuleSetError(f"{where}: condition 'when' manquante")
        _check_condition(when, where, FACTS, used)
    placeholders = _check_template(raw.get("explain"), where)
    variants = raw.get("variants") or []
    if not isinstance(variants, list):
        raise RuleSetError(f"{where}: 'variants' attend une liste")
    for i, v in enumerate(variants, 1):
        if not isinstance(v, dict) or set(v) != {"when", "variant"} or not isinstance(v["variant"], str):
            raise RuleSetError(f"{where}: variante {i}: attendu {{when: …, variant: nom}}")
        _check_condition(v["when"], f"{where} › variante {v['variant']}", FACTS, used)
    ordered = tuple(sorted(used, key=lambda n: list(FACTS).index(n)))
    sensitive = sensitive_reads(when) if when is not None else []
    for v in variants:
        sensitive += [x for x in sensitive_reads(v["when"]) if x not in sensitive]
    # The explanation's placeholders are stored with the decision too.
    sensitive += [f"{FACTS[n].label} (cité par l'explication)" for n in dict.fromkeys(placeholders)
                  if FACTS[n].sensitive]
    if mode == "auto" and sensitive:
        raise RuleSetError(
            f"{where}: la validation automatique est refusée pour la règle {rid}: ses conditions lisent des "
            f"données sensibles ({'; '.join(sensitive)}). Une décision fondée exclusivement sur un traitement "
            "automatisé ne peut pas reposer sur ces données (art. 22 RGPD, art. 47 loi Informatique et "
            "Libertés): choisissez le mode 'propose' (validation par un agent).")
    return Rule(id=rid, label=label.strip(), outcome=outcome, mode=mode, when=when,
                explain=raw["explain"].strip(), variants=variants, facts_used=ordered,
                parcours_code=parcours, source=source.strip() if source else None, sensitive=tuple(sensitive))


def parse_rule_set(doc: Any) -> RuleSetSpec:
    """Validate a rule-set document ({name, rules: [...], fallback: {...}}; version optional)."""
    if not isinstance(doc, dict):
        raise RuleSetError("jeu de règles: document attendu (dictionnaire)")
    unknown = set(doc) - {"name", "version", "rules", "fallback", "description", "definitions"}
    if unknown:
        raise RuleSetError(f"jeu de règles: clés inconnues {sorted(unknown)}")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleSetError("jeu de règles: liste 'rules' non vide attendue")
    rules = [_parse_rule(r, f"règle {i}") for i, r in enumerate(raw_rules, 1)]
    if doc.get("fallback") is None:
        raise RuleSetError("jeu de règles: règle par défaut 'fallback' manquante (personne sans règle applicable)")
    fallback = _parse_rule(doc["fallback"], "règle par défaut", fallback=True)
    ids = [r.id for r in rules] + [fallback.id]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RuleSetError(f"jeu de règles: identifiants en double: {', '.join(dupes)}")
    version = doc.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise RuleSetError("jeu de règles: 'version' doit être un entier ≥ 1")
    warnings, sensitive_before = [], None
    for r in rules:
        if r.mode == "auto" and sensitive_before is not None:
            warnings.append(f"règle {r.id}: validation automatique placée après la règle {sensitive_before}, qui lit "
                            "des données sensibles: ses décisions en dépendent par exclusion; placez-la avant ou "
                            "passez-la en mode 'propose'")
        if r.sensitive and sensitive_before is None:
            sensitive_before = r.id
    return RuleSetSpec(name=str(doc.get("name") or ""), rules=rules, fallback=fallback, version=version,
                       warnings=warnings)


def parse_yaml(text: str) -> RuleSetSpec:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"YAML illisible: {exc}") from exc
    return parse_rule_set(doc)


def load_file(path: Path | str) -> tuple[RuleSetSpec, str]:
    text = Path(path).read_text(encoding="utf-8")
    return parse_yaml(text), text


def load_default() -> tuple[RuleSetSpec, str]:
    """The default rule set: the référentiel applied by the Département (v2)."""
    return load_file(DEFAULT_RULES_PATH)


# --- compilation and evaluation ----------------------------------------------------------------

Predicate = Callable[[dict], bool]


def _compile(cond: dict, as_of: dt.date, specs: dict[str, FactSpec]) -> Predicate:
    if "all" in cond:
        parts = [_compile(c, as_of, specs) for c in cond["all"]]
        return lambda f: all(p(f) for p in parts)
    if "any" in cond:
        parts = [_compile(c, as_of, specs) for c in cond["any"]]
        return lambda f: any(p(f) for p in parts)
    if "not" in cond:
        inner = _compile(cond["not"], as_of, specs)
        return lambda f: not inner(f)
    if "some" in cond:
        name = cond["some"]
        inner = _compile(cond["where"], as_of, specs[name].item_fields)
        return lambda f: any(inner(item) for item in (f.get(name) or ()))
    name = cond["fact"]
    op = next(k for k in cond if k != "fact")
    value = cond[op]
    spec = specs[name]
    if op == "eq":
        return lambda f: f.get(name) == value
    if op == "ne":
        return lambda f: f.get(name) != value
    if op == "in":
        values = frozenset(value)
        return lambda f: f.get(name) in values
    if op == "not_in":
        values = frozenset(value)
        return lambda f: f.get(name) is not None and f.get(name) not in values
    if op == "is":
        return lambda f: bool(f.get(name)) is value
    if op == "present":
        return lambda f: (f.get(name) not in (None, [], "")) is value
    if op in ("gt", "gte", "lt", "lte"):
        cmp = {"gt": lambda a: a > value, "gte": lambda a: a >= value,
               "lt": lambda a: a < value, "lte": lambda a: a <= value}[op]
        return lambda f: f.get(name) is not None and cmp(f[name])
    if op in ("at_least", "at_most"):
        rank = {lvl: i for i, lvl in enumerate(spec.levels)}
        bound = rank[value]
        if op == "at_least":
            return lambda f: rank.get(f.get(name), -1) >= bound
        return lambda f: f.get(name) in rank and rank[f[name]] <= bound
    if op == "within_months_before_as_of":
        low = months_before(as_of, value)
        return lambda f: f.get(name) is not None and low <= f[name] <= as_of
    raise RuleSetError(f"opérateur inconnu {op!r}")  # pragma: no cover - rejected at load


@dataclass(frozen=True)
class Decision:
    rule: Rule
    variant: str | None
    facts_read: tuple[str, ...]  # facts read by every rule evaluated up to the match


class Evaluator:
    """A rule set bound to an as-of date: evaluate(facts) -> Decision (first match wins)."""

    def __init__(self, spec: RuleSetSpec, as_of: dt.date):
        self.spec = spec
        self.as_of = as_of
        self._rules = []
        read: list[str] = []
        for rule in spec.rules:
            for name in rule.facts_used:
                if name not in read:
                    read.append(name)
            variants = [(_compile(v["when"], as_of, FACTS), v["variant"]) for v in rule.variants]
            self._rules.append((rule, _compile(rule.when, as_of, FACTS), variants, tuple(read)))
        self._fallback_read = tuple(read)

    def evaluate(self, facts: dict) -> Decision:
        for rule, pred, variants, read in self._rules:
            if pred(facts):
                variant = next((name for vpred, name in variants if vpred(facts)), None)
                return Decision(rule, variant, read)
        return Decision(self.spec.fallback, None, self._fallback_read)


# --- explanation ---------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return "non renseigné"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(_fmt_item(v) for v in value) or "aucune"
    return str(value)


def _fmt_item(item: Any) -> str:
    if isinstance(item, dict) and "code" in item:
        start, end = item.get("start_on"), item.get("end_on")
        span = f" du {_fmt(start)}" if start else ""
        span += f" au {_fmt(end)}" if end else (" (en cours)" if start else "")
        return f"{item['code']}{span}"
    return _fmt(item)


def render_template(template: str, facts: dict) -> str:
    return _PLACEHOLDER.sub(lambda m: _fmt(facts.get(m.group(1))), template)


def explain(rule: Rule, variant: str | None, version: int | None, facts: dict, facts_read: tuple[str, ...] | list[str],
            mode: str | None = None) -> str:
    """The decision in plain French: why, by which rule and version, from which facts, by an algorithm."""
    target = Outcome.label_of(rule.outcome)
    if variant:
        target += f" ({VARIANT_LABELS.get(variant, variant)})"
    if rule.parcours:
        target += (f" — parcours {Parcours(rule.parcours).label.lower()}, organisme référent "
                   f"{Organisme(rule.organisme).label}")
    head = f"{render_template(rule.explain, facts)} → {target}, règle {rule.id} v{version}."
    mode = mode or rule.mode
    if mode == "auto":
        how = ("Cette orientation a été établie par un algorithme appliquant les règles de désignation "
               "du Département, sans intervention humaine (validation automatique choisie par le Département "
               "pour cette règle); elle peut être réexaminée à la demande de la personne ou de son référent.")
    elif mode == "propose":
        how = ("Cette orientation est une proposition établie par un algorithme appliquant les règles de "
               "désignation du Département; elle doit être validée par un professionnel avant d'être notifiée.")
    else:
        how = ("Proposition établie par un algorithme: les informations connues ne suffisent pas à désigner "
               "un référent, la personne est invitée à un Kiosque Insertion pour le choisir.")
    used = "; ".join(f"{FACTS[n].label} = {_fmt(facts.get(n)) if n not in LIST_FACTS else _fmt(facts.get(n) or [])}"
                     for n in facts_read if n in FACTS)
    return f"{head} {how} Faits utilisés: {used or 'aucun'}."
