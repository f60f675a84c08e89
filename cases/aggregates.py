"""Aggregates over paths for the reports package (one definition each; documented in docs/cases.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, cast, exists, func, select
from sqlalchemy.orm import Session

from cases.models import Appointment, Contract, Exit
from cases.models import Path as PathModel
from cases.procedure import exit_reasons
from cases.signals import orientations


def _positive_reasons() -> list[str]:
    return [r for r, spec in exit_reasons().items() if spec.get("positive")]


def _exits_with_structure(start: dt.date, end: dt.date):
    """Exits in [start, end] with the structure they count for: the one recorded with the exit, else
    the structure of the path's last validated orientation (flow closures carry no structure)."""
    o = orientations().rows.subquery().c
    of_path = (select(o.structure_id)
               .where(o.path_id == Exit.path_id, o.validated_on.is_not(None))
               .order_by(o.validated_on.desc(), o.id.desc()).limit(1)
               .correlate(Exit).scalar_subquery())
    return (select(Exit.id, Exit.reason, func.coalesce(Exit.structure_id, of_path).label("structure_id"))
            .where(Exit.exit_on >= start, Exit.exit_on <= end).subquery())


def exits_by_reason(session: Session, start: dt.date, end: dt.date, structure_id: int | None = None) -> list[dict]:
    """Exits with exit_on in [start, end], counted by reason (positive per the current mapping)."""
    exits = _exits_with_structure(start, end)
    query = (select(exits.c.reason, func.count(exits.c.id)).group_by(exits.c.reason)
             .order_by(func.count(exits.c.id).desc(), exits.c.reason))
    if structure_id is not None:
        query = query.where(exits.c.structure_id == structure_id)
    reasons = exit_reasons()
    return [{"reason": reason, "label": reasons.get(reason, {}).get("label", reason),
             "positive": bool(reasons.get(reason, {}).get("positive")), "count": count}
            for reason, count in session.execute(query)]


def positive_exit_rate(session: Session, start: dt.date, end: dt.date, structure_id: int | None = None) -> list[dict]:
    """Per structure (see _exits_with_structure): exits, positive exits (current mapping), rate.

    The row with structure_id None gathers exits of people who never had a referent structure."""
    from sqlalchemy import case

    from referents.models import Structure as StructureModel

    exits = _exits_with_structure(start, end)
    positive = func.sum(case((exits.c.reason.in_(_positive_reasons()), 1), else_=0))
    query = (select(exits.c.structure_id, StructureModel.code, StructureModel.name, func.count(exits.c.id), positive)
             .outerjoin(StructureModel, StructureModel.id == exits.c.structure_id)
             .group_by(exits.c.structure_id, StructureModel.code, StructureModel.name)
             .order_by(StructureModel.code))
    if structure_id is not None:
        query = query.where(exits.c.structure_id == structure_id)
    return [{"structure_id": sid, "structure_code": code, "structure_name": name, "exits": n,
             "positive": int(pos or 0), "rate": round(int(pos or 0) / n, 4) if n else None}
            for sid, code, name, n, pos in session.execute(query)]


def _first_validated_orientations(start, end, structure_id):
    """The first validated orientation of each path, as a subquery (id, person, dates, structure).

    THE definition of a path's decision (docs/indicators.md): the earliest validated_on, ties to the
    lowest id, as stored on the path by the orientation service (Path.oriented_on) — the reports'
    delays and these after-orientation indicators judge the same decision."""
    view = orientations()
    first_o = view.rows.subquery().c  # three distinct subqueries: no silent correlation between them
    first = (select(func.min(first_o.id).label("oid"))
             .join(PathModel, PathModel.id == first_o.path_id)
             .where(first_o.validated_on == PathModel.oriented_on, first_o.person_id == PathModel.person_id)
             .group_by(first_o.path_id).subquery())
    rows = view.rows.subquery()
    o, n = rows.c, view.notifications.subquery().c
    notified = select(func.min(n.notified_on)).where(n.orientation_id == o.id).correlate(rows).scalar_subquery()
    query = (select(o.id, o.person_id, o.validated_on, o.structure_id,
                    func.coalesce(notified, o.notified_on, o.validated_on).label("notice_on"))
             .join(first, first.c.oid == o.id))
    if start is not None:
        query = query.where(o.validated_on >= start)
    if end is not None:
        query = query.where(o.validated_on <= end)
    if structure_id is not None:
        query = query.where(o.structure_id == structure_id)
    return query, rows


