"""Correcting an exit recorded by mistake: within 30 days of its recording, the referent or provider
who knows better cancels it (the path, the orientation and the contracts are as before) or corrects
its date and reason. An exit read from the CAF/MSA flow is the CAF's to correct, not ours.

The page and the API call this one function, so they refuse the same things."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import signals
from cases.models import Contract, Exit
from cases.models import Path as PathModel

CORRECTION_DAYS = 30


def correctable(ex: Exit | None, as_of: dt.date) -> bool:
    """Whether the exit may still be corrected on `as_of` (recorded by an agent or a provider, at
    most CORRECTION_DAYS days ago)."""
    return (ex is not None and ex.source != "flow"
            and (as_of - ex.recorded_at.date()).days <= CORRECTION_DAYS)


def recent_exits(session: Session, structure_id: int, as_of: dt.date) -> list[dict]:
    """The exits recorded for a structure in the last CORRECTION_DAYS days (still correctable): a
    provider no longer sees the person once exited, but may still correct a mistake."""
    from cases import service
    from cases.models import Person

    since = dt.datetime.combine(as_of - dt.timedelta(days=CORRECTION_DAYS), dt.time())
    rows = session.execute(select(Exit, Person.last_name, Person.first_name).join(Person, Person.id == Exit.person_id)
                           .where(Exit.structure_id == structure_id, Exit.source != "flow",
                                  Exit.recorded_at >= since).order_by(Exit.recorded_at.desc(), Exit.id.desc()))
    reasons = service.exit_reasons()
    return [{"exit_id": ex.id, "person_id": ex.person_id, "last_name": ln, "first_name": fn, "exit_on": ex.exit_on,
             "reason": reasons.get(ex.reason, {}).get("label", ex.reason), "recorded_at": ex.recorded_at}
            for ex, ln, fn in rows]


def correct_exit(session: Session, exit_id: int, *, as_of: dt.date, cancel: bool = False,
                 exit_on: dt.date | None = None, reason: str | None = None, source: str,
                 author_id: int | None = None, note: str | None = None) -> Exit | None:
    """Cancel (cancel=True) or correct (exit_on, reason) an exit.

    Returns the corrected exit, or None when it was cancelled. Raises CaseValidationError (French,
    by field) when there is no exit, when it came from the flow, or after CORRECTION_DAYS days."""
    from cases import service

    ex = session.get(Exit, exit_id)
    if ex is None:
        raise service.CaseValidationError({"exit": ["aucune sortie enregistrée à corriger"]})
    if ex.source == "flow":
        raise service.CaseValidationError({"exit": ["une sortie lue dans le flux CAF/MSA ne se corrige pas ici: "
                                                    "elle suit le droit"]})
    if not correctable(ex, as_of):
        raise service.CaseValidationError({"exit": [f"sortie enregistrée le {ex.recorded_at:%d/%m/%Y}: elle ne se "
                                                    f"corrige que dans les {CORRECTION_DAYS} jours"]})
    person_id = ex.person_id
    path = session.get(PathModel, ex.path_id) if ex.path_id else None
    reasons = service.exit_reasons()
    if cancel:
        if path is not None and path.close_reason == f"exit:{ex.reason}":
            path.closed_on, path.close_reason = None, None
        signals.answer(signals.exit_corrected, session, person_id=person_id, exit_on=ex.exit_on, new_exit_on=None)
        for c in session.scalars(select(Contract).where(Contract.person_id == person_id,
                                                        Contract.status == "ended")):
            c.status = "signed" if c.signed_on is not None else "pending"
        service.add_event(session, person_id, "exit.cancelled", as_of, source,
                          summary=f"Sortie du {ex.exit_on:%d/%m/%Y} annulée (enregistrée par erreur)"
                          + (f": {note}" if note else ""),
                          data={"exit_id": ex.id, "reason": ex.reason, "exit_on": ex.exit_on.isoformat()},
                          path_id=ex.path_id, author_id=author_id)
        session.delete(ex)
        session.flush()
        return None
    errors = {}
    if exit_on is None and reason is None:
        errors["exit_on"] = ["indiquez la date ou le motif corrigé"]
    if reason is not None and reason not in reasons:
        errors["reason"] = [f"motif de sortie inconnu {reason!r}"]
    if errors:
        raise service.CaseValidationError(errors)
    before = (ex.exit_on, ex.reason)
    if exit_on is not None:
        if path is not None and exit_on < path.clock_start:
            raise service.CaseValidationError({"exit_on": [f"la sortie ne peut précéder le début du parcours "
                                                           f"({path.clock_start:%d/%m/%Y})"]})
        if exit_on > as_of:
            raise service.CaseValidationError({"exit_on": ["la date de sortie ne peut être dans le futur"]})
        signals.answer(signals.exit_corrected, session, person_id=person_id, exit_on=ex.exit_on,
                       new_exit_on=exit_on)
        if path is not None and path.closed_on == ex.exit_on:
            path.closed_on = exit_on
        ex.exit_on = exit_on
    if reason is not None:
        if path is not None and path.close_reason == f"exit:{ex.reason}":
            path.close_reason = f"exit:{reason}"
        ex.reason, ex.positive = reason, service.is_positive_exit(reason)
    service.add_event(session, person_id, "exit.corrected", as_of, source,
                      summary=f"Sortie corrigée: {reasons[ex.reason]['label']} le {ex.exit_on:%d/%m/%Y} "
                              f"(au lieu de {reasons[before[1]]['label']} le {before[0]:%d/%m/%Y})",
                      data={"exit_id": ex.id, "before": {"exit_on": before[0].isoformat(), "reason": before[1]},
                            "after": {"exit_on": ex.exit_on.isoformat(), "reason": ex.reason}},
                      path_id=ex.path_id, author_id=author_id)
    session.flush()
    return ex
