"""`rsa report …`: the indicators on the command line (JSON with --json), and the xlsx export."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from config.cli import DATE, as_of_option, emit, get_runtime, json_option, resolve_as_of
from referents.service import structure_by_code
from reports import service
from reports.indicators import BANDS, CLOCKS, ReportFilter


def _filter(session, as_of, start, end, territory, mds) -> ReportFilter:
    from referents.models import Territory

    territory_id = mds_id = None
    if territory:
        territory_id = session.scalar(select(Territory.id).where(Territory.code == territory))
        if territory_id is None:
            raise click.BadParameter(f"territoire inconnu: {territory}", param_hint="--territory")
    if mds:
        structure = structure_by_code(session, mds, kind="mds")
        mds_id = structure.id if structure else None
        if mds_id is None:
            raise click.BadParameter(f"MDS inconnue: {mds}", param_hint="--mds")
    if start and end and start > end:
        raise click.BadParameter("la période commence après sa fin", param_hint="--from")
    return ReportFilter(as_of=resolve_as_of(as_of), start=start, end=end, territory_id=territory_id, mds_id=mds_id)


def filter_options(f):
    f = click.option("--mds", default=None, help="Code de la MDS.")(f)
    f = click.option("--territory", default=None, help="Code du territoire.")(f)
    f = click.option("--to", "end", type=DATE, default=None, help="Fin de la période de cohorte.")(f)
    f = click.option("--from", "start", type=DATE, default=None,
                     help="Début de la période de cohorte (défaut: les 12 mois se terminant à --as-of).")(f)
    return as_of_option(f)


def _days(v) -> str:
    return "—" if v is None else f"{v:.1f} j"


def _share(v) -> str:
    return "—" if v is None else f"{v * 100:.1f} %"


def _print_delays(data: dict) -> None:
    click.echo(f"Délais d'orientation au {data['as_of']} — cohorte du {data['period']['from']} au "
               f"{data['period']['to']} (objectif {data['targets']['target_days']} j, limite légale "
               f"{data['targets']['legal_limit_days']} j)")
    for clock in CLOCKS:
        c = data["clocks"][clock]
        click.echo(f"\n[{service.CLOCK_LABELS[clock]}]")
        click.echo(f"  cohorte {c['cohort_size']}, orientés {c['oriented']}; moyenne {_days(c['mean_days'])}, "
                   f"médiane {_days(c['median_days'])}, 90e centile {_days(c['p90_days'])}")
        click.echo(f"  orientés sous 30 j {_share(c['share_within_30'])}, 42 j {_share(c['share_within_42'])}, "
                   f"90 j {_share(c['share_within_90'])}")
        click.echo("  restant à orienter: " + ", ".join(f"{b[0]} j: {c['backlog'][b[0]]}" for b in BANDS)
                   + f" (total {c['backlog_total']})")
        click.echo("  par mois: " + ", ".join(f"{m['key']} {_days(m['median_days'])}" for m in c["by_month"]
                                             if m["cohort_size"]))


@click.group("report")
def report():
    """Indicateurs: délais d'orientation, stock, kiosques, suites de l'orientation, classeur xlsx."""


@report.command("delays")
@filter_options
@click.option("--by", "extra", multiple=True, type=click.Choice(["origin", "rule"]),
              help="Ventilations en plus de mois, territoire, MDS et type de référent.")
@json_option
def delays_cmd(as_of, start, end, territory, mds, extra, as_json):
    """Délais d'orientation (horloges demande et légale), stock à orienter, ventilations."""
    with get_runtime().session() as s:
        data = service.delays(s, _filter(s, as_of, start, end, territory, mds),
                              service.DELAY_BREAKDOWNS + tuple(dict.fromkeys(extra)))
    emit(data, as_json, _print_delays)


