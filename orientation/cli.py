"""`rsa orient …`: run the orientation, explain, validate, override, réorientation, rules, deadlines.

The command line is the Département's administrator's tool: actions that change a decision are
audit-logged (AuditLog rows, endpoint "cli") in the name of --user when given."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml
from sqlalchemy import select

from config.cli import as_of_option, emit, get_runtime, json_option, resolve_as_of
from orientation.vocabulary import PENDING
from referents.vocabulary import OUTCOMES, REFERENT_TYPES, Organisme, Parcours


def _user_id(session, email: str | None) -> int | None:
    if not email:
        return None
    from referents.models import User

    uid = session.scalar(select(User.id).where(User.email == email.strip().lower()))
    if uid is None:
        raise click.ClickException(f"utilisateur inconnu: {email}")
    return uid


def _fail(exc: Exception):
    raise click.ClickException(str(exc))


@click.group("orient")
def orient():
    """Orientation des personnes soumises aux droits et devoirs (règles, validation, délais)."""


@orient.command("run")
@as_of_option
@json_option
def run_cmd(as_of, as_json):
    """Oriente toutes les personnes à orienter (décisions datées du jour de référence)."""
    from orientation.service import run

    as_of = resolve_as_of(as_of)
    rt = get_runtime()
    bar = {}

    def progress(done, total):
        if as_json or not sys.stderr.isatty():
            return
        if "bar" not in bar:
            bar["bar"] = click.progressbar(length=total, label="Orientation", file=sys.stderr)
            bar["bar"].__enter__()
            bar["done"] = 0
        bar["bar"].update(done - bar["done"])
        bar["done"] = done

    with rt.session() as s:
        result = run(s, as_of, progress=progress)
    if "bar" in bar:
        bar["bar"].__exit__(None, None, None)

    def human(r):
        click.echo(f"{r['considered']} personne(s) à orienter au {r['as_of']} (règles v{r['rule_set_version']})")
        click.echo("décisions: " + ", ".join(f"{k}: {v}" for k, v in r["decisions"].items()))
        click.echo(f"validées: {r['validated']}, à valider: {r['proposed']}, en attente de place: "
                   f"{r['awaiting_capacity']}, kiosque: {r['kiosque']}, hors sectorisation: {r['unsectorised']}, "
                   f"inchangées: {r['unchanged']}, terminées: {r['ended']}")

    emit(result, as_json, human)


@orient.command("explain")
@click.option("--person", "person_id", type=int, required=True, help="Identifiant de la personne.")
@as_of_option
@json_option
def explain_cmd(person_id, as_of, as_json):
    """Explique en français l'orientation d'une personne (règle, version, faits utilisés)."""
    from orientation.schemas import ExplainSchema
    from orientation.service import explain

    with get_runtime().session() as s:
        try:
            data = ExplainSchema().dump(explain(s, person_id, resolve_as_of(as_of)))
        except LookupError as exc:
            _fail(exc)
        _audit_row(s, "read", person_id, None, {"view": "orientation.explain"})

    def human(d):
        cur = d["current"]
        if cur:
            click.echo(f"Décision n° {cur['id']} ({cur['status']}, {cur['decided_on']}): {cur['explanation']}")
            if cur.get("parcours"):
                click.echo(f"Parcours: {Parcours.label_of(cur['parcours'])}; organisme référent: "
                           f"{Organisme.label_of(cur['organisme'])}")
        else:
            click.echo("Aucune décision d'orientation enregistrée.")
        t = d["rules_today"]
        click.echo(f"Selon les règles v{t['rule_set_version']} au {d['as_of']}: {t['explanation']}")

    emit(data, as_json, human)


def _audit_row(session, action, person_id, user_id, details):
    """Command-line actions are logged through the one audit writer."""
    from referents import audit

    return audit.write(session, action, user_id=user_id, person_id=person_id, endpoint="cli", details=details)


@orient.command("queue")
@click.option("--status", default="proposed", show_default=True,
              type=click.Choice(PENDING))
@click.option("--mds", help="Code de la MDS du lieu de résidence.")
@click.option("--territory", help="Code du territoire.")
@click.option("--referent-type", type=click.Choice(OUTCOMES))
@click.option("--rule", "rule_id", help="Identifiant de règle.")
@click.option("--limit", default=100, show_default=True, type=int)
@json_option
def queue_cmd(status, mds, territory, referent_type, rule_id, limit, as_json):
    """Files d'attente des décisions (à valider, en attente de place, hors sectorisation, kiosque)."""
    from orientation import service

    with get_runtime().session() as s:
        try:
            data = service.queue(s, status=status, mds_id=service.structure_id_by_code(s, mds),
                                 territory_id=service.territory_id_by_code(s, territory),
                                 referent_type=referent_type, rule_id=rule_id, limit=limit)
        except service.OrientationError as exc:
            _fail(exc)

    def human(d):
        click.echo(f"{d['total']} décision(s) « {status} »")
        for i in d["items"]:
            click.echo(f"  n° {i['id']} personne {i['person_id']} → {i['referent_type']} {i['structure'] or '-'} "
                       f"(règle {i['rule_id'] or '-'}, {i['decided_on']})")

    emit(data, as_json, human)


