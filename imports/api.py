"""REST API of the imports: uploads (CAF/MSA flows, France Travail lists, spreadsheets, provider
returns) answering the batch report, batches and their rejects, column mappings, the provider
template. Thin: every import runs through the same functions as the CLI and the inbox job."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import select

from config import clock
from config.auth import audit, check_upload, current_user, db, requires, runtime
from imports.models import ImportBatch, RejectedRecord
from imports.schemas import (
    BatchQuerySchema,
    BatchSchema,
    FluxReportSchema,
    FluxUploadSchema,
    MappingSchema,
    ProviderQuerySchema,
    RejectedRecordSchema,
    ReportSchema,
    SpreadsheetQuerySchema,
    UploadSchema,
)
from referents.models import Role, Structure
from referents.service import structure_by_code

blp = Blueprint("imports", __name__, url_prefix="/imports", description="Imports de fichiers et leurs lots")

STAFF = (Role.ADMIN.value, Role.MANAGER.value)
MB = 1024 * 1024
LIST_MAX_BYTES = 100 * MB  # France Travail lists, spreadsheets, provider returns
SHEET_EXTENSIONS = ("xlsx", "xls", "ods", "csv")
FT_KINDS = ("inscriptions", "cessations", "radiations", "stock")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BINARY = {"type": "string", "format": "binary"}  # OpenAPI: a file in the response body


def _saved(files, extensions, max_bytes=None) -> tuple[Path, list[Path]]:
    """Check each upload (type, content, size) and save it under its sanitised original name."""
    # The import runs in its own transactions: end the request's one first (SQLite: one writer).
    db().commit()
    workdir = Path(tempfile.mkdtemp(prefix="rsa-upload-"))
    paths = []
    try:
        for f in files:
            name = check_upload(f, extensions, max_bytes)
            target = workdir / f"{len(paths):03d}" / name
            target.parent.mkdir()
            f.save(target)
            paths.append(target)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir, paths


def _report(report: dict) -> dict:
    """The batch report for the caller, and the upload in the audit log."""
    report = dict(report)
    report.pop("path", None)  # the server's temporary path says nothing to the caller
    audit(f"imports.upload.{report.get('kind')}", details={"file": report.get("file"), "batch_id": report.get("batch_id"),
                                                           "status": report.get("status")})
    db().commit()
    return report


@blp.route("/flux")
class FluxUpload(MethodView):
    @requires(*STAFF)
    @blp.arguments(FluxUploadSchema, location="files")
    @blp.response(200, FluxReportSchema)
    def post(self, args):
        """Importe un ou plusieurs fichiers de flux CAF/MSA (XML), dans l'ordre de leur création."""
        from imports.service import import_files

        workdir, paths = _saved(args["files"], ("xml", "gz"), None)
        try:
            files = import_files(runtime(), paths, created_by=current_user().id)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for f in files:
            f["path"] = Path(f["path"]).name  # not the server's temporary folder
        audit("imports.upload.flux", details={"files": [(f["path"], f.get("batch_id"), f["status"]) for f in files]})
        db().commit()
        return {"files": files}


@blp.route("/france-travail/<string:kind>")
class FranceTravailUpload(MethodView):
    @requires(*STAFF)
    @blp.arguments(UploadSchema, location="files")
    @blp.response(200, ReportSchema)
    def post(self, args, kind):
        """Importe une liste France Travail: inscriptions, cessations, radiations ou stock (CSV « ; »)."""
        from imports.france_travail import import_file

        if kind not in FT_KINDS:
            abort(404, message=f"liste inconnue « {kind} » ({', '.join(FT_KINDS)})")
        workdir, (path,) = _saved([args["file"]], ("csv", "txt"), LIST_MAX_BYTES)
        try:
            return _report(import_file(runtime(), kind, path, created_by=current_user().id))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@blp.route("/spreadsheets")
class SpreadsheetUpload(MethodView):
    @requires(*STAFF)
    @blp.arguments(SpreadsheetQuerySchema, location="query")
    @blp.arguments(UploadSchema, location="files")
    @blp.response(200, ReportSchema)
    def post(self, query, args):
        """Importe une liste de bénéficiaires (xlsx, xls, ods, csv) via une correspondance de colonnes."""
        from imports.spreadsheets import MappingError, get_mapping, import_file

        try:
            get_mapping(db(), query["mapping"])
        except MappingError as exc:
            abort(422, message=str(exc))
        workdir, (path,) = _saved([args["file"]], SHEET_EXTENSIONS, LIST_MAX_BYTES)
        try:
            return _report(import_file(runtime(), path, query["mapping"], created_by=current_user().id))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@blp.route("/provider-returns")
