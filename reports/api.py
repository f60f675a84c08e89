"""Reports over HTTP: the JSON reports and the xlsx download under /api/v1/reports (every role,
scoped to what the user may see), and the managers' dashboard at /dashboard (HTML, inline SVG)."""

from __future__ import annotations

import datetime as dt
import io

from flask import Blueprint as PageBlueprint
from flask import redirect, render_template, request, send_file, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from sqlalchemy import select
from werkzeug.http import http_date

from config import clock
from config.auth import ALL_ROLES, STAFF, audit, current_user, db, requires, runtime
from config.edges import file_response
from referents.models import Role, Structure, Territory
from referents.service import structure_by_code
from referents.vocabulary import LEGAL_DAYS, TARGET_DAYS
from reports import charts, service, snapshots
from reports import indicators as ind
from reports.export import build_workbook
from reports.indicators import BANDS, ReportFilter
from reports.schemas import (
    DelaysReportSchema,
    FullReportSchema,
    PersonListQuerySchema,
    ReportPersonSchema,
    ReportQuerySchema,
)

blp = Blueprint("reports", __name__, url_prefix="/reports",
                description="Indicateurs de délai d'orientation, stock à orienter, kiosques, suites de l'orientation.")
pages = PageBlueprint("reports_pages", __name__, template_folder="templates")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PERSON_LEVEL_ROLES = (Role.ADMIN.value, Role.MANAGER.value)


def _resolve(args: dict, strict: bool = True) -> ReportFilter:
    """Filters from query arguments: codes of territory/MDS to ids, the user's scope."""
    session = db()
    territory_id = mds_id = None
    if args.get("territory"):
        territory_id = session.scalar(select(Territory.id).where(Territory.code == args["territory"]))
        if territory_id is None and strict:
            abort(422, message=f"territoire inconnu: {args['territory']}")
    if args.get("mds"):
        structure = structure_by_code(session, args["mds"], kind="mds")
        mds_id = structure.id if structure else None
        if mds_id is None and strict:
            abort(422, message=f"MDS inconnue: {args['mds']}")
    start, end = args.get("from_"), args.get("to")
    if start and end and start > end:
        abort(422, message="la période commence après sa fin")
    return ReportFilter(as_of=args.get("as_of") or clock.today(), start=start, end=end,
                        territory_id=territory_id, mds_id=mds_id, user=current_user())


def _stored(name: str, f: ReportFilter, refresh: bool = False) -> snapshots.Snapshot:
    """The report through its snapshot (reports/snapshots.py): computed at most once per
    RSA_REPORT_CACHE_MINUTES and per bulk change, for this user's scope."""
    return snapshots.stored_report(db(), name, f, refresh=refresh,
                                   max_age=dt.timedelta(minutes=runtime().settings.report_cache_minutes))


# The response headers saying when the figures were computed (the body stays the report itself).
SNAPSHOT_HEADERS = {
    "Last-Modified": {"description": "quand les chiffres ont été calculés (date HTTP)",
                      "schema": {"type": "string"}},
    "X-Report-Computed-At": {"description": "quand les chiffres ont été calculés (AAAA-MM-JJTHH:MM:SS, heure locale)",
                             "schema": {"type": "string"}},
    "X-Report-Snapshot": {"description": "« hit »: chiffres lus dans l'instantané enregistré; « miss »: calculés "
                                         "pour cette requête", "schema": {"type": "string", "enum": ["hit", "miss"]}},
}


def snapshot_headers(snap: snapshots.Snapshot) -> dict:
    return {"Last-Modified": http_date(snap.computed_at.astimezone(dt.UTC)),
            "X-Report-Computed-At": snap.computed_at.isoformat(timespec="seconds"),
            "X-Report-Snapshot": "hit" if snap.cached else "miss"}


@blp.route("/delays")
class Delays(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, DelaysReportSchema, headers=SNAPSHOT_HEADERS)
    def get(self, args):
        """Délais d'orientation par horloge (demande DREES, légale), stock à orienter, ventilations.

        Servi depuis l'instantané enregistré (au plus RSA_REPORT_CACHE_MINUTES minutes, recalculé
        après chaque import ou traitement de masse); `refresh=1` le recalcule maintenant. L'en-tête
        X-Report-Computed-At dit quand les chiffres ont été calculés."""
        snap = _stored("delays", _resolve(args), refresh=args["refresh"])
        return snap.payload, 200, snapshot_headers(snap)


@blp.route("/full")
class Full(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, FullReportSchema, headers=SNAPSHOT_HEADERS)
    def get(self, args):
        """Tout le tableau de bord: délais, kiosques, suites de l'orientation, référence nationale.

        Servi depuis l'instantané enregistré, comme /reports/delays (`refresh=1`: recalculé maintenant)."""
        snap = _stored("full", _resolve(args), refresh=args["refresh"])
        return snap.payload, 200, snapshot_headers(snap)


