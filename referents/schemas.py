"""Marshmallow schemas of the account, user administration and audit endpoints.

The response schemas dump the models themselves (User, ApiToken, AuditLog): the services return
domain objects and these schemas are the one description of their JSON, for the API (and its
OpenAPI document) and for `rsa users … --json` / `rsa audit list --json`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from marshmallow import Schema, fields, validate

from referents.fields import UtcDateTime
from referents.models import ApiToken, Role

ROLES = [r.value for r in Role]


class Seconds(UtcDateTime):
    """A moment to the second, in UTC with its offset ("2026-11-20T09:15:02+00:00"), as the audit
    log shows it (OpenAPI date-time: the zone is part of the value, issue 22 item 10)."""

    def __init__(self, **kwargs):
        metadata = {"description": "UTC, à la seconde (AAAA-MM-JJTHH:MM:SS+00:00)", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC, microsecond=0).isoformat(timespec="seconds")


def _structure_attr(name: str):
    return lambda user: getattr(user.structure, name) if user.structure else None


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
    """An account (referents.models.User)."""

    id = fields.Integer(dump_only=True)
    email = fields.String()
    display_name = fields.String()
    role = fields.String(metadata={"description": "rôle: " + ", ".join(ROLES)})
    structure = fields.Function(_structure_attr("code"), allow_none=True,
                                metadata={"type": "string", "description": "code de la structure du compte"})
    structure_name = fields.Function(_structure_attr("name"), allow_none=True,
                                     metadata={"type": "string", "description": "nom de la structure du compte"})
    active = fields.Boolean()
    created_at = Seconds(allow_none=True)
    last_login_at = Seconds(allow_none=True)


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
    """An API token (referents.models.ApiToken): never its value, only its first characters."""

    id = fields.Integer()
    prefix = fields.String(metadata={"description": "premiers caractères du jeton, pour le reconnaître"})
    label = fields.String()
    created_at = UtcDateTime()
    expires_at = UtcDateTime()
    revoked_at = UtcDateTime(allow_none=True)
    last_used_at = UtcDateTime(allow_none=True)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: its row, and its value, which exists only in this one response."""

    row: ApiToken
    token: str

    def __getattr__(self, name):
        return getattr(self.row, name)


class IssuedTokenSchema(TokenSchema):
    """An IssuedToken."""

    token = fields.String(metadata={"description": "Le jeton en clair: affiché cette seule fois"})


class RevokedSchema(Schema):
    revoked = fields.Integer(metadata={"description": "nombre de jetons révoqués"})


class AuditQuerySchema(Schema):
    user_id = fields.Integer(validate=validate.Range(min=1))
    person_id = fields.Integer(validate=validate.Range(min=1))
    action = fields.String(validate=validate.Length(max=40))
    since = UtcDateTime()
    until = UtcDateTime()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class AuditEntrySchema(Schema):
    """An audit log entry (referents.models.AuditLog)."""

    id = fields.Integer()
    at = Seconds()
    user_id = fields.Integer(allow_none=True)
    user_email = fields.Function(lambda entry: entry.user.email if entry.user else None, allow_none=True,
                                 metadata={"type": "string", "description": "adresse du compte auteur"})
    action = fields.String(metadata={"description": "read, update, create, login, login_failed, export, purge…"})
    person_id = fields.Integer(allow_none=True, metadata={"description": "la personne concernée, s'il y en a une"})
    endpoint = fields.String(allow_none=True, metadata={"description": "« MÉTHODE /chemin » ou « cli commande »"})
    ip = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True, metadata={"description": "précisions propres à l'action (JSON libre)"})
    note = fields.String(allow_none=True)


class AuditPageSchema(Schema):
    total = fields.Integer(metadata={"description": "nombre d'entrées correspondant aux filtres"})
    items = fields.List(fields.Nested(AuditEntrySchema))