@orient.command("validate")
@click.option("--id", "ids", type=int, multiple=True, help="Décision à valider (répétable).")
@click.option("--all-proposed", is_flag=True, help="Valider toute la file filtrée des propositions.")
@click.option("--mds", help="Filtre: code de la MDS.")
@click.option("--territory", help="Filtre: code du territoire.")
@click.option("--referent-type", type=click.Choice(REFERENT_TYPES))
@click.option("--rule", "rule_id", help="Filtre: identifiant de règle.")
@click.option("--user", "user_email", help="Courriel de l'agent qui valide (journal d'audit).")
@as_of_option
@json_option
def validate_cmd(ids, all_proposed, mds, territory, referent_type, rule_id, user_email, as_of, as_json):
    """Valide des propositions (une par une ou une file filtrée)."""
    from orientation import service
    from orientation.models import Orientation

    if bool(ids) == all_proposed:
        raise click.UsageError("donner soit --id (une ou plusieurs fois), soit --all-proposed")
    with get_runtime().session() as s:
        uid = _user_id(s, user_email)
        try:
            if all_proposed:
                ids = service.queue_ids(s, status="proposed", mds_id=service.structure_id_by_code(s, mds),
                                        territory_id=service.territory_id_by_code(s, territory),
                                        referent_type=referent_type, rule_id=rule_id)
            out = service.validate(s, ids, uid, resolve_as_of(as_of))
        except service.OrientationError as exc:
            _fail(exc)
        for oid in out["validated"] + out["awaiting_capacity"]:
            o = s.get(Orientation, oid)
            _audit_row(s, "orientation.validate", o.person_id, uid, {"orientation_id": oid, "status": o.status})

    emit(out, as_json, lambda d: click.echo(
        f"validées: {len(d['validated'])}, en attente de place: {len(d['awaiting_capacity'])}, "
        f"ignorées: {len(d['skipped'])}" + "".join(f"\n  n° {x['id']}: {x['reason']}" for x in d["skipped"])))


@orient.command("override")
@click.option("--id", "orientation_id", type=int, required=True, help="Décision en attente à remplacer.")
@click.option("--referent-type", required=True, type=click.Choice(REFERENT_TYPES))
@click.option("--structure", help="Code de la structure (défaut: celle du secteur).")
@click.option("--reason", required=True, help="Motif (obligatoire).")
@click.option("--user", "user_email", help="Courriel de l'agent (journal d'audit).")
@as_of_option
@json_option
def override_cmd(orientation_id, referent_type, structure, reason, user_email, as_of, as_json):
    """Remplace une décision en attente par une autre orientation, avec un motif."""
    from orientation import service

    with get_runtime().session() as s:
        uid = _user_id(s, user_email)
        try:
            new = service.override(s, orientation_id, uid, referent_type, reason, resolve_as_of(as_of),
                                   structure_id=service.structure_id_by_code(s, structure))
        except (service.OrientationError, LookupError) as exc:
            _fail(exc)
        _audit_row(s, "orientation.override", new.person_id, uid,
                   {"orientation_id": orientation_id, "new_orientation_id": new.id, "reason": reason})
        data = {"id": new.id, "person_id": new.person_id, "status": new.status, "referent_type": new.referent_type,
                "supersedes_id": new.supersedes_id}
    emit(data, as_json, f"décision n° {orientation_id} remplacée par la décision n° {data['id']} ({data['status']})")


