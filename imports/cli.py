"""`rsa import …`: every importer's commands."""

from __future__ import annotations

import click

from config.cli import DATE, as_of_option, emit, get_runtime, json_option, resolve_as_of  # noqa: F401


@click.group("import")
def import_group():
    """Imports: flux CAF/MSA, listes France Travail, tableurs, retours prestataires."""


# --- CAF/MSA flows: import flux, rejects, replay, generate-flux (issue 3) -----------------------

def _flux_line(r: dict) -> str:
    import pathlib

    name = pathlib.Path(r["path"]).name
    if r["status"] == "failed":
        return f"{name}: ÉCHEC — {r['error']} (base inchangée)"
    head = f"{name}: déjà importé (même SHA-256), rien à faire" if r["status"] == "duplicate" else f"{name}: importé"
    line = (f"{head} — {r['households']} foyers, {r['persons']} personnes, {r['created']} créés, "
            f"{r['updated']} modifiés, {r['unchanged']} inchangés, {r['rejected']} rejetés")
    if r["status"] == "imported" and r.get("rejected"):
        line += f" (rsa import rejects --batch {r['batch_id']})"
    return line + "".join(f"\n  avertissement: {w}" for w in r.get("warnings") or [])


@import_group.command("flux")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@json_option
def import_flux(files, as_json):
    """Importe des flux CAF/MSA (XML VRSB0801 ou VRSD0301), dans l'ordre DTCREAFLUX/HEUCREAFLUX."""
    import pathlib
    import sys

    from imports.service import import_files

    rt = get_runtime()
    total = sum(pathlib.Path(f).stat().st_size for f in files)
    if sys.stderr.isatty() and not as_json:
        with click.progressbar(length=total, label="import des flux", file=sys.stderr) as bar:
            results = import_files(rt, files, progress=bar.update)
    else:
        results = import_files(rt, files)
    keys = ("path", "status", "households", "persons", "created", "updated", "unchanged", "rejected",
            "closed_absent", "sdd_ended", "error", "batch_id", "warnings")
    data = {"files": [{k: r.get(k) for k in keys} for r in results]}
    emit(data, as_json, lambda d: [click.echo(_flux_line(r)) for r in d["files"]])
    if any(r["status"] == "failed" for r in results):
        raise SystemExit(1)


@import_group.command("rejects")
@click.option("--batch", "batch_id", type=int, default=None, help="Seulement les rejets de ce lot.")
@click.option("--pending", is_flag=True, help="Seulement les rejets non rejoués.")
@json_option
def import_rejects(batch_id, pending, as_json):
    """Liste les enregistrements rejetés (motif, lot, clé) gardés pour être rejoués."""
    from imports.service import list_rejects

    rt = get_runtime()
    with rt.session() as s:
        rows = list_rejects(s, batch_id, "pending" if pending else None)

    def human(rows):
        if not rows:
            click.echo("aucun rejet")
        for r in rows:
            click.echo(f"#{r['id']} lot {r['batch_id']} ({r['file']}) {r['key'] or '?'} [{r['status']}]: {r['reason']}")

    emit(rows, as_json, human)


@import_group.command("replay")
@click.argument("reject_id", type=int)
@json_option
def import_replay(reject_id, as_json):
    """Rejoue un enregistrement rejeté (après correction des données de référence)."""
    from imports.service import ReplayError, replay

    try:
        result = replay(get_runtime(), reject_id)
    except ReplayError as exc:
        if "lot de type stock" not in str(exc):
            raise click.ClickException(str(exc)) from None
        from imports.stock import replay as replay_stock

        try:
            result = replay_stock(get_runtime(), reject_id)
        except ReplayError as exc2:
            raise click.ClickException(str(exc2)) from None
    emit(result, as_json, f"rejet {reject_id}: rejoué ({result.get('key')})" if result["status"] == "replayed"
         else f"rejet {reject_id}: toujours rejeté — {result['reason']}")
    if result["status"] != "replayed":
        raise SystemExit(1)


