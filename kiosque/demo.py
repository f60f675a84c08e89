"""`rsa demo`, kiosque step: sessions for the coming weeks, invitations, letters, the outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from config.settings import Settings
from kiosque import letters
from kiosque.models import Invitation
from kiosque.service import KiosqueConfig, ensure_default_templates, generate_sessions, plan
from orientation.messaging import outbox
from orientation.notices import queue_notifications

ORDER = 40  # after orientation: invitations for the undecided


def demo(ctx) -> dict:
    """Sessions for the coming weeks, invitations for the sample flow, letters of one session, outbox."""
    as_of = ctx.as_of
    config = KiosqueConfig.from_env()
    with ctx.runtime.session() as s:
        templates = ensure_default_templates(s)
        gen = generate_sessions(s, as_of, as_of + dt.timedelta(weeks=6))
        result = plan(s, as_of, config=config)
        first = s.scalar(select(Invitation.session_id).where(Invitation.invited_on == as_of)
                         .group_by(Invitation.session_id).order_by(func.count(Invitation.id).desc(),
                                                                    Invitation.session_id).limit(1))
    ctx.echo(f"[kiosque] {templates} modèle(s) hebdomadaire(s), {gen['created']} session(s) créée(s) sur 6 semaines "
             f"({len(gen['skipped'])} jour(s) férié(s) ou fermeture(s) sautés)")
    ctx.echo(f"[kiosque] {result.candidates} personne(s) à inviter: {result.invited} invitée(s) "
             f"({result.own_mds} dans leur MDS, {result.neighbour_mds} dans une MDS voisine, "
             f"{result.after_deadline} après l'échéance dont {result.overdue} déjà hors délai), "
             f"{result.unplanned} sans place; "
             f"{result.alerts_raised} alerte(s) de manque de places")
    out = {"templates": templates, "sessions": gen["created"], "plan": result.as_dict()}
    if first is not None:
        with ctx.runtime.session() as s:
            written = letters.write_session_letters(s, first, ctx.workdir / "letters", config=config)
        ctx.echo(f"[kiosque] courriers de la session {first}: {written['batch']} "
                 f"({len(written['files'])} courrier(s) individuel(s))")
        out["letters"] = {"session_id": first, "batch": str(written["batch"]), "count": len(written["files"])}
    # E-mails go through SMTP only when a server was configured away from the default.
    use_smtp = ctx.runtime.settings.smtp_host != Settings().smtp_host
    gateways = outbox.gateways_for(ctx.runtime.settings, email="smtp" if use_smtp else "file")
    with ctx.runtime.session() as s:
        notifications = queue_notifications(s, as_of)
        sent = outbox.process_outbox(s, ctx.runtime.settings, as_of=as_of, gateways=gateways, config=config)
    ctx.echo(f"[kiosque] boîte d'envoi: {sent['sent']} message(s) envoyé(s) dont {notifications} notification(s) "
             f"d'orientation, {sent['failed']} en échec — "
             f"e-mails {'par SMTP' if use_smtp else 'écrits en fichiers'} et SMS écrits sous "
             f"{ctx.runtime.settings.outbox_dir}")
    out["outbox"] = {**sent, "notifications_queued": notifications}
    return out
