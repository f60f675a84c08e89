"""Screens of the reports package. The forecast page of the managers' dashboard (/dashboard/prevision): the last forecast written
by `rsa plan simulate` or `rsa plan capacity` (a simulation takes minutes: it is not run on a web
request), with its weekly backlog, its MDS table and bottlenecks, and its xlsx download."""

from __future__ import annotations

import io
import json
from pathlib import Path

from flask import Blueprint, render_template, send_file, url_for

from config.auth import STAFF, current_user, requires, runtime
from referents.pages import date_fr
from reports import charts
from reports.api import _fr
from reports.planning import BOTTLENECK_LABELS, STAGE_LABELS, STAGES, build_workbook

LATEST = "prevision/derniere-prevision.json"  # written by config.plan_cli
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

bp = Blueprint("reports_planning", __name__, template_folder="templates")


def latest_forecast() -> dict | None:
    path = Path(runtime().settings.reports_dir) / LATEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@bp.get("/dashboard/prevision")
@requires(*STAFF)
def forecast_page():
    """Prévision du délai d'orientation et capacités nécessaires (dernière simulation)."""
    result = latest_forecast()
    svg = None
    if result and result.get("backlog_weekly"):
        weeks = result["backlog_weekly"]
        svg = charts.line_chart(
            [date_fr(w["date"])[:5] for w in weeks],
            [("À orienter", [w["total"] for w in weeks], charts.BLUE),
             ("dont au-delà de l'objectif", [w["late"] for w in weeks], charts.RED)],
            [], "Personnes restant à orienter, semaine par semaine (simulation)", unit="pers.")
    return render_template("reports/planning.html", r=result, svg=svg, fr=_fr, date=date_fr,
                           stages=STAGES, stage_labels=STAGE_LABELS, bottlenecks=BOTTLENECK_LABELS,
                           dashboard=url_for("reports_pages.dashboard"),
                           xlsx=url_for("reports_planning.forecast_xlsx") if result else None,
                           user=current_user())


@bp.get("/dashboard/prevision.xlsx")
@requires(*STAFF)
def forecast_xlsx():
    """La dernière prévision en classeur xlsx (agrégats seulement, aucune donnée nominative)."""
    result = latest_forecast()
    if result is None:
        from flask import abort

        abort(404)
    buf = io.BytesIO()
    build_workbook(result).save(buf)
    buf.seek(0)
    return send_file(buf, mimetype=XLSX, as_attachment=True,
                     download_name=f"prevision-delais-{result.get('start', 'derniere')}.xlsx")
