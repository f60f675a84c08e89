"""The xlsx workbook of the indicators (openpyxl): one sheet per view, frozen headers, number
formats, native Excel charts, and a person-level sheet only when the caller is a manager.

The numbers are those of reports.service.full_report: nothing is recomputed here.
Every text cell that comes from data is written as a string and, when it starts with a character a
spreadsheet would take for a formula (= + - @, tab, carriage return), prefixed with an apostrophe.
"""

from __future__ import annotations

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from referents.cells import DANGEROUS_PREFIXES, safe_text  # noqa: F401  (the one guard, re-exported)
from reports.indicators import BANDS, THRESHOLDS

HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
HEADER_FONT = Font(bold=True, color="FFFFFF")
FMT_DAYS = "0.0"
FMT_SHARE = "0.0%"
FMT_COUNT = "#,##0"
FMT_DATE = "yyyy-mm-dd"
CLOCK_NAMES = {"legal": "Délai légal", "demande": "Depuis la demande (DREES)"}
SEN_LABELS = {"<6m": "moins de 6 mois", "6-12m": "6 à 12 mois", ">=1y": "1 an et plus"}

STATS_COLUMNS = [
    ("Parcours de la cohorte", "cohort_size", FMT_COUNT),
    ("Orientés", "oriented", FMT_COUNT),
    ("Délai moyen (j)", "mean_days", FMT_DAYS),
    ("Délai médian (j)", "median_days", FMT_DAYS),
    ("Délai 90e centile (j)", "p90_days", FMT_DAYS),
] + [(f"Orientés sous {n} j", f"share_within_{n}", FMT_SHARE) for n in THRESHOLDS]


def _put(ws: Worksheet, row: int, col: int, value, fmt: str | None = None):
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = safe_text(value)
        cell.data_type = "s"  # never a formula, whatever the text
    else:
        cell.value = value
    if fmt and value is not None:
        cell.number_format = fmt
    return cell


def _sheet(wb: Workbook, title: str, headers: list[str], widths: list[int] | None = None) -> Worksheet:
    ws = wb.create_sheet(title)
    for i, h in enumerate(headers, start=1):
        c = ws.cell(row=1, column=i, value=h)
        c.fill, c.font = HEADER_FILL, HEADER_FONT
        c.alignment = Alignment(wrap_text=True, vertical="center")
        ws.column_dimensions[get_column_letter(i)].width = (widths[i - 1] if widths and i <= len(widths)
                                                            else max(12, min(40, len(h) + 2)))
    ws.freeze_panes = "A2"
    return ws


def _stats_sheet(wb: Workbook, title: str, report: dict, dim: str) -> Worksheet:
    headers = ["Horloge", "Clé", "Libellé"] + [h for h, _k, _f in STATS_COLUMNS]
    ws = _sheet(wb, title, headers, [26, 14, 34])
    r = 2
    for clock in ("legal", "demande"):
        for item in report["clocks"][clock][f"by_{dim}"]:
            _put(ws, r, 1, CLOCK_NAMES[clock])
            _put(ws, r, 2, item["key"] if item["key"] is not None else "")
            _put(ws, r, 3, item["label"])
            for j, (_h, key, fmt) in enumerate(STATS_COLUMNS, start=4):
                _put(ws, r, j, item[key], fmt)
            r += 1
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(r - 1, 1)}"
    return ws