class ProviderReturnUpload(MethodView):
    @requires(*STAFF, Role.PROVIDER.value)
    @blp.arguments(ProviderQuerySchema, location="query")
    @blp.arguments(UploadSchema, location="files")
    @blp.response(200, ReportSchema)
    def post(self, query, args):
        """Importe le retour mensuel d'un prestataire. Un prestataire ne dépose que pour sa structure."""
        from imports.provider_returns import import_file

        user = current_user()
        code = query.get("structure")
        if user.role == Role.PROVIDER.value:
            own = db().get(Structure, user.structure_id)
            if code and code != own.code:
                abort(403, message="un prestataire ne dépose un retour que pour sa propre structure")
            code = own.code
        elif not code:
            abort(422, message="paramètre « structure » obligatoire")
        if structure_by_code(db(), code) is None:
            abort(422, message=f"structure inconnue « {code} »")
        workdir, (path,) = _saved([args["file"]], ("xlsx", "xls", "ods", "csv"), LIST_MAX_BYTES)
        try:
            return _report(import_file(runtime(), path, code, created_by=user.id,
                                       as_of=query.get("as_of") or clock.today()))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@blp.route("/provider-template")
class ProviderTemplate(MethodView):
    @requires(*STAFF, Role.PROVIDER.value)
    @blp.response(200, BINARY, content_type=XLSX, description="le modèle xlsx du retour prestataire")
    def get(self):
        """Le modèle xlsx du retour prestataire (listes déroulantes des statuts et motifs de sortie)."""
        from imports.provider_returns import write_template

        workdir = Path(tempfile.mkdtemp(prefix="rsa-template-"))
        path = write_template(workdir / "retour_prestataire.xlsx")
        data = path.read_bytes()
        shutil.rmtree(workdir, ignore_errors=True)
        import io

        return send_file(io.BytesIO(data), as_attachment=True, download_name="retour_prestataire.xlsx", mimetype=XLSX)


@blp.route("/batches")
class Batches(MethodView):
    @requires(*STAFF, Role.PROVIDER.value)
    @blp.arguments(BatchQuerySchema, location="query")
    @blp.response(200, BatchSchema(many=True))
    def get(self, query):
        """Les lots d'import, du plus récent au plus ancien (un prestataire: ses fichiers retour)."""
        if current_user().role == Role.PROVIDER.value:
            from imports.pages import provider_batches

            rows = [b for b in provider_batches(db(), current_user().structure_id, limit=5000)
                    if not query.get("status") or b.status == query["status"]]
            if query.get("kind") and query["kind"] != "provider_return":
                rows = []
            return rows[query["offset"]:query["offset"] + query["limit"]]
        stmt = select(ImportBatch).order_by(ImportBatch.id.desc())
        if query.get("kind"):
            stmt = stmt.where(ImportBatch.kind == query["kind"])
        if query.get("status"):
            stmt = stmt.where(ImportBatch.status == query["status"])
        return db().scalars(stmt.limit(query["limit"]).offset(query["offset"])).all()


@blp.route("/batches/<int:batch_id>")
class BatchDetail(MethodView):
    @requires(*STAFF, Role.PROVIDER.value)
    @blp.response(200, BatchSchema)
    def get(self, batch_id):
        """Un lot d'import."""
        batch = db().get(ImportBatch, batch_id)
        if batch is None or not _visible(batch):
            abort(404, message="lot inconnu")
        return batch


@blp.route("/batches/<int:batch_id>/rejects")
class BatchRejects(MethodView):
    @requires(*STAFF, Role.PROVIDER.value)
    @blp.arguments(BatchQuerySchema(only=("limit", "offset")), location="query")
    @blp.response(200, RejectedRecordSchema(many=True))
    def get(self, query, batch_id):
        """Les enregistrements rejetés d'un lot, avec la raison (ligne et colonne pour les tableurs)."""
        batch = db().get(ImportBatch, batch_id)
        if batch is None or not _visible(batch):
            abort(404, message="lot inconnu")
        return db().scalars(select(RejectedRecord).where(RejectedRecord.batch_id == batch_id)
                            .order_by(RejectedRecord.id).limit(query["limit"]).offset(query["offset"])).all()


def _visible(batch: ImportBatch) -> bool:
    """Staff see every batch; a provider only the return files of its own structure."""
    from imports.pages import batch_visible

    return batch_visible(batch)


@blp.route("/mappings")
class Mappings(MethodView):
    @requires(*STAFF)
    @blp.response(200, MappingSchema(many=True))
    def get(self):
        """Les correspondances de colonnes (fichiers livrés et correspondances enregistrées)."""
        from imports.spreadsheets import list_mappings

        return list_mappings(db())


@blp.route("/mappings/<string:name>")
class MappingDetail(MethodView):
    @requires(*STAFF)
    @blp.response(200, MappingSchema)
    def get(self, name):
        """Une correspondance de colonnes."""
        from imports.spreadsheets import MappingError, get_mapping

        try:
            return get_mapping(db(), name)
        except MappingError:
            abort(404, message=f"correspondance inconnue « {name} »")

    @requires(*STAFF)
    @blp.arguments(MappingSchema)
    @blp.response(200, MappingSchema)
    def put(self, data, name):
        """Enregistre (ou remplace) une correspondance de colonnes."""
        from imports.spreadsheets import MappingError, save_mapping

        data["name"] = name
        try:
            doc = save_mapping(db(), data)
        except MappingError as exc:
            abort(422, message=str(exc))
        db().commit()
        return {**doc, "source": "base de données"}
