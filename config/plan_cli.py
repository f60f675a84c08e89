"""`rsa plan simulate` and `rsa plan capacity` (issue 20): the delay forecast and the capacity planner.

An entry point of the composition root: it reads today's state of the live database (read-only),
runs the simulation on a throwaway database (config.planning) and renders reports.planning's
forecast as text, JSON or xlsx. The last forecast is also kept as JSON in the reports folder, where
the managers' dashboard page reads it (/dashboard/prevision).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from config.cli import as_of_option, emit, get_runtime, json_option, resolve_as_of

LATEST = "prevision/derniere-prevision.json"


def _fr_days(value) -> str:
    return "—" if value is None else f"{value:.1f} j".replace(".", ",")


def _fr_share(value) -> str:
    return "—" if value is None else f"{value * 100:.1f} %".replace(".", ",")


def _read_csv(path: str, what: str, allow_unlimited: bool = False) -> dict[str, int | None]:
    """code;value rows (a header line is skipped; ; , or tab separated). "illimitée" or an empty
    value means no limit where allowed."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise click.BadParameter(f"{path}: fichier illisible ({exc.strerror or exc})") from None
    dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ";", delimiters=";,\t")
    out: dict[str, int | None] = {}
    for n, row in enumerate(csv.reader(text.splitlines(), dialect), start=1):
        if not row or not row[0].strip():
            continue
        code, value = row[0].strip(), (row[1].strip() if len(row) > 1 else "")
        if allow_unlimited and value.lower() in ("", "illimitée", "illimitee", "aucune"):
            out[code] = None
            continue
        try:
            number = int(value)
        except ValueError:
            if n == 1:
                continue  # header
            raise click.BadParameter(f"{path} ligne {n}: {what} entier attendu, pas {value!r}") from None
        if number < 0:
            raise click.BadParameter(f"{path} ligne {n}: {what} négatif")
        out[code] = number
    return out


def _total_or_csv(value: str | None, what: str) -> tuple[int | None, dict[str, int] | None]:
    """An integer for the Département (spread by inflow), or a CSV file per MDS."""
    if value is None:
        return None, None
    if value.strip().isdigit():
        return int(value), None
    return None, _read_csv(value, what)


