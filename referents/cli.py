"""`rsa users …` (accounts and API tokens), `rsa audit list` and `rsa rgpd purge`."""

from __future__ import annotations

import datetime as dt
import sys

import click

from config.cli import DATE, as_of_option, emit, get_runtime, json_option, resolve_as_of
from referents.models import Role
from referents.schemas import AuditPageSchema, UserSchema
from referents.vocabulary import StructureKind

ROLES = [r.value for r in Role]


def _fail(message: str) -> None:
    click.echo(f"erreur: {message}", err=True)
    raise SystemExit(1)


@click.group("users")
def users_group():
    """Comptes utilisateurs et jetons d'accès à l'API."""


@users_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--structure", "structure_code", default=None, help="Code de la structure (MDS, prestataire, ATI…).")
@click.option("--name", "display_name", default="", help="Nom affiché.")
@click.option("--password-stdin", is_flag=True, help="Lit le mot de passe sur l'entrée standard.")
@json_option
def users_create(email, role, structure_code, display_name, password_stdin, as_json):
    """Crée un compte (sans mot de passe: accès par jeton seulement)."""
    from referents import security

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    rt = get_runtime()
    with rt.session() as s:
        try:
            user = security.add_user(s, email, role, password=password, structure_code=structure_code,
                                     display_name=display_name)
        except security.AccountError as exc:
            _fail(str(exc))
        security.record(s, "user_create", endpoint="cli users create",
                        details={"user_id": user.id, "email": user.email, "role": user.role})
        data = UserSchema().dump(user)
    emit(data, as_json, f"compte créé: {data['email']} ({data['role']}"
                        + (f", {data['structure']}" if data["structure"] else "") + ")")


@users_group.command("disable")
@click.argument("email")
@json_option
def users_disable(email, as_json):
    """Désactive un compte et révoque tous ses jetons."""
    from referents import security

    rt = get_runtime()
    with rt.session() as s:
        user = security.user_by_email(s, email)
        if user is None:
            _fail(f"compte inconnu: {email}")
        was_active = user.active
        try:
            security.update_user(s, user, active=False)
        except security.AccountError as exc:
            _fail(str(exc))
        if was_active:
            security.record(s, "user_disable", endpoint="cli users disable",
                            details={"user_id": user.id, "email": user.email})
        data = UserSchema().dump(user)
    emit(data, as_json, f"compte désactivé: {data['email']}")


@users_group.command("token")
@click.argument("email")
@click.option("--ttl-hours", type=int, default=None, help="Durée de validité (défaut RSA_TOKEN_TTL_HOURS).")
@click.option("--label", default="", help="Libellé du jeton.")
@json_option
def users_token(email, ttl_hours, label, as_json):
    """Émet un jeton d'API. Il n'est affiché qu'une fois: seule son empreinte est conservée."""
    from referents import security

    rt = get_runtime()
    with rt.session() as s:
        user = security.user_by_email(s, email)
        if user is None:
            _fail(f"compte inconnu: {email}")
        try:
            token, row = security.new_token(s, user, ttl_hours, rt.settings.token_ttl_hours, label=label)
        except security.AccountError as exc:
            _fail(str(exc))
        security.record(s, "token_issue", endpoint="cli users token",
                        details={"user_id": user.id, "token_id": row.id, "expires_at": row.expires_at.isoformat()})
        data = {"email": user.email, "token": token, "token_id": row.id,
                "expires_at": row.expires_at.isoformat(timespec="seconds")}
    emit(data, as_json, lambda d: click.echo(
        f"{d['token']}\n(jeton de {d['email']}, valable jusqu'au {d['expires_at']} UTC; il ne sera plus affiché)"))


@users_group.command("revoke")
@click.argument("email")
@json_option
def users_revoke(email, as_json):
    """Révoque tous les jetons d'un compte et met fin à ses sessions de navigateur."""
    from referents import security

    rt = get_runtime()
    with rt.session() as s:
        user = security.user_by_email(s, email)
        if user is None:
            _fail(f"compte inconnu: {email}")
        n = security.revoke_all(s, user)
        security.record(s, "token_revoke", endpoint="cli users revoke", details={"user_id": user.id, "count": n})
        m = security.revoke_sessions(s, user)
        security.record(s, "session_revoke", endpoint="cli users revoke", details={"user_id": user.id, "count": m})
    emit({"email": email, "revoked": n, "sessions_ended": m}, as_json,
         f"{n} jeton(s) révoqué(s), {m} session(s) terminée(s)")


@users_group.command("list")
@click.option("--role", type=click.Choice(ROLES), default=None)
@click.option("--structure", "structure_code", default=None)
@json_option
def users_list(role, structure_code, as_json):
    """Liste les comptes."""
    from referents import security

    rt = get_runtime()
    with rt.session() as s:
        data = UserSchema(many=True).dump(security.list_users(s, role=role, structure_code=structure_code))

    def human(rows):
        for u in rows:
            click.echo(f"{u['email']:40} {u['role']:11} {u['structure'] or '-':22} "
                       f"{'actif' if u['active'] else 'désactivé'}")
        click.echo(f"{len(rows)} compte(s)")

    emit(data, as_json, human)


@click.group("audit")
def audit_group():
    """Journal d'audit (lecture seule)."""