@import_group.command("generate-flux")
@click.option("--households", type=click.IntRange(0), default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--month", required=True, help="Mois de référence AAAA-MM.")
@click.option("--daily-from", "daily_from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Écrit un flux quotidien (TYPEFLUX=I) de changements après ce flux.")
@click.option("--change-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Part des foyers modifiés (flux quotidien).")
@click.option("--msa", is_flag=True, help="Flux MSA (APPLIEME=AGO, NIR à 15 caractères).")
@click.option("--vrsd0301", "vrsd", is_flag=True, help="Au format du nouveau flux bénéficiaire VRSD0301.")
@click.argument("out", type=click.Path(dir_okay=False))
@json_option
def generate_flux(households, seed, month, daily_from, change_rate, msa, vrsd, out, as_json):
    """Écrit un flux VRSB0801 (ou VRSD0301) synthétique (windows-1252), mensuel ou quotidien."""
    import re

    from imports.generator import derive_flux, generate_monthly

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter("AAAA-MM attendu", param_hint="--month")
    if daily_from:
        result = derive_flux([daily_from], out, seed=seed, daily=True, change_rate=change_rate,
                             new_households=max(0, households // 100), msa=msa or None)
    else:
        result = generate_monthly(out, households=households, seed=seed, month=month, msa=msa)
    if vrsd:
        import pathlib

        from imports.generator import convert_to_vrsd

        tmp = pathlib.Path(out).with_suffix(".vrsb.tmp")
        pathlib.Path(out).replace(tmp)
        try:
            result = {**result, **convert_to_vrsd(tmp, out)}
        finally:
            tmp.unlink()
    emit(result, as_json, f"{out}: {result['households']} foyers (TYPEFLUX={result['typeflux']}, "
                          f"DTREF {result['dtref']})")



# --- France Travail lists, spreadsheets, provider returns (issue 9) ------------------------------

def _print_list_report(report: dict) -> None:
    """Human rendering of a list import report (France Travail, spreadsheet, provider return)."""
    status = {"imported": "importé", "duplicate": "déjà importé (rien à faire)", "failed": "ÉCHEC",
              "dry_run": "vérifié (--dry-run: rien n'est enregistré)"}[report["status"]]
    click.echo(f"{report['file']}: {status}" + (f" — lot n° {report['batch_id']}" if report.get("batch_id") else ""))
    if report.get("error"):
        click.echo(f"  raison: {report['error']}")
    counts = {k: v for k, v in (report.get("counts") or {}).items() if v}
    if counts:
        click.echo("  " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    for r in report.get("rejects", [])[:20]:
        where = f"ligne {r['row']}" + (f", colonne « {r['column']} »" if r.get("column") else "")
        click.echo(f"  rejet {where}: {r['reason']}")
    if report.get("rejected", 0) > 20:
        click.echo(f"  … {report['rejected'] - 20} autres rejets (rsa import rejects --batch {report['batch_id']})")
    for w in report.get("warnings") or []:
        click.echo(f"  avertissement: {w}")


def _exit_for(report: dict) -> None:
    if report["status"] == "failed":
        raise SystemExit(1)


@import_group.command("stock")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_name", default="reprise", show_default=True,
              help="Correspondance de colonnes de la reprise (imports/mappings/stock/).")
@click.option("--dry-run", is_flag=True, help="Tout vérifier et compter, sans rien enregistrer.")
@click.option("--as-of", type=DATE, default=None, help="Date du jour (les dates futures sont refusées).")
@json_option
def import_stock(file, mapping_name, dry_run, as_of, as_json):
    """Reprend l'existant (orientations, référents, contrats du système précédent), après le premier flux."""
    from imports.stock import import_stock as run

    report = run(get_runtime(), file, mapping_name, dry_run=dry_run, as_of=resolve_as_of(as_of))
    emit(report, as_json, _print_list_report)
    _exit_for(report)


@import_group.command("france-travail")
@click.argument("kind", type=click.Choice(["inscriptions", "cessations", "radiations", "stock"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
def import_france_travail(kind, file, as_json):
    """Importe une liste France Travail (CSV « ; »): inscriptions, cessations, radiations ou stock."""
    from imports.france_travail import import_file

    report = import_file(get_runtime(), kind, file)
    emit(report, as_json, _print_list_report)
    _exit_for(report)


@import_group.command("spreadsheet")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_name", required=True, help="Nom de la correspondance de colonnes.")
@json_option
def import_spreadsheet(file, mapping_name, as_json):
    """Importe une liste de bénéficiaires (.xlsx, .xls, .ods, .csv) via une correspondance de colonnes."""
    from imports.spreadsheets import MappingError, import_file

    try:
        report = import_file(get_runtime(), file, mapping_name)
    except MappingError as exc:
        raise click.ClickException(str(exc)) from None
    emit(report, as_json, _print_list_report)
    _exit_for(report)


@import_group.group("mappings")
def mappings_group():
    """Correspondances de colonnes des tableurs (fichiers YAML livrés ou enregistrées en base)."""


@mappings_group.command("list")
@json_option
def mappings_list(as_json):
    """Liste les correspondances disponibles."""
    from imports.spreadsheets import list_mappings

    with get_runtime().session() as s:
        found = [{"name": m["name"], "description": m["description"], "source": m["source"],
                  "fields": sorted(m["fields"])} for m in list_mappings(s)]
    emit(found, as_json, lambda rows: [click.echo(f"{m['name']:<24} {m['source']:<28} {m['description']}")
                                       for m in rows])


@mappings_group.command("show")
@click.argument("name")
@json_option
def mappings_show(name, as_json):
    """Affiche une correspondance (champ → libellés de colonnes acceptés)."""
    import yaml

    from imports.spreadsheets import MappingError, get_mapping

    with get_runtime().session() as s:
        try:
            mapping = get_mapping(s, name)
        except MappingError as exc:
            raise click.ClickException(str(exc)) from None
    emit(mapping, as_json, lambda m: click.echo(yaml.safe_dump(m, allow_unicode=True, sort_keys=False)))


@mappings_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
def mappings_load(file, as_json):
    """Enregistre (ou remplace) en base une correspondance décrite en YAML."""
    from imports.spreadsheets import MappingError, load_mapping_file

    with get_runtime().session() as s:
        try:
            mapping = load_mapping_file(s, file)
        except MappingError as exc:
            raise click.ClickException(str(exc)) from None
    emit(mapping, as_json, f"correspondance « {mapping['name']} » enregistrée ({len(mapping['fields'])} champs)")


@import_group.command("provider-return")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--structure", "structure_code", required=True, help="Code de la structure prestataire.")
@click.option("--as-of", "as_of", type=DATE, default=None, help="Date de référence (AAAA-MM-JJ).")
@json_option
def import_provider_return(file, structure_code, as_of, as_json):
    """Importe le retour mensuel d'un prestataire (rendez-vous, contrat, étape, sortie)."""
    from imports.provider_returns import import_file

    try:
        report = import_file(get_runtime(), file, structure_code, as_of=resolve_as_of(as_of))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    emit(report, as_json, _print_list_report)
    _exit_for(report)


@import_group.command("provider-template")
@click.argument("out", type=click.Path(dir_okay=False))
@json_option
def provider_template(out, as_json):
    """Écrit le modèle xlsx du retour prestataire (listes déroulantes des statuts et motifs)."""
    from imports.provider_returns import write_template

    path = write_template(out)
    emit({"path": str(path)}, as_json, f"modèle écrit: {path}")



@import_group.command("france-travail-orientations")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@as_of_option
@json_option
def import_ft_orientations(file, as_of, as_json):
    """Importe un fichier France Travail (CSV « ; » ou JSON): préconisations, orientations décidées par
    France Travail, contrats d'engagement signés avec France Travail."""
    from imports.france_travail_orientation import import_file

    report = import_file(get_runtime(), file, as_of=resolve_as_of(as_of))
    emit(report, as_json, _print_list_report)
    _exit_for(report)


@click.group("france-travail")
def ft_group():
    """France Travail: lire ses orientations et contrats, lui transmettre nos décisions."""


@ft_group.command("read")
@as_of_option
@click.option("--limit", type=click.IntRange(1), default=None, help="Au plus N personnes interrogées.")
@json_option
def ft_read(as_of, limit, as_json):
    """Interroge l'API partenaire (RSA_FT_MODE=api) pour les personnes à lire, puis applique."""
    from imports.france_travail_orientation import read_api

    runtime = get_runtime()
    if runtime.settings.ft_mode != "api":
        raise click.UsageError("RSA_FT_MODE=file: importer le fichier avec `rsa import france-travail-orientations`")
    out = read_api(runtime, resolve_as_of(as_of), limit=limit)
    emit(out, as_json, lambda d: click.echo(
        f"{d['persons_read']} personne(s) interrogée(s), {d['stored']} enregistrement(s) nouveau(x), "
        f"{d['orientations_recorded']} orientation(s) France Travail, {d['contracts_recorded']} contrat(s), "
        f"{d['error_count']} erreur(s)"))


@ft_group.command("apply")
@as_of_option
@json_option
def ft_apply(as_of, as_json):
    """Applique les enregistrements France Travail en attente (J+42 atteint, personne arrivée…)."""
    from imports.france_travail_orientation import apply_pending

    with get_runtime().session() as s:
        out = apply_pending(s, resolve_as_of(as_of))
    emit(out, as_json, lambda d: click.echo(
        f"{d['orientations_recorded']} orientation(s) et {d['contracts_recorded']} contrat(s) enregistrés, "
        f"{d['waiting']} en attente"))


@ft_group.command("send")
@as_of_option
@json_option
def ft_send(as_of, as_json):
    """Met en file les décisions validées et les transmet (fichier du jour ou API, selon RSA_FT_MODE)."""
    from imports.jobs import france_travail_send

    out = france_travail_send(get_runtime(), resolve_as_of(as_of))
    emit(out, as_json, lambda d: click.echo(
        f"{d['queued']} décision(s) mise(s) en file; envoi {d['transport']}: {d['sent']} transmise(s), "
        f"{d['retry']} à réessayer, {d['failed']} en échec" + (f" — fichier {d['file']}" if d.get("file") else "")))


@ft_group.command("retry")
@click.argument("dispatch_ids", nargs=-1, type=int)
@json_option
def ft_retry(dispatch_ids, as_json):
    """Remet en file les envois en échec (tous, ou ceux donnés), avec la même clé d'idempotence."""
    from imports.france_travail_dispatch import retry_failed

    with get_runtime().session() as s:
        n = retry_failed(s, list(dispatch_ids) or None)
    emit({"requeued": n}, as_json, f"{n} envoi(s) remis en file")


@ft_group.command("report")
@as_of_option
@json_option
def ft_report(as_of, as_json):
    """Rapport de rapprochement du jour: décisions validées, transmises, en file, en échec, oubliées."""
    from imports.france_travail_dispatch import reconciliation

    runtime = get_runtime()
    with runtime.session() as s:
        out = reconciliation(s, runtime.settings, resolve_as_of(as_of))

    def human(d):
        click.echo(f"{d['date']} ({d['transport']}): {d['validated']} décision(s) validée(s), "
                   f"{d['of_which_sent']} transmise(s), {d['of_which_queued']} en file, {d['of_which_failed']} en "
                   f"échec, {d['of_which_not_queued']} non mise(s) en file; {d['sent_on_day']} transmise(s) ce jour")
        for f in d["failed"]:
            click.echo(f"  échec envoi {f['dispatch_id']} (orientation {f['orientation_id']}): {f['error']}")
        click.echo("rapprochement: " + ("équilibré" if d["balanced"] else "À VÉRIFIER"))

    emit(out, as_json, human)
    if not out["balanced"]:
        raise SystemExit(1)


COMMANDS = [import_group, ft_group]
