"""Screens of the imports: a provider's monthly return file (template pre-filled with its people,
without NIR; upload; its batches and their rejects in French) and the managers' list of batches.

The upload goes through the very checks and importer of the API (`imports.api._saved`,
`imports.provider_returns.import_file`)."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from sqlalchemy import select

from config import clock
from config.auth import audit, current_user, db, requires, runtime
from imports.models import ImportBatch
from imports.tabular import earlier_rejects
from referents.models import Role, Structure

bp = Blueprint("imports_pages", __name__, template_folder="templates")

STAFF = (Role.ADMIN.value, Role.MANAGER.value)
PROVIDER = Role.PROVIDER.value
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COUNT_LABELS = {"rows": "Lignes lues", "updated": "Personnes mises à jour", "unchanged": "Lignes sans nouveauté",
                "appointment": "Rendez-vous enregistrés", "contract": "Contrats enregistrés",
                "step": "Étapes enregistrées", "exit": "Sorties enregistrées", "rejected": "Lignes rejetées",
                "households": "Foyers", "persons": "Personnes", "created": "Créés", "skipped": "Ignorés"}
KIND_LABELS = {"provider_return": "Retour prestataire", "flux": "Flux CAF/MSA", "spreadsheet": "Tableur"}


def kind_label(kind: str) -> str:
    if kind.startswith("france_travail:"):
        return f"France Travail ({kind.split(':', 1)[1]})"
    return KIND_LABELS.get(kind, kind)


def _own_structure() -> Structure:
    structure = db().get(Structure, current_user().structure_id) if current_user().structure_id else None
    if structure is None:
        abort(403)
    return structure


def provider_batches(session, structure_id: int, limit: int = 50) -> list[ImportBatch]:
    """The return files of one structure, newest first (the structure is in the batch header)."""
    rows = session.scalars(select(ImportBatch).where(ImportBatch.kind == "provider_return")
                           .order_by(ImportBatch.id.desc()).limit(2000))
    return [b for b in rows if (b.header or {}).get("structure_id") == structure_id][:limit]


def batch_visible(batch: ImportBatch) -> bool:
    user = current_user()
    if user.role in STAFF:
        return True
    return (user.role == PROVIDER and batch.kind == "provider_return"
            and (batch.header or {}).get("structure_id") == user.structure_id)


@bp.get("/retours")
@requires(PROVIDER)
def returns():
    """Le fichier retour mensuel: modèle pré-rempli, dépôt, mes lots."""
    from imports.provider_returns import caseload_rows

    structure = _own_structure()
    people = len(caseload_rows(db(), structure.id))
    return render_template("imports/returns.html", structure=structure, people=people,
                           batches=provider_batches(db(), structure.id), kind_label=kind_label,
                           labels=COUNT_LABELS)


@bp.get("/retours/modele.xlsx")
@requires(PROVIDER)
def template():
    """Le modèle xlsx pré-rempli avec les personnes orientées vers ma structure (sans NIR)."""
    from imports.provider_returns import caseload_rows, write_template

    structure = _own_structure()
    rows = caseload_rows(db(), structure.id)
    workdir = Path(tempfile.mkdtemp(prefix="rsa-template-"))
    try:
        data = write_template(workdir / "retour.xlsx", rows=rows).read_bytes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    audit("export", None, {"view": "pages.provider_template", "rows": len(rows)})
    db().commit()
    name = f"retour-{structure.code.lower()}-{clock.today():%Y-%m}.xlsx"
    return send_file(io.BytesIO(data), as_attachment=True, download_name=name, mimetype=XLSX)


@bp.post("/retours")
@requires(PROVIDER)
def upload():
    """Dépose le fichier retour: mêmes contrôles et même import que l'API."""
    from imports.api import LIST_MAX_BYTES, _saved
    from imports.provider_returns import import_file

    structure = _own_structure()
    if not request.files.get("file") or not request.files["file"].filename:
        flash("Choisissez le fichier à déposer.", "error")
        return redirect(url_for("imports_pages.returns"), 303)
    workdir, (path,) = _saved([request.files["file"]], ("xlsx", "xls", "ods", "csv"), LIST_MAX_BYTES)
    try:
        report = import_file(runtime(), path, structure.code, created_by=current_user().id, as_of=clock.today())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    audit("imports.upload.provider_return", details={"file": report.get("file"), "batch_id": report.get("batch_id"),
                                                     "status": report.get("status")})
    db().commit()
    n = report.get("rejected") or 0
    if report["status"] == "failed":
        flash(f"Fichier refusé, rien n'a été enregistré: {report['error']}", "error")
    elif report["status"] == "duplicate":
        flash(f"Ce fichier a déjà été déposé: rien de nouveau n'est enregistré. Il comptait {n} ligne(s) "
              "rejetée(s), rappelée(s) ci-dessous.", "warn" if n else "success")
    else:
        flash(f"Fichier importé: {report['counts'].get('updated', 0)} personne(s) mise(s) à jour, "
              f"{n} ligne(s) rejetée(s).", "warn" if n else "success")
    if report.get("batch_id") is None:
        return redirect(url_for("imports_pages.returns"), 303)
    return redirect(url_for("imports_pages.batch", batch_id=report["batch_id"]), 303)


@bp.get("/lots")
@requires(*STAFF)
def batches():
    """Les lots d'import, du plus récent au plus ancien."""
    rows = db().scalars(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(200)).all()
    return render_template("imports/batches.html", batches=rows, kind_label=kind_label)


@bp.get("/lots/<int:batch_id>")
@requires(*STAFF, PROVIDER)
def batch(batch_id):
    """Un lot et ses lignes rejetées, avec leur raison en français."""
    b = db().get(ImportBatch, batch_id)
    if b is None or not batch_visible(b):
        abort(404)
    rejects = earlier_rejects(db(), b.id, limit=1000)
    return render_template("imports/batch.html", b=b, rejects=rejects, labels=COUNT_LABELS, kind_label=kind_label,
                           back=url_for("imports_pages.returns") if current_user().role == PROVIDER
                           else url_for("imports_pages.batches"))