@orient.group("reorient")
def reorient():
    """Réorientation: demande d'un référent ou d'un responsable, décision d'un responsable."""


@reorient.command("request")
@click.option("--person", "person_id", type=int, required=True)
@click.option("--reason", required=True)
@click.option("--referent-type", type=click.Choice(REFERENT_TYPES))
@click.option("--user", "user_email")
@as_of_option
@json_option
def reorient_request(person_id, reason, referent_type, user_email, as_of, as_json):
    """Demande une réorientation (motif obligatoire)."""
    from orientation import reorientations, service
    from orientation.schemas import ReorientationSchema

    with get_runtime().session() as s:
        uid = _user_id(s, user_email)
        try:
            req = reorientations.request_reorientation(s, person_id, uid, reason, resolve_as_of(as_of),
                                                       wanted_referent_type=referent_type)
        except (service.OrientationError, LookupError) as exc:
            _fail(exc)
        _audit_row(s, "orientation.reorientation_request", person_id, uid, {"request_id": req.id})
        data = ReorientationSchema().dump(req)
    emit(data, as_json, f"demande de réorientation n° {data['id']} enregistrée")


@reorient.command("decide")
@click.option("--request", "request_id", type=int, required=True)
@click.option("--accept/--refuse", required=True)
@click.option("--reason", help="Motif (obligatoire pour un refus).")
@click.option("--referent-type", type=click.Choice(REFERENT_TYPES))
@click.option("--user", "user_email")
@as_of_option
@json_option
def reorient_decide(request_id, accept, reason, referent_type, user_email, as_of, as_json):
    """Accepte ou refuse une demande de réorientation."""
    from orientation import reorientations, service
    from orientation.schemas import ReorientationSchema

    with get_runtime().session() as s:
        uid = _user_id(s, user_email)
        try:
            req = reorientations.decide_reorientation(s, request_id, uid, accept, resolve_as_of(as_of),
                                                      reason=reason, referent_type=referent_type)
        except (service.OrientationError, LookupError) as exc:
            _fail(exc)
        _audit_row(s, "orientation.reorientation_decision", req.person_id, uid,
                   {"request_id": request_id, "accept": accept, "reason": reason})
        data = ReorientationSchema().dump(req)
    emit(data, as_json, f"demande n° {request_id}: {data['status']}")


@orient.group("rules")
def rules():
    """Jeu de règles d'orientation (données versionnées)."""


@rules.command("show")
@click.option("--version", "version", type=int, default=None, help="Version (défaut: la version active).")
@click.option("--versions", "list_versions", is_flag=True, help="Lister les versions.")
@json_option
def rules_show(version, list_versions, as_json):
    """Affiche le jeu de règles actif (ou une version), en YAML."""
    from orientation import service
    from orientation.schemas import RuleSetSchema, RuleSetVersionSchema

    with get_runtime().session() as s:
        if list_versions:
            service.active_rule_set(s)
            rows = service.rule_set_versions(s)
            lines = [f"v{v.version}{' (active)' if v.active else ''}: {v.name} — {v.rule_count} règles, "
                     f"{v.created_at:%Y-%m-%d %H:%M}" for v in rows]
            emit(RuleSetVersionSchema(many=True).dump(rows), as_json, lambda _d: [click.echo(x) for x in lines])
            return
        row = service.get_rule_set(s, version)
        if row is None:
            raise click.ClickException(f"version {version} inconnue")
        data = RuleSetSchema().dump(row)
    emit(data, as_json, lambda d: click.echo(yaml.safe_dump(
        {"name": d["name"], "version": d["version"], "rules": d["rules"], "fallback": d["fallback"]},
        allow_unicode=True, sort_keys=False, width=110)))


