"""`rsa kiosque …`: sessions and templates, planning, phoning lists, attendance, letters, outbox."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from config.cli import DATE, as_of_option, emit, get_runtime, json_option, resolve_as_of
from kiosque.vocabulary import ATTENDANCE
from referents.service import structure_by_code
from referents.vocabulary import REFERENT_TYPES


def _time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: heure attendue HH:MM") from exc


def _datetime(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: date et heure attendues AAAA-MM-JJTHH:MM") from exc


def _mds(s, code_or_id: str) -> int:
    from sqlalchemy import select

    from referents.models import Structure

    if code_or_id.isdigit():
        found = s.scalar(select(Structure.id).where(Structure.kind == "mds", Structure.id == int(code_or_id)))
    else:
        mds = structure_by_code(s, code_or_id.upper(), kind="mds")
        found = mds.id if mds else None
    if found is None:
        raise click.ClickException(f"MDS inconnue: {code_or_id} (code comme MDS-RANGUEIL, ou identifiant)")
    return found


def _guard(func, *args, **kwargs):
    from kiosque.service import KiosqueError

    try:
        return func(*args, **kwargs)
    except KiosqueError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("kiosque")
def kiosque():
    """Kiosque Insertion: sessions, planification des invitations, phoning, présence, courriers, envois."""


# --- sessions -------------------------------------------------------------------------------------

@kiosque.group("sessions")
def sessions():
    """Sessions de kiosque et modèles récurrents."""


@sessions.command("create")
@click.option("--mds", required=True, help="Code (MDS-RANGUEIL) ou identifiant de la MDS.")
@click.option("--at", "starts_at", required=True, help="Date et heure locales, AAAA-MM-JJTHH:MM.")
@click.option("--capacity", type=int, default=20, show_default=True)
@click.option("--place", default=None, help="Lieu (défaut: adresse de la MDS).")
@click.option("--duration", type=int, default=150, show_default=True, help="Durée en minutes.")
@json_option
def sessions_create(mds, starts_at, capacity, place, duration, as_json):
    """Crée une session."""
    from kiosque import service
    from kiosque.schemas import SessionSchema
    from kiosque.sessions import SessionSeats

    with get_runtime().session() as s:
        ks = _guard(service.create_session, s, mds_id=_mds(s, mds), starts_at=_datetime(starts_at),
                    capacity=capacity, place=place, duration_minutes=duration)
        data = SessionSchema().dump(SessionSeats(ks, booked=0))
        human = f"session {ks.id} créée: {ks.starts_at:%d/%m/%Y %H:%M}, {ks.place}, {ks.capacity} places"
    emit(data, as_json, human)


@sessions.command("template")
@click.option("--mds", required=True, help="Code ou identifiant de la MDS.")
@click.option("--weekday", type=click.IntRange(0, 6), required=True, help="0 = lundi … 6 = dimanche.")
@click.option("--time", "start_time", required=True, help="Heure HH:MM.")
@click.option("--capacity", type=int, default=20, show_default=True)
@click.option("--place", default=None)
@json_option
def sessions_template(mds, weekday, start_time, capacity, place, as_json):
    """Ajoute un modèle récurrent (« chaque mardi 9 h 30, 20 places »)."""
    from kiosque import service

    with get_runtime().session() as s:
        t = _guard(service.create_template, s, mds_id=_mds(s, mds), weekday=weekday, start_time=_time(start_time),
                   capacity=capacity, place=place)
        data = {"id": t.id, "mds_id": t.mds_id, "weekday": t.weekday, "start_time": t.start_time.isoformat(),
                "capacity": t.capacity, "place": t.place}
    emit(data, as_json, f"modèle {data['id']} créé")


@sessions.command("generate")
@click.option("--from", "start", type=DATE, required=True, help="Premier jour (AAAA-MM-JJ).")
@click.option("--to", "end", type=DATE, required=True, help="Dernier jour (AAAA-MM-JJ).")
@click.option("--mds", default=None, help="Une seule MDS (défaut: toutes).")
@click.option("--default-templates", is_flag=True,
              help="Crée d'abord un modèle hebdomadaire (mardi 9 h 30, 20 places) pour chaque MDS qui n'en a pas.")
@json_option
def sessions_generate(start, end, mds, default_templates, as_json):
    """Crée les sessions des modèles sur une période, en sautant jours fériés et fermetures (idempotent)."""
    from kiosque import service

    with get_runtime().session() as s:
        added = service.ensure_default_templates(s) if default_templates else 0
        out = _guard(service.generate_sessions, s, start, end, mds_id=_mds(s, mds) if mds else None)
    out["templates_added"] = added

    def human(o):
        click.echo(f"{o['created']} session(s) créée(s)" + (f", {added} modèle(s) ajouté(s)" if added else ""))
        for sk in o["skipped"]:
            click.echo(f"  sauté le {sk['day']}: {sk['reason']} (modèle {sk['template_id']})")

    emit(out, as_json, human)


@sessions.command("closure")
@click.option("--day", type=DATE, required=True)
@click.option("--reason", default="")
@click.option("--mds", default=None, help="Défaut: toutes les MDS.")
@json_option
def sessions_closure(day, reason, mds, as_json):
    """Déclare un jour de fermeture (aucune session générée ce jour-là)."""
    from kiosque import service

    with get_runtime().session() as s:
        c = service.add_closure(s, day, reason, mds_id=_mds(s, mds) if mds else None)
        data = {"id": c.id, "day": c.day.isoformat(), "mds_id": c.mds_id, "reason": c.reason}
    emit(data, as_json, f"fermeture enregistrée le {day}")


@sessions.command("list")
@click.option("--from", "start", type=DATE, default=None)
@click.option("--to", "end", type=DATE, default=None)
@click.option("--mds", default=None)
@json_option
def sessions_list(start, end, mds, as_json):
    """Sessions avec places données et libres."""
    from kiosque import service
    from kiosque.schemas import SessionSchema

    with get_runtime().session() as s:
        rows = service.list_sessions(s, start=start, end=end, mds_id=_mds(s, mds) if mds else None)
        data = SessionSchema(many=True).dump(rows)
        lines = [f"{r.id:>6}  {r.starts_at:%a %d/%m/%Y %H:%M}  {r.mds_name:<32} {r.booked:>3}/{r.capacity:<3} {r.status}"
                 for r in rows]

    emit(data, as_json, lambda _d: click.echo("\n".join(lines) if lines else "aucune session"))


@sessions.command("cancel")
@click.argument("session_id", type=int)
@json_option
def sessions_cancel(session_id, as_json):
    """Annule une session; ses invités seront replacés à la prochaine planification."""
    from kiosque import service
    from kiosque.models import KiosqueSession

    with get_runtime().session() as s:
        ks = s.get(KiosqueSession, session_id)
        if ks is None:
            raise click.ClickException(f"session {session_id} inconnue")
        n = service.cancel_session(s, ks)
    emit({"session_id": session_id, "invitations_cancelled": n}, as_json,
         f"session {session_id} annulée, {n} invitation(s) à replacer")


# --- planning -------------------------------------------------------------------------------------

@kiosque.command("plan")
@as_of_option
@json_option
def plan_cmd(as_of, as_json):
    """Planifie les invitations (personnes orientées kiosque ou en attente de validation trop longue)."""
    from kiosque import service

    as_of = resolve_as_of(as_of)
    with get_runtime().session() as s:
        result = service.plan(s, as_of).as_dict()

    def human(r):
        click.echo(f"{r['candidates']} personne(s) à inviter au {r['as_of']}: {r['invited']} invitée(s), "
                   f"{r['reinvited']} réinvitée(s) — {r['own_mds']} dans leur MDS, {r['neighbour_mds']} dans une "
                   f"MDS voisine, {r['after_deadline']} après l'échéance légale, {r['unplanned']} sans place")
        if r["shortfalls"]:
            click.echo(f"manque de places (avant échéance) par MDS: {r['shortfalls']}; "
                       f"{r['alerts_raised']} nouvelle(s) alerte(s)")

    emit(result, as_json, human)


# --- phoning --------------------------------------------------------------------------------------

@kiosque.command("phoning")
@click.option("--session", "session_id", type=int, required=True)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def phoning_cmd(session_id, out, as_json):
    """Liste d'appels d'une session (xlsx: nom, téléphone, session, résultat en liste déroulante, notes)."""
    from kiosque import phoning

    with get_runtime().session() as s:
        result = _guard(phoning.write_call_list, s, session_id, out)
    emit(result, as_json, f"{result['rows']} personne(s) à appeler: {out}")


@kiosque.command("phoning-results")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@as_of_option
@json_option
def phoning_results_cmd(file, as_of, as_json):
    """Relit une liste d'appels remplie et enregistre chaque résultat."""
    from kiosque import phoning

    with get_runtime().session() as s:
        result = _guard(phoning.read_call_results, s, file, on=resolve_as_of(as_of))

    def human(r):
        click.echo(f"{r['recorded']} résultat(s) enregistré(s), {r['skipped']} ligne(s) sans résultat")
        for e in r["errors"]:
            click.echo(f"  ligne {e['row']}: {e['error']}")

    emit(result, as_json, human)


