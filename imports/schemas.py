"""Marshmallow schemas of the import API (uploads, batch reports, batches, rejects, mappings).

The response schemas dump what the services return (the import reports, ImportBatch and
RejectedRecord rows, the mapping documents): they are the one description of that JSON.
"""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from referents.fields import UtcDateTime

STATUSES = "imported (importé), duplicate (déjà importé: rien n'a changé), failed (rien n'a été écrit)"
RAW_MAX_CHARS = 4000


def _counts(description: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": description})


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
    row = fields.Integer(allow_none=True, metadata={"description": "ligne du fichier"})
    column = fields.String(allow_none=True, metadata={"description": "colonne en cause, s'il y en a une"})
    reason = fields.String()


class ReportSchema(Schema):
    """What an upload of a list answers (France Travail, spreadsheet, provider return): the batch report
    of imports.tabular.run_batch."""

    file = fields.String(metadata={"description": "nom du fichier déposé"})
    kind = fields.String(metadata={"description": "france_travail:<liste>, spreadsheet ou provider_return"})
    status = fields.String(metadata={"description": STATUSES})
    batch_id = fields.Integer(allow_none=True)
    counts = _counts("compteurs du lot, propres à chaque type de fichier (rows, created, updated, unmatched, "
                     "rejected, étapes d'un retour prestataire…)")
    rejected = fields.Integer(metadata={"description": "lignes rejetées, gardées pour rejeu"})
    rejects = fields.List(fields.Nested(RejectSchema), metadata={"description": "les 100 premiers rejets"})
    warnings = fields.List(fields.String())
    error = fields.String(allow_none=True, metadata={"description": "pourquoi le fichier a été refusé (failed)"})


class FluxFileReportSchema(Schema):
    """The report of one CAF/MSA flow file (imports.service.import_file)."""

    path = fields.String(metadata={"description": "nom du fichier déposé"})
    status = fields.String(metadata={"description": STATUSES})
    households = fields.Integer(metadata={"description": "foyers lus"})
    persons = fields.Integer(metadata={"description": "personnes lues"})
    created = fields.Integer(metadata={"description": "foyers créés"})
    updated = fields.Integer(metadata={"description": "foyers modifiés"})
    unchanged = fields.Integer(metadata={"description": "foyers inchangés depuis le flux précédent"})
    rejected = fields.Integer(metadata={"description": "foyers rejetés, gardés pour rejeu"})
    error = fields.String(allow_none=True, metadata={"description": "pourquoi le fichier a été refusé (failed)"})
    batch_id = fields.Integer(allow_none=True)
    warnings = fields.List(fields.String())
    seconds = fields.Float(allow_none=True, metadata={"description": "durée de l'import"})
    reader_peak_rss_mb = fields.Float(allow_none=True, metadata={
        "description": "mémoire de pointe du processus de lecture (Mo), quand le fichier est lu à part"})


class FluxReportSchema(Schema):
    files = fields.List(fields.Nested(FluxFileReportSchema), metadata={
        "description": "un compte rendu par fichier, dans l'ordre de création des flux (DTCREAFLUX, HEUCREAFLUX)"})


class BatchQuerySchema(Schema):
    kind = fields.String()
    status = fields.String(validate=validate.OneOf(["running", "imported", "failed"]))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class BatchSchema(Schema):
    """An import batch (imports.models.ImportBatch): one file."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "flux, france_travail:<liste>, spreadsheet, provider_return"})
    file_name = fields.String()
    sha256 = fields.String(metadata={"description": "empreinte du fichier: un fichier renvoyé est reconnu"})
    size_bytes = fields.Integer(allow_none=True)
    header = fields.Dict(keys=fields.String(), allow_none=True, metadata={
        "description": "en-tête du fichier: pour un flux, les champs de TransmissionFlux (APPLIEME, "
                       "NUMVERSIONAPPLIEME, TYPEFLUX, NATFLUX, DTCREAFLUX, HEUCREAFLUX, DTREF); pour une liste, "
                       "la liste (list), la correspondance (mapping) ou la structure (structure, structure_id)"})
    status = fields.String(metadata={"description": "running, imported ou failed"})
    error = fields.String(allow_none=True)
    warnings = fields.List(fields.String(), allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True,
                         metadata={"description": "compteurs du lot (voir les comptes rendus d'import)"})
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    created_by = fields.Integer(allow_none=True, metadata={"description": "compte qui a déposé le fichier"})


class RawText(fields.String):
    """The raw bytes of a rejected record as text (UTF-8, else Windows-1252, else Latin-1), truncated."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        raw = value[:RAW_MAX_CHARS]
        for encoding in ("utf-8", "cp1252"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        return raw.decode("latin-1")


class RejectedRecordSchema(Schema):
    """A rejected record (imports.models.RejectedRecord), kept for replay."""

    id = fields.Integer()
    batch_id = fields.Integer()
    record_key = fields.String(allow_none=True, metadata={"description": "organisme + matricule, ou « ligne N »"})
    reason = fields.String()
    status = fields.String(metadata={"description": "pending (à rejouer), replayed (rejoué) ou purged"})
    created_at = UtcDateTime()
    raw = RawText(allow_none=True, metadata={"description": f"contenu brut (tronqué à {RAW_MAX_CHARS} octets)"})


class MappingSchema(Schema):
    """A column mapping (imports.spreadsheets): a document, bundled (YAML) or saved in the database."""

    name = fields.String(required=True)
    description = fields.String(load_default="")
    organism = fields.String(load_default="CAF", validate=validate.OneOf(["CAF", "MSA"]))
    fields_ = fields.Dict(data_key="fields", attribute="fields", required=True,
                          metadata={"description": "notre champ → libellé(s) de colonne"})
    external_ids = fields.Dict(load_default=dict, metadata={
        "description": "identifiants externes gardés: nom → libellé de colonne"})
    required = fields.List(fields.String(), load_default=list, metadata={"description": "nos champs obligatoires"})
    source = fields.String(dump_only=True, metadata={"description": "fichier livré ou « base de données »"})
