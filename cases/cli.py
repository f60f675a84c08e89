"""`rsa cases …`: a person's timeline and record, the referents' working lists, daily alerts, exits."""

from __future__ import annotations

import click
from sqlalchemy import select

from config.cli import DATE, as_of_option, emit, get_runtime, json_option, resolve_as_of
from referents.service import structure_by_code


@click.group("cases")
def cases():
    """Parcours des personnes: historique, fiche, listes de suivi, sorties."""


@cases.command("timeline")
@click.option("--person", "person_id", type=int, required=True, help="Identifiant de la personne.")
@json_option
def timeline_cmd(person_id, as_json):
    """Historique daté d'une personne (source et auteur de chaque événement)."""
    from cases import service
    from cases.models import Person

    rt = get_runtime()
    with rt.session() as s:
        if s.get(Person, person_id) is None:
            raise click.ClickException(f"personne {person_id} inconnue")
        events = service.timeline(s, person_id)
        _audit_cli(s, "read", person_id, "cases timeline")

    def human(rows):
        if not rows:
            click.echo("aucun événement")
        for ev in rows:
            who = f" par {ev['author']}" if ev["author"] else ""
            click.echo(f"{ev['occurred_on']}  {ev['kind']:<24} [{ev['source']}{who}] {ev['summary']}")

    emit(events, as_json, human)


@cases.command("show")
@click.option("--nir", default=None, help="NIR (13 ou 15 caractères).")
@click.option("--person", "person_id", type=int, default=None, help="Identifiant de la personne.")
@as_of_option
@json_option
def show_cmd(nir, person_id, as_of, as_json):
    """Fiche complète d'une personne (commande d'administration: NIR en clair, accès journalisé)."""
    from cases import service
    from cases.models import Path as PathModel
    from cases.models import Person
    from cases.nir import NirError, normalise
    from cases.schemas import PersonDetailSchema

    if (nir is None) == (person_id is None):
        raise click.UsageError("donner --nir ou --person")
    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    with rt.session() as s:
        others: list[int] = []
        if nir is not None:
            try:
                digest = rt.vault.hash(normalise(nir))
            except NirError as exc:
                raise click.ClickException(str(exc)) from exc
            ids = list(s.scalars(select(Person.id).where(Person.nir_hash == digest).order_by(Person.id)))
            if not ids:
                raise click.ClickException("aucune personne avec ce NIR")
            open_ids = set(s.scalars(select(PathModel.person_id).where(PathModel.person_id.in_(ids),
                                                                       PathModel.closed_on.is_(None))))
            person_id = max(open_ids) if open_ids else ids[-1]
            others = [i for i in ids if i != person_id]
        person = s.get(Person, person_id)
        if person is None:
            raise click.ClickException(f"personne {person_id} inconnue")
        data = PersonDetailSchema().dump(service.person_detail(s, person, role="admin", vault=rt.vault, as_of=as_of))
        data["other_person_ids"] = others
        _audit_cli(s, "read", person_id, "cases show")

    def human(d):
        ident = d["identity"]
        click.echo(f"{ident['last_name']} {ident['first_name']} né(e) le {ident['birth_date']} (personne {d['id']})")
        o = d["orientation"]
        click.echo(f"orientation: {o['referent_type']} ({o['status']})" if o else "orientation: aucune")
        p = d["path"]
        click.echo(f"parcours: depuis {p['clock_start']}" + (f", clos le {p['closed_on']}" if p["closed_on"] else "")
                   if p else "parcours: aucun")
        due = d["due"]
        click.echo(f"prochaine échéance: {due['next_due_on'] or '—'} ({due['next_due'] or '—'})")

    emit(data, as_json, human)


@cases.command("list")
@click.argument("name", type=click.Choice(["my-people", "overdue-contracts", "reviews-due",
                                           "appointments-to-update", "without-appointment"]))