# --- attendance -----------------------------------------------------------------------------------

@kiosque.command("attendance")
@click.option("--invitation", "invitation_id", type=int, required=True)
@click.option("--status", type=click.Choice(ATTENDANCE), required=True)
@click.option("--referent", "referent_type", type=click.Choice(REFERENT_TYPES),
              default=None, help="Référent choisi (présent).")
@click.option("--structure", "structure_id", type=int, default=None, help="Structure choisie (défaut: secteur).")
@click.option("--appointment", default=None, help="Premier rendez-vous, AAAA-MM-JJTHH:MM.")
@as_of_option
@json_option
def attendance_cmd(invitation_id, status, referent_type, structure_id, appointment, as_of, as_json):
    """Présence à un kiosque; un présent repart orienté; un absent est réinvité une fois, puis proposé à la MDS.

    With --as-of, the roll call is taken at the end of that day (a session of that day has begun)."""
    from kiosque import service

    now = dt.datetime.combine(as_of, dt.time(23, 59)) if as_of else None
    with get_runtime().session() as s:
        out = _guard(service.record_attendance, s, invitation_id, status, referent_type=referent_type,
                     structure_id=structure_id, first_appointment_at=_datetime(appointment) if appointment else None,
                     now=now)

    def human(o):
        line = f"invitation {o['invitation_id']}: {o['status']}"
        if o.get("orientation_id"):
            line += f"; orientation {o['orientation_id']} validée (origine kiosque)"
        if o.get("reinvitation_ids"):
            line += f"; réinvitation(s) {', '.join(map(str, o['reinvitation_ids']))}"
        if o.get("default_mds_orientation_id"):
            line += f"; proposition d'orientation vers la MDS {o['default_mds_orientation_id']}"
        click.echo(line)

    emit(out, as_json, human)