@audit_group.command("list")
@click.option("--user", "user_email", default=None, help="Adresse du compte.")
@click.option("--person", "person_id", type=int, default=None, help="Identifiant de la personne.")
@click.option("--action", default=None, help="read, update, login, login_failed, export, purge…")
@click.option("--since", type=DATE, default=None)
@click.option("--until", type=DATE, default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
def audit_list(user_email, person_id, action, since, until, limit, as_json):
    """Affiche les entrées du journal d'audit, les plus récentes d'abord."""
    from referents import security

    rt = get_runtime()
    with rt.session() as s:
        user_id = None
        if user_email:
            user = security.user_by_email(s, user_email)
            if user is None:
                _fail(f"compte inconnu: {user_email}")
            user_id = user.id
        total, rows = security.audit_query(
            s, user_id=user_id, person_id=person_id, action=action,
            since=dt.datetime.combine(since, dt.time()) if since else None,
            until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time()) if until else None, limit=limit)
        data = AuditPageSchema().dump({"total": total, "items": rows})

    def human(d):
        for e in d["items"]:
            click.echo(f"{e['at']} {e['action']:14} {e['user_email'] or '-':30} "
                       f"{'personne ' + str(e['person_id']) if e['person_id'] else '':16} {e['endpoint'] or ''}")
        click.echo(f"{len(d['items'])} entrée(s) affichée(s) sur {d['total']}")

    emit(data, as_json, human)


@click.group("rgpd")
def rgpd_group():
    """Données personnelles: durée de conservation."""


@rgpd_group.command("purge")
@as_of_option
@click.option("--dry-run", is_flag=True, help="Liste ce qui serait purgé sans rien modifier.")
@click.option("--months", type=int, default=None, help="Durée de conservation (défaut RSA_RETENTION_MONTHS).")
@json_option
def rgpd_purge(as_of, dry_run, months, as_json):
    """Anonymise les personnes sans contact depuis la fin de leur parcours depuis plus de
    RSA_RETENTION_MONTHS mois, et purge les rejets d'import et fragments XML anciens."""
    from referents.jobs import run_purge

    rt = get_runtime()
    data = run_purge(rt, resolve_as_of(as_of), dry_run=dry_run, months=months, actor="cli rgpd purge")

    def human(d):
        verb = "seraient" if d["dry_run"] else "ont été"
        click.echo(f"Conservation: {d['months']} mois — date limite {d['cutoff']} (au {d['as_of']})")
        click.echo(f"{d['person_count']} personne(s) {verb} anonymisée(s)")
        if d["dry_run"] and d["persons"]:
            click.echo("  identifiants: " + ", ".join(str(i) for i in d["persons"][:200])
                       + (" …" if len(d["persons"]) > 200 else ""))
        if not d["dry_run"]:
            click.echo(f"{d['households']} foyer(s) anonymisé(s), {d['files']} courrier(s) supprimé(s)")
        click.echo(f"{d['rejected_records']} rejet(s) d'import, {d['raw_records']} fragment(s) XML et "
                   f"{d['france_travail_events']} ligne(s) France Travail non rapprochée(s) {verb} purgés")

    emit(data, as_json, human)


@click.group("referents")
def referents_group():
    """Structures et sectorisation (données éditables par le Département)."""


@referents_group.command("load-sectorisation")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
def load_sectorisation_cmd(file, as_json):
    """Remplace toute la sectorisation par FILE (CSV) et recalcule la MDS de chaque foyer.

    Tout ou rien: une ligne fausse (commune ou structure inconnue, doublon) ne change rien."""
    from cases.service import apply_sectorisation
    from referents.service import ReferenceDataError, load_sectorisation

    rt = get_runtime()
    try:
        with rt.session() as s:
            stats = load_sectorisation(s, file, replace=True)
            stats["households_resectorised"] = apply_sectorisation(s)
    except ReferenceDataError as exc:
        _fail(str(exc))
    emit(stats, as_json, lambda d: click.echo(
        f"sectorisation chargée: {d['added']} ajoutés, {d['updated']} modifiés, {d['removed']} retirés, "
        f"{d['unchanged']} inchangés; {d['households_resectorised']} foyers resectorisés"))


@referents_group.command("structures")
@click.option("--kind", type=click.Choice(StructureKind.codes()))
@json_option
def structures_cmd(kind, as_json):
    """Liste les structures, leur capacité et leur charge actuelle (orientations validées)."""
    from sqlalchemy import func, select

    from orientation.models import Orientation
    from referents.models import Structure

    rt = get_runtime()
    with rt.session() as s:
        load = dict(s.execute(select(Orientation.structure_id, func.count()).where(
            Orientation.status == "validated").group_by(Orientation.structure_id)).all())
        q = select(Structure).order_by(Structure.kind, Structure.code)
        if kind:
            q = q.where(Structure.kind == kind)
        rows = [{"code": st.code, "name": st.name, "kind": st.kind, "capacity": st.capacity,
                 "load": load.get(st.id, 0)} for st in s.scalars(q)]
    emit(rows, as_json, lambda d: [click.echo(
        f"{r['code']:<22} {r['kind']:<12} charge {r['load']:>6} / {r['capacity'] if r['capacity'] is not None else '∞'}")
        for r in d])


@referents_group.command("set-capacity")
@click.argument("code")
@click.argument("capacity")
@json_option
def set_capacity_cmd(code, capacity, as_json):
    """Fixe la capacité d'une structure (nombre de personnes suivies; 'none' = illimitée)."""
    from referents.service import structure_by_code

    rt = get_runtime()
    with rt.session() as s:
        st = structure_by_code(s, code)
        if st is None:
            _fail(f"structure inconnue: {code}")
        if capacity.lower() in ("none", "illimitee", "illimitée"):
            st.capacity = None
        else:
            try:
                st.capacity = int(capacity)
            except ValueError:
                _fail(f"capacité invalide: {capacity!r}")
            if st.capacity < 0:
                _fail("la capacité ne peut pas être négative")
        data = {"code": st.code, "capacity": st.capacity}
    emit(data, as_json, f"{data['code']}: capacité {data['capacity'] if data['capacity'] is not None else 'illimitée'}")


COMMANDS = [users_group, audit_group, rgpd_group, referents_group]
