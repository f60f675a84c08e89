"""Socio-professional diagnostics (the latest one is a fact the orientation rules read)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Diagnostic
from cases.paths import open_path
from cases.procedure import CaseValidationError, _check_source, _require_person
from cases.timeline import add_event
from referents.vocabulary import ObstacleDomain, ObstacleImpact

# The référentiel's obstacle domains and impacts, written once in referents.vocabulary (issue 15 adds
# "caregiver": caring for a relative).
DIAGNOSTIC_CONSTRAINTS = ObstacleDomain.codes()
CONSTRAINT_LEVELS = ObstacleImpact.codes()


def record_diagnostic(session: Session, person_id: int, recorded_on: dt.date, constraints: dict | None,
                      education_level: str | None, can_seek_work: bool | None, author_id: int | None = None,
                      *, notes: str | None = None, source: str = "agent") -> Diagnostic:
    """A socio-professional diagnostic; the latest one is a fact the orientation rules read."""
    _check_source(source)
    _require_person(session, person_id)
    constraints = dict(constraints or {})
    errors = [f"{k}: contrainte inconnue" for k in constraints if k not in DIAGNOSTIC_CONSTRAINTS]
    errors += [f"{k}: niveau {v!r} (attendu: {', '.join(CONSTRAINT_LEVELS)})" for k, v in constraints.items()
               if k in DIAGNOSTIC_CONSTRAINTS and v not in CONSTRAINT_LEVELS]
    if errors:
        raise CaseValidationError({"constraints": errors})
    diag = Diagnostic(person_id=person_id, recorded_on=recorded_on, author_id=author_id, constraints=constraints,
                      education_level=education_level, can_seek_work=can_seek_work, notes=notes)
    session.add(diag)
    session.flush()
    strong = sorted(k for k, v in constraints.items() if v == "strong")
    path = open_path(session, person_id)
    add_event(session, person_id, "diagnostic.recorded", recorded_on, source,
              summary="Diagnostic socio-professionnel" + (f": freins forts {', '.join(strong)}" if strong else ""),
              data={"diagnostic_id": diag.id, "strong_constraints": strong, "can_seek_work": can_seek_work,
                    "education_level": education_level}, path_id=path.id if path else None, author_id=author_id)
    return diag


def latest_diagnostic(session: Session, person_id: int) -> Diagnostic | None:
    return session.scalar(select(Diagnostic).where(Diagnostic.person_id == person_id)
                          .order_by(Diagnostic.recorded_on.desc(), Diagnostic.id.desc()).limit(1))