def _common(f):
    options = [
        click.option("--weeks", type=click.IntRange(1, 104), default=12, show_default=True,
                     help="Semaines d'entrées simulées (6 semaines de plus pour juger chaque entrant à 42 jours)."),
        click.option("--entrants-per-week", type=click.FloatRange(0, 100_000), default=None,
                     help="Nouveaux entrants SDD par semaine pour le Département (défaut: 13 600 par an, "
                          "ou les 12 derniers mois de la base avec --from-history)."),
        click.option("--from-history", is_flag=True,
                     help="Flux et communes des entrants pris sur les 12 derniers mois de la base."),
        click.option("--referent-capacity", "referent_capacity", default=None,
                     help="CSV code structure;places (vide ou « illimitée »: sans limite). Défaut: les places "
                          "restantes des structures de la base (capacité moins orientations en cours)."),
        click.option("--absence-rate", type=click.FloatRange(0, 1), default=None,
                     help="Absences des convoqués non joints (défaut 0,238: RDV-Insertion, convocation)."),
        click.option("--absence-rate-reached", type=click.FloatRange(0, 1), default=None,
                     help="Absences des personnes jointes par le phoning (défaut 0,112: RDV-Insertion, invitation)."),
        click.option("--excuse-rate", type=click.FloatRange(0, 1), default=None,
                     help="Absences excusées (défaut 0,05: hypothèse)."),
        click.option("--phoning-rate", type=click.FloatRange(0, 1), default=None,
                     help="Part des invités joints par le phoning (défaut 0,5: hypothèse)."),
        click.option("--seed", type=int, default=1, show_default=True, help="Graine du tirage (même graine, même résultat)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _inputs(rt, as_of, weeks, entrants_per_week, from_history, kiosque_seats, validations_per_week,
            referent_capacity, absence_rate, absence_rate_reached, excuse_rate, phoning_rate, seed):
    from config.planning import PlanningError, inputs_from_today

    seats_total, seats_by = _total_or_csv(kiosque_seats, "places")
    val_total, val_by = _total_or_csv(validations_per_week, "validations")
    capacity = _read_csv(referent_capacity, "places", allow_unlimited=True) if referent_capacity else None
    rates = {k: v for k, v in (("absence_summoned", absence_rate), ("absence_confirmed", absence_rate_reached),
                               ("excuse_rate", excuse_rate), ("phoning_reach", phoning_rate)) if v is not None}
    try:
        return inputs_from_today(rt, as_of, weeks=weeks, entrants_per_week=entrants_per_week,
                                 seats_total=seats_total, seats_by_mds=seats_by, validations_total=val_total,
                                 validations_by_mds=val_by, referent_capacity=capacity,
                                 from_history=from_history, seed=seed, **rates)
    except PlanningError as exc:
        raise click.ClickException(str(exc)) from None


def _progress(as_json: bool):
    """A progress bar on the terminal (days simulated); nothing with --json."""
    if as_json:
        return None, None
    bar = click.progressbar(length=1, label="Simulation", show_eta=True, file=click.get_text_stream("stderr"))
    bar.__enter__()

    def update(done, total):
        bar.length = total
        bar.update(done - bar.pos)

    return update, bar


def _save_latest(rt, result: dict) -> Path:
    out = Path(rt.settings.reports_dir) / LATEST
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(out)
    return out


def _print_forecast(r: dict) -> None:
    click.echo(f"Prévision: entrants du {r['start']} au {r['cohort_end']} ({r['cohort_size']} parcours), "
               f"jugés le {r['judged_on']}")
    click.echo(f"  délai légal médian {_fr_days(r['median_legal_days'])}, p90 {_fr_days(r['p90_legal_days'])}; "
               f"orientés en 30 jours {_fr_share(r['share_within_30'])}, en 42 jours {_fr_share(r['share_within_42'])}")
    click.echo(f"  en fin de simulation: {r['pending_proposals']} proposition(s) à valider, "
               f"{r['awaiting_capacity']} décision(s) en attente de place")
    from reports.planning import BOTTLENECK_LABELS

    click.echo(f"  goulot d'étranglement du Département: {BOTTLENECK_LABELS[r['bottleneck']]}")
    weekly = r["backlog_weekly"]
    if weekly:
        step = max(1, len(weekly) // 12)
        click.echo("  stock à orienter: " + ", ".join(f"{w['date'][5:]}: {w['total']}" for w in weekly[::step]))
    click.echo(f"  {'MDS':<34} {'entrants':>8} {'médiane':>9} {'p90':>9} {'≤30 j':>8} {'≤42 j':>8} {'stock':>6}  goulot")
    for m in r["by_mds"]:
        click.echo(f"  {m['label'][:34]:<34} {m['cohort_size']:>8} {_fr_days(m['median_legal_days']):>9} "
                   f"{_fr_days(m['p90_legal_days']):>9} {_fr_share(m['share_within_30']):>8} "
                   f"{_fr_share(m['share_within_42']):>8} {m['backlog_end']:>6}  {BOTTLENECK_LABELS[m['bottleneck']]}")


@click.group("plan")
def plan():
    """Prévision du délai d'orientation et planification des capacités (sur une base jetable)."""


@plan.command("simulate")
@_common
@click.option("--kiosque-seats", default=None,
              help="Places de kiosque par semaine: un nombre pour le Département (réparti selon le flux des MDS) "
                   "ou un CSV code MDS;places. Défaut: les modèles de kiosque de la base.")
@click.option("--validations-per-week", default=None,
              help="Propositions validées par semaine: un nombre pour le Département ou un CSV code MDS;validations. "
                   "Défaut: le rythme des 8 dernières semaines de la base.")
@click.option("--xlsx", "xlsx", type=click.Path(dir_okay=False), default=None, help="Écrit la prévision en classeur xlsx.")
@as_of_option
@json_option
def simulate_cmd(weeks, entrants_per_week, from_history, referent_capacity, absence_rate, absence_rate_reached,
                 excuse_rate, phoning_rate, seed, kiosque_seats, validations_per_week, xlsx, as_of, as_json):
    """Rejoue des semaines d'entrées dans le moteur du produit, sur une base jetable, et prévoit le délai."""
    from config.planning import simulate
    from reports.planning import build_workbook

    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    inputs, now = _inputs(rt, as_of, weeks, entrants_per_week, from_history, kiosque_seats, validations_per_week,
                          referent_capacity, absence_rate, absence_rate_reached, excuse_rate, phoning_rate, seed)
    update, bar = _progress(as_json)
    try:
        result = simulate(rt, inputs, progress=update)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    result["sources"] = {"seats": now["seats_source"], "validations": now["validations_source"]}
    result["kind"] = "simulate"
    if xlsx:
        Path(xlsx).parent.mkdir(parents=True, exist_ok=True)
        build_workbook(result).save(xlsx)
        result["xlsx"] = str(xlsx)
    _save_latest(rt, result)
    emit(result, as_json, _print_forecast)
    if xlsx and not as_json:
        click.echo(f"classeur écrit: {xlsx}")


@plan.command("capacity")
@_common
@click.option("--target-days", type=click.Choice(["30", "42", "90"]), default="30", show_default=True,
              help="Délai visé (un des seuils des indicateurs).")
@click.option("--share", type=click.FloatRange(0.01, 1), default=0.95, show_default=True,
              help="Part des entrants de chaque MDS à orienter dans ce délai.")
@click.option("--max-runs", type=click.IntRange(3, 60), default=20, show_default=True,
              help="Nombre maximal de simulations.")
@click.option("--xlsx", "xlsx", type=click.Path(dir_okay=False), default=None, help="Écrit le résultat en classeur xlsx.")
@as_of_option
@json_option
def capacity_cmd(weeks, entrants_per_week, from_history, referent_capacity, absence_rate, absence_rate_reached,
                 excuse_rate, phoning_rate, seed, target_days, share, max_runs, xlsx, as_of, as_json):
    """Cherche les plus petites places de kiosque et capacités de validation par MDS qui tiennent l'objectif."""
    from config.planning import capacity
    from reports.planning import build_workbook

    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    inputs, now = _inputs(rt, as_of, weeks, entrants_per_week, from_history, None, None, referent_capacity,
                          absence_rate, absence_rate_reached, excuse_rate, phoning_rate, seed)
    say = None if as_json else (lambda line: click.echo(line, err=True))
    result = capacity(rt, inputs, target_days=int(target_days), share=share, max_runs=max_runs, progress=say)
    result["sources"] = {"seats": now["seats_source"], "validations": now["validations_source"]}
    result["kind"] = "capacity"
    forecast = dict(result["forecast"])
    forecast["capacity"] = {k: v for k, v in result.items() if k != "forecast"}
    if xlsx:
        Path(xlsx).parent.mkdir(parents=True, exist_ok=True)
        build_workbook(forecast).save(xlsx)
    _save_latest(rt, {**forecast, "kind": "capacity", "sources": result["sources"]})
    emit(result, as_json, _print_capacity)


def _print_capacity(r: dict) -> None:
    key = f"share_within_{r['target_days']}"
    click.echo(f"Objectif: {_fr_share(r['share'])} des entrants de chaque MDS orientés en {r['target_days']} jours "
               f"({len(r['runs'])} simulations)")
    click.echo(f"  {'MDS':<32} {'places auj.':>11} {'nécessaires':>11} {'valid. auj.':>11} {'nécessaires':>11} "
               f"{'part':>8}")
    for m in r["by_mds"]:
        note = "" if m["met"] else ("  non atteint même avec des capacités amples (voir les référents)"
                                    if not m["reachable"] else "  non atteint")
        click.echo(f"  {m['mds']:<32} {m['seats_today']:>11} {m['seats_needed']:>11} {m['validations_today']:>11} "
                   f"{m['validations_needed']:>11} {_fr_share(m[key]):>8}{note}")
    click.echo(f"  {'Total':<32} {r['seats_today_total']:>11} {r['seats_needed_total']:>11} "
               f"{r['validations_today_total']:>11} {r['validations_needed_total']:>11}")


COMMANDS = [plan]

