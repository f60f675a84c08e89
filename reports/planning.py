"""The delay forecast read off a simulated database, its workbook, and the capacity search (issue 20).

The simulation itself (config.planning) replays inflow through the product's engine on a scratch
database; this module only reads that database with the reports' own definitions (reports.service
.delays: median, p90 and shares of the legal delay, backlog), adds the weekly backlog by waiting
stage, names each MDS's bottleneck, and searches the smallest capacities that reach a target. It
depends on nothing above reports: the capacity search takes the simulation as a function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Path
from kiosque.models import Invitation
from orientation.models import Orientation
from orientation.vocabulary import PENDING
from referents.models import Structure
from referents.vocabulary import LEGAL_DAYS, TARGET_DAYS
from reports import indicators as ind
from reports import service
from reports.indicators import THRESHOLDS, ReportFilter

# Where a person still to orient is waiting (one word each, with its French label).
STAGES = ("validation", "kiosque", "referent", "other")
STAGE_LABELS = {"validation": "validation des propositions", "kiosque": "places de kiosque",
                "referent": "capacité des référents", "other": "autre (hors sectorisation, en cours)"}
BOTTLENECK_LABELS = {**STAGE_LABELS, "none": "aucun (objectif tenu)"}
_STATUS_STAGE = {"proposed": "validation", "kiosque": "kiosque", "awaiting_capacity": "referent"}


def snapshot(session: Session, as_of: dt.date, target_days: int = TARGET_DAYS) -> dict:
    """The backlog on `as_of` (the reports' definition: open, SDD, open right, clock started, no
    decision validated), by MDS and waiting stage: an invitation pending → kiosque; else the
    latest pending decision: proposed → validation, kiosque → kiosque, awaiting capacity →
    referent; else other. `late`: the part already older than target_days."""
    rows = session.execute(
        select(Path.id, Path.person_id, Path.mds_id, Path.clock_start)
        .where(ind._open_unoriented(as_of), Path.clock_start <= as_of)).all()
    codes = dict(session.execute(select(Structure.id, Structure.code).where(Structure.kind == "mds")).all())
    paths = [r.id for r in rows]
    persons = [r.person_id for r in rows]
    status: dict[int, str] = {}
    invited: set[int] = set()
    for chunk in ind_chunks(paths):
        for path_id, st in session.execute(select(Orientation.path_id, Orientation.status)
                                           .where(Orientation.path_id.in_(chunk), Orientation.status.in_(PENDING))
                                           .order_by(Orientation.id)):
            status[path_id] = st
    for chunk in ind_chunks(persons):
        invited.update(session.scalars(select(Invitation.person_id).where(Invitation.person_id.in_(chunk),
                                                                          Invitation.status == "pending")))
    late_on = as_of - dt.timedelta(days=target_days)
    by_mds: dict[str, dict] = {}
    total = {"total": 0, "late": 0, **{s: 0 for s in STAGES}, **{f"late_{s}": 0 for s in STAGES}}
    for r in rows:
        stage = "kiosque" if r.person_id in invited else _STATUS_STAGE.get(status.get(r.id), "other")
        code = codes.get(r.mds_id) or ""
        row = by_mds.setdefault(code, {"total": 0, "late": 0, **{s: 0 for s in STAGES},
                                       **{f"late_{s}": 0 for s in STAGES}})
        late = r.clock_start < late_on
        for target in (row, total):
            target["total"] += 1
            target[stage] += 1
            if late:
                target["late"] += 1
                target[f"late_{stage}"] += 1
    return {"date": as_of.isoformat(), **total, "by_mds": dict(sorted(by_mds.items()))}


def ind_chunks(ids: list[int], size: int = 5000):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def bottleneck(weekly: list[dict], code: str | None = None) -> str:
    """The stage where people waited longest past the target: the most person-weeks of late backlog
    (over the weekly snapshots), for one MDS or the whole Département; "none" when nobody waited
    past the target."""
    weeks = [w["by_mds"].get(code, {}) if code is not None else w for w in weekly]
    load = {s: sum(w.get(f"late_{s}", 0) for w in weeks) for s in STAGES}
    stage = max(STAGES, key=lambda s: (load[s], -STAGES.index(s)))
    return stage if load[stage] > 0 else "none"


def forecast(session: Session, *, start: dt.date, cohort_end: dt.date, as_of: dt.date, weekly: list[dict]) -> dict:
    """The forecast of a simulated database: the legal delay of the entrants of [start, cohort_end]
    as the reports define it, judged on `as_of`, the weekly backlog, and each MDS's bottleneck."""
    f = ReportFilter(as_of=as_of, start=start, end=cohort_end)
    report = service.delays(session, f, breakdowns=("mds",))
    legal = report["clocks"]["legal"]
    names = dict(session.execute(select(Structure.code, Structure.name).where(Structure.kind == "mds")).all())
    by_mds = []
    stats_of = {row["key"]: row for row in legal["by_mds"]}
    for code in sorted(names, key=lambda c: names[c]):
        st = stats_of.get(code) or {**ind.empty_stats()}
        last = weekly[-1]["by_mds"].get(code, {}) if weekly else {}
        by_mds.append({"mds": code, "label": names[code], "cohort_size": st["cohort_size"],
                       "oriented": st["oriented"], "median_legal_days": st["median_days"],
                       "p90_legal_days": st["p90_days"],
                       **{f"share_within_{n}": st[f"share_within_{n}"] for n in THRESHOLDS},
                       "backlog_end": last.get("total", 0),
                       "backlog_weekly": [w["by_mds"].get(code, {}).get("total", 0) for w in weekly],
                       "bottleneck": bottleneck(weekly, code)})
    return {"start": start.isoformat(), "cohort_end": cohort_end.isoformat(), "judged_on": as_of.isoformat(),
            "cohort_size": legal["cohort_size"], "oriented": legal["oriented"],
            "median_legal_days": legal["median_days"], "p90_legal_days": legal["p90_days"],
            "mean_legal_days": legal["mean_days"],
            "share_within_30": legal["share_within_30"], "share_within_42": legal["share_within_42"],
            "share_within_90": legal["share_within_90"],
            "pending_proposals": _pending(session, "proposed"),
            "awaiting_capacity": _pending(session, "awaiting_capacity"),
            "bottleneck": bottleneck(weekly),
            "backlog_weekly": [{k: w[k] for k in ("date", "total", "late", *STAGES)} for w in weekly],
            "by_mds": by_mds,
            "targets": {"target_days": TARGET_DAYS, "legal_limit_days": LEGAL_DAYS}}


