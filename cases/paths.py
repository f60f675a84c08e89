"""Paths: the open path, the current referent (validated orientation) and reopening (exits: cases.exits)."""

from __future__ import annotations

import datetime as dt
import functools

from dateutil.relativedelta import relativedelta
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from cases.models import Path as PathModel
from cases.models import Person
from cases.procedure import procedure
from cases.signals import orientations
from referents.vocabulary import OrientationStatus


def has_open_path(person_id=Person.id):
    """SQL condition: the person (a column holding their id; Person.id by default) has a path not
    closed. Correlated to the enclosing query."""
    return exists(select(PathModel.id).where(PathModel.person_id == person_id, PathModel.closed_on.is_(None)))


def open_path(session: Session, person_id: int) -> PathModel | None:
    """The person's current (not closed) path, the most recent when several are open."""
    return open_paths(session, [person_id]).get(person_id)


def open_paths(session: Session, person_ids) -> dict[int, PathModel]:
    """open_path of many persons at once (person id -> path; none for a person without an open path)."""
    out: dict[int, PathModel] = {}
    ids = sorted(set(person_ids))
    for i in range(0, len(ids), 5000):
        for path in session.scalars(select(PathModel).where(PathModel.person_id.in_(ids[i:i + 5000]),
                                                            PathModel.closed_on.is_(None))
                                    .order_by(PathModel.person_id, PathModel.clock_start.desc(), PathModel.id.desc())):
            out.setdefault(path.person_id, path)
    return out


def latest_path(session: Session, person_id: int) -> PathModel | None:
    """The open path, else the most recently started one."""
    return open_path(session, person_id) or session.scalar(
        select(PathModel).where(PathModel.person_id == person_id)
        .order_by(PathModel.clock_start.desc(), PathModel.id.desc()).limit(1))


@functools.cache
def _rows(view):
    """The read model's rows as a subquery, built once per view (the receiver answers the same one):
    making it and its column collection cost milliseconds on every call, every appointment and contract."""
    return view.rows.subquery()


def current_orientation(session: Session, person_id: int):
    """The person's current validated orientation as a row of the orientation read model (id,
    referent_type, structure_id, agent_id, validated_on, notified_on…; cases/signals.py) or None."""
    return current_orientations(session, [person_id]).get(person_id)


def current_orientations(session: Session, person_ids) -> dict:
    """current_orientation of many persons at once (person id -> row; none for a person without one)."""
    o = _rows(orientations())
    out: dict = {}
    ids = sorted(set(person_ids))
    for i in range(0, len(ids), 5000):
        for row in session.execute(select(o).where(o.c.person_id.in_(ids[i:i + 5000]),
                                                   o.c.status == OrientationStatus.VALIDATED)
                                   .order_by(o.c.person_id, o.c.validated_on.desc(), o.c.id.desc())):
            out.setdefault(row.person_id, row)
    return out


def reopening_applies(session: Session, person_id: int, reopened_on: dt.date) -> bool:
    """True when the person's last path was closed less than 12 months (procedure.yaml) before
    `reopened_on`: the flow importer then opens the new path with opening_reason "reopening"."""
    last_closed = session.scalar(select(func.max(PathModel.closed_on)).where(
        PathModel.person_id == person_id, PathModel.closed_on.is_not(None), PathModel.closed_on <= reopened_on))
    if last_closed is None:
        return False
    return reopened_on <= last_closed + relativedelta(months=procedure()["reopening"]["within_months"])


