"""The `rsa demo` step of cases (found by config/demo.py as `cases.demo`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select

from cases.appointments import record_appointment
from cases.contracts import record_contract
from cases.followup import overdue_contracts
from cases.models import Appointment
from cases.scope import _system_user
from cases.signals import orientations
from cases.timeline import timeline
from referents.vocabulary import OrientationStatus, ReferentType

ORDER = 50  # after orientation and kiosque: referents act on the oriented people


def demo(ctx) -> dict:
    """Walk two persons with a validated orientation (a social path first) through a first
    appointment and a contract, and print the end of their timeline."""
    walked = []
    with ctx.runtime.session() as session:
        # People with a validated orientation and no appointment yet (the kiosque books some).
        rows = orientations().rows.subquery()
        o = rows.c
        validated = (select(rows).where(o.status == OrientationStatus.VALIDATED, o.validated_on.is_not(None),
                                        o.validated_on <= ctx.as_of,
                                        ~exists(select(Appointment.id).where(Appointment.person_id == o.person_id)))
                     .order_by(o.validated_on, o.id))
        candidates = list(session.execute(validated.where(o.referent_type == ReferentType.MDS.value).limit(1)))
        candidates += session.execute(validated.where(o.referent_type != ReferentType.MDS.value)
                                      .limit(2 - len(candidates))).all()
        if not candidates:
            ctx.echo("[parcours] aucune orientation validée: pas de parcours à suivre")
            return {"walked": []}
        for o in candidates:
            # Dates capped at as_of: the demo never records the future as done.
            met_on = min(o.validated_on + dt.timedelta(days=7), ctx.as_of)
            record_appointment(session, o.person_id, dt.datetime.combine(met_on, dt.time(10, 0)), "honoured",
                               kind="first", source="agent")
            record_contract(session, o.person_id, min(o.validated_on + dt.timedelta(days=14), ctx.as_of),
                            source="agent", objectives=[
                                {"theme": "employment", "text": "Définir un projet professionnel"},
                                {"theme": "mobility", "text": "Passer le permis B"}])
            walked.append(o.person_id)
        session.flush()
        for o in candidates:
            events = timeline(session, o.person_id)
            ctx.echo(f"[parcours] personne {o.person_id} (orientation {o.referent_type}): {len(events)} événements")
            for ev in events[-5:]:
                ctx.echo(f"    {ev['occurred_on']}  {ev['kind']:<22} {ev['summary']}")
        overdue = len(overdue_contracts(session, _system_user(), ctx.as_of))
        ctx.echo(f"[parcours] contrats d'engagement en retard au {ctx.as_of}: {overdue}")
    return {"walked": walked, "overdue_contracts": overdue}


