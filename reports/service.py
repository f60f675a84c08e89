"""Reports assembled from the indicators of reports.indicators: the `delays` report (the JSON of the
CLI and the API), the full report behind the dashboard and the workbook, and the demo step.

No Flask here: plain functions over a SQLAlchemy session.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path as FsPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from orientation.vocabulary import NOT_ORIENTED, Origin
from referents.models import Structure
from referents.vocabulary import LEGAL_DAYS, TARGET_DAYS, Organisme, Outcome, Parcours
from reports import indicators as ind
from reports.indicators import BANDS, CLOCKS, ReportFilter

BREAKDOWNS = ("month", "territory", "mds", "referent_type", "parcours", "organisme", "origin", "rule")
# The breakdowns of the `delays` report (CLI, API): the others cost one more pass each.
DELAY_BREAKDOWNS = ("month", "territory", "mds", "referent_type")
CLOCK_LABELS = {"demande": "Depuis la demande (DTDEMRSA, DREES)", "legal": "Délai légal (ouverture du droit SDD)"}


def _months(start: dt.date, end: dt.date) -> list[str]:
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _label(dim: str, key: str | None, names: dict) -> tuple[str | None, str]:
    """(public key, French label) of a breakdown key: codes rather than database ids."""
    if dim in ("territory", "mds"):
        if key is None:
            return None, "Non sectorisé"
        code, name = names[dim].get(key, (key, key))
        return code, name
    if dim == "referent_type":
        return key, NOT_ORIENTED if key is None else Outcome.label_of(key)
    if dim == "parcours":
        return key, NOT_ORIENTED if key is None else Parcours.label_of(key)
    if dim == "organisme":
        return key, NOT_ORIENTED if key is None else Organisme.label_of(key)
    if dim == "origin":
        return key, NOT_ORIENTED if key is None else Origin.label_of(key)
    if dim == "rule":
        return key, key or "Sans règle"
    return key, key or "—"


def _breakdown(stats: dict, dim: str, names: dict, months: list[str]) -> list[dict]:
    rows = [(key, s) for (d, key), s in stats.items() if d == dim]
    if dim == "month":
        known = dict(rows)
        rows = [(m, known.get(m, ind.empty_stats())) for m in months]
    out = []
    for key, s in rows:
        public, label = _label(dim, key, names)
        out.append({"key": public, "label": label, **s})
    if dim != "month":
        out.sort(key=lambda r: (r["key"] is None, str(r["label"])))
    return out


def _backlog_by(rows: list[dict], by: str, names: dict) -> list[dict]:
    out = []
    for key, bands in ind.backlog_bands(rows, by=by).items():
        public, label = _label(by, None if key is None else str(key), names)
        out.append({"key": public, "label": label, "bands": bands, "total": sum(bands.values())})
    out.sort(key=lambda r: (-r["total"], str(r["label"])))
    return out


def delays(session: Session, f: ReportFilter, breakdowns: tuple[str, ...] = DELAY_BREAKDOWNS,
           scope_ids=ind.OWN_SCOPE) -> dict:
    """The `delays` report: for each clock, cohort figures, backlog and the breakdowns."""
    sources = tuple(dict.fromkeys(ind.DIM_SOURCE[d] for d in ("all", *breakdowns)))
    closed_early = ind.closed_early_counts(session, f, scope_ids)
    with ind.histogram(session, f, sources, scope_ids=scope_ids) as hist:
        return _delays(session, f, breakdowns, hist, closed_early)


def _delays(session: Session, f: ReportFilter, breakdowns: tuple[str, ...], hist, closed_early: dict) -> dict:
    start, end = f.period
    names = ind.labels(session)
    months = _months(start, end)
    clocks = {}
    for clock in CLOCKS:
        stats = ind.delay_statistics(session, hist, clock, ("all", *breakdowns))
        backlog_rows = ind.backlog(session, hist, clock)
        data = dict(stats[("all", "*")])
        # Closed without orientation before the legal delay: apart from the cohort, not a failure.
        data["closed_before_legal_delay"] = closed_early[clock]
        data["backlog"] = ind.backlog_bands(backlog_rows)
        data["backlog_total"] = sum(data["backlog"].values())
        for dim in breakdowns:
            data[f"by_{dim}"] = _breakdown(stats, dim, names, months)
        data["backlog_by_territory"] = _backlog_by(backlog_rows, "territory", names)
        data["backlog_by_mds"] = _backlog_by(backlog_rows, "mds", names)
        clocks[clock] = data
    return {"as_of": f.as_of.isoformat(), "period": {"from": start.isoformat(), "to": end.isoformat()},
            "filters": {"territory_id": f.territory_id, "mds_id": f.mds_id},
            "targets": {"target_days": TARGET_DAYS, "legal_limit_days": LEGAL_DAYS},
            "bands": [b[0] for b in BANDS], "clocks": clocks}


def kiosque(session: Session, f: ReportFilter) -> dict:
    """The kiosque funnel, overall and by MDS, and the capacity shortfalls.

    One definition: kiosque.service.funnel (docs/kiosque.md), over the sessions held in the period.
    The funnel counts sessions of MDS, not persons: a manager sees every MDS, an MDS worker their
    own MDS, other roles no kiosque figures."""
    from kiosque.service import funnel

    start, end = f.period
    empty = {"invited": 0, "reached": 0, "attended": 0, "oriented": 0, "rate_oriented": None}
    mds_id = f.mds_id
    if f.user is not None and f.user.role not in ("admin", "manager"):
        if f.user.role != "mds_worker" or (mds_id is not None and mds_id != f.user.structure_id):
            return {"funnel": empty, "by_mds": [], "capacity": ind.capacity_shortfalls(session, f)}
        mds_id = f.user.structure_id
    names = ind.labels(session)
    in_territory = None
    if f.territory_id is not None:
        in_territory = set(session.scalars(select(Structure.id).where(Structure.territory_id == f.territory_id)))
    by_mds = []
    for row in funnel(session, start=start, end=end, mds_id=mds_id, by="mds"):
        if in_territory is not None and row["mds_id"] not in in_territory:
            continue
        key, label = _label("mds", str(row["mds_id"]), names)
        by_mds.append({"key": key, "label": label, "invited": row["invited"], "reached": row["reached"],
                       "attended": row["attended"], "oriented": row["oriented"],
                       "rate_oriented": row["oriented_rate"]})
    by_mds.sort(key=lambda r: str(r["label"]))
    if in_territory is None:
        total = funnel(session, start=start, end=end, mds_id=mds_id, by="total")
        t = total[0] if total else None
        overall = ({"invited": t["invited"], "reached": t["reached"], "attended": t["attended"],
                    "oriented": t["oriented"], "rate_oriented": t["oriented_rate"]} if t else dict(empty))
    else:  # persons are counted once per MDS: a sum over the MDS of one territory
        overall = {k: sum(r[k] for r in by_mds) for k in ("invited", "reached", "attended", "oriented")}
        overall["rate_oriented"] = round(overall["oriented"] / overall["invited"], 3) if overall["invited"] else None
    return {"funnel": overall, "by_mds": by_mds, "capacity": ind.capacity_shortfalls(session, f)}


def after_orientation(session: Session, f: ReportFilter, scope_ids=ind.OWN_SCOPE) -> dict:
    """After the decision: first appointment fixed within 15 days (plan pauvreté B4) and its attendance,
    contract within a month, mean delays to the first appointment and the contract, positive exits
    by structure — one definition each, in cases.service (docs/cases.md), reused here — and the share
    of SDD oriented by seniority in the RSA (the DREES series, reports.indicators).

    The cases aggregates cover the whole Département over the period (they take no territory, MDS
    or person scope): they are given to admins and managers only."""
    from cases import service as cases_service

    start, end = f.period
    seniority = ind.oriented_by_seniority(session, f, scope_ids)
    if f.user is not None and f.user.role not in ("admin", "manager"):
        return {"scope": "none", "first_appointment_within_15": None, "contract_within_1_month": None,
                "mean_delays": None, "positive_exits_by_structure": [], "oriented_by_seniority": seniority}
    fa = cases_service.first_appointment_within(session, ind.FIRST_APPOINTMENT_DAYS, start=start, end=end,
                                                as_of=f.as_of)
    ct = cases_service.contract_within(session, 1, start=start, end=end, as_of=f.as_of)
    md = cases_service.mean_delays_after_orientation(session, start=start, end=end, as_of=f.as_of)
    exits = [{"key": e["structure_code"], "label": e["structure_name"] or "Sans structure référente",
              "exits": e["exits"], "positive": e["positive"], "share_positive": e["rate"]}
             for e in cases_service.positive_exit_rate(session, start, end)]
    exits.sort(key=lambda r: str(r["label"]))
    return {"scope": "departement",
            # Plan pauvreté B4: first appointment FIXED within 15 days, and the attendance at it.
            "first_appointment_within_15": {"denominator": fa["eligible"], "numerator": fa["success"],
                                            "share": fa["rate"], "days": fa["days"],
                                            "attendance": {"denominator": fa["attendance_eligible"],
                                                           "numerator": fa["attended"],
                                                           "share": fa["attendance_rate"]}},
            "mean_delays": {
                "orientation_to_first_appointment": {"mean_days": md["appointment_mean_days"],
                                                     "denominator": md["appointment_denominator"]},
                "orientation_to_contract": {"mean_days": md["contract_mean_days"],
                                            "denominator": md["contract_denominator"]}},
            "contract_within_1_month": {"denominator": ct["eligible"], "numerator": ct["success"],
                                        "share": ct["rate"], "months": 1},
            "positive_exits_by_structure": exits,
            "oriented_by_seniority": seniority}


def full_report(session: Session, f: ReportFilter) -> dict:
    """Everything the dashboard and the workbook show; the person scope is materialised once."""
    with ind.person_scope_ids(session, f) as scope_ids:
        report = delays(session, f, BREAKDOWNS, scope_ids)
        report["after_orientation"] = after_orientation(session, f, scope_ids)
    report["kiosque"] = kiosque(session, f)
    report["national_reference"] = ind.national_reference()
    return report


def headline(report: dict) -> dict:
    """The few numbers of the top of the dashboard and of `rsa demo`."""
    legal, demande = report["clocks"]["legal"], report["clocks"]["demande"]
    return {"median_legal_days": legal["median_days"], "median_demande_days": demande["median_days"],
            "mean_demande_days": demande["mean_days"], "share_legal_within_42": legal["share_within_42"],
            "share_legal_within_30": legal["share_within_30"], "cohort_size": legal["cohort_size"],
            "backlog_total": legal["backlog_total"], "backlog_over_42": legal["backlog"]["42-89"]
            + legal["backlog"]["90+"], "target_days": TARGET_DAYS, "legal_limit_days": LEGAL_DAYS}


def previous_month(as_of: dt.date) -> tuple[dt.date, dt.date]:
    first_this = as_of.replace(day=1)
    last_prev = first_this - dt.timedelta(days=1)
    return last_prev.replace(day=1), last_prev


def write_workbook(session: Session, f: ReportFilter, out: FsPath, person_level: bool) -> dict:
    """Compute the full report and write it as an xlsx workbook; returns the report."""
    from reports.export import build_workbook

    report = full_report(session, f)
    persons = ind.persons_behind(session, f, "backlog", limit=100_000) if person_level else None
    out = FsPath(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_workbook(report, persons).save(out)
    return report