@blp.route("/persons")
class Persons(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(PersonListQuerySchema, location="query")
    @blp.response(200, ReportPersonSchema(many=True))
    def get(self, args):
        """Les personnes derrière un chiffre (stock, cohorte, non orientés, hors délai), dans le périmètre."""
        f = _resolve(args)
        rows = ind.persons_behind(db(), f, args["list_"], clock=args["clock"], band=args.get("band"),
                                  limit=args["limit"])
        audit("report_person_list", details={"list": args["list_"], "band": args.get("band"), "count": len(rows)})
        db().commit()
        return rows


@blp.route("/export.xlsx")
class Export(MethodView):
    @requires(*ALL_ROLES)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, content_type=XLSX, description="classeur xlsx")
    @blp.doc(**file_response(XLSX, "classeur xlsx"))
    def get(self, args):
        """Le classeur xlsx des indicateurs (feuille nominative réservée aux responsables)."""
        f = _resolve(args)
        snap = _stored("full", f, refresh=args["refresh"])  # the dashboard's figures, to the digit
        report = snap.payload
        persons = None
        if current_user().role in PERSON_LEVEL_ROLES:
            persons = ind.persons_behind(db(), f, "backlog", limit=100_000)
            audit("report_export_persons", details={"count": len(persons)})
            db().commit()
        buf = io.BytesIO()
        build_workbook(report, persons, computed_at=snap.computed_at).save(buf)
        buf.seek(0)
        response = send_file(buf, mimetype=XLSX, as_attachment=True,
                             download_name=f"indicateurs-orientation-{f.as_of.isoformat()}.xlsx")
        response.headers.update(snapshot_headers(snap))
        return response


# --------------------------------------------------------------------------- dashboard (HTML)

FILTER_LABELS = {"as_of": "Date de référence", "from": "Cohorte du", "to": "au", "territory": "Territoire",
                 "mds": "MDS"}


def _page_args(errors: dict | None = None) -> dict:
    """Dashboard filters from the query string; an invalid value is ignored, not fatal, and said
    on the page (`errors`: filter → French message)."""
    errors = {} if errors is None else errors
    out = {}
    for key, name in (("as_of", "as_of"), ("from_", "from"), ("to", "to")):
        try:
            out[key] = dt.date.fromisoformat(request.args[name]) if request.args.get(name) else None
        except ValueError:
            out[key] = None
            errors[name] = f"{FILTER_LABELS[name]}: date invalide « {request.args[name][:20]} », filtre ignoré"
    out["territory"] = request.args.get("territory") or None
    out["mds"] = request.args.get("mds") or None
    session = db()
    if out["territory"] and session.scalar(select(Territory.id).where(Territory.code == out["territory"])) is None:
        errors["territory"] = f"territoire inconnu « {out['territory'][:40]} », filtre ignoré"
        out["territory"] = None
    if out["mds"] and structure_by_code(session, out["mds"], kind="mds") is None:
        errors["mds"] = f"MDS inconnue « {out['mds'][:40]} », filtre ignoré"
        out["mds"] = None
    if out["from_"] and out["to"] and out["from_"] > out["to"]:
        errors["to"] = "la période commence après sa fin: période par défaut"
        out["from_"] = out["to"] = None
    return out


def _choices():
    session = db()
    territories = session.execute(select(Territory.code, Territory.name).order_by(Territory.name)).all()
    mds = session.execute(select(Structure.code, Structure.name).where(Structure.kind == "mds", Structure.active)
                          .order_by(Structure.name)).all()
    return territories, mds


def _fr(value, kind: str = "days") -> str:
    """French rendering of a number of days or of a share."""
    if value is None:
        return "—"
    if kind == "share":
        return f"{value * 100:.1f} %".replace(".", ",")
    if kind == "count":
        return f"{value:,}".replace(",", "\u202f")
    return f"{value:.1f} j".replace(".", ",")


def _link_args(args: dict, **extra) -> dict:
    base = {"as_of": args["as_of"], "from": args["from_"], "to": args["to"], "territory": args["territory"],
            "mds": args["mds"]}
    base.update(extra)
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in base.items() if v}