def _summary(wb: Workbook, report: dict, computed_at=None) -> None:
    ws = wb.active
    ws.title = "Synthèse"
    headers = ["Indicateur", CLOCK_NAMES["legal"], CLOCK_NAMES["demande"], "Unité"]
    for i, h in enumerate(headers, start=1):
        c = ws.cell(row=1, column=i, value=h)
        c.fill, c.font = HEADER_FILL, HEADER_FONT
    for col, width in zip("ABCD", (44, 22, 26, 10), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    legal, demande = report["clocks"]["legal"], report["clocks"]["demande"]
    rows = [("Parcours de la cohorte", "cohort_size", FMT_COUNT, "parcours"),
            ("Orientés", "oriented", FMT_COUNT, "parcours"),
            ("Délai moyen", "mean_days", FMT_DAYS, "jours"),
            ("Délai médian", "median_days", FMT_DAYS, "jours"),
            ("Délai au 90e centile", "p90_days", FMT_DAYS, "jours")]
    rows += [(f"Part orientée sous {n} jours", f"share_within_{n}", FMT_SHARE, "%") for n in THRESHOLDS]
    rows += [("Restant à orienter (stock)", "backlog_total", FMT_COUNT, "personnes")]
    # Each share with its denominator; the paths closed without orientation before 42 days apart.
    rows += [(f"Dénominateur de la part sous {n} jours", ("denominators", str(n)), FMT_COUNT, "parcours")
             for n in THRESHOLDS]
    rows += [("Clos sans orientation avant 42 jours (hors cohorte)", "closed_before_legal_delay", FMT_COUNT,
              "parcours")]
    r = 2
    for label, key, fmt, unit in rows:
        _put(ws, r, 1, label)
        for col, clock in ((2, legal), (3, demande)):
            _put(ws, r, col, clock[key[0]][key[1]] if isinstance(key, tuple) else clock[key], fmt)
        _put(ws, r, 4, unit)
        r += 1
    r += 1
    for label, value in (("Date de référence", report["as_of"]),
                         ("Période de la cohorte", f"{report['period']['from']} → {report['period']['to']}"),
                         ("Objectif départemental", f"{report['targets']['target_days']} jours"),
                         ("Limite légale", f"{report['targets']['legal_limit_days']} jours")):
        _put(ws, r, 1, label).font = Font(bold=True)
        _put(ws, r, 2, value)
        r += 1
    if computed_at is not None:  # the snapshot the dashboard shows (reports/snapshots.py)
        _put(ws, r, 1, "Chiffres calculés le").font = Font(bold=True)
        _put(ws, r, 2, f"{computed_at:%d/%m/%Y à %H:%M}")


def _by_month(wb: Workbook, report: dict) -> None:
    """Month rows side by side for both clocks, and the native line chart of the median delay."""
    legal = report["clocks"]["legal"]["by_month"]
    demande = {m["key"]: m for m in report["clocks"]["demande"]["by_month"]}
    headers = ["Mois", "Cohorte (légal)", "Médiane légale (j)", "Moyenne légale (j)", "90e centile légal (j)",
               "Sous 42 j (légal)", "Cohorte (demande)", "Médiane depuis la demande (j)",
               "Moyenne depuis la demande (j)", "Objectif (j)", "Limite légale (j)"]
    ws = _sheet(wb, "Par mois", headers, [10] + [16] * 10)
    r = 2
    for m in legal:
        d = demande.get(m["key"], {})
        values = [(m["key"], None), (m["cohort_size"], FMT_COUNT), (m["median_days"], FMT_DAYS),
                  (m["mean_days"], FMT_DAYS), (m["p90_days"], FMT_DAYS), (m["share_within_42"], FMT_SHARE),
                  (d.get("cohort_size"), FMT_COUNT), (d.get("median_days"), FMT_DAYS),
                  (d.get("mean_days"), FMT_DAYS), (report["targets"]["target_days"], FMT_COUNT),
                  (report["targets"]["legal_limit_days"], FMT_COUNT)]
        for j, (v, fmt) in enumerate(values, start=1):
            _put(ws, r, j, v, fmt)
        r += 1
    last = max(r - 1, 2)
    chart = LineChart()
    chart.title = "Délai médian d'orientation par mois d'entrée"
    chart.y_axis.title = "jours"
    chart.x_axis.title = "mois de début de l'horloge"
    chart.height, chart.width = 9, 22
    for col in (3, 8, 10, 11):
        chart.add_data(Reference(ws, min_col=col, min_row=1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=last))
    ws.add_chart(chart, "A" + str(last + 3))


def _backlog(wb: Workbook, report: dict) -> None:
    ws = _sheet(wb, "Stock à orienter", ["Ancienneté (jours)", "Horloge légale", "Depuis la demande"], [20, 18, 20])
    r = 2
    for key, _lo, _hi in BANDS:
        _put(ws, r, 1, key)
        _put(ws, r, 2, report["clocks"]["legal"]["backlog"][key], FMT_COUNT)
        _put(ws, r, 3, report["clocks"]["demande"]["backlog"][key], FMT_COUNT)
        r += 1
    chart = BarChart()
    chart.type = "col"
    chart.title = "Personnes restant à orienter, par ancienneté"
    chart.y_axis.title = "personnes"
    chart.add_data(Reference(ws, min_col=2, max_col=3, min_row=1, max_row=r - 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=r - 1))
    chart.height, chart.width = 8, 16
    ws.add_chart(chart, "E2")
    # by MDS (legal clock), below
    r += 2
    for i, h in enumerate(["MDS", "Code"] + [b[0] for b in BANDS] + ["Total"], start=1):
        c = ws.cell(row=r, column=i, value=h)
        c.fill, c.font = HEADER_FILL, HEADER_FONT
    r += 1
    for item in report["clocks"]["legal"]["backlog_by_mds"]:
        _put(ws, r, 1, item["label"])
        _put(ws, r, 2, item["key"] or "")
        for j, (key, _lo, _hi) in enumerate(BANDS, start=3):
            _put(ws, r, j, item["bands"][key], FMT_COUNT)
        _put(ws, r, 3 + len(BANDS), item["total"], FMT_COUNT)
        r += 1
    ws.column_dimensions["A"].width = 34


def _referent_types(wb: Workbook, report: dict) -> None:
    ws = _stats_sheet(wb, "Par type de référent", report, "referent_type")
    n = len(report["clocks"]["legal"]["by_referent_type"])
    if n:
        chart = BarChart()
        chart.type = "bar"
        chart.title = "Orientés et délai médian par type de référent (horloge légale)"
        chart.add_data(Reference(ws, min_col=5, min_row=1, max_row=1 + n), titles_from_data=True)
        chart.add_data(Reference(ws, min_col=7, min_row=1, max_row=1 + n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=3, min_row=2, max_row=1 + n))
        chart.height, chart.width = 8, 18
        ws.add_chart(chart, f"A{2 * n + 4}")


def _kiosque(wb: Workbook, report: dict) -> None:
    k = report["kiosque"]
    ws = _sheet(wb, "Kiosque", ["MDS", "Invités", "Joints par téléphone", "Présents", "Orientés", "Taux d'orientation"],
                [34, 12, 20, 12, 12, 18])
    rows = [("Toutes les MDS", k["funnel"])] + [(m["label"], m) for m in k["by_mds"]]
    r = 2
    for label, m in rows:
        _put(ws, r, 1, label)
        for j, key in enumerate(("invited", "reached", "attended", "oriented"), start=2):
            _put(ws, r, j, m[key], FMT_COUNT)
        _put(ws, r, 6, m["rate_oriented"], FMT_SHARE)
        r += 1
    r += 1
    cap = k["capacity"]
    for label, value in (("Décisions en attente de place", cap["awaiting_capacity_total"]),
                         ("Sessions de kiosque sur la période", cap["kiosque_sessions"]),
                         ("Sessions complètes", cap["kiosque_sessions_full"])):
        _put(ws, r, 1, label)
        _put(ws, r, 2, value, FMT_COUNT)
        r += 1


def _after(wb: Workbook, report: dict) -> None:
    a = report["after_orientation"]
    ws = _sheet(wb, "Après orientation", ["Indicateur", "Numérateur", "Dénominateur", "Part"], [52, 14, 14, 12])
    r = 2
    shares = []
    if a["first_appointment_within_15"] is not None:  # Département-wide figures: managers only
        fa = a["first_appointment_within_15"]
        shares += [("Premier rendez-vous fixé sous 15 jours (plan pauvreté B4)", fa),
                   ("Présence au premier rendez-vous fixé sous 15 jours", fa["attendance"])]
    if a["contract_within_1_month"] is not None:
        shares.append(("Contrat signé sous 1 mois", a["contract_within_1_month"]))
    for label, share in shares:
        _put(ws, r, 1, label)
        _put(ws, r, 2, share["numerator"], FMT_COUNT)
        _put(ws, r, 3, share["denominator"], FMT_COUNT)
        _put(ws, r, 4, share["share"], FMT_SHARE)
        r += 1
    for s in a["oriented_by_seniority"]:
        _put(ws, r, 1, f"SDD orientés, ancienneté {SEN_LABELS[s['key']]}")
        _put(ws, r, 2, s["oriented"], FMT_COUNT)
        _put(ws, r, 3, s["sdd"], FMT_COUNT)
        _put(ws, r, 4, s["share_oriented"], FMT_SHARE)
        r += 1
    r += 1
    for i, h in enumerate(["Structure (sorties)", "Sorties positives", "Sorties", "Part positive"], start=1):
        c = ws.cell(row=r, column=i, value=h)
        c.fill, c.font = HEADER_FILL, HEADER_FONT
    r += 1
    for e in a["positive_exits_by_structure"]:
        _put(ws, r, 1, e["label"])
        _put(ws, r, 2, e["positive"], FMT_COUNT)
        _put(ws, r, 3, e["exits"], FMT_COUNT)
        _put(ws, r, 4, e["share_positive"], FMT_SHARE)
        r += 1
    if a.get("mean_delays"):
        r += 1
        for i, h in enumerate(["Délai moyen après l'orientation", "Jours", "Orientations comptées"], start=1):
            c = ws.cell(row=r, column=i, value=h)
            c.fill, c.font = HEADER_FILL, HEADER_FONT
        r += 1
        for label, key in (("Orientation → premier rendez-vous fixé", "orientation_to_first_appointment"),
                           ("Orientation → contrat signé", "orientation_to_contract")):
            _put(ws, r, 1, label)
            _put(ws, r, 2, a["mean_delays"][key]["mean_days"], FMT_DAYS)
            _put(ws, r, 3, a["mean_delays"][key]["denominator"], FMT_COUNT)
            r += 1


def _national(wb: Workbook, report: dict) -> None:
    ws = _sheet(wb, "Référence nationale", ["Indicateur", "Périmètre", "Année", "Valeur", "Unité", "Source"],
                [52, 16, 8, 10, 8, 44])
    for r, row in enumerate(report["national_reference"], start=2):
        _put(ws, r, 1, row["label"])
        _put(ws, r, 2, row["scope"])
        _put(ws, r, 3, row["year"])
        _put(ws, r, 4, row["value"], FMT_SHARE if row["unit"] == "share" else FMT_DAYS)
        _put(ws, r, 5, "%" if row["unit"] == "share" else "jours")
        _put(ws, r, 6, row["source"])


def _persons(wb: Workbook, persons: list[dict]) -> None:
    ws = _sheet(wb, "Personnes à orienter", ["Identifiant", "Nom", "Prénom", "MDS", "Début de l'horloge",
                                             "Ancienneté (j)"], [12, 24, 20, 34, 18, 14])
    for r, p in enumerate(persons, start=2):
        _put(ws, r, 1, p["person_id"])
        _put(ws, r, 2, p["last_name"] or "")
        _put(ws, r, 3, p["first_name"] or "")
        _put(ws, r, 4, p["mds"] or "")
        _put(ws, r, 5, p["clock_start"], FMT_DATE)
        _put(ws, r, 6, p["age_days"], FMT_COUNT)


def build_workbook(report: dict, persons: list[dict] | None = None, computed_at=None) -> Workbook:
    """The workbook of a full report; `persons` (the backlog list) only for managers; `computed_at`:
    when the figures were computed (the dashboard's snapshot), said on the summary sheet."""
    wb = Workbook()
    _summary(wb, report, computed_at)
    _by_month(wb, report)
    _backlog(wb, report)
    _stats_sheet(wb, "Par territoire", report, "territory")
    _stats_sheet(wb, "Par MDS", report, "mds")
    _referent_types(wb, report)
    _stats_sheet(wb, "Par parcours", report, "parcours")
    _stats_sheet(wb, "Par organisme référent", report, "organisme")
    _stats_sheet(wb, "Par origine", report, "origin")
    _stats_sheet(wb, "Par règle", report, "rule")
    _kiosque(wb, report)
    _after(wb, report)
    _national(wb, report)
    if persons is not None:
        _persons(wb, persons)
    return wb
