"""Marshmallow schemas of the import API (uploads, batch reports, batches, rejects, mappings)."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from referents.fields import UtcDateTime


class UploadSchema(Schema):
    file = Upload(required=True, metadata={"description": "le fichier à importer"})


class FluxUploadSchema(Schema):
    files = fields.List(Upload(), required=True, metadata={"description": "un ou plusieurs fichiers XML CAF/MSA"})


class SpreadsheetQuerySchema(Schema):
    mapping = fields.String(required=True, metadata={"description": "nom de la correspondance de colonnes"})


class ProviderQuerySchema(Schema):
    structure = fields.String(metadata={"description": "code de la structure (un prestataire: la sienne, par défaut)"})
    as_of = fields.Date(metadata={"description": "date de référence (étape en cours)"})


class RejectSchema(Schema):
    row = fields.Integer(allow_none=True)
    column = fields.String(allow_none=True)
    reason = fields.String()


class ReportSchema(Schema):
    """What an upload answers: the batch report."""

    file = fields.String()
    kind = fields.String()
    status = fields.String(metadata={"description": "imported | duplicate | failed"})
    batch_id = fields.Integer(allow_none=True)
    counts = fields.Dict()
    rejected = fields.Integer()
    rejects = fields.List(fields.Nested(RejectSchema))
    warnings = fields.List(fields.String())
    error = fields.String(allow_none=True)


class FluxReportSchema(Schema):
    files = fields.List(fields.Dict())


class BatchQuerySchema(Schema):
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(["running", "imported", "failed"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class BatchSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    file_name = fields.String()
    sha256 = fields.String()
    size_bytes = fields.Integer(allow_none=True)
    header = fields.Dict(allow_none=True)
    status = fields.String()
    error = fields.String(allow_none=True)
    warnings = fields.List(fields.String(), allow_none=True)
    counts = fields.Dict(allow_none=True)
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    created_by = fields.Integer(allow_none=True)


class RejectedRecordSchema(Schema):
    id = fields.Integer()
    batch_id = fields.Integer()
    record_key = fields.String(allow_none=True)
    reason = fields.String()
    status = fields.String()
    created_at = UtcDateTime()
    raw = fields.String(allow_none=True, metadata={"description": "contenu brut (tronqué)"})


class MappingSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(load_default="")
    organism = fields.String(load_default="CAF", validate=validate.OneOf(["CAF", "MSA"]))
    fields_ = fields.Dict(data_key="fields", attribute="fields", required=True,
                          metadata={"description": "notre champ → libellé(s) de colonne"})
    external_ids = fields.Dict(load_default=dict)
    required = fields.List(fields.String(), load_default=list)
    source = fields.String(dump_only=True)
