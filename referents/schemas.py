"""Marshmallow schemas of the account, user administration and audit endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from referents.fields import UtcDateTime
from referents.models import Role

ROLES = [r.value for r in Role]


class StructureRefSchema(Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()


class MeSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    display_name = fields.String()
    role = fields.String()
    role_label = fields.String()
    structure = fields.Nested(StructureRefSchema, allow_none=True)
    territory = fields.String(allow_none=True)
    nir_access = fields.String(metadata={"description": "full, masked ou none: ce que ce rôle voit du NIR"})
    auth = fields.String(metadata={"description": "token ou session"})


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String()
    display_name = fields.String()
    role = fields.String()
    structure = fields.String(allow_none=True)
    structure_name = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_login_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class UserListQuerySchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    structure = fields.String(validate=validate.Length(max=32))
    active = fields.Boolean()


class UserCreateSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    structure = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32))
    display_name = fields.String(load_default="", validate=validate.Length(max=200))
    password = fields.String(load_default=None, allow_none=True, load_only=True,
                             validate=validate.Length(min=12, max=200))


class UserUpdateSchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    structure = fields.String(allow_none=True, validate=validate.Length(max=32))
    display_name = fields.String(validate=validate.Length(max=200))
    active = fields.Boolean()
    password = fields.String(load_only=True, validate=validate.Length(min=12, max=200))


class TokenRequestSchema(Schema):
    ttl_hours = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=24 * 7))
    label = fields.String(load_default="", validate=validate.Length(max=120))


class TokenSchema(Schema):
    id = fields.Integer()
    prefix = fields.String()
    label = fields.String()
    created_at = UtcDateTime()
    expires_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)
    last_used_at = UtcDateTime(allow_none=True)


class IssuedTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "Le jeton en clair: affiché cette seule fois"})


class RevokedSchema(Schema):
    revoked = fields.Integer()


class AuditQuerySchema(Schema):
    user_id = fields.Integer(validate=validate.Range(min=1))
    person_id = fields.Integer(validate=validate.Range(min=1))
    action = fields.String(validate=validate.Length(max=40))
    since = UtcDateTime()
    until = UtcDateTime()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.String(metadata={"format": "date-time"})
    user_id = fields.Integer(allow_none=True)
    user_email = fields.String(allow_none=True)
    action = fields.String()
    person_id = fields.Integer(allow_none=True)
    endpoint = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    note = fields.String(allow_none=True)


class AuditPageSchema(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(AuditEntrySchema))
