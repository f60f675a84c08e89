"""Marshmallow schemas of the report endpoints: the filters, and the shape of the JSON reports."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from reports.indicators import BANDS, CLOCKS


class ReportQuerySchema(Schema):
    """Filters common to every report. Territory and MDS are given by their codes."""

    as_of = fields.Date(load_default=None, metadata={"description": "date de référence (défaut: aujourd'hui)"})
    from_ = fields.Date(data_key="from", load_default=None,
                        metadata={"description": "début de la période de cohorte (défaut: 12 mois glissants)"})
    to = fields.Date(load_default=None, metadata={"description": "fin de la période de cohorte"})
    territory = fields.String(load_default=None, metadata={"description": "code du territoire"})
    mds = fields.String(load_default=None, metadata={"description": "code de la MDS"})
    refresh = fields.Boolean(load_default=False, metadata={
        "description": "recalculer maintenant au lieu de lire l'instantané enregistré (docs/reports.md)"})


class PersonListQuerySchema(ReportQuerySchema):
    class Meta:
        exclude = ("refresh",)  # person lists are read live, never from a snapshot

    list_ = fields.String(data_key="list", load_default="backlog",
                         validate=validate.OneOf(["backlog", "cohort", "not_oriented", "late"]))
    clock = fields.String(load_default="legal", validate=validate.OneOf(list(CLOCKS)))
    band = fields.String(load_default=None, validate=validate.OneOf([b[0] for b in BANDS]))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class DelayStatsSchema(Schema):
    cohort_size = fields.Integer()
    oriented = fields.Integer()
    mean_days = fields.Float(allow_none=True)
    median_days = fields.Float(allow_none=True)
    p90_days = fields.Float(allow_none=True)
    share_within_30 = fields.Float(allow_none=True, metadata={"description": "fraction 0–1, null sans dénominateur"})
    share_within_42 = fields.Float(allow_none=True)
    share_within_90 = fields.Float(allow_none=True)
    denominators = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Dénominateur de chaque part, par seuil en jours (30, 42, 90)"})


class DelayBreakdownSchema(DelayStatsSchema):
    key = fields.String(allow_none=True)
    label = fields.String()


class BacklogBreakdownSchema(Schema):
    key = fields.String(allow_none=True)
    label = fields.String()
    bands = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Personnes en attente par tranche d'ancienneté (" + ", ".join(b[0] for b in BANDS) + ")"})
    total = fields.Integer()


class DelayClockSchema(DelayStatsSchema):
    closed_before_legal_delay = fields.Integer(metadata={
        "description": "Parcours de la période clos sans orientation avant 42 jours: montrés à part, hors cohorte"})
    backlog = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Personnes en attente par tranche d'ancienneté (" + ", ".join(b[0] for b in BANDS) + ")"})
    backlog_total = fields.Integer()
    by_month = fields.List(fields.Nested(DelayBreakdownSchema))
    by_territory = fields.List(fields.Nested(DelayBreakdownSchema))
    by_mds = fields.List(fields.Nested(DelayBreakdownSchema))
    by_referent_type = fields.List(fields.Nested(DelayBreakdownSchema))
    by_parcours = fields.List(fields.Nested(DelayBreakdownSchema), metadata={"description": (
        "Par parcours du référentiel (emploi, socio_professionnel, social) de la décision du parcours")})
    by_organisme = fields.List(fields.Nested(DelayBreakdownSchema), metadata={"description": (
        "Par organisme référent (france_travail, departement, delegataire, mission_locale, cap_emploi)")})
    by_origin = fields.List(fields.Nested(DelayBreakdownSchema))
    by_rule = fields.List(fields.Nested(DelayBreakdownSchema))
    backlog_by_territory = fields.List(fields.Nested(BacklogBreakdownSchema))
    backlog_by_mds = fields.List(fields.Nested(BacklogBreakdownSchema))


class PeriodSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from", metadata={"description": "début de la cohorte (ISO)"})
    to = fields.String(metadata={"description": "fin de la cohorte (ISO)"})


class FiltersSchema(Schema):
    territory_id = fields.Integer(allow_none=True)
    mds_id = fields.Integer(allow_none=True)


class TargetsSchema(Schema):
    target_days = fields.Integer(metadata={"description": "objectif du Département (jours)"})
    legal_limit_days = fields.Integer(metadata={"description": "délai légal (jours, D262-65-2 CASF)"})


class DelaysReportSchema(Schema):
    as_of = fields.String()
    period = fields.Nested(PeriodSchema)
    filters = fields.Nested(FiltersSchema)
    targets = fields.Nested(TargetsSchema)
    bands = fields.List(fields.String())
    clocks = fields.Dict(keys=fields.String(validate=validate.OneOf(list(CLOCKS))),
                         values=fields.Nested(DelayClockSchema),
                         metadata={"description": "Délais par horloge de départ (" + ", ".join(CLOCKS) + ")"})


class FunnelSchema(Schema):
    invited = fields.Integer()
    reached = fields.Integer(metadata={"description": "joints par téléphone (quelle que soit la réponse)"})
    attended = fields.Integer()
    oriented = fields.Integer()
    rate_oriented = fields.Float(allow_none=True, metadata={"description": "orientés / invités, 0–1"})


class KiosqueMdsSchema(FunnelSchema):
    key = fields.String(allow_none=True, metadata={"description": "code de la MDS"})
    label = fields.String()


class CapacitySchema(Schema):
    awaiting_capacity = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                    metadata={"description": "décisions en attente de place, par type de référent"})
    awaiting_capacity_total = fields.Integer()
    kiosque_sessions = fields.Integer()
    kiosque_sessions_full = fields.Integer()


class KiosqueReportSchema(Schema):
    funnel = fields.Nested(FunnelSchema)
    by_mds = fields.List(fields.Nested(KiosqueMdsSchema))
    capacity = fields.Nested(CapacitySchema)


class ShareSchema(Schema):
    denominator = fields.Integer()
    numerator = fields.Integer()
    share = fields.Float(allow_none=True)


class FirstAppointmentSchema(ShareSchema):
    days = fields.Integer()
    attendance = fields.Nested(ShareSchema, metadata={
        "description": "Présence au premier rendez-vous fixé: honorés parmi ceux dont l'issue est connue"})


class MeanDelaySchema(Schema):
    mean_days = fields.Float(allow_none=True)
    denominator = fields.Integer(metadata={"description": "orientations parvenues à cette étape"})


class MeanDelaysSchema(Schema):
    orientation_to_first_appointment = fields.Nested(MeanDelaySchema)
    orientation_to_contract = fields.Nested(MeanDelaySchema)


class ContractShareSchema(ShareSchema):
    months = fields.Integer()


class ExitsSchema(Schema):
    key = fields.String(allow_none=True, metadata={"description": "code de la structure"})
    label = fields.String()
    exits = fields.Integer()
    positive = fields.Integer()
    share_positive = fields.Float(allow_none=True)


class SenioritySchema(Schema):
    key = fields.String(metadata={"description": "tranche d'ancienneté dans le RSA"})
    sdd = fields.Integer()
    oriented = fields.Integer()
    share_oriented = fields.Float(allow_none=True)


class AfterOrientationSchema(Schema):
    scope = fields.String(validate=validate.OneOf(["departement", "none"]))
    first_appointment_within_15 = fields.Nested(FirstAppointmentSchema, allow_none=True)
    contract_within_1_month = fields.Nested(ContractShareSchema, allow_none=True)
    mean_delays = fields.Nested(MeanDelaysSchema, allow_none=True)
    positive_exits_by_structure = fields.List(fields.Nested(ExitsSchema))
    oriented_by_seniority = fields.List(fields.Nested(SenioritySchema))


class NationalReferenceSchema(Schema):
    indicator = fields.String()
    label = fields.String()
    scope = fields.String()
    year = fields.String()
    value = fields.Float()
    unit = fields.String()
    source = fields.String()


class FullReportSchema(DelaysReportSchema):
    after_orientation = fields.Nested(AfterOrientationSchema)
    kiosque = fields.Nested(KiosqueReportSchema)
    national_reference = fields.List(fields.Nested(NationalReferenceSchema))


class ReportPersonSchema(Schema):
    person_id = fields.Integer()
    path_id = fields.Integer()
    last_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    mds = fields.String(allow_none=True)
    clock_start = fields.Date(allow_none=True)
    age_days = fields.Integer(allow_none=True)
    decided_on = fields.Date(allow_none=True)
    delay_days = fields.Integer(allow_none=True)
    referent_type = fields.String(allow_none=True)