@rules.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "user_email")
@json_option
def rules_load(file, user_email, as_json):
    """Valide un fichier YAML de règles et en fait la version active (rien ne change s'il est identique)."""
    from orientation import service
    from orientation.rules import RuleSetError, parse_yaml

    text = file.read_text(encoding="utf-8")
    with get_runtime().session() as s:
        uid = _user_id(s, user_email)
        before = service.active_rule_set(s)[0].version
        try:
            warnings = parse_yaml(text).warnings
            row = service.load_rules_text(s, text, uid)
        except RuleSetError as exc:
            raise click.ClickException(f"{file}: {exc}") from None
        changed = row.version != before
        if changed:
            _audit_row(s, "orientation.rules", None, uid, {"version": row.version, "file": file.name})
        data = {"version": row.version, "changed": changed,
                "rules": sum(1 for r in row.rules if not r.get("fallback"))}
        if warnings:  # e.g. an automatic rule whose decisions depend on sensitive data by exclusion
            data["warnings"] = warnings

    def human(d):
        click.echo(f"règles v{d['version']} " + ("actives" if d["changed"] else "déjà actives (rien à faire)"))
        for w in d.get("warnings", ()):
            click.echo(f"attention: {w}")

    emit(data, as_json, human)


@orient.command("export-decisions")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Premier jour de la période (AAAA-MM-JJ).")
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Dernier jour de la période (AAAA-MM-JJ), inclus.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def export_decisions_cmd(date_from, date_to, out, as_json):
    """Décisions d'orientation validées sur la période, pour les comités pour l'emploi (L5411-5-1 III):
    clé pseudonyme (jamais le NIR), date, parcours, organisme, règle, critères utilisés. OUT: .xlsx ou .csv."""
    from orientation.decisions_export import ExportError, decision_rows, summary, write

    rt = get_runtime()
    start, end = date_from.date(), date_to.date()
    try:
        with rt.session() as s:
            rows = decision_rows(s, start, end, rt.settings.secret_key)
            _audit_row(s, "orientation.export_decisions", None, None,
                       {"from": start.isoformat(), "to": end.isoformat(), "decisions": len(rows), "file": out.name})
        path = write(rows, out, start, end)
    except ExportError as exc:
        _fail(exc)
    data = {"file": str(path), "from": start.isoformat(), "to": end.isoformat(), **summary(rows)}
    emit(data, as_json, lambda d: click.echo(
        f"{d['decisions']} décision(s) du {start:%d/%m/%Y} au {end:%d/%m/%Y} → {d['file']} (parcours: "
        + ", ".join(f"{k}: {v}" for k, v in d["by_parcours"].items()) + ")"))


@orient.command("deadlines")
@as_of_option
@click.option("--level", type=click.Choice(["ok", "d21", "d35", "past_limit"]))
@click.option("--alerts", is_flag=True, help="Lever les alertes J+21/J+35/J+42 et l'orientation MDS par défaut.")
@json_option
def deadlines_cmd(as_of, level, alerts, as_json):
    """Délais des personnes à orienter (objectif J+30, limite légale J+42)."""
    from orientation import deadlines as service

    as_of = resolve_as_of(as_of)
    with get_runtime().session() as s:
        if alerts:
            data = service.check_deadlines(s, as_of)
            emit(data, as_json, lambda d: click.echo(
                f"{d['to_orient']} à orienter: J+21: {d['d21']}, J+35: {d['d35']}, au-delà de J+42: "
                f"{d['past_limit']}; {d['alerts_raised']} alerte(s) levée(s), {d['default_mds']} orientation(s) "
                "MDS par défaut"))
            return
        items = service.deadlines(s, as_of, level=level)

    def human(rows):
        click.echo(f"{len(rows)} personne(s) à orienter au {as_of}")
        for r in rows[:50]:
            click.echo(f"  personne {r['person_id']}: J+{r['days']} ({r['level']}), limite légale {r['legal_on']}")

    emit(items, as_json, human)


COMMANDS = [orient]