# --- letters and outbox ---------------------------------------------------------------------------

@kiosque.command("letters")
@click.option("--session", "session_id", type=int, required=True)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@json_option
def letters_cmd(session_id, outdir, as_json):
    """Courriers d'invitation d'une session: un PDF par personne et un PDF du lot à imprimer."""
    from kiosque import letters

    with get_runtime().session() as s:
        out = _guard(letters.write_session_letters, s, session_id, outdir)
    data = {"session_id": session_id, "batch": str(out["batch"]), "files": [str(f) for f in out["files"]]}
    emit(data, as_json, f"{len(data['files'])} courrier(s); lot à imprimer: {data['batch']}")


@kiosque.command("send")
@as_of_option
@click.option("--email", "email_mode", type=click.Choice(["smtp", "file"]), default="smtp", show_default=True,
              help="E-mails par SMTP (RSA_SMTP_*) ou écrits en fichiers .eml sous RSA_OUTBOX_DIR.")
@click.option("--limit", type=int, default=None)
@json_option
def send_cmd(as_of, email_mode, limit, as_json):
    """Traite la boîte d'envoi: rappels J-3/J-1 et notifications d'orientation, puis envoi des messages dus."""
    from kiosque import messaging
    from orientation.messaging import outbox
    from orientation.notices import queue_notifications

    rt = get_runtime()
    as_of = resolve_as_of(as_of)
    with rt.session() as s:
        reminders = messaging.queue_reminders(s, as_of)
        notifications = queue_notifications(s, as_of)
    bar = {}

    def progress(total, step):
        if "bar" not in bar and total and sys.stdout.isatty() and not as_json:
            bar["bar"] = click.progressbar(length=total, label="envoi").__enter__()
        if "bar" in bar and step:
            bar["bar"].update(step)

    try:
        with rt.session() as s:
            out = outbox.process_outbox(s, rt.settings, as_of=as_of, limit=limit, commit=True, progress=progress,
                                        gateways=outbox.gateways_for(rt.settings, email=email_mode))
    finally:
        if "bar" in bar:
            bar["bar"].__exit__(None, None, None)
    out.update(reminders_queued=reminders, notifications_queued=notifications)
    emit(out, as_json, f"{out['sent']} envoyé(s), {out['retry']} à réessayer, {out['failed']} en échec, "
                       f"{out['bounced']} rejeté(s), {out['cancelled']} annulé(s) "
                       f"({reminders} rappel(s), {notifications} notification(s) ajoutés)")


COMMANDS = [kiosque]
