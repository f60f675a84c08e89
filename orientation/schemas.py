"""Marshmallow schemas of the orientation API (input validation and OpenAPI documentation)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orientation.vocabulary import ORIGINS, PENDING, STATUSES
from referents.fields import UtcDateTime
from referents.vocabulary import OUTCOMES, REFERENT_TYPES, Organisme, Parcours

ALL_OUTCOMES = OUTCOMES


def _parcours_field(**kw):
    return fields.String(allow_none=True, metadata={"enum": list(Parcours.codes()), "description": (
        "Parcours du référentiel national (emploi, socio_professionnel, social); vide pour une invitation "
        "au Kiosque")}, **kw)


def _organisme_field():
    return fields.String(allow_none=True, metadata={"enum": list(Organisme.codes()), "description": (
        "Organisme référent (france_travail, departement, delegataire, mission_locale, cap_emploi)")})


VALIDATION_FIELD_DOC = {"enum": ["auto", "agent"], "description": (
    "auto: validée par l'algorithme seul (validation automatique choisie par le Département pour la règle); "
    "agent: validée ou prise par un agent; vide: en attente")}
LEVELS = ("ok", "d21", "d35", "past_limit")
MODES = ("auto", "propose", "kiosque")

# A fact's value as a decision recorded it (orientation.facts.snapshot): a code, a number, a yes/no, an
# ISO date, or a list of activity periods. OpenAPI 3.0 has no union type: `oneOf` says it.
_ACTIVITY = {"type": "object", "properties": {
    "code": {"type": "string", "description": "Code activité (ACT)"},
    "start_on": {"type": "string", "format": "date", "nullable": True},
    "end_on": {"type": "string", "format": "date", "nullable": True},
    "current": {"type": "boolean"}}}
FACT_VALUE = {"nullable": True, "oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                                          {"type": "array", "items": _ACTIVITY}]}
# The value compared by an operator of the rule language: a code, a number, a yes/no, a date, or a list of codes.
OPERAND = {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                     {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}]}


def _facts_map(description: str, **kwargs) -> fields.Dict:
    """Facts by name (docs/orientation.md lists them): a map, its values typed by FACT_VALUE."""
    return fields.Dict(keys=fields.String(), values=fields.Raw(metadata=FACT_VALUE),
                       metadata={"description": description}, **kwargs)


class AsOfSchema(Schema):
    as_of = fields.Date(load_default=None, metadata={"description": "Date de référence (défaut: aujourd'hui)"})


class RunResultSchema(Schema):
    as_of = fields.String()
    rule_set_version = fields.Integer()
    considered = fields.Integer()
    decisions = fields.Dict(keys=fields.String(validate=validate.OneOf(OUTCOMES)), values=fields.Integer(),
                            metadata={"description": "Nombre de nouvelles décisions par type de référent "
                                                     "(pole_emploi, actipro, ati, mds, kiosque)"})
    validated = fields.Integer()
    proposed = fields.Integer()
    awaiting_capacity = fields.Integer()
    kiosque = fields.Integer()
    unsectorised = fields.Integer()
    unchanged = fields.Integer()
    kept = fields.Integer()
    superseded = fields.Integer()
    promoted = fields.Integer()
    ended = fields.Integer()


class QueueQuerySchema(Schema):
    status = fields.String(load_default="proposed", validate=validate.OneOf(PENDING),
                           metadata={"description": "File: proposed (à valider), awaiting_capacity, unsectorised, kiosque"})
    mds = fields.String(load_default=None, metadata={"description": "Code de la MDS du lieu de résidence"})
    territory = fields.String(load_default=None, metadata={"description": "Code du territoire"})
    referent_type = fields.String(load_default=None, validate=validate.OneOf(ALL_OUTCOMES))
    rule = fields.String(load_default=None, validate=validate.Length(max=60))
    structure = fields.String(load_default=None, metadata={"description": "Code de la structure proposée"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class QueueItemSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(STATUSES)})
    referent_type = fields.String()
    parcours = _parcours_field()
    organisme = _organisme_field()
    structure = fields.String(allow_none=True)
    rule_id = fields.String(allow_none=True)
    mode = fields.String()
    origin = fields.String(metadata={"enum": list(ORIGINS)})
    decided_on = fields.Date()
    clock_start = fields.Date(allow_none=True)
    mds_id = fields.Integer(allow_none=True)
    explanation = fields.String(allow_none=True)


class QueuePageSchema(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(QueueItemSchema))


class ValidateInSchema(Schema):
    """Either the ids of proposals, or a filter of the validation queue (all that match)."""

    ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), load_default=None,
                      validate=validate.Length(min=1, max=5000))
    filter = fields.Nested(QueueQuerySchema(only=("mds", "territory", "referent_type", "rule", "structure")),
                           load_default=None)
    as_of = fields.Date(load_default=None)

    @validates_schema
    def _one_of(self, data, **_kw):
        if (data.get("ids") is None) == (data.get("filter") is None):
            raise ValidationError("donner soit 'ids', soit 'filter'", "_schema")


class SkippedDecisionSchema(Schema):
    id = fields.Integer(metadata={"description": "Décision non validée"})
    reason = fields.String(metadata={"description": "Pourquoi (inconnue, hors périmètre, pas une proposition…)"})


class ValidateResultSchema(Schema):
    validated = fields.List(fields.Integer())
    awaiting_capacity = fields.List(fields.Integer())
    skipped = fields.List(fields.Nested(SkippedDecisionSchema))


class OverrideInSchema(Schema):
    referent_type = fields.String(required=True, validate=validate.OneOf(REFERENT_TYPES))
    parcours = fields.String(load_default=None, validate=validate.OneOf(Parcours.codes()),
                             metadata={"description": "Parcours (défaut: celui du type de référent)"})
    structure = fields.String(load_default=None, metadata={"description": "Code de la structure (défaut: secteur)"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    as_of = fields.Date(load_default=None)


class OrientationSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    referent_type = fields.String()
    parcours = _parcours_field()
    organisme = _organisme_field()
    validation = fields.String(allow_none=True, metadata=VALIDATION_FIELD_DOC)
    structure = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(STATUSES)})
    origin = fields.String(metadata={"enum": list(ORIGINS)})
    rule = fields.String(allow_none=True)
    rule_set_version = fields.Integer(allow_none=True)
    mode = fields.String()
    algorithmic = fields.Boolean()
    decided_on = fields.Date()
    validated_on = fields.Date(allow_none=True)
    ended_on = fields.Date(allow_none=True)
    end_reason = fields.String(allow_none=True)
    override_reason = fields.String(allow_none=True)
    explanation = fields.String(allow_none=True)
    facts = _facts_map("Faits lus par la décision, par nom (avec l'adresse utilisée pour désigner la structure)",
                       allow_none=True)


class SimulationSchema(Schema):
    rule = fields.String(metadata={"description": "Identifiant de la règle qui s'appliquerait aujourd'hui"})
    label = fields.String(metadata={"description": "Libellé de la règle"})
    referent_type = fields.String(metadata={"enum": list(OUTCOMES), "description": "Résultat de la règle"})
    parcours = _parcours_field()
    organisme = _organisme_field()
    source = fields.String(allow_none=True, metadata={"description": "Article ou ligne du référentiel appliqués"})
    variant = fields.String(allow_none=True, metadata={"description": "Variante de la règle (ex. diplomes)"})
    mode = fields.String(metadata={"enum": list(MODES), "description": "auto, propose (à valider) ou kiosque"})
    rule_set_version = fields.Integer(metadata={"description": "Version du jeu de règles actif"})
    explanation = fields.String(metadata={"description": "Explication en français"})
    facts = _facts_map("Faits lus par la règle, par nom")


class ExplainSchema(Schema):
    person_id = fields.Integer()
    as_of = fields.Date()
    current = fields.Nested(OrientationSchema, allow_none=True)
    rule_label = fields.String(allow_none=True)
    explanation = fields.String(allow_none=True)
    rules_today = fields.Nested(SimulationSchema, allow_none=True, metadata={"description": "Ce que les règles actives décideraient "
                                                                          "au jour de référence"})
    history = fields.List(fields.Nested(OrientationSchema))


class ReorientationInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))
    wanted_referent_type = fields.String(load_default=None, validate=validate.OneOf(REFERENT_TYPES))
    wanted_structure = fields.String(load_default=None)
    as_of = fields.Date(load_default=None)


class ReorientationDecisionInSchema(Schema):
    accept = fields.Boolean(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))
    referent_type = fields.String(load_default=None, validate=validate.OneOf(REFERENT_TYPES))
    structure = fields.String(load_default=None)
    as_of = fields.Date(load_default=None)


class ReorientationSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    orientation_id = fields.Integer(allow_none=True)
    requested_by = fields.Integer(allow_none=True)
    requested_on = fields.Date()
    reason = fields.String()
    wanted_referent_type = fields.String(allow_none=True)
    wanted_structure_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": ["pending", "accepted", "refused"]})
    decided_on = fields.Date(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    new_orientation_id = fields.Integer(allow_none=True)


class ReorientationQuerySchema(Schema):
    status = fields.String(load_default="pending", validate=validate.OneOf(("pending", "accepted", "refused", "all")))


class ConditionSchema(Schema):
    """A condition of the rule language (docs/orientation.md): `all` / `any` of conditions, `not` one,
    `some` list fact `where` a condition on its items, or `fact` with exactly one operator."""

    all = fields.List(fields.Nested(lambda: ConditionSchema()), metadata={"description": "Toutes vraies"})
    any = fields.List(fields.Nested(lambda: ConditionSchema()), metadata={"description": "Au moins une vraie"})
    not_ = fields.Nested(lambda: ConditionSchema(), data_key="not", attribute="not",
                         metadata={"description": "Fausse"})
    some = fields.String(metadata={"description": "Fait liste (ex. activities): un de ses éléments…"})
    where = fields.Nested(lambda: ConditionSchema(), metadata={"description": "…vérifie cette condition"})
    fact = fields.String(metadata={"description": "Nom du fait comparé (docs/orientation.md)"})
    eq = fields.Raw(metadata={**OPERAND, "description": "fait eq valeur"})
    ne = fields.Raw(metadata={**OPERAND, "description": "fait ne valeur"})
    in_ = fields.Raw(data_key="in", attribute="in", metadata={**OPERAND, "description": "fait in valeur"})
    not_in = fields.Raw(metadata={**OPERAND, "description": "fait not_in valeur"})
    is_ = fields.Raw(data_key="is", attribute="is", metadata={**OPERAND, "description": "fait is valeur"})
    present = fields.Raw(metadata={**OPERAND, "description": "fait present valeur"})
    gt = fields.Raw(metadata={**OPERAND, "description": "fait gt valeur"})
    gte = fields.Raw(metadata={**OPERAND, "description": "fait gte valeur"})
    lt = fields.Raw(metadata={**OPERAND, "description": "fait lt valeur"})
    lte = fields.Raw(metadata={**OPERAND, "description": "fait lte valeur"})
    at_least = fields.Raw(metadata={**OPERAND, "description": "fait at_least valeur"})
    at_most = fields.Raw(metadata={**OPERAND, "description": "fait at_most valeur"})
    within_months_before_as_of = fields.Raw(metadata={**OPERAND, "description": "date du fait dans les N mois"})


class VariantSchema(Schema):
    when = fields.Nested(ConditionSchema, metadata={"description": "Condition de la variante"})
    variant = fields.String(metadata={"description": "Nom de la variante (ex. diplomes)"})


class RuleSchema(Schema):
    """One rule of a rule set, as stored (orientation.rules.Rule.as_dict)."""

    id = fields.String(metadata={"description": "Identifiant (MAJUSCULES_ET_CHIFFRES)"})
    label = fields.String(metadata={"description": "Libellé en français"})
    outcome = fields.String(metadata={"enum": list(OUTCOMES), "description": "Type de référent ou kiosque"})
    mode = fields.String(metadata={"enum": list(MODES), "description": (
        "auto (validation automatique, refusée pour une règle qui lit des données sensibles), propose (à "
        "valider par un agent) ou kiosque")})
    parcours = fields.String(metadata={"enum": list(Parcours.codes()), "description": (
        "Parcours que donne la règle (défaut: celui du type de référent)")})
    source = fields.String(metadata={"description": "Article ou ligne du référentiel que la règle applique"})
    when = fields.Nested(ConditionSchema, metadata={"description": "Condition (absente pour la règle par défaut)"})
    explain = fields.String(metadata={"description": "Explication, avec des {faits} à remplacer"})
    variants = fields.List(fields.Nested(VariantSchema), metadata={"description": "Variantes de la règle"})
    parcours = fields.String(metadata={"enum": list(Parcours.codes()), "description": (
        "Parcours du référentiel que la règle décide (emploi, socio_professionnel, social)")})
    source = fields.String(metadata={"description": "Article ou ligne du référentiel que la règle applique"})


class RuleSetSchema(Schema):
    version = fields.Integer()
    name = fields.String()
    active = fields.Boolean()
    created_at = UtcDateTime()
    created_by = fields.Integer(allow_none=True)
    rules = fields.List(fields.Nested(RuleSchema), attribute="ordered_rules",
                        metadata={"description": "Règles dans l'ordre: la première applicable l'emporte"})
    fallback = fields.Nested(RuleSchema, allow_none=True, attribute="fallback_rule",
                             metadata={"description": "Règle par défaut, quand aucune autre ne s'applique"})
    warnings = fields.List(fields.String(), metadata={"description": (
        "Remarques du chargeur sur un jeu valide (ex.: règle à validation automatique placée après une règle "
        "qui lit des données sensibles); seulement à l'enregistrement (PUT)")})


class RuleSetVersionSchema(Schema):
    version = fields.Integer()
    name = fields.String()
    active = fields.Boolean()
    created_at = UtcDateTime()
    created_by = fields.Integer(allow_none=True)
    rules = fields.Integer(attribute="rule_count", metadata={"description": "Nombre de règles (hors règle par défaut)"})


class RuleSetInSchema(Schema):
    """A new version of the rule set. base_version = the active version it was edited from (409 if stale)."""

    base_version = fields.Integer(required=True, validate=validate.Range(min=0))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    rules = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=200))
    fallback = fields.Dict(required=True)


class DecisionExportQuerySchema(Schema):
    from_ = fields.Date(required=True, data_key="from", metadata={"description": "Premier jour (AAAA-MM-JJ)"})
    to = fields.Date(required=True, metadata={"description": "Dernier jour, inclus (AAAA-MM-JJ)"})
    format = fields.String(load_default="xlsx", validate=validate.OneOf(("xlsx", "csv")))


class DeadlineQuerySchema(Schema):
    as_of = fields.Date(load_default=None)
    level = fields.String(load_default=None, validate=validate.OneOf(LEVELS))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class DeadlineSchema(Schema):
    person_id = fields.Integer()
    path_id = fields.Integer()
    clock_start = fields.Date()
    target_on = fields.Date()
    legal_on = fields.Date()
    days = fields.Integer()
    level = fields.String()
    mds_id = fields.Integer(allow_none=True)
    decision_status = fields.String(allow_none=True, metadata={"enum": list(STATUSES)})
    decision_origin = fields.String(allow_none=True, metadata={"enum": list(ORIGINS)})


class DeadlinePageSchema(Schema):
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(validate=validate.OneOf(LEVELS)), values=fields.Integer(),
                         metadata={"description": "Nombre de personnes par niveau (ok, d21, d35, past_limit)"})
    items = fields.List(fields.Nested(DeadlineSchema))
