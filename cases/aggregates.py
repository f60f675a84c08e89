"""Aggregates over paths for the reports package (one definition each; documented in docs/cases.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, case, cast, exists, func, select
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


def _first_validated_orientations(start, end, structure_id, dialect: str = "postgresql"):
    """The first validated orientation of each path, as a subquery (id, person, dates, structure).

    THE definition of a path's decision (docs/indicators.md): the earliest validated_on, ties to the
    lowest id, as stored on the path by the orientation service (Path.oriented_on) — the reports'
    delays and these after-orientation indicators judge the same decision. `notice_on` is the day the
    notice left (cases.contracts.notice_day, in SQL): NULL while its outbox message waits."""
    view = orientations()
    first_o = view.rows.subquery().c  # three distinct subqueries: no silent correlation between them
    first = (select(func.min(first_o.id).label("oid"))
             .join(PathModel, PathModel.id == first_o.path_id)
             .where(first_o.validated_on == PathModel.oriented_on, first_o.person_id == PathModel.person_id)
             .group_by(first_o.path_id).subquery())
    rows = view.rows.subquery()
    o, n = rows.c, view.notifications.subquery().c
    sent_at = select(func.min(n.sent_at)).where(n.orientation_id == o.id).correlate(rows).scalar_subquery()
    sent_on = func.date(sent_at) if dialect == "sqlite" else cast(sent_at, Date)
    queued = exists(select(n.orientation_id).where(n.orientation_id == o.id, n.message_id.is_not(None))
                    .correlate(rows))
    notified = select(func.min(n.notified_on)).where(n.orientation_id == o.id).correlate(rows).scalar_subquery()
    notice_on = case((sent_at.is_not(None), sent_on), (queued, None),
                     else_=func.coalesce(notified, o.notified_on, o.validated_on))
    query = (select(o.id, o.person_id, o.validated_on, o.structure_id, notice_on.label("notice_on"))
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


FIXED_STATUSES = ("planned", "honoured", "no_show", "excused")
KNOWN_OUTCOMES = ("honoured", "no_show", "excused")


def first_appointment_within(session: Session, days: int = 15, *, start: dt.date | None = None,
                             end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Plan pauvreté B4: share of first validated orientations (per path, validated in [start, end])
    with a first appointment FIXED within `days` days of the validation (an appointment of the person
    dated between the validation day and validation + `days`, whatever its outcome, not cancelled),
    and the attendance at those appointments (honoured among those whose outcome is known). Only
    orientations validated at least `days` days before as_of are judged. One SQL aggregate."""
    dialect = session.get_bind().dialect.name
    query, _orientation = _first_validated_orientations(start, end, structure_id, dialect)
    first = query.where(query.selected_columns.validated_on <= as_of - dt.timedelta(days=days)).subquery()

    def within(*statuses):
        return exists(select(Appointment.id).where(
            Appointment.person_id == first.c.person_id, Appointment.status.in_(statuses),
            Appointment.scheduled_at >= first.c.validated_on,
            Appointment.scheduled_at < _plus_days(session, first.c.validated_on, days + 1)))  # by the limit day

    fixed, known = within(*FIXED_STATUSES), within(*KNOWN_OUTCOMES)
    honoured = within("honoured")
    eligible, success, with_outcome, attended = session.execute(select(
        func.count(), func.sum(case((fixed, 1), else_=0)), func.sum(case((known, 1), else_=0)),
        func.sum(case((honoured, 1), else_=0))).select_from(first)).one()
    eligible, success = int(eligible or 0), int(success or 0)
    with_outcome, attended = int(with_outcome or 0), int(attended or 0)
    return {"days": days, "eligible": eligible, "success": success, "rate": _rate(eligible, success),
            "attendance_eligible": with_outcome, "attended": attended,
            "attendance_rate": _rate(with_outcome, attended)}


def mean_delays_after_orientation(session: Session, *, start: dt.date | None = None, end: dt.date | None = None,
                                  as_of: dt.date, structure_id: int | None = None) -> dict:
    """Mean days from the first validated orientation of each path (validated in [start, end], by
    as_of) to the person's first appointment fixed on or after it (not cancelled, dated by as_of),
    and to the first contract signed on or after it (by as_of); each mean over the orientations that
    reached that step, with that number as its denominator."""
    dialect = session.get_bind().dialect.name
    query, _orientation = _first_validated_orientations(start, end, structure_id, dialect)
    first = query.where(query.selected_columns.validated_on <= as_of).subquery()
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0))
    appointment = (select(func.min(Appointment.scheduled_at)).where(
        Appointment.person_id == first.c.person_id, Appointment.status.in_(FIXED_STATUSES),
        Appointment.scheduled_at >= first.c.validated_on, Appointment.scheduled_at < end_of_day)
        .correlate(first).scalar_subquery())
    contract = (select(func.min(Contract.signed_on)).where(
        Contract.person_id == first.c.person_id, Contract.signed_on.is_not(None),
        Contract.signed_on >= first.c.validated_on, Contract.signed_on <= as_of)
        .correlate(first).scalar_subquery())
    sums = {"appointment": [0, 0], "contract": [0, 0]}
    for validated_on, appointment_at, signed_on in session.execute(
            select(first.c.validated_on, appointment, contract)):
        validated_on = _as_date(validated_on)
        for key, day in (("appointment", appointment_at), ("contract", signed_on)):
            if day is not None:
                sums[key][0] += 1
                sums[key][1] += (_as_date(day) - validated_on).days
    return {f"{key}_{name}": value for key, (n, total) in sums.items()
            for name, value in (("denominator", n), ("mean_days", round(total / n, 1) if n else None))}


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):  # SQLite may hand back text from an expression
        return dt.date.fromisoformat(value[:10])
    return value


def contract_within(session: Session, months: int = 1, *, days: int | None = None, start: dt.date | None = None,
                    end: dt.date | None = None, as_of: dt.date, structure_id: int | None = None) -> dict:
    """Share of first validated orientations (per path, validated in [start, end]) with a contract
    signed within `months` months (or `days` days) of the day the orientation notice left (the
    contract's legal month, D5411-14-1 code du travail). Only orientations whose deadline is on or
    before as_of are judged (a notice still in the outbox has no deadline yet). One SQL aggregate."""
    query, _orientation = _first_validated_orientations(start, end, structure_id, session.get_bind().dialect.name)
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
    lo = dt.datetime.combine(start, dt.time(0, 0))
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 0))
    query = (select(func.count(Appointment.id), func.sum(case((Appointment.status == "no_show", 1), else_=0)))
             .where(Appointment.kind == "first", Appointment.status.in_(("honoured", "no_show", "excused")),
                    Appointment.scheduled_at >= lo, Appointment.scheduled_at < hi))
    if structure_id is not None:
        query = query.where(Appointment.structure_id == structure_id)
    total, no_show = session.execute(query).one()
    return {"appointments": total or 0, "no_show": int(no_show or 0), "rate": _rate(total or 0, int(no_show or 0))}


