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


class PersonListQuerySchema(ReportQuerySchema):
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
    denominators = fields.Dict(keys=fields.String(), values=fields.Integer())


class DelayBreakdownSchema(DelayStatsSchema):
    key = fields.String(allow_none=True)
    label = fields.String()


class BacklogBreakdownSchema(Schema):
    key = fields.String(allow_none=True)
    label = fields.String()
    bands = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer()


class DelayClockSchema(DelayStatsSchema):
    backlog = fields.Dict(keys=fields.String(), values=fields.Integer())
    backlog_total = fields.Integer()
    by_month = fields.List(fields.Nested(DelayBreakdownSchema))
    by_territory = fields.List(fields.Nested(DelayBreakdownSchema))
    by_mds = fields.List(fields.Nested(DelayBreakdownSchema))
    by_referent_type = fields.List(fields.Nested(DelayBreakdownSchema))
    by_origin = fields.List(fields.Nested(DelayBreakdownSchema))
    by_rule = fields.List(fields.Nested(DelayBreakdownSchema))
    backlog_by_territory = fields.List(fields.Nested(BacklogBreakdownSchema))
    backlog_by_mds = fields.List(fields.Nested(BacklogBreakdownSchema))


class DelaysReportSchema(Schema):
    as_of = fields.String()
    period = fields.Dict(keys=fields.String(), values=fields.String())
    filters = fields.Dict()
    targets = fields.Dict(keys=fields.String(), values=fields.Integer())
    bands = fields.List(fields.String())
    clocks = fields.Dict(keys=fields.String(), values=fields.Nested(DelayClockSchema))


class FullReportSchema(DelaysReportSchema):
    after_orientation = fields.Dict()
    kiosque = fields.Dict()
    national_reference = fields.List(fields.Dict())


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