@pages.get("/dashboard")
@requires(*STAFF)
def dashboard():
    """Le tableau de bord des responsables: où en est-on des 30 jours, où le délai s'accumule."""
    filter_errors: dict = {}
    args = _page_args(filter_errors)
    f = _resolve(args, strict=False)
    if request.args.get("refresh") == "1":  # recompute now, then back to the plain address (a reload
        _stored("full", f, refresh=True)      # of the page does not recompute again)
        return redirect(url_for("reports_pages.dashboard", **_link_args(args)))
    snap = _stored("full", f)
    report = snap.payload
    legal, demande = report["clocks"]["legal"], report["clocks"]["demande"]
    months = [m["key"] for m in legal["by_month"]]
    demande_by_month = {m["key"]: m for m in demande["by_month"]}
    ref = {(r["indicator"], r["scope"], r["year"]): r["value"] for r in report["national_reference"]}
    k = report["kiosque"]["funnel"]
    svg = {
        "bullet": charts.bullet(legal["median_days"], TARGET_DAYS, LEGAL_DAYS,
                                "Délai médian légal face à l'objectif et à la limite légale"),
        "trend": charts.line_chart(
            months,
            [("Médiane légale", [m["median_days"] for m in legal["by_month"]], charts.BLUE),
             ("Médiane depuis la demande", [demande_by_month[m]["median_days"] for m in months], charts.GREY)],
            [(TARGET_DAYS, f"objectif {TARGET_DAYS} j", charts.GREEN),
             (LEGAL_DAYS, f"limite légale {LEGAL_DAYS} j", charts.RED)],
            "Délai médian d'orientation par mois d'entrée"),
        "backlog": charts.bars([(b[0] + " j", legal["backlog"][b[0]]) for b in BANDS],
                               "Personnes restant à orienter par ancienneté (horloge légale)",
                               colours=list(charts.BAND_COLOURS)),
        "funnel": charts.funnel([("Invités", k["invited"]), ("Joints", k["reached"]),
                                 ("Présents", k["attended"]), ("Orientés", k["oriented"])],
                                "Entonnoir des kiosques insertion"),
    }
    territories, mds = _choices()
    return render_template("reports/dashboard.html", mds_rows=_mds_rows(legal), report=report, legal=legal,
                           demande=demande,
                           head=service.headline(report), args=args, svg=svg, fr=_fr, bands=[b[0] for b in BANDS],
                           territories=territories, mds_choices=mds, ref=ref,
                           link=lambda **extra: url_for("reports_pages.person_list", **_link_args(args, **extra)),
                           xlsx=url_for("reports.Export", **_link_args(args)),
                           target=TARGET_DAYS, limit=LEGAL_DAYS, user=current_user(),
                           filter_errors=filter_errors, snapshot=snap, refresh_args=_link_args(args),
                           max_age_minutes=runtime().settings.report_cache_minutes)


def _mds_rows(clock: dict) -> list[dict]:
    """Per MDS: the cohort figures and the backlog side by side (an MDS may have only one of them)."""
    rows: dict = {}
    for m in clock["by_mds"]:
        rows[m["key"]] = {"key": m["key"], "label": m["label"], "stats": m, "backlog": None}
    for b in clock["backlog_by_mds"]:
        rows.setdefault(b["key"], {"key": b["key"], "label": b["label"], "stats": None, "backlog": None})["backlog"] = b
    return sorted(rows.values(), key=lambda r: (r["key"] is None, str(r["label"])))


OVER_LEGAL = f"{LEGAL_DAYS}+"  # the band parameter of "beyond the legal limit"
LIST_TITLES = {"backlog": "Personnes restant à orienter", "cohort": "Parcours de la cohorte",
               "not_oriented": "Parcours de la cohorte non encore orientés",
               "late": f"Parcours non orientés dans les {LEGAL_DAYS} jours"}


@pages.get("/dashboard/personnes")
@requires(*STAFF)
def person_list():
    """La liste nominative derrière un chiffre du tableau de bord (accès journalisé)."""
    args = _page_args()
    what = request.args.get("list", "backlog")
    clock = request.args.get("clock", "legal")
    band = request.args.get("band") or None
    bands = [b[0] for b in BANDS]
    if what not in LIST_TITLES or clock not in ind.CLOCKS or (band and band not in (*bands, OVER_LEGAL)):
        abort(400, message="liste inconnue")
    f = _resolve(args, strict=False)
    if band == OVER_LEGAL:  # every band from the legal limit on: the number "dont N au-delà de 42 jours"
        over = [b for b, low, _high in BANDS if low >= LEGAL_DAYS]
        rows = []
        for b in reversed(over):  # the oldest first, like every list
            rows += ind.persons_behind(db(), f, what, clock=clock, band=b, limit=1000 - len(rows))
    else:
        rows = ind.persons_behind(db(), f, what, clock=clock, band=band, limit=1000)
    audit("report_person_list", details={"list": what, "band": band, "count": len(rows)})
    db().commit()
    title = LIST_TITLES[what] + (f" — au-delà de {LEGAL_DAYS} jours" if band == OVER_LEGAL
                                 else f" — ancienneté {band} jours" if band else "")
    return render_template("reports/persons.html", rows=rows, title=title, clock=clock, fr=_fr,
                           back=url_for("reports_pages.dashboard", **_link_args(args)))