@click.option("--user", "user_email", default=None, help="Vue d'un utilisateur (son périmètre); défaut: tout.")
@click.option("--days", type=int, default=None, help="Fenêtre en jours (reviews-due, without-appointment).")
@as_of_option
@json_option
def list_cmd(name, user_email, days, as_of, as_json):
    """Listes de suivi: mes personnes, contrats en retard, bilans à tenir, RDV à mettre à jour, sans RDV."""
    from cases import service
    from referents.models import User

    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    with rt.session() as s:
        if user_email:
            user = s.scalar(select(User).where(User.email == user_email.strip().lower()))
            if user is None:
                raise click.ClickException(f"utilisateur inconnu: {user_email}")
        else:
            user = service._system_user()
        kwargs = {}
        if days is not None and name == "reviews-due":
            kwargs["within_days"] = days
        elif days is not None and name == "without-appointment":
            kwargs["days"] = days
        items = service.LISTS[name](s, user, as_of, **kwargs)

    def human(d):
        click.echo(f"{name} au {as_of}: {d['count']}")
        for r in d["items"]:
            extra = {k: v for k, v in r.items() if k not in ("person_id", "last_name", "first_name", "birth_date")
                     and v not in (None, False)}
            click.echo(f"  {r['person_id']:>7} {r['last_name'] or ''} {r['first_name'] or ''}  "
                       + ", ".join(f"{k}={v}" for k, v in extra.items()))

    emit({"name": name, "as_of": as_of.isoformat(), "count": len(items), "items": items}, as_json, human)


@cases.command("refresh-next-due")
@as_of_option
@json_option
def refresh_next_due_cmd(as_of, as_json):
    """Recalcule les échéances enregistrées sur les parcours (le travail de nuit cases.refresh_next_due):
    après une mise à jour du schéma, ou une journée sans le planificateur."""
    from cases import jobs

    as_of = resolve_as_of(as_of)
    result = jobs.refresh_next_due(get_runtime(), as_of)
    emit({"as_of": as_of.isoformat(), **result}, as_json,
         f"échéances recalculées au {as_of:%d/%m/%Y}: {result['paths_changed']} parcours réécrit(s)")


@cases.command("alerts")
@as_of_option
@json_option
def alerts_cmd(as_of, as_json):
    """Lève les alertes du jour (contrats en retard, bilans à tenir); idempotent."""
    from cases import service

    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    with rt.session() as s:
        counts = service.raise_daily_alerts(s, as_of)
        counts.update(service.raise_sanction_alerts(s, as_of))
    emit({"as_of": as_of.isoformat(), **counts}, as_json,
         f"alertes levées au {as_of}: {counts['contract_overdue']} contrat(s) en retard, "
         f"{counts['review_due']} bilan(s) à tenir, {counts['sanction_end_of_right']} fin(s) de suppression "
         "totale sans mise en conformité")


@cases.command("exits")
@click.option("--start", type=DATE, required=True)
@click.option("--end", type=DATE, required=True)
@click.option("--structure", "structure_code", default=None, help="Code de la structure référente.")
@json_option
def exits_cmd(start, end, structure_code, as_json):
    """Sorties par motif et taux de sorties positives par structure sur une période."""
    from cases import service

    rt = get_runtime()
    with rt.session() as s:
        structure_id = None
        if structure_code:
            structure = structure_by_code(s, structure_code)
            if structure is None:
                raise click.ClickException(f"structure inconnue: {structure_code}")
            structure_id = structure.id
        data = {"start": start.isoformat(), "end": end.isoformat(),
                "by_reason": service.exits_by_reason(s, start, end, structure_id),
                "by_structure": service.positive_exit_rate(s, start, end, structure_id)}

    def human(d):
        click.echo(f"Sorties du {d['start']} au {d['end']}")
        for r in d["by_reason"]:
            click.echo(f"  {r['label']:<45} {r['count']:>6}{'  (positive)' if r['positive'] else ''}")
        for r in d["by_structure"]:
            rate = f"{r['rate'] * 100:.0f} %" if r["rate"] is not None else "—"
            click.echo(f"  {r['structure_code'] or '(sans structure)':<30} {r['positive']:>5}/{r['exits']:<6} {rate}")

    emit(data, as_json, human)


def _audit_cli(session, action: str, person_id: int, command: str) -> None:
    """Command-line reads of a person's record are logged like API reads."""
    from referents import audit

    audit.cli(session, action, person_id, command=command)


COMMANDS = [cases]