@report.command("kiosque")
@filter_options
@json_option
def kiosque_cmd(as_of, start, end, territory, mds, as_json):
    """Entonnoir des kiosques (invités → joints → présents → orientés) et manques de places."""
    with get_runtime().session() as s:
        data = service.kiosque(s, _filter(s, as_of, start, end, territory, mds))

    def human(d):
        k = d["funnel"]
        click.echo(f"invités {k['invited']} → joints {k['reached']} → présents {k['attended']} → "
                   f"orientés {k['oriented']} ({_share(k['rate_oriented'])})")
        cap = d["capacity"]
        click.echo(f"décisions en attente de place: {cap['awaiting_capacity_total']}; sessions complètes "
                   f"{cap['kiosque_sessions_full']} / {cap['kiosque_sessions']}")

    emit(data, as_json, human)


@report.command("after")
@filter_options
@json_option
def after_cmd(as_of, start, end, territory, mds, as_json):
    """Suites de l'orientation: 1er rendez-vous sous 15 j, contrat sous 1 mois, sorties, ancienneté."""
    with get_runtime().session() as s:
        data = service.after_orientation(s, _filter(s, as_of, start, end, territory, mds))

    def human(d):
        for key, label in (("first_appointment_within_15", "1er rendez-vous sous 15 j"),
                           ("contract_within_1_month", "contrat sous 1 mois")):
            v = d[key]
            if v is None:
                continue
            click.echo(f"{label}: {_share(v['share'])} ({v['numerator']}/{v['denominator']})")
        for s_ in d["oriented_by_seniority"]:
            click.echo(f"SDD orientés, ancienneté {s_['key']}: {_share(s_['share_oriented'])} ({s_['sdd']})")
        for e in d["positive_exits_by_structure"]:
            click.echo(f"sorties {e['label']}: {e['positive']}/{e['exits']} positives")

    emit(data, as_json, human)


@report.command("old-contracts")
@as_of_option
@click.option("--list", "with_list", is_flag=True, help="Avec la liste de travail des personnes concernées.")
@json_option
def old_contracts_cmd(as_of, with_list, as_json):
    """CER et PPAE signés avant le 01/01/2025 à remplacer par un contrat d'engagement avant le 01/01/2027."""
    from reports.old_contracts import indicator, working_list

    as_of = resolve_as_of(as_of)
    with get_runtime().session() as s:
        data = {"indicator": indicator(s, as_of)}
        if with_list:
            data["persons"] = working_list(s, as_of)

    def human(d):
        i = d["indicator"]
        click.echo(f"Anciens contrats (CER/PPAE signés avant le 01/01/2025) au {as_of.strftime('%d/%m/%Y')}: "
                   f"{i['legacy_persons']} personne(s), {i['replaced']} remplacé(s) par un contrat d'engagement, "
                   f"{i['pending']} à remplacer d'ici le 01/01/2027 ({i['days_left']} jours)")
        for p in d.get("persons", []):
            click.echo(f"  {p['last_name']} {p['first_name']} — {p['contract_label']} du {p['signed_on']}")
    emit(data, as_json, human)


@report.command("reference")
@json_option
def reference_cmd(as_json):
    """Les repères nationaux livrés avec l'application (DOMAIN.md §6)."""
    from reports.indicators import national_reference

    rows = national_reference()
    emit(rows, as_json, lambda rs: [click.echo(f"{r['label']} ({r['scope']} {r['year']}): {r['value']:g}")
                                    for r in rs])


@report.command("refresh")
@json_option
def refresh_cmd(as_json):
    """Recalcule l'issue (première orientation validée) et le secteur (MDS et territoire du foyer)
    de chaque parcours."""
    from orientation.outcomes import refresh_path_outcomes

    with get_runtime().session() as s:
        changed = refresh_path_outcomes(s)
    emit({"paths_changed": changed}, as_json, f"parcours mis à jour: {changed}")


@report.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@filter_options
@click.option("--no-persons", is_flag=True, help="Sans la feuille nominative.")
@json_option
def export_cmd(out, as_of, start, end, territory, mds, no_persons, as_json):
    """Écrit le classeur xlsx des indicateurs (une feuille par vue, graphiques natifs)."""
    with get_runtime().session() as s:
        f = _filter(s, as_of, start, end, territory, mds)
        data = service.write_workbook(s, f, out, person_level=not no_persons)
    result = {"path": str(out), "as_of": data["as_of"], "headline": service.headline(data)}
    emit(result, as_json, f"classeur écrit: {out}")


COMMANDS = [report]