def _pending(session: Session, status: str) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count(Orientation.id)).where(Orientation.status == status)) or 0)


# --------------------------------------------------------------------------- capacity search

def search_capacity(run: Callable[[dict[str, int], dict[str, int]], dict], *, today_seats: dict[str, int],
                    today_validations: dict[str, int], weekly_inflow: dict[str, int], target_days: int = 30,
                    share: float = 0.95, max_runs: int = 20, progress: Callable[[str], None] | None = None) -> dict:
    """The smallest weekly kiosque seats and validations per MDS with which the share of the MDS's
    entrants oriented within target_days reaches `share`, on the same simulated inflow.

    A monotone search (more capacity never makes an MDS worse, which the property tests check), per
    MDS and simultaneously for all of them, each simulation answering for every MDS: first the
    validations with ample seats, then the seats with the validations found; a last run checks the
    pair. Bounded: at most max_runs simulations; an MDS still unresolved keeps its upper bound (a
    capacity known to reach the target), and one that misses the target even with ample capacity
    is reported as such (its bottleneck is elsewhere: referent capacity)."""
    if target_days not in THRESHOLDS:
        raise ValueError(f"objectif en jours parmi {', '.join(map(str, THRESHOLDS))} (les seuils des indicateurs)")
    codes = sorted(today_seats)
    key = f"share_within_{target_days}"
    runs: list[dict] = []

    def simulate(seats, validations, why):
        if progress:
            progress(f"simulation {len(runs) + 1}/{max_runs}: {why}")
        result = run(seats, validations)
        shares = {m["mds"]: m[key] for m in result["by_mds"]}
        runs.append({"why": why, "seats_total": sum(seats.values()), "validations_total": sum(validations.values()),
                     key: result[key]})
        return result, shares

    def ok(value) -> bool:
        return value is None or value >= share  # an MDS without judged entrants meets any target

    ample_seats = {m: max(2 * today_seats.get(m, 0), 2 * weekly_inflow.get(m, 0), 10) for m in codes}
    ample_validations = {m: max(2 * today_validations.get(m, 0), 2 * weekly_inflow.get(m, 0), 10) for m in codes}
    _, shares = simulate(ample_seats, ample_validations, "capacités amples")
    reachable = {m: ok(shares.get(m)) for m in codes}

    def bisect(dimension: str, fixed: dict[str, int], upper: dict[str, int], budget: int) -> dict[str, int]:
        lo = {m: -1 for m in codes}  # largest value known to miss (-1: none)
        hi = dict(upper)  # smallest value known to reach (the ample value, checked by the first run)
        stop = len(runs) + budget
        while len(runs) < stop:
            open_ = [m for m in codes if reachable[m] and hi[m] - lo[m] > 1]
            if not open_:
                break
            trial = {m: ((lo[m] + hi[m]) // 2 if m in open_ else hi[m]) for m in codes}
            seats, validations = (trial, fixed) if dimension == "seats" else (fixed, trial)
            _, shares = simulate(seats, validations, f"recherche des {'places' if dimension == 'seats' else 'validations'}")
            for m in open_:
                if ok(shares.get(m)):
                    hi[m] = trial[m]
                else:
                    lo[m] = trial[m]
        return hi

    # Validations first (with ample seats), then seats (with the validations found); the last run
    # of the budget is kept for the check of the pair.
    validations = bisect("validations", ample_seats, ample_validations, (max_runs - 2) // 2)
    seats = bisect("seats", validations, ample_seats, max_runs - 1 - len(runs))
    final, shares = simulate(seats, validations, "vérification")
    rows = []
    for m in codes:
        rows.append({"mds": m, "seats_today": today_seats.get(m, 0), "seats_needed": seats[m],
                     "validations_today": today_validations.get(m, 0), "validations_needed": validations[m],
                     "reachable": reachable[m], key: shares.get(m), "met": ok(shares.get(m))})
    return {"target_days": target_days, "share": share, "runs": runs, "by_mds": rows,
            "seats_today_total": sum(today_seats.values()), "seats_needed_total": sum(seats.values()),
            "validations_today_total": sum(today_validations.values()),
            "validations_needed_total": sum(validations.values()),
            "forecast": final}


# --------------------------------------------------------------------------- workbook

def _header(ws, headers: list[str]) -> None:
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)


def build_workbook(result: dict) -> Workbook:
    """The forecast as an xlsx workbook: summary, weekly backlog (line chart), MDS (bar chart)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Prévision"
    _header(ws, ["Indicateur", "Valeur"])
    rows = [("Entrants simulés (cohorte)", result["cohort_size"]), ("Orientés", result["oriented"]),
            ("Délai légal médian (jours)", result["median_legal_days"]),
            ("Délai légal p90 (jours)", result["p90_legal_days"]),
            ("Part orientée en 30 jours", result["share_within_30"]),
            ("Part orientée en 42 jours", result["share_within_42"]),
            ("Propositions en attente de validation (fin)", result["pending_proposals"]),
            ("Décisions en attente de place (fin)", result["awaiting_capacity"]),
            ("Goulot d'étranglement (Département)", BOTTLENECK_LABELS[result["bottleneck"]]),
            ("Cohorte: du", result["start"]), ("au", result["cohort_end"]), ("jugée le", result["judged_on"])]
    for label, value in rows:
        ws.append([label, value])
        if isinstance(value, float) and value <= 1 and "Part" in label:
            ws.cell(ws.max_row, 2).number_format = "0.0%"
    inputs = result.get("inputs") or {}
    if inputs:
        ws.append([])
        ws.append(["Hypothèses", ""])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
        for k in ("weeks", "entrants_per_week", "seats_total", "validations_total", "absence_summoned",
                  "absence_confirmed", "excuse_rate", "phoning_reach", "seed"):
            if k in inputs:
                ws.append([k, inputs[k]])
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 46, 22

    wk = wb.create_sheet("Stock par semaine")
    _header(wk, ["Semaine se terminant le", "À orienter", "dont au-delà de l'objectif",
                 *[STAGE_LABELS[s] for s in STAGES]])
    for w in result["backlog_weekly"]:
        wk.append([dt.date.fromisoformat(w["date"]), w["total"], w["late"], *[w[s] for s in STAGES]])
        wk.cell(wk.max_row, 1).number_format = "DD/MM/YYYY"
    n = len(result["backlog_weekly"])
    if n:
        chart = LineChart()
        chart.title = "Personnes restant à orienter, semaine par semaine"
        chart.y_axis.title, chart.x_axis.title = "personnes", "semaine"
        chart.add_data(Reference(wk, min_col=2, max_col=3, min_row=1, max_row=n + 1), titles_from_data=True)
        chart.set_categories(Reference(wk, min_col=1, min_row=2, max_row=n + 1))
        chart.height, chart.width = 9, 22
        wk.add_chart(chart, "I2")
    wk.column_dimensions["A"].width = 24

    wm = wb.create_sheet("Par MDS")
    _header(wm, ["MDS", "Code", "Entrants", "Orientés", "Médiane légale (j)", "p90 légal (j)",
                 "Part en 30 j", "Part en 42 j", "Stock final", "Goulot d'étranglement"])
    for m in result["by_mds"]:
        wm.append([m["label"], m["mds"], m["cohort_size"], m["oriented"], m["median_legal_days"],
                   m["p90_legal_days"], m["share_within_30"], m["share_within_42"], m["backlog_end"],
                   BOTTLENECK_LABELS[m["bottleneck"]]])
        for col in (7, 8):
            wm.cell(wm.max_row, col).number_format = "0.0%"
    k = len(result["by_mds"])
    if k:
        chart = BarChart()
        chart.type = "bar"
        chart.title = "Délai légal médian par MDS (jours)"
        chart.add_data(Reference(wm, min_col=5, min_row=1, max_row=k + 1), titles_from_data=True)
        chart.set_categories(Reference(wm, min_col=1, min_row=2, max_row=k + 1))
        chart.height, chart.width = 14, 18
        wm.add_chart(chart, "L2")
    wm.column_dimensions["A"].width, wm.column_dimensions["J"].width = 30, 34
    capacity = result.get("capacity")
    if capacity:
        wc = wb.create_sheet("Capacités")
        _header(wc, ["MDS", "Places de kiosque aujourd'hui", "Places nécessaires", "Validations aujourd'hui",
                     "Validations nécessaires", "Objectif atteint"])
        for r in capacity["by_mds"]:
            wc.append([r["mds"], r["seats_today"], r["seats_needed"], r["validations_today"],
                       r["validations_needed"], "oui" if r["met"] else "non"])
    return wb
