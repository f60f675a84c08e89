"""Due dates and the working lists of referents (all scoped, all with as_of), and the daily alerts."""

from __future__ import annotations

import calendar
import datetime as dt
import functools

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from cases.contracts import counts_for, notice_day
from cases.models import Alert, Appointment, Contract, Person, Review, Sanction
from cases.models import Path as PathModel
from cases.paths import has_open_path
from cases.procedure import _as_datetime, _iso, procedure
from cases.sanctions import sanction_end
from cases.scope import _system_user, person_scope
from cases.signals import orientations
from cases.timeline import add_event
from config.db import one_of, update_rows
from referents.models import User
from referents.vocabulary import CONTRACT_MONTHS, OrientationStatus


def _empty_due() -> dict:
    return {"contract_due_on": None, "contract_overdue": False, "review_due_on": None, "review_id": None,
            "next_appointment_at": None, "suspension_ends_on": None, "next_due_on": None, "next_due": None}


def _among(session: Session, column, ids: list[int]):
    """column IN ids as one bound parameter (config.db.one_of: a semi-join on unnest(array) on
    PostgreSQL, json_each on SQLite), whatever the number of ids."""
    return one_of(column, [int(i) for i in ids], session.get_bind().dialect.name == "postgresql")


def add_months(day: dt.date, months: int) -> dt.date:
    """day + months, clamped to the end of a shorter month: relativedelta(months=…) for dates,
    without its cost in loops over whole caseloads (5× faster)."""
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return day.replace(year=year, month=month0 + 1, day=min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def _chunks(ids: list[int], size: int = 2000):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _due_dates(session: Session, person_ids: list[int], as_of: dt.date,
               open_paths: dict | None = None) -> dict[int, dict]:
    """Batched due dates for many persons (a handful of queries per 2,000 persons).
    open_paths: {person id: open path} of every given person (none: no open path) when the caller
    has already read them (the person file), instead of reading them again.

    contract_due_on: orientation notice (+1 month) when no contract is signed on the open path
    (a pending contract's own deadline first); review_due_on: next review not held;
    next_appointment_at: next planned appointment from as_of."""
    result: dict[int, dict] = {}
    view = orientations()
    ov, nv = view.row_columns, view.notice_columns
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    for chunk in _chunks(sorted(set(person_ids))):
        # Plain rows, not ORM entities: these lists cover whole caseloads.
        paths = {}
        if open_paths is not None:
            paths = {pid: open_paths[pid] for pid in chunk if open_paths.get(pid) is not None}
        else:
            for p in session.execute(select(PathModel.person_id, PathModel.id, PathModel.clock_start,
                                            PathModel.opening_reason)
                                     .where(_among(session, PathModel.person_id, chunk),
                                            PathModel.closed_on.is_(None))
                                     .order_by(PathModel.clock_start, PathModel.id)):
                paths[p.person_id] = p
        current = {}
        for o in session.execute(select(ov.person_id, ov.id, ov.notified_on, ov.validated_on)
                                 .where(_among(session, ov.person_id, chunk), ov.status == OrientationStatus.VALIDATED)
                                 .order_by(ov.validated_on, ov.id)):
            current[o.person_id] = o
        notices: dict[int, list] = {}
        for n in session.execute(select(nv.orientation_id, nv.notified_on, nv.message_id, nv.sent_at)
                                 .where(_among(session, nv.orientation_id, [o.id for o in current.values()] or [-1]))):
            notices.setdefault(n.orientation_id, []).append(n)
        signed, pending = set(), {}
        for c in session.execute(select(Contract.person_id, Contract.path_id, Contract.status, Contract.due_on,
                                        Contract.orientation_id, Contract.signed_on)
                                 .where(_among(session, Contract.person_id, chunk), Contract.status.in_(("signed", "pending")))
                                 .order_by(Contract.id)):
            path = paths.get(c.person_id)
            if path is None or c.path_id != path.id:
                continue
            if c.status == "signed":
                if counts_for(c.orientation_id, c.signed_on, current.get(c.person_id)):
                    signed.add(c.person_id)
            elif c.due_on:
                pending[c.person_id] = c.due_on
        reviews = {}
        for r in session.execute(select(Review.person_id, Review.id, Review.due_on)
                                 .where(_among(session, Review.person_id, chunk), Review.held_on.is_(None),
                                        Review.outcome.is_(None)).order_by(Review.due_on.desc())):
            reviews[r.person_id] = r
        appointments = dict(session.execute(
            select(Appointment.person_id, func.min(Appointment.scheduled_at))
            .where(_among(session, Appointment.person_id, chunk), Appointment.status == "planned",
                   Appointment.scheduled_at >= start_of_day).group_by(Appointment.person_id)).all())
        suspensions = {}
        for s in session.scalars(select(Sanction).where(_among(session, Sanction.person_id, chunk), Sanction.lifted_on.is_(None),
                                                        Sanction.kind == "suspension",
                                                        Sanction.decided_on.is_not(None))):
            end = sanction_end(s)
            if end and end >= as_of:
                suspensions[s.person_id] = min(end, suspensions.get(s.person_id, end))
        for pid in chunk:
            due = _empty_due()
            path = paths.get(pid)
            if path is not None:
                o = current.get(pid)
                reopened = path.opening_reason == "reopening"
                if pid in pending:  # a contract to (re)sign, e.g. a revision asked by a review
                    due["contract_due_on"] = pending[pid]
                elif pid not in signed and (o is not None or reopened):
                    base = notice_day(notices.get(o.id, ()), o) if o is not None else None
                    if reopened and (base is None or path.clock_start > base):
                        base = path.clock_start
                    if base is not None:
                        due["contract_due_on"] = add_months(base, CONTRACT_MONTHS)
                if due["contract_due_on"] is not None:
                    due["contract_overdue"] = due["contract_due_on"] < as_of
                review = reviews.get(pid)
                if review is not None:
                    due["review_due_on"], due["review_id"] = review.due_on, review.id
                if pid in appointments:
                    due["next_appointment_at"] = appointments[pid]
                due["suspension_ends_on"] = suspensions.get(pid)
                candidates = [(d, k) for d, k in (
                    (due["contract_due_on"], "contract"), (due["review_due_on"], "review"),
                    (due["next_appointment_at"].date() if due["next_appointment_at"] else None, "appointment"),
                    (due["suspension_ends_on"], "suspension_end")) if d is not None]
                if candidates:
                    due["next_due_on"], due["next_due"] = min(candidates)
            result[pid] = due
    for due in result.values():
        _as_text(due)
    return result


def _as_text(due: dict) -> dict:
    """A due-date dict with its dates and date-time as ISO text, the form _due_dates returns."""
    for key in ("contract_due_on", "review_due_on", "suspension_ends_on", "next_due_on"):
        due[key] = _iso(due[key])
    if due["next_appointment_at"] is not None:
        due["next_appointment_at"] = due["next_appointment_at"].isoformat()
    return due


# --------------------------------------------------------------------------- the stored next due date
# Path.next_due_on / next_due / next_due_as_of: _due_dates' next_due_on and next_due, stored on the
# person's open paths so that "my people" sorts and pages in SQL. _due_dates stays the one definition:
# the stored value is its result for the day next_due_as_of. Only two of its terms depend on the day
# (the next planned appointment from that day, the end of a suspension still running): as the day
# moves on they can only drop out, so the value computed for day C is the value for any later day A
# unless the term it names (an appointment, a suspension end) is before A. Rows failing that test, or
# computed for a later day than A, or never computed, are computed again by _due_dates on the fly.

TIME_BOUND_DUES = ("appointment", "suspension_end")  # the terms of next_due that expire with the day
DUE_PENDING = "cases.next_due_pending"  # session.info key: persons whose stored due date must be rewritten

# model class → how to read the person of an instance (None: not one that moves a due date).
# cases registers its own tables below; orientation/receivers.py registers the orientations, their
# notices and the outbox messages of those notices (the contract's month runs from the notice).
DUE_INPUTS: dict[type, object] = {}


def register_due_input(model, person_of=None) -> None:
    """Writes (insert, update, delete) of `model` instances move the due date of their person."""
    DUE_INPUTS[model] = person_of or (lambda obj: obj.person_id)


def touch_due(session: Session, person_ids) -> None:
    """These persons' stored due dates are to be rewritten before the transaction commits (writers
    that go round the ORM unit of work: bulk UPDATE/INSERT statements)."""
    session.info.setdefault(DUE_PENDING, set()).update(int(p) for p in person_ids if p is not None)


def _collect(session: Session, objects) -> None:
    if not DUE_INPUTS:
        return
    found = set()
    for obj in objects:
        person_of = DUE_INPUTS.get(type(obj))
        if person_of is not None:
            found.add(person_of(obj))
    found.discard(None)
    if found:
        touch_due(session, found)


def _before_flush(session, _context, _instances) -> None:
    # Changed and deleted rows: read now, while a deleted row can still be loaded.
    _collect(session, [*session.dirty, *session.deleted])


def _after_flush(session, _context) -> None:
    # New rows: their person_id is set once flushed (it may come from a relationship).
    _collect(session, session.new)


def due_pending(session: Session) -> bool:
    """Whether this session has writes that move a stored due date and are not applied yet (flushed
    or not): the stored values do not hold until apply_pending_due has run."""
    return bool(session.info.get(DUE_PENDING) or (DUE_INPUTS and any(
        type(obj) in DUE_INPUTS for obj in (*session.new, *session.dirty, *session.deleted))))


def _before_commit(session) -> None:
    if due_pending(session):
        apply_pending_due(session)  # flushes first: the writes not flushed yet count too


def apply_pending_due(session: Session, as_of: dt.date | None = None) -> int:
    """Rewrite the stored due dates of the persons this session's writes touched (flushing first).
    Called before every commit, and by the lists before they read the stored values."""
    session.flush()
    pending = session.info.pop(DUE_PENDING, None)
    if not pending:
        return 0
    if as_of is None:
        from config import clock

        as_of = clock.today()
    return store_next_due(session, sorted(pending), as_of)


def _install_hooks() -> None:
    from sqlalchemy import event

    for name, fn in (("before_flush", _before_flush), ("after_flush", _after_flush),
                     ("before_commit", _before_commit)):
        if not event.contains(Session, name, fn):
            event.listen(Session, name, fn)
    for model in (PathModel, Appointment, Contract, Review, Sanction):
        register_due_input(model)


# The terms of _due_dates stored on the path beside next_due_on: (key of _due_dates' dict, column
# of Path, how the column's value is read from the ISO text of the dict).
STORED_TERMS = (("contract_due_on", PathModel.contract_due_on, dt.date.fromisoformat),
                ("review_due_on", PathModel.review_due_on, dt.date.fromisoformat),
                ("review_id", PathModel.due_review_id, int),
                ("next_appointment_at", PathModel.next_appointment_at, dt.datetime.fromisoformat),
                ("suspension_ends_on", PathModel.suspension_ends_on, dt.date.fromisoformat))
STORED_DUE_COLUMNS = (PathModel.next_due_on, PathModel.next_due, PathModel.next_due_as_of,
                      *(column for _key, column, _read in STORED_TERMS))


def _stored_values(due: dict, as_of: dt.date) -> tuple:
    """_due_dates' dict for as_of as the values of STORED_DUE_COLUMNS."""
    on = dt.date.fromisoformat(due["next_due_on"]) if due["next_due_on"] else None
    return (on, due["next_due"], as_of,
            *(None if due[key] is None else read(due[key]) for key, _column, read in STORED_TERMS))


def stored_due(row, as_of: dt.date) -> dict | None:
    """_due_dates(as_of)'s dict of one person, read from the values stored on their open path (`row`:
    the path, or a row with STORED_DUE_COLUMNS), or None when they do not hold for as_of: never
    computed, computed for a later day, or a term that expires with the day (the next appointment,
    the end of a suspension) already past. The other terms do not depend on the day."""
    if row.next_due_as_of is None or row.next_due_as_of > as_of:
        return None
    if row.next_appointment_at is not None and row.next_appointment_at.date() < as_of:
        return None
    if row.suspension_ends_on is not None and row.suspension_ends_on < as_of:
        return None
    contract = row.contract_due_on
    return _as_text({"contract_due_on": contract, "contract_overdue": contract is not None and contract < as_of,
                     "review_due_on": row.review_due_on, "review_id": row.due_review_id,
                     "next_appointment_at": row.next_appointment_at, "suspension_ends_on": row.suspension_ends_on,
                     "next_due_on": row.next_due_on, "next_due": row.next_due})


def store_next_due(session: Session, person_ids, as_of: dt.date, *, only_changed: bool = False) -> int:
    """Write _due_dates(as_of)'s next due date and its terms on these persons' open paths (NULL on
    their closed ones). only_changed (the nightly reconciliation): leave a row whose values are
    already right with the day they were computed for (the same data gives the same values for the
    days in between). Returns the number of paths rewritten."""
    changed = 0
    names = [column.key for column in STORED_DUE_COLUMNS]
    closed = (None,) * len(names)
    for chunk in _chunks(sorted(set(person_ids))):
        due = _due_dates(session, chunk, as_of)
        updates = []
        for r in session.execute(select(PathModel.id, PathModel.person_id, PathModel.closed_on, *STORED_DUE_COLUMNS)
                                 .where(_among(session, PathModel.person_id, chunk))):
            want = _stored_values(due[r.person_id], as_of) if r.closed_on is None else closed
            have = tuple(r[3:])
            if have == want or (only_changed and have[:2] == want[:2] and have[3:] == want[3:]
                                and have[2] is not None and want[2] is not None and have[2] <= want[2]):
                continue
            updates.append({"id": r.id, **dict(zip(names, want, strict=True))})
        if updates:
            _write_due(session, updates)
            changed += len(updates)
    return changed


def _write_due(session: Session, updates: list[dict]) -> None:
    """The rows' new due dates, one statement per chunk (config.db.update_rows)."""
    update_rows(session, PathModel, updates)


def refresh_next_due(session: Session, as_of: dt.date, *, chunk: int = 20_000) -> int:
    """The nightly reconciliation (and back-fill) of the stored due dates of every person with a path:
    rewrites the rows whose value for as_of differs (writes that went round the hooks, appointments
    and suspensions whose day passed), clears closed paths. Returns the number of paths rewritten."""
    changed = 0
    last = 0
    while True:
        ids = list(session.scalars(select(PathModel.person_id).distinct().where(PathModel.person_id > last)
                                   .order_by(PathModel.person_id).limit(chunk)))
        if not ids:
            return changed
        changed += store_next_due(session, ids, as_of, only_changed=True)
        last = ids[-1]


def stored_due_is_valid(as_of: dt.date):
    """SQL condition on PathModel: its stored due date is _due_dates' for as_of."""
    from sqlalchemy import or_

    return (PathModel.next_due_as_of.is_not(None) & (PathModel.next_due_as_of <= as_of)
            & or_(PathModel.next_due_on.is_(None), PathModel.next_due_on >= as_of,
                  PathModel.next_due.not_in(TIME_BOUND_DUES)))


@functools.cache
def _current_open_path():
    """Join condition Person → their current open path (the most recent when several are open, as
    _due_dates and paths.open_path read it): one row per person on an open path. Built once (an
    immutable expression; its alias cost milliseconds on every list)."""
    from sqlalchemy import and_, or_
    from sqlalchemy.orm import aliased

    later = aliased(PathModel)
    return and_(PathModel.person_id == Person.id, PathModel.closed_on.is_(None),
                ~exists(select(later.id).where(
                    later.person_id == PathModel.person_id, later.closed_on.is_(None),
                    or_(later.clock_start > PathModel.clock_start,
                        and_(later.clock_start == PathModel.clock_start, later.id > PathModel.id)))))


def _mine(structure_id: int | None):
    if structure_id is None:
        return None
    o = orientations().row_columns
    return exists(select(o.id).where(o.person_id == Person.id, o.status == OrientationStatus.VALIDATED,
                                     o.structure_id == structure_id))


def _my_people_key(next_due_on, last_name, person_id) -> tuple:
    """The order of "my people": soonest due date first (none last), then name, then id."""
    return (next_due_on is None, next_due_on or "", last_name or "", person_id)


# Rows whose stored due date does not hold that one query fetches besides the page: a day's passed
# appointments in a caseload; more (after a night without the job) take a second query.
STALE_ALLOWANCE = 50


def my_people_page(session: Session, user: User, as_of: dt.date, *, structure_id: int | None = None,
                   offset: int = 0, limit: int | None = None) -> tuple[int, list[dict]]:
    """(count, rows[offset:offset + limit]) of my_people, sorted and paged in SQL on the stored due
    date; the rows whose stored value does not hold for as_of (stored_due_is_valid) are computed by
    _due_dates and merged in. One scoped query: the rows to compute first, then the page's rows in
    order, with the counts of both as window aggregates; a second one only when more than
    STALE_ALLOWANCE rows are to be computed (after a day without the nightly job)."""
    from sqlalchemy import case, literal

    apply_pending_due(session)
    scope = [person_scope(user)]
    if (mine := _mine(structure_id)) is not None and not (user.role == "provider" and structure_id == user.structure_id):
        scope.append(mine)  # a provider's scope already is "oriented to my structure"
    valid = stored_due_is_valid(as_of)
    stale_first = case((valid, literal(1)), else_=literal(0))
    name = func.coalesce(Person.last_name, "")
    name = name.collate("C" if session.get_bind().dialect.name == "postgresql" else "BINARY")
    rows_q = (select(Person.id, Person.last_name, Person.first_name, Person.birth_date, *STORED_DUE_COLUMNS,
                     stale_first.label("valid"),
                     func.count().over().label("total"), func.sum(1 - stale_first).over().label("stale"))
              .join(PathModel, _current_open_path()).where(*scope)
              .order_by(stale_first, PathModel.next_due_on.asc().nulls_last(), name, Person.id))
    if limit is not None:
        rows_q = rows_q.limit(offset + limit + STALE_ALLOWANCE)
    found = session.execute(rows_q).all()
    count = found[0].total if found else 0
    stale_count = int(found[0].stale or 0) if found else 0
    fresh = [(_my_people_key(_iso(r.next_due_on), r.last_name, r.id), r.id) for r in found if r.valid]
    stale_ids = [r.id for r in found if not r.valid]
    if limit is not None and stale_count > STALE_ALLOWANCE:
        # more rows to compute than the allowance: the page's fresh rows may not all have come; read
        # the rows to compute, then the page's fresh rows, apart
        stale_ids = list(session.scalars(select(Person.id).join(PathModel, _current_open_path())
                                         .where(*scope, ~valid)))
        fresh_q = (select(Person.id, Person.last_name, PathModel.next_due_on).join(PathModel, _current_open_path())
                   .where(*scope, valid).order_by(PathModel.next_due_on.asc().nulls_last(), name, Person.id)
                   .limit(offset + limit))
        fresh = [(_my_people_key(_iso(r.next_due_on), r.last_name, r.id), r.id) for r in session.execute(fresh_q)]
    names = {r.id: r.last_name for r in found}
    if any(i not in names for i in stale_ids):
        names.update((i, p.last_name) for i, p in _names(session, stale_ids).items())
    due = _due_dates(session, stale_ids, as_of)
    stale = [(_my_people_key(d["next_due_on"], names[pid], pid), pid) for pid, d in due.items()]
    merged = sorted(fresh + stale)
    end = None if limit is None else offset + limit
    page_ids = [pid for _key, pid in merged[offset:end]]
    persons = {r.id: r for r in found}  # the names came with the first query (_PERSON_COLUMNS)
    # the page's terms: stored with the due date when they hold for as_of, computed otherwise
    missing = []
    for pid in page_ids:
        if pid not in due:
            r = persons.get(pid)
            if r is not None and r.valid and (d := stored_due(r, as_of)) is not None:
                due[pid] = d
            else:
                missing.append(pid)
    if missing:
        due.update(_due_dates(session, missing, as_of))
    if any(i not in persons for i in page_ids):
        persons.update(_names(session, [i for i in page_ids if i not in persons]))
    return count, [_listed(persons[i], **due[i]) for i in page_ids]


def _scoped_open_ids(session: Session, user: User, extra=None) -> list[int]:
    query = (select(Person.id).where(person_scope(user))
             .where(has_open_path()))
    if extra is not None:
        query = query.where(extra)
    return list(session.scalars(query))


_PERSON_COLUMNS = (Person.id, Person.last_name, Person.first_name, Person.birth_date)


def _names(session: Session, ids) -> dict[int, tuple]:
    out = {}
    for chunk in _chunks(sorted(set(ids))):
        for p in session.execute(select(*_PERSON_COLUMNS).where(_among(session, Person.id, chunk))):
            out[p.id] = p
    return out


def _listed(person, **extra) -> dict:
    """A list row; `person` is a Person or a row with its id, names and birth date."""
    return {"person_id": person.id, "last_name": person.last_name, "first_name": person.first_name,
            "birth_date": _iso(person.birth_date), **extra}


def my_people(session: Session, user: User, as_of: dt.date, *, structure_id: int | None = None) -> list[dict]:
    """People of the user's scope on an open path, soonest due date first (none last), then by name.
    The whole list; my_people_page reads one page of it."""
    return my_people_page(session, user, as_of, structure_id=structure_id)[1]


def my_people_ids(session: Session, user: User, structure_id: int | None) -> set[int]:
    """The persons of my_people (the user's scope, oriented to structure_id when given, on an open
    path), without their due dates: the "mine" filter of the other lists."""
    return set(_scoped_open_ids(session, user, _mine(structure_id)))


def overdue_contracts(session: Session, user: User, as_of: dt.date) -> list[dict]:
    """Oriented people on an open path whose contract deadline is before as_of with no signed contract."""
    o = orientations().rows.subquery().c
    oriented_or_pending = (exists(select(o.id).where(o.person_id == Person.id, o.status == OrientationStatus.VALIDATED))
                           | exists(select(Contract.id).where(Contract.person_id == Person.id,
                                                              Contract.status == "pending"))
                           | exists(select(PathModel.id).where(PathModel.person_id == Person.id,
                                                               PathModel.closed_on.is_(None),
                                                               PathModel.opening_reason == "reopening")))
    # A contract overdue on as_of makes the next due date earlier than as_of: only the persons whose
    # stored due date is before as_of, or does not hold for as_of, can be in the list.
    from sqlalchemy import or_

    apply_pending_due(session)  # this session's own writes first
    maybe_late = exists(select(PathModel.id).where(PathModel.person_id == Person.id, PathModel.closed_on.is_(None),
                                                   or_(~stored_due_is_valid(as_of), PathModel.next_due_on < as_of)))
    ids = _scoped_open_ids(session, user, oriented_or_pending & maybe_late)
    due = _due_dates(session, ids, as_of)
    persons = _names(session, ids)
    rows = [_listed(persons[i], contract_due_on=due[i]["contract_due_on"],
                    days_late=(as_of - dt.date.fromisoformat(due[i]["contract_due_on"])).days)
            for i in ids if due[i]["contract_overdue"]]
    rows.sort(key=lambda r: (r["contract_due_on"], r["person_id"]))
    return rows


def reviews_due(session: Session, user: User, as_of: dt.date, *, within_days: int | None = None) -> list[dict]:
    """Reviews not yet held, due before as_of + within_days (default procedure.yaml), on open paths."""
    if within_days is None:
        within_days = procedure()["lists"]["reviews_due_within_days"]
    limit = as_of + dt.timedelta(days=within_days)
    query = (select(Review, Person).join(Person, Person.id == Review.person_id)
             .where(person_scope(user), Review.held_on.is_(None), Review.outcome.is_(None), Review.due_on <= limit,
                    has_open_path())
             .order_by(Review.due_on, Review.id))
    return [_listed(p, review_id=r.id, due_on=r.due_on.isoformat(), overdue=r.due_on < as_of)
            for r, p in session.execute(query)]


def appointments_to_update(session: Session, user: User, as_of: dt.date) -> list[dict]:
    """Appointments still "planned" whose day is before as_of: their outcome is missing."""
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    query = (select(*_PERSON_COLUMNS, Appointment.id.label("appointment_id"), Appointment.scheduled_at,
                    Appointment.kind, Appointment.structure_id)
             .join(Person, Person.id == Appointment.person_id)
             .where(person_scope(user), Appointment.status == "planned", Appointment.scheduled_at < start_of_day)
             .order_by(Appointment.scheduled_at, Appointment.id))
    return [_listed(r, appointment_id=r.appointment_id, scheduled_at=_as_datetime(r.scheduled_at).isoformat(),
                    kind=r.kind, structure_id=r.structure_id) for r in session.execute(query)]


def without_recent_appointment(session: Session, user: User, as_of: dt.date, *, days: int | None = None) -> list[dict]:
    """Accompanied people (validated orientation at least `days` old, open path) with no honoured
    appointment in the last `days` days and none planned from as_of on."""
    if days is None:
        days = procedure()["lists"]["no_appointment_days"]
    since = dt.datetime.combine(as_of - dt.timedelta(days=days), dt.time(0, 0))
    start_of_day = dt.datetime.combine(as_of, dt.time(0, 0))
    recent = exists(select(Appointment.id).where(
        Appointment.person_id == Person.id,
        ((Appointment.status == "honoured") & (Appointment.scheduled_at >= since))
        | ((Appointment.status == "planned") & (Appointment.scheduled_at >= start_of_day))))
    # Its own subquery: person_scope correlates its own orientation subqueries to Person only.
    validated = orientations().rows.subquery()
    orientation = validated.c
    query = (select(*_PERSON_COLUMNS, orientation.validated_on, orientation.structure_id)
             .join(validated, orientation.person_id == Person.id)
             .where(person_scope(user), orientation.status == OrientationStatus.VALIDATED,
                    orientation.validated_on <= as_of - dt.timedelta(days=days), ~recent,
                    has_open_path())
             .order_by(orientation.validated_on, Person.id))
    rows, seen, last = [], set(), {}
    found = session.execute(query).all()
    for chunk in _chunks([r.id for r in found]):
        last.update(dict(session.execute(select(Appointment.person_id, func.max(Appointment.scheduled_at))
                                         .where(_among(session, Appointment.person_id, chunk),
                                                Appointment.status == "honoured")
                                         .group_by(Appointment.person_id)).all()))
    for r in found:
        if r.id in seen:
            continue
        seen.add(r.id)
        rows.append(_listed(r, oriented_on=_iso(r.validated_on), structure_id=r.structure_id,
                            last_appointment_on=_as_datetime(last[r.id]).date().isoformat() if r.id in last else None))
    return rows


LISTS = {
    "my-people": my_people,
    "overdue-contracts": overdue_contracts,
    "reviews-due": reviews_due,
    "appointments-to-update": appointments_to_update,
    "without-appointment": without_recent_appointment,
}


def raise_daily_alerts(session: Session, as_of: dt.date) -> dict:
    """Contracts whose deadline passed and reviews due: one alert each (idempotent by key) and one
    timeline event from the job when the alert is new. Batched: the first run may meet thousands."""
    o = orientations().rows.subquery().c
    everybody = _system_user()
    counts = {"contract_overdue": 0, "review_due": 0}
    contracts = overdue_contracts(session, everybody, as_of)
    reviews = reviews_due(session, everybody, as_of, within_days=0)
    ids = sorted({r["person_id"] for r in contracts} | {r["person_id"] for r in reviews})
    paths, structures = {}, {}
    for chunk in _chunks(ids):
        paths.update(dict(session.execute(select(PathModel.person_id, PathModel.id).where(
            PathModel.person_id.in_(chunk), PathModel.closed_on.is_(None)).order_by(PathModel.clock_start,
                                                                                    PathModel.id)).all()))
        structures.update(dict(session.execute(select(o.person_id, o.structure_id).where(
            o.person_id.in_(chunk), o.status == OrientationStatus.VALIDATED).order_by(o.validated_on, o.id)).all()))
    wanted = {}
    for r in contracts:
        pid = r["person_id"]
        key = f"contract_overdue:{pid}:{paths.get(pid)}:{r['contract_due_on']}"
        wanted[key] = ("contract_overdue", pid, r)
    for r in reviews:
        wanted[f"review_due:{r['person_id']}:{r['review_id']}"] = ("review_due", r["person_id"], r)
    known = set()
    keys = sorted(wanted)
    for i in range(0, len(keys), 2000):
        known.update(session.scalars(select(Alert.key).where(Alert.key.in_(keys[i:i + 2000]))))
    for key in keys:
        if key in known:
            continue
        kind, pid, r = wanted[key]
        if kind == "contract_overdue":
            due = r["contract_due_on"]
            message, data = f"Contrat d'engagement non signé: échéance du {due} dépassée", {"due_on": due}
            event = ("contract.overdue", f"Échéance du contrat dépassée ({due})")
        else:
            due = r["due_on"]
            message, data = f"Bilan du parcours à tenir (échéance {due})", {"review_id": r["review_id"], "due_on": due}
            event = ("review.due", f"Bilan à tenir (échéance {due})")
        session.add(Alert(key=key, kind=kind, message=message, raised_on=as_of, severity="warning", person_id=pid,
                          structure_id=structures.get(pid), data=data))
        add_event(session, pid, event[0], as_of, "job", summary=event[1], data=data, path_id=paths.get(pid))
        counts[kind] += 1
    session.flush()
    return counts


_install_hooks()
