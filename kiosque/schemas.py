"""Marshmallow schemas of the kiosque API (input validation and OpenAPI documentation)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields, validate

from kiosque.vocabulary import ATTENDANCE, INVITATION_STATUSES, PHONING_OUTCOMES, SESSION_STATUSES
from referents.fields import ParisDateTime
from referents.vocabulary import REFERENT_TYPES

# Dates outside this range are typing errors (and would overflow date arithmetic).
DAYS = validate.Range(min=dt.date(2000, 1, 1), max=dt.date(2100, 12, 31))
PARIS = ZoneInfo("Europe/Paris")  # session times are local: an aware input is converted to Paris time
MOMENTS = validate.Range(min=dt.datetime(2000, 1, 1), max=dt.datetime(2100, 12, 31))


class SessionQuerySchema(Schema):
    start = fields.Date(load_default=None, validate=DAYS)
    end = fields.Date(load_default=None, validate=DAYS)
    mds_id = fields.Integer(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(SESSION_STATUSES))


class SessionSchema(Schema):
    id = fields.Integer()
    mds_id = fields.Integer()
    mds_name = fields.String(allow_none=True)
    starts_at = ParisDateTime()
    ends_at = ParisDateTime(allow_none=True)
    place = fields.String()
    capacity = fields.Integer()
    booked = fields.Integer(allow_none=True)
    free = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": list(SESSION_STATUSES), "description": "prévue, tenue ou annulée"})
    template_id = fields.Integer(allow_none=True)
    partner_ids = fields.List(fields.Integer())


class SessionInSchema(Schema):
    mds_id = fields.Integer(required=True)
    starts_at = fields.NaiveDateTime(required=True, timezone=PARIS, validate=MOMENTS,
                                     metadata={"description": "Heure locale (Europe/Paris)"})
    duration_minutes = fields.Integer(load_default=150, validate=validate.Range(min=15, max=600))
    place = fields.String(load_default=None, validate=validate.Length(max=300))
    capacity = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))
    partner_ids = fields.List(fields.Integer(), load_default=list)


class SessionPatchSchema(Schema):
    starts_at = fields.NaiveDateTime(load_default=None, timezone=PARIS, validate=MOMENTS)
    ends_at = fields.NaiveDateTime(load_default=None, timezone=PARIS, validate=MOMENTS)
    place = fields.String(load_default=None, validate=validate.Length(max=300))
    capacity = fields.Integer(load_default=None, validate=validate.Range(min=1, max=500))
    status = fields.String(load_default=None, validate=validate.OneOf(SESSION_STATUSES))
    partner_ids = fields.List(fields.Integer(), load_default=None)


class TemplateSchema(Schema):
    id = fields.Integer()
    mds_id = fields.Integer()
    weekday = fields.Integer()
    start_time = fields.Time()
    duration_minutes = fields.Integer()
    capacity = fields.Integer()
    place = fields.String()
    valid_from = fields.Date(allow_none=True)
    valid_until = fields.Date(allow_none=True)
    active = fields.Boolean()


class TemplateInSchema(Schema):
    mds_id = fields.Integer(required=True)
    weekday = fields.Integer(required=True, validate=validate.Range(min=0, max=6),
                             metadata={"description": "0 = lundi … 6 = dimanche"})
    start_time = fields.Time(required=True)
    duration_minutes = fields.Integer(load_default=150, validate=validate.Range(min=15, max=600))
    capacity = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))
    place = fields.String(load_default=None, validate=validate.Length(max=300))
    valid_from = fields.Date(load_default=None, validate=DAYS)
    valid_until = fields.Date(load_default=None, validate=DAYS)


class GenerateInSchema(Schema):
    start = fields.Date(required=True, validate=DAYS)
    end = fields.Date(required=True, validate=DAYS)
    mds_id = fields.Integer(load_default=None)


class SkippedDaySchema(Schema):
    template_id = fields.Integer(metadata={"description": "Modèle dont la session n'a pas été créée"})
    day = fields.Date(metadata={"description": "Jour sauté"})
    reason = fields.String(metadata={"description": "Jour férié ou fermeture, avec son motif"})


class GenerateResultSchema(Schema):
    created = fields.Integer()
    session_ids = fields.List(fields.Integer())
    skipped = fields.List(fields.Nested(SkippedDaySchema))


class ClosureInSchema(Schema):
    day = fields.Date(required=True, validate=DAYS)
    reason = fields.String(load_default="", validate=validate.Length(max=200))
    mds_id = fields.Integer(load_default=None, metadata={"description": "Vide: toutes les MDS"})


class ClosureSchema(Schema):
    id = fields.Integer()
    day = fields.Date()
    reason = fields.String()
    mds_id = fields.Integer(allow_none=True)


class PlanInSchema(Schema):
    as_of = fields.Date(load_default=None, validate=DAYS)


class PlanResultSchema(Schema):
    as_of = fields.String()
    candidates = fields.Integer()
    invited = fields.Integer()
    reinvited = fields.Integer()
    own_mds = fields.Integer()
    neighbour_mds = fields.Integer()
    after_deadline = fields.Integer()
    unplanned = fields.Integer()
    exhausted = fields.Integer()
    no_mds = fields.Integer()
    overdue = fields.Integer()
    shortfalls = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Places manquantes avant l'échéance légale, par identifiant de MDS"})
    alerts_raised = fields.Integer()


class InvitationSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    session_id = fields.Integer()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    attempt = fields.Integer()
    invited_on = fields.Date()
    status = fields.String(metadata={"enum": list(INVITATION_STATUSES)})
    phoning_outcome = fields.String(allow_none=True)
    phoned_on = fields.Date(allow_none=True)
    phoning_notes = fields.String(allow_none=True)
    chosen_referent_type = fields.String(allow_none=True)
    chosen_structure_id = fields.Integer(allow_none=True)
    first_appointment_at = ParisDateTime(allow_none=True)


class PhoningInSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(PHONING_OUTCOMES))
    notes = fields.String(load_default=None, validate=validate.Length(max=2000))
    on = fields.Date(load_default=None, validate=DAYS,
                     metadata={"description": "Jour de l'appel (défaut: aujourd'hui)"})


class OutcomeInSchema(Schema):
    referent_type = fields.String(required=True, validate=validate.OneOf(REFERENT_TYPES))
    structure_id = fields.Integer(load_default=None)
    first_appointment_at = fields.NaiveDateTime(load_default=None, timezone=PARIS, validate=MOMENTS)


class AttendanceInSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(ATTENDANCE))
    referent_type = fields.String(load_default=None, validate=validate.OneOf(REFERENT_TYPES))
    structure_id = fields.Integer(load_default=None)
    first_appointment_at = fields.NaiveDateTime(load_default=None, timezone=PARIS, validate=MOMENTS)


class AttendanceResultSchema(Schema):
    invitation_id = fields.Integer()
    status = fields.String()
    unchanged = fields.Boolean()
    orientation_id = fields.Integer()
    default_mds_orientation_id = fields.Integer()
    reinvitation_ids = fields.List(fields.Integer())


class FunnelQuerySchema(Schema):
    start = fields.Date(required=True, validate=DAYS)
    end = fields.Date(required=True, validate=DAYS)
    mds_id = fields.Integer(load_default=None)
    by = fields.String(load_default="session", validate=validate.OneOf(("session", "mds", "month", "total")))


class FunnelRowSchema(Schema):
    session_id = fields.Integer()
    date = fields.String()
    mds_id = fields.Integer()
    mds_name = fields.String()
    month = fields.String()
    invited = fields.Integer()
    reached = fields.Integer()
    attended = fields.Integer()
    oriented = fields.Integer()
    oriented_rate = fields.Float(allow_none=True)