def _rate(eligible: int, success: int) -> float | None:
    return round(success / eligible, 4) if eligible else None


def _plus_days(session: Session, day, days: int):
    """SQL: the date `days` days after `day`."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(day, f"{days:+d} days")
    return day + days  # PostgreSQL: date + integer is a date


def _plus_months(session: Session, day, months: int):
    """SQL: the date `months` months after `day`, clamped to the end of a shorter month (31 January
    + 1 month = 28 February), as dateutil's relativedelta and PostgreSQL's interval do."""
    if session.get_bind().dialect.name == "sqlite":  # SQLite overflows into the next month: clamp it
        return func.min(func.date(day, f"{months:+d} months"),
                        func.date(day, "start of month", f"{months + 1:+d} months", "-1 day"))
    return cast(day + func.make_interval(0, months), Date)


def first_appointment_within(session: Session, days: int = 15, *, start: dt.date | None = None,
                             end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Share of first validated orientations (per path, validated in [start, end]) followed by an
    honoured appointment within `days` days of the validation. Only orientations validated at
    least `days` days before as_of are judged. One SQL aggregate (no loop over orientations)."""
    from sqlalchemy import case

    query, _orientation = _first_validated_orientations(start, end, structure_id)
    first = query.where(query.selected_columns.validated_on <= as_of - dt.timedelta(days=days)).subquery()
    honoured = exists(select(Appointment.id).where(
        Appointment.person_id == first.c.person_id, Appointment.status == "honoured",
        Appointment.scheduled_at >= first.c.validated_on,
        Appointment.scheduled_at < _plus_days(session, first.c.validated_on, days + 1)))  # by the limit day
    eligible, success = session.execute(select(func.count(), func.sum(case((honoured, 1), else_=0)))
                                        .select_from(first)).one()
    eligible, success = int(eligible or 0), int(success or 0)
    return {"days": days, "eligible": eligible, "success": success, "rate": _rate(eligible, success)}


def contract_within(session: Session, months: int = 1, *, days: int | None = None, start: dt.date | None = None,
                    end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Share of first validated orientations (per path, validated in [start, end]) with a contract
    signed within `months` months (or `days` days) of the orientation notice (first notification,
    else validation). Only orientations whose deadline is on or before as_of are judged. One SQL
    aggregate (no loop over orientations)."""
    from sqlalchemy import case

    query, _orientation = _first_validated_orientations(start, end, structure_id)
    sub = query.subquery()
    notice = func.date(sub.c.notice_on) if session.get_bind().dialect.name == "sqlite" else sub.c.notice_on
    limit = _plus_days(session, notice, days) if days is not None else _plus_months(session, notice, months)
    signed = exists(select(Contract.id).where(
        Contract.person_id == sub.c.person_id, Contract.signed_on.is_not(None),
        Contract.signed_on >= sub.c.validated_on, Contract.signed_on <= limit))
    eligible, success = session.execute(select(func.count(), func.sum(case((signed, 1), else_=0)))
                                        .select_from(sub).where(limit <= as_of)).one()
    eligible, success = int(eligible or 0), int(success or 0)
    return {"months": months if days is None else None, "days": days, "eligible": eligible, "success": success,
            "rate": _rate(eligible, success)}


def first_appointment_no_show_rate(session: Session, start: dt.date, end: dt.date,
                                   structure_id: int | None = None) -> dict:
    """Among first appointments scheduled in [start, end] whose outcome is known (honoured, no_show,
    excused), the share of no-shows."""
    from sqlalchemy import case

    lo = dt.datetime.combine(start, dt.time(0, 0))
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0))
    query = (select(func.count(Appointment.id), func.sum(case((Appointment.status == "no_show", 1), else_=0)))
             .where(Appointment.kind == "first", Appointment.status.in_(("honoured", "no_show", "excused")),
                    Appointment.scheduled_at >= lo, Appointment.scheduled_at < hi))
    if structure_id is not None:
        query = query.where(Appointment.structure_id == structure_id)
    total, no_show = session.execute(query).one()
    return {"appointments": total or 0, "no_show": int(no_show or 0), "rate": _rate(total or 0, int(no_show or 0))}


