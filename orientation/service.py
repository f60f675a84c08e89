"""Orientation: who is to orient, the rules' decisions, structure and referent assignment, the
validation queue, overrides, réorientations and the legal deadlines. Plain functions over a session.

Decisions are append-only rows of `orientation`: a new decision supersedes a pending one
(status "superseded") or ends the current validated one (status "ended"); "validated" is THE
current orientation that scoping relies on. The run is idempotent: a second run over unchanged
facts changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, select, text, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cases.batches import distinct_runs
from cases.models import OPEN_RIGHT_STATES, SDD_ROLES, Alert, CaseEvent, Household, Path, Person
from cases.service import add_event, raise_alert, touch_due
from orientation.assignment import Assigner, _channel
from orientation.errors import OrientationError
from orientation.facts import build_facts, chunks, snapshot
from orientation.models import Notification, Orientation
from orientation.outcomes import mark_path_oriented
from orientation.rules import (
    explain as explain_decision,
)
from orientation.rulesets import (
    active_rule_set,
    get_rule_set,
    load_rules_document,
    load_rules_text,
    rule_set_versions,
    spec_of,
)
from orientation.vocabulary import FINISHED, ORIGIN_PHRASES, ORIGINS, PENDING
from referents.models import Structure, Territory
from referents.service import structure_by_code
from referents.vocabulary import (
    OUTCOMES,
    OrientationStatus,
    Origin,
    Outcome,
    Parcours,
    default_parcours_of,
    organisme_of,
)

CLOSED_RIGHT_STATES = ("1", "5", "6")


# --- the run ------------------------------------------------------------------------------------

@dataclass
class _Pending:
    id: int
    status: str
    origin: str
    rule_id: str | None
    referent_type: str
    structure_id: int | None


def to_orient_query(as_of: dt.date | None = None):
    """Persons to orient: open path, open right, DEM/CJT, SDD, no validated orientation on the path.
    Rows: person id, email, path id, clock start, commune, postal code.

    With as_of, a path whose clock starts after that date is not yet known: not considered."""
    validated = exists(select(Orientation.id).where(Orientation.path_id == Path.id,
                                                    Orientation.status == OrientationStatus.VALIDATED))
    return (select(Person.id, Person.email, Person.phone, Person.phone_kind, Path.id.label("path_id"),
                   Path.clock_start,
                   Household.commune_insee, Household.postal_code, Household.mds_id, Household.territory_id)
            .join(Household, Household.id == Person.household_id)
            .join(Path, and_(Path.person_id == Person.id, Path.closed_on.is_(None)))
            .where(Person.sdd.is_(True), Person.role.in_(SDD_ROLES), Household.right_state.in_(OPEN_RIGHT_STATES),
                   ~validated)
            .where(Path.clock_start <= as_of if as_of is not None else true())
            .order_by(Person.id, Path.clock_start, Path.id))


def end_closed(session: Session, as_of: dt.date, assigner: Assigner | None = None) -> int:
    """End the orientations (current and pending) of closed paths and closed rights. An assigner kept
    by the caller (a day's work shares one) releases the places of the ended validated orientations."""
    live = (OrientationStatus.VALIDATED, *PENDING)
    rows = session.execute(
        select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status,
               Path.closed_on, Path.close_reason, Orientation.structure_id, Orientation.agent_id)
        .join(Path, Path.id == Orientation.path_id)
        .where(Orientation.status.in_(live), Path.closed_on.is_not(None))).all()
    closed_right = session.execute(
        select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status,
               Household.closure_on, Household.closure_reason, Orientation.structure_id, Orientation.agent_id)
        .join(Person, Person.id == Orientation.person_id)
        .join(Household, Household.id == Person.household_id)
        .where(Orientation.status.in_(live), Household.right_state.in_(CLOSED_RIGHT_STATES))).all()
    seen, updates, events = set(), [], []
    for oid, pid, path_id, status, on, reason, structure_id, agent_id in [*rows, *closed_right]:
        if oid in seen:
            continue
        seen.add(oid)
        on = min(on or as_of, as_of)
        reason = reason or "right_closed"
        updates.append({"id": oid, "status": "ended", "ended_on": on, "end_reason": reason[:40]})
        if status == OrientationStatus.VALIDATED:
            if assigner is not None:
                assigner.release(structure_id, agent_id)
            events.append(dict(person_id=pid, path_id=path_id, kind="orientation.ended", occurred_on=on,
                               source="job", summary=f"Fin de l'orientation (motif: {reason})",
                               data={"orientation_id": oid, "reason": reason}))
    if updates:
        session.execute(update(Orientation), updates)
        touch_due(session, {pid for _oid, pid, *_rest in [*rows, *closed_right]})  # no current orientation left
    bulk_insert(session, CaseEvent, events)
    return len(updates)


def refresh_statistics(session: Session) -> None:
    """PostgreSQL: up-to-date planner statistics of the tables the run itself fills. After a bulk
    run, stale statistics make the "no validated orientation" anti-join quadratic (minutes instead
    of milliseconds on 100,000 persons); ANALYZE samples the table in a fraction of a second."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE orientation, path"))


def run(session: Session, as_of: dt.date, progress: Callable[[int, int], None] | None = None,
        assigner: Assigner | None = None) -> dict:
    """Orient every person to orient at the as-of date (decisions dated on the as-of date).
    progress(done, total) is called after each batch. `assigner`: the caller's, kept in step with
    the validated orientations of the transaction (a day's work shares one); else one of its own."""
    row, spec = active_rule_set(session)
    evaluator = spec.compile(as_of)
    ended = end_closed(session, as_of, assigner)
    session.flush()
    refresh_statistics(session)

    candidates: dict[int, tuple] = {}
    for r in session.execute(to_orient_query(as_of)):
        candidates[r.id] = r  # the latest open path wins (ordered by clock start)
    pending: dict[int, _Pending] = {}
    for o in session.execute(select(Orientation.id, Orientation.path_id, Orientation.status, Orientation.origin,
                                    Orientation.rule_id, Orientation.referent_type, Orientation.structure_id)
                             .where(Orientation.status.in_(PENDING), Orientation.path_id.is_not(None))
                             .order_by(Orientation.id)):
        pending[o.path_id] = _Pending(o.id, o.status, o.origin, o.rule_id, o.referent_type, o.structure_id)

    # Waiting decisions first (oldest first) so that freed capacity goes to those who waited.
    def order(pid):
        p = pending.get(candidates[pid].path_id)
        return (0, p.id) if p is not None and p.status == OrientationStatus.AWAITING_CAPACITY else (1, pid)

    ids = sorted(candidates, key=order)
    assigner = assigner or Assigner(session)
    alert_keys = set(session.scalars(select(Alert.key).where(Alert.kind.in_(
        ("orientation.unsectorised", "orientation.awaiting_capacity")))))
    stats = Counter()
    # Decisions by outcome, for every outcome the active rule set can give.
    decisions = Counter({k: 0 for k in OUTCOMES if k in {r.outcome for r in (*spec.rules, spec.fallback)}})
    done = 0
    for chunk in chunks(ids):
        # Facts only for those the rules will read: a person's own decision (kiosque, agent, MDS
        # default) is kept or promoted without them.
        facts_by_person = build_facts(session, [pid for pid in chunk if (
            pending.get(candidates[pid].path_id) is None or pending[candidates[pid].path_id].origin == Origin.AUTO)],
            as_of)
        new_rows, meta, superseded, promoted, alerts = [], [], [], [], []
        for pid in chunk:
            cand = candidates[pid]
            existing = pending.get(cand.path_id)
            if existing is not None and existing.origin != Origin.AUTO:
                # A person's decision (kiosque, agent, MDS default) is not redone by the rules; when it
                # waits for a place and one is free, it is validated.
                if existing.status == OrientationStatus.AWAITING_CAPACITY and assigner.has_room(existing.structure_id):
                    promoted.append(_promotion(existing, assigner, as_of, pid, cand))
                else:
                    stats["kept"] += 1
                continue
            facts = facts_by_person[pid]
            decision = evaluator.evaluate(facts)
            rule = decision.rule
            referent_type = rule.outcome
            structure_id, why = assigner.structure_for(referent_type, facts["commune"], facts["postal_code"],
                                                       decision.variant)
            if existing is not None and (existing.rule_id, existing.referent_type, existing.structure_id) == \
                    (rule.id, referent_type, structure_id):
                if existing.status == OrientationStatus.AWAITING_CAPACITY and assigner.has_room(structure_id):
                    promoted.append(_promotion(existing, assigner, as_of, pid, cand))
                else:
                    stats["unchanged"] += 1
                continue
            if structure_id is None:
                status = OrientationStatus.UNSECTORISED
            elif rule.mode == "kiosque":
                status = OrientationStatus.KIOSQUE
            elif rule.mode == "propose":
                status = OrientationStatus.PROPOSED
            elif assigner.has_room(structure_id):
                status = OrientationStatus.VALIDATED
            else:
                status = OrientationStatus.AWAITING_CAPACITY
            agent_id = assigner.take(structure_id) if status == OrientationStatus.VALIDATED else None
            # A decision keeps only the facts its own rule read (issue 15: an automatic decision never
            # stores what earlier rules read, e.g. health), and its explanation lists those.
            snap = snapshot(facts, (*rule.facts_used, *_placeholders(rule.explain)))
            text = explain_decision(rule, decision.variant, row.version, facts, rule.facts_used)
            if status == OrientationStatus.UNSECTORISED:
                text += f" Aucune structure n'a pu être désignée: {why}."
            if existing is not None:
                superseded.append(existing.id)
                stats["superseded"] += 1
            new_rows.append(dict(
                person_id=pid, path_id=cand.path_id, referent_type=referent_type, structure_id=structure_id,
                agent_id=agent_id, rule_set_version=row.version, rule_id=rule.id, mode=rule.mode, origin=Origin.AUTO,
                parcours=rule.parcours, organisme=rule.organisme,
                validation="auto" if status in (OrientationStatus.VALIDATED, OrientationStatus.AWAITING_CAPACITY)
                else None,
                status=status, facts=snap, explanation=text, algorithmic=True, decided_on=as_of,
                validated_on=as_of if status == OrientationStatus.VALIDATED else None,
                notified_on=as_of if status == OrientationStatus.VALIDATED else None,
                supersedes_id=existing.id if existing is not None else None))
            meta.append((pid, cand, status, referent_type, structure_id, why, rule.id))
            decisions[referent_type] += 1
            stats[status] += 1
        if superseded:
            session.execute(update(Orientation).where(Orientation.id.in_(superseded)).values(
                status=OrientationStatus.SUPERSEDED))
        events, notifications = [], []
        if new_rows:
            # One new row per person in a batch: map the returned ids by person (any order, so that the
            # dialects insert in large batches).
            id_of = _insert_orientations(session, new_rows)
            for pid, cand, status, rtype, sid, why, rule_id in meta:
                oid = id_of[pid]
                label = Outcome(rtype).label
                data = {"orientation_id": oid, "rule": rule_id, "referent_type": rtype,
                        "structure": assigner.code(sid), "status": status}
                if status == OrientationStatus.VALIDATED:
                    events.append(_event(pid, cand.path_id, "orientation.validated", as_of,
                                         f"Orientation validée automatiquement: {label} (règle {rule_id})", data))
                    events.append(_event(pid, cand.path_id, "orientation.notified", as_of,
                                         f"Orientation notifiée par {_channel_label(cand.email)}", data))
                    notifications.extend(notification_rows(oid, cand.email, cand.phone, cand.phone_kind, as_of))
                else:
                    events.append(_event(pid, cand.path_id, "orientation.proposed", as_of,
                                         f"Proposition: {label} (règle {rule_id}, {OrientationStatus.label_of(status).lower()})", data))
                if status == OrientationStatus.UNSECTORISED:
                    alerts.append(alert_row(f"orientation.unsectorised:{cand.path_id}", "orientation.unsectorised",
                                         f"Personne {pid} hors sectorisation: {why}", as_of, pid, None,
                                         {"orientation_id": oid}))
                elif status == OrientationStatus.AWAITING_CAPACITY:
                    alerts.append(_capacity_alert(assigner, pid, cand.path_id, sid, oid, as_of))
        if promoted:
            session.execute(update(Orientation), [{k: v for k, v in p.items() if not k.startswith("_")}
                                                   for p in promoted])
            for p in promoted:
                data = {"orientation_id": p["id"], "structure": assigner.code(p["_structure"])}
                events.append(_event(p["_person"], p["_path"], "orientation.validated", as_of,
                                     f"Place libérée: orientation validée vers {Outcome(p['_referent_type']).label}",
                                     data))
                events.append(_event(p["_person"], p["_path"], "orientation.notified", as_of,
                                     f"Orientation notifiée par {_channel_label(p['_email'])}", data))
                notifications.extend(notification_rows(p["id"], p["_email"], p["_phone"], p["_phone_kind"], as_of))
            session.execute(update(Alert).where(Alert.key.in_(
                [f"orientation.awaiting_capacity:{p['_path']}" for p in promoted]), Alert.resolved_on.is_(None))
                .values(resolved_on=as_of))
            stats["validated"] += len(promoted)
            stats["promoted"] += len(promoted)
        bulk_insert(session, CaseEvent, events)
        bulk_insert(session, Notification, notifications)
        _mark_paths(session, assigner, [cand.path_id for _pid, cand, status, *_rest in meta
                                        if status == OrientationStatus.VALIDATED]
                    + [p["_path"] for p in promoted])
        fresh = [a for a in alerts if a["key"] not in alert_keys]
        if fresh:
            bulk_insert(session, Alert, fresh)
            alert_keys.update(a["key"] for a in fresh)
        session.flush()
        done += len(chunk)
        if progress:
            progress(done, len(ids))
    return {"as_of": as_of.isoformat(), "rule_set_version": row.version, "considered": len(candidates),
            "decisions": dict(decisions), "validated": stats["validated"], "proposed": stats["proposed"],
            "awaiting_capacity": stats["awaiting_capacity"], "kiosque": stats["kiosque"],
            "unsectorised": stats["unsectorised"], "unchanged": stats["unchanged"], "kept": stats["kept"],
            "superseded": stats["superseded"], "promoted": stats["promoted"], "ended": ended}


def _insert_orientations(session: Session, rows: list[dict]) -> dict[int, int]:
    """Insert new decisions (one per person) → {person_id: orientation id}.

    PostgreSQL: ids drawn from the sequence in one query, then a pipelined executemany (a huge
    INSERT … RETURNING is slow to send through psycopg); SQLite: INSERT … RETURNING in batches."""
    conn = session.connection()
    table = Orientation.__table__
    if conn.dialect.name == "postgresql":
        ids = conn.execute(text("SELECT nextval(pg_get_serial_sequence('orientation', 'id')) "
                                "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars().all()
        for row, oid in zip(rows, ids, strict=True):
            row["id"] = oid
        conn.execute(table.insert(), rows)
        return {row["person_id"]: row["id"] for row in rows}
    return {pid: oid for oid, pid in conn.execute(table.insert().returning(table.c.id, table.c.person_id), rows)}


def bulk_insert(session: Session, model, rows: list[dict]) -> None:
    """Core executemany (the ORM bulk path is several times slower for 100,000 rows)."""
    if rows:
        session.connection().execute(model.__table__.insert(), rows)


def _promotion(existing: _Pending, assigner: Assigner, as_of: dt.date, pid: int, cand) -> dict:
    """The update validating a decision that waited for a place (and what its events need)."""
    agent_id = assigner.take(existing.structure_id)
    return {"id": existing.id, "status": OrientationStatus.VALIDATED, "validated_on": as_of, "notified_on": as_of,
            "agent_id": agent_id, "_person": pid, "_path": cand.path_id, "_email": cand.email,
            "_phone": cand.phone, "_phone_kind": cand.phone_kind,
            "_referent_type": existing.referent_type, "_structure": existing.structure_id}


@functools.cache
def _placeholders(template: str) -> tuple[str, ...]:
    from orientation.rules import _PLACEHOLDER

    return tuple(_PLACEHOLDER.findall(template))


def _channel_label(email: str | None) -> str:
    return "courriel" if email else "courrier"


def notification_rows(orientation_id: int, email: str | None, phone: str | None, phone_kind: str | None,
                      on: dt.date) -> list[dict]:
    """The notice of a validated decision: an e-mail (or a letter without one), and a short SMS pointing
    to it when the person has a mobile phone."""
    from orientation.messaging.outbox import is_mobile

    rows = [{"orientation_id": orientation_id, "channel": _channel(email), "notified_on": on}]
    if is_mobile(phone, phone_kind):
        rows.append({"orientation_id": orientation_id, "channel": "sms", "notified_on": on})
    return rows


def _event(pid, path_id, kind, on, summary, data, source="job", author_id=None) -> dict:
    return dict(person_id=pid, path_id=path_id, kind=kind, occurred_on=on, source=source, summary=summary,
                data=data, author_id=author_id)


def alert_row(key, kind, message, on, pid, sid, data, severity="warning") -> dict:
    return dict(key=key, kind=kind, message=message, raised_on=on, severity=severity, person_id=pid,
                structure_id=sid, data=data)


def _capacity_alert(assigner: Assigner, pid, path_id, sid, oid, on) -> dict:
    s = assigner.structures.get(sid)
    return alert_row(f"orientation.awaiting_capacity:{path_id}", "orientation.awaiting_capacity",
                  f"Personne {pid} en attente de place: {s.code if s else sid} est complète "
                  f"({assigner.load[sid]}/{s.capacity if s else '?'})", on, pid, sid, {"orientation_id": oid})


# --- decisions made by a person -----------------------------------------------------------------

def open_path_id(session: Session, person_id: int) -> int | None:
    return open_path_ids(session, [person_id]).get(person_id)


def open_path_ids(session: Session, person_ids: Iterable[int]) -> dict[int, int]:
    """Each person's open path (the latest by clock start, then id), for many persons at once."""
    ids, out = sorted(set(person_ids)), {}
    for chunk in chunks(ids):
        for pid, path_id in session.execute(select(Path.person_id, Path.id)
                                            .where(Path.person_id.in_(chunk), Path.closed_on.is_(None))
                                            .order_by(Path.person_id, Path.clock_start, Path.id)):
            out[pid] = path_id  # the latest wins
    return out


def _by_id(session: Session, model, ids: Iterable[int | None]) -> dict:
    """Rows by id, read in chunks (kept in the dict: the session's identity map holds them weakly)."""
    wanted, out = sorted({i for i in ids if i is not None}), {}
    for chunk in chunks(wanted):
        out.update((row.id, row) for row in session.scalars(select(model).where(model.id.in_(chunk))))
    return out


class _Validations:
    """A batch of validations (an agent's queue, a day's kiosque choices): what each validation reads —
    the person (for the notice), their current validated orientation (ended by the new one), the
    path's awaiting-capacity alert — read once for the batch, then kept in step in memory as the rows
    are validated in order, with one flush at the end. Each row gets exactly what validating it alone
    gave: the checks, statuses, agent, notices, events and alerts of the single form."""

    def __init__(self, session: Session, rows: list[Orientation], assigner: Assigner, user_id: int | None):
        self.session, self.assigner, self.user_id = session, assigner, user_id
        person_ids = sorted({o.person_id for o in rows})
        self.persons = _by_id(session, Person, person_ids)
        self.current: dict[int, list[Orientation]] = {}
        for chunk in chunks(person_ids):
            for prev in session.scalars(select(Orientation).where(Orientation.person_id.in_(chunk),
                                                                  Orientation.status == OrientationStatus.VALIDATED)
                                        .order_by(Orientation.id)):
                self.current.setdefault(prev.person_id, []).append(prev)
        keys = sorted({_awaiting_key(o.path_id) for o in rows})
        self.alerts: dict[str, Alert] = {}
        for chunk in chunks(keys):
            self.alerts.update((a.key, a) for a in session.scalars(select(Alert).where(Alert.key.in_(chunk))))
        self.validated_paths: list[int | None] = []
        # The batch's timeline events and notices, in order, written at its end in one statement each.
        self.events: list[dict] = []
        self.notices: list[dict] = []
        self.noticed: set[int] = set()

    def event(self, person_id: int, kind: str, on: dt.date, source: str, summary: str, data: dict,
              path_id: int | None) -> None:
        """A timeline event (the row cases.timeline.add_event makes), written by finish()."""
        self.events.append(_event(person_id, path_id, kind, on, summary, data, source=source, author_id=self.user_id))

    def validate(self, o: Orientation, on: dt.date, source: str) -> bool:
        """Make `o` the current orientation if its structure has room (else awaiting capacity): agent,
        notification, events, previous validated orientation ended. Returns True when validated.

        A person validates here (an agent, or the agent recording a person's decision): the decision
        is marked validated by an agent, even when it then waits for a place."""
        session, assigner, user_id = self.session, self.assigner, self.user_id
        o.validation = o.validation or "agent"
        if o.structure_id is not None and not assigner.has_room(o.structure_id):
            o.status = OrientationStatus.AWAITING_CAPACITY
            a = _capacity_alert(assigner, o.person_id, o.path_id, o.structure_id, o.id, on)
            if a["key"] not in self.alerts:  # idempotent by key, as cases.timeline.raise_alert
                self.alerts[a["key"]] = alert = Alert(**a)
                session.add(alert)
            return False
        current = self.current.setdefault(o.person_id, [])
        for prev in current:
            if prev is o:
                continue
            prev.status, prev.ended_on, prev.end_reason = "ended", on, "reorientation"
            assigner.release(prev.structure_id, prev.agent_id)
            self.event(prev.person_id, "orientation.ended", on, source,
                       f"Fin de l'orientation {Outcome.label_of(prev.referent_type)} (réorientation)",
                       {"orientation_id": prev.id, "reason": "reorientation"}, prev.path_id)
        current[:] = [o]
        o.status, o.validated_on, o.validated_by, o.notified_on = "validated", on, user_id, on
        if o.agent_id is None:
            o.agent_id = assigner.take(o.structure_id)
        else:
            assigner.load[o.structure_id] += 1
        person = self.persons[o.person_id]
        email, phone, phone_kind = person.email, person.phone, person.phone_kind
        self.notices.extend(notification_rows(o.id, email, phone, phone_kind, on))
        self.noticed.add(o.person_id)
        data = {"orientation_id": o.id, "rule": o.rule_id, "referent_type": o.referent_type,
                "structure": assigner.code(o.structure_id), "origin": o.origin}
        label = Outcome.label_of(o.referent_type)
        self.event(o.person_id, "orientation.validated", on, source, f"Orientation validée: {label}", data,
                   o.path_id)
        self.event(o.person_id, "orientation.notified", on, source, f"Orientation notifiée par {_channel_label(email)}",
                   data, o.path_id)
        waiting = self.alerts.get(_awaiting_key(o.path_id))
        if waiting is not None and waiting.resolved_on is None:
            waiting.resolved_on = on
        self.validated_paths.append(o.path_id)
        return True

    def finish(self) -> None:
        """One flush for the batch, its events and notices written (Core executemany: the notices' due
        dates touched here, as the flush hook would have for each ORM row), and the validated paths'
        outcomes refreshed once (or left to the assigner's owner when it defers them)."""
        self.session.flush()
        bulk_insert(self.session, CaseEvent, self.events)
        bulk_insert(self.session, Notification, self.notices)
        touch_due(self.session, self.noticed)
        self.events, self.notices, self.noticed = [], [], set()
        _mark_paths(self.session, self.assigner, self.validated_paths)


def _mark_paths(session: Session, assigner: Assigner, path_ids: list[int | None]) -> None:
    """The validated paths' outcomes (orientation.outcomes.mark_path_oriented), now or, when the
    assigner's owner defers them (Assigner.deferred_paths: a batch, a day's work), at its end, in the
    same transaction (the outcome is recomputed from the orientations then: the same columns)."""
    if assigner.deferred_paths is not None:
        assigner.deferred_paths.update(path_ids)
    else:
        mark_path_oriented(session, path_ids)


def _awaiting_key(path_id: int | None) -> str:
    return f"orientation.awaiting_capacity:{path_id}"


def _source_of(origin: str) -> str:
    return {"kiosque": "kiosque", "auto": "job", "default_mds": "job"}.get(origin, "agent")


@dataclass(frozen=True)
class OrientationIn:
    """A decision made by a person, for record_orientations (the arguments of record_orientation)."""

    person_id: int
    referent_type: str
    origin: str
    decided_on: dt.date
    structure_id: int | None = None
    reason: str | None = None
    status: str = OrientationStatus.VALIDATED
    path_id: int | None = None
    parcours: str | None = None


def record_orientation(session: Session, person_id: int, referent_type: str, *, origin: str, decided_on: dt.date,
                       structure_id: int | None = None, user_id: int | None = None, reason: str | None = None,
                       status: str = OrientationStatus.VALIDATED, path_id: int | None = None,
                       assigner: Assigner | None = None, parcours: str | None = None) -> Orientation:
    """A decision made by a person (kiosque outcome, agent, MDS default, réorientation): the batch of
    one of record_orientations."""
    return record_orientations(session, [OrientationIn(person_id, referent_type, origin, decided_on, structure_id,
                                                       reason, status, path_id, parcours)],
                               user_id=user_id, assigner=assigner)[0]


def record_orientations(session: Session, items: Iterable[OrientationIn], *, user_id: int | None = None,
                        assigner: Assigner | None = None) -> list[Orientation]:
    """Decisions made by persons (a day's kiosque choices and MDS defaults, or one), in the given order.

    Each supersedes the person's pending decisions; a validated decision ends the current one. The
    structure comes from the sectorisation when not given; a full structure → awaiting capacity; no
    structure → unsectorised (with an alert). The parcours is the one given, else the referent type's
    default (referents.vocabulary.DEFAULT_PARCOURS_OF); the organisme follows the referent type.

    Every check first (nothing is written when one fails); then the persons, households, open paths,
    pending decisions, current orientations and alerts are read once per batch, the new rows are
    inserted in the given order with one flush, and the validations are done in that order
    (_Validations): the rows, explanations, events, notices and alerts of one call per decision. A
    person given twice starts a new run that reads what the previous one wrote."""
    items = list(items)
    for it in items:
        if it.referent_type not in OUTCOMES:
            raise OrientationError(f"type de référent inconnu: {it.referent_type!r}")
        if it.parcours is not None and (it.referent_type == "kiosque" or it.parcours not in Parcours.codes()):
            raise OrientationError(f"parcours impossible: {it.parcours!r} (parcours: {', '.join(Parcours.codes())}; "
                                   "aucun pour une invitation au Kiosque)")
        if it.origin not in ORIGINS:
            raise OrientationError(f"origine inconnue: {it.origin!r}")
        if it.status not in (OrientationStatus.VALIDATED, OrientationStatus.PROPOSED, OrientationStatus.KIOSQUE):
            raise OrientationError(f"statut initial impossible: {it.status!r}")
    if not items:
        return []
    persons = _by_id(session, Person, [it.person_id for it in items])
    for it in items:
        if it.person_id not in persons:
            raise OrientationError(f"personne {it.person_id} inconnue")
    assigner = assigner or Assigner(session)
    for it in items:
        if it.structure_id is None:
            continue
        if it.structure_id not in assigner.structures:
            raise OrientationError(f"structure {it.structure_id} inconnue")
        s = assigner.structures[it.structure_id]
        wanted_kind = "mds" if it.referent_type == "kiosque" else it.referent_type
        if s.kind != wanted_kind and not (wanted_kind == "mds" and s.kind == "ccas"):
            raise OrientationError(f"la structure {s.code} n'est pas de type {wanted_kind}")
    households = _by_id(session, Household, [p.household_id for p in persons.values()])
    out: list[Orientation] = []
    for run in distinct_runs(items, lambda it: it.person_id):
        out.extend(_record_run(session, run, persons, households, assigner, user_id))
    return out


def _record_run(session: Session, items: list[OrientationIn], persons: dict, households: dict, assigner: Assigner,
                user_id: int | None) -> list[Orientation]:
    """record_orientations for decisions of distinct persons."""
    open_paths = open_path_ids(session, [it.person_id for it in items if not it.path_id])
    pending: dict[int, list[Orientation]] = {}
    for chunk in chunks(sorted({it.person_id for it in items})):
        for p in session.scalars(select(Orientation).where(Orientation.person_id.in_(chunk),
                                                           Orientation.status.in_(PENDING))):
            pending.setdefault(p.person_id, []).append(p)
    made = []
    for it in items:
        referent_type, decided_on, reason = it.referent_type, it.decided_on, it.reason
        status = OrientationStatus.KIOSQUE if referent_type == "kiosque" else it.status
        path_id = it.path_id or open_paths.get(it.person_id)
        person = persons[it.person_id]
        household = households.get(person.household_id) if person.household_id else None
        structure_id, why = it.structure_id, None
        if structure_id is None:
            structure_id, why = assigner.structure_for(referent_type,
                                                       household.commune_insee if household else None,
                                                       household.postal_code if household else None)
        superseded = pending.get(it.person_id, [])
        for p in superseded:
            p.status = OrientationStatus.SUPERSEDED
        mode = "kiosque" if referent_type == "kiosque" else ("propose" if status == OrientationStatus.PROPOSED
                                                            else "auto")
        who = ORIGIN_PHRASES.get(it.origin, it.origin)
        target = Outcome(referent_type).label
        code = assigner.code(structure_id)
        text = (f"Décision prise par {who} le {decided_on.isoformat()}: {target}"
                f"{f' ({code})' if code else ''}." + (f" Motif: {reason}." if reason else "")
                + " Cette décision n'a pas été établie par un algorithme.")
        initial = OrientationStatus.UNSECTORISED if structure_id is None and referent_type != "kiosque" else status
        if structure_id is None:
            text += f" Aucune structure n'a pu être désignée: {why}."
        o = Orientation(person_id=it.person_id, path_id=path_id, referent_type=referent_type,
                        structure_id=structure_id, parcours=it.parcours or default_parcours_of(referent_type),
                        organisme=organisme_of(referent_type), mode=mode, origin=it.origin,
                        status=initial if initial != OrientationStatus.VALIDATED else OrientationStatus.PROPOSED,
                        explanation=text, algorithmic=False, decided_on=decided_on, override_reason=None,
                        supersedes_id=superseded[-1].id if superseded else None)
        session.add(o)
        made.append((it, o, initial, code, who, target, why))
    session.flush()  # the new rows' ids, in the given order
    validations = _Validations(session, [o for _it, o, initial, *_ in made if initial == OrientationStatus.VALIDATED],
                               assigner, user_id)
    for it, o, initial, code, who, target, why in made:
        source = _source_of(it.origin)
        data = {"orientation_id": o.id, "referent_type": it.referent_type, "structure": code, "origin": it.origin,
                "reason": it.reason}
        if initial == OrientationStatus.VALIDATED:
            if not validations.validate(o, it.decided_on, source):
                validations.event(it.person_id, "orientation.proposed", it.decided_on, source,
                                  f"Décision {target} en attente de place ({code})", {**data, "status": o.status},
                                  o.path_id)
        else:
            validations.event(it.person_id, "orientation.proposed", it.decided_on, source,
                              f"Proposition: {target} ({who}, {OrientationStatus.label_of(o.status).lower()})", data,
                              o.path_id)
            if initial == OrientationStatus.UNSECTORISED:
                key = f"orientation.unsectorised:{o.path_id or 'p' + str(it.person_id)}"
                raise_alert(session, key, "orientation.unsectorised", f"Personne {it.person_id} hors sectorisation: "
                            f"{why}", it.decided_on, person_id=it.person_id, data={"orientation_id": o.id})
    validations.finish()
    return [o for _it, o, *_ in made]


# --- validation queue, override ------------------------------------------------------------------

def queue(session: Session, scope: ColumnElement[bool] | None = None, status: str = OrientationStatus.PROPOSED,
          mds_id: int | None = None, territory_id: int | None = None, referent_type: str | None = None,
          rule_id: str | None = None, structure_id: int | None = None, limit: int = 100,
          offset: int = 0, clock_started_by: dt.date | None = None) -> dict:
    """Pending decisions (validation queue, awaiting capacity, unsectorised, kiosque) with filters;
    clock_started_by: only paths whose legal clock started on or before that day (age of the clock)."""
    if status not in PENDING:
        raise OrientationError(f"file inconnue: {status!r} (files: {', '.join(PENDING)})")
    q = _queue_filter(select(Orientation.id), scope, status, mds_id, territory_id, referent_type, rule_id,
                      structure_id, clock_started_by)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    rows = session.execute(
        _queue_filter(select(Orientation, Person.first_name, Person.last_name, Household.mds_id, Path.clock_start,
                             Structure.code), scope, status, mds_id, territory_id, referent_type, rule_id,
                      structure_id, clock_started_by)
        .outerjoin(Path, Path.id == Orientation.path_id)
        .outerjoin(Structure, Structure.id == Orientation.structure_id)
        .order_by(Orientation.decided_on, Orientation.id).limit(limit).offset(offset)).all()
    items = [{"id": o.id, "person_id": o.person_id, "first_name": fn, "last_name": ln, "status": o.status,
              "referent_type": o.referent_type, "parcours": o.parcours, "organisme": o.organisme,
              "structure": code, "rule_id": o.rule_id, "mode": o.mode,
              "origin": o.origin, "decided_on": o.decided_on, "clock_start": clock, "mds_id": mds,
              "explanation": o.explanation} for o, fn, ln, mds, clock, code in rows]
    return {"total": total, "items": items}


def _queue_filter(q, scope, status, mds_id, territory_id, referent_type, rule_id, structure_id,
                  clock_started_by=None):
    if clock_started_by is not None:
        q = q.where(Orientation.path_id.in_(select(Path.id).where(Path.clock_start <= clock_started_by)))
    q = (q.join(Person, Person.id == Orientation.person_id)
         .outerjoin(Household, Household.id == Person.household_id)
         .where(Orientation.status == status))
    if scope is not None:
        q = q.where(scope)
    if mds_id is not None:
        q = q.where(Household.mds_id == mds_id)
    if territory_id is not None:
        q = q.where(Household.territory_id == territory_id)
    if referent_type:
        q = q.where(Orientation.referent_type == referent_type)
    if rule_id:
        q = q.where(Orientation.rule_id == rule_id)
    if structure_id is not None:
        q = q.where(Orientation.structure_id == structure_id)
    return q


def validate(session: Session, orientation_ids: Iterable[int], user_id: int | None, as_of: dt.date,
             scope: ColumnElement[bool] | None = None, assigner: Assigner | None = None) -> dict:
    """Validate proposals one by one or in batch. Out of scope or not "proposed" → skipped with why.

    One assigner for the batch (or the caller's: a day's work shares one), what the validations read
    read once (_Validations), one flush, and the paths' outcomes refreshed once, set-based, over the
    validated rows' paths (the same columns as row by row: each path's first validated orientation)."""
    ids = list(dict.fromkeys(orientation_ids))
    q = select(Orientation).where(Orientation.id.in_(ids)).order_by(Orientation.decided_on, Orientation.id)
    if scope is not None:
        q = q.join(Person, Person.id == Orientation.person_id).where(scope)
    rows = {o.id: o for o in session.scalars(q)}
    assigner = assigner or Assigner(session)
    out = {"validated": [], "awaiting_capacity": [], "skipped": []}
    todo = []
    for oid in ids:
        o = rows.get(oid)
        if o is None:
            out["skipped"].append({"id": oid, "reason": "décision inconnue ou hors de votre périmètre"})
        elif o.status != OrientationStatus.PROPOSED:
            out["skipped"].append({"id": oid, "reason": f"statut {o.status}: seule une proposition se valide"})
        elif o.structure_id is None:
            out["skipped"].append({"id": oid, "reason": "aucune structure: utiliser une modification"})
        else:
            todo.append(o)
    validations = _Validations(session, todo, assigner, user_id)
    for o in todo:
        out["validated" if validations.validate(o, as_of, "agent") else "awaiting_capacity"].append(o.id)
    validations.finish()
    return out


def queue_ids(session: Session, scope=None, **filters) -> list[int]:
    q = _queue_filter(select(Orientation.id), scope, filters.pop("status", OrientationStatus.PROPOSED), filters.get("mds_id"),
                      filters.get("territory_id"), filters.get("referent_type"), filters.get("rule_id"),
                      filters.get("structure_id"), filters.get("clock_started_by"))
    return list(session.scalars(q.order_by(Orientation.id)))


def override(session: Session, orientation_id: int, user_id: int | None, referent_type: str, reason: str,
             as_of: dt.date, structure_id: int | None = None, scope: ColumnElement[bool] | None = None,
             parcours: str | None = None) -> Orientation:
    """Replace a pending decision by another referent type / structure, with a mandatory reason."""
    if not reason or not reason.strip():
        raise OrientationError("le motif de la modification est obligatoire")
    q = select(Orientation).where(Orientation.id == orientation_id)
    if scope is not None:
        q = q.join(Person, Person.id == Orientation.person_id).where(scope)
    original = session.scalar(q)
    if original is None:
        raise LookupError(f"décision {orientation_id} inconnue")
    if original.status not in PENDING:
        raise OrientationError(f"statut {original.status}: seule une décision en attente se modifie "
                               "(pour une orientation validée: demande de réorientation)")
    original.status = OrientationStatus.OVERRIDDEN
    session.flush()
    new = record_orientation(session, original.person_id, referent_type, origin=Origin.AGENT, decided_on=as_of,
                             structure_id=structure_id, user_id=user_id, reason=reason, status=OrientationStatus.VALIDATED,
                             path_id=original.path_id, parcours=parcours)
    new.supersedes_id, new.override_reason = original.id, reason.strip()
    add_event(session, original.person_id, "orientation.overridden", as_of, "agent",
              f"Proposition {Outcome.label_of(original.referent_type)} modifiée en "
              f"{Outcome(referent_type).label}: {reason.strip()}",
              {"orientation_id": original.id, "new_orientation_id": new.id, "reason": reason.strip()},
              path_id=original.path_id, author_id=user_id)
    session.flush()
    return new


# --- explanation ---------------------------------------------------------------------------------

def _structure_code(session: Session, sid: int | None) -> str | None:
    return session.scalar(select(Structure.code).where(Structure.id == sid)) if sid else None


@dataclass(frozen=True)
class Decision:
    """A decision row with its structure's code (orientation.schemas.OrientationSchema formats it)."""

    orientation: Orientation
    structure: str | None

    @property
    def rule(self) -> str | None:
        return self.orientation.rule_id

    def __getattr__(self, name):  # the decision's own columns (id, status, origin, facts…)
        if name == "orientation":
            raise AttributeError(name)
        return getattr(self.orientation, name)


def decision_of(session: Session, o: Orientation) -> Decision:
    return Decision(o, _structure_code(session, o.structure_id))


@dataclass(frozen=True)
class Simulation:
    """What the active rules would decide today, with the facts they read."""

    rule: str
    label: str
    referent_type: str
    parcours: str | None
    organisme: str | None
    source: str | None
    variant: str | None
    mode: str
    rule_set_version: int
    explanation: str
    facts: dict


@dataclass(frozen=True)
class Explanation:
    """Why a person is (or would be) oriented as they are (orientation.schemas.ExplainSchema)."""

    person_id: int
    as_of: dt.date
    current: Decision | None
    rule_label: str | None
    explanation: str | None
    rules_today: Simulation | None  # None when not asked for (explain's simulate)
    history: list[Decision]
    # labels of the active rules by id (the person file names a decision's rule with them)
    rule_labels: dict[str, str] = field(default_factory=dict)


def history(session: Session, person_id: int) -> list[Decision]:
    rows = session.execute(select(Orientation, Structure.code).outerjoin(Structure,
                                                                          Structure.id == Orientation.structure_id)
                           .where(Orientation.person_id == person_id).order_by(Orientation.id)).all()
    return [Decision(o, code) for o, code in rows]


def explain(session: Session, person_id: int, as_of: dt.date, *, simulate: bool | None = True) -> Explanation:
    """Why the person is (or would be) oriented as they are, in plain French, with the facts.
    simulate: whether to say what the active rules would decide today (rules_today) — True always,
    None only when the person has no current decision (the person file shows it then only: it
    reads all the person's facts, seven queries)."""
    if session.get(Person, person_id) is None:
        raise LookupError(f"personne {person_id} inconnue")
    hist = history(session, person_id)
    live = [h for h in hist if h.status not in FINISHED]
    current = live[-1] if live else None
    row, spec = active_rule_set(session)
    simulation = None
    if simulate or (simulate is None and current is None):
        facts = build_facts(session, [person_id], as_of)[person_id]
        decision = spec.compile(as_of).evaluate(facts)
        simulation = Simulation(rule=decision.rule.id, label=decision.rule.label,
                                referent_type=decision.rule.outcome, parcours=decision.rule.parcours,
                                organisme=decision.rule.organisme, source=decision.rule.source,
                                variant=decision.variant, mode=decision.rule.mode, rule_set_version=row.version,
                                explanation=explain_decision(decision.rule, decision.variant, row.version, facts,
                                                             decision.rule.facts_used),
                                facts=snapshot(facts, decision.rule.facts_used))
    rule_label = None
    if current and current.rule:
        if current.rule_set_version == row.version:  # decided under the active rules (the usual case)
            r = spec.rule(current.rule)
        else:
            old = get_rule_set(session, current.rule_set_version) if current.rule_set_version else None
            r = spec_of(old).rule(current.rule) if old else None
        rule_label = r.label if r else None
    return Explanation(person_id=person_id, as_of=as_of, current=current, rule_label=rule_label,
                       explanation=current.explanation if current else None, rules_today=simulation, history=hist,
                       rule_labels={r.id: r.label for r in (*spec.rules, spec.fallback)})


def current_orientation_summary(session: Session, person_id: int, decisions: list[Decision] | None = None) -> dict | None:
    """The current (validated) orientation as shown with a person (the person file, `rsa cases
    show`), or None: the latest validated, by validation day then id. decisions: the person's
    history() when the caller has read it (the person file explains it too)."""
    validated = [d for d in (history(session, person_id) if decisions is None else decisions)
                 if d.status == OrientationStatus.VALIDATED]
    if not validated:
        return None
    latest = max(validated, key=lambda d: (d.validated_on or dt.date.min, d.id))
    return _summary(latest.orientation, latest.structure)


def _summary(o: Orientation, code: str | None) -> dict:
    return {"referent_type": o.referent_type, "rule": o.rule_id, "status": o.status, "origin": o.origin,
            "decided_on": o.decided_on.isoformat(), "structure": code}


def audit_cli(session: Session, action: str, person_id: int | None, user_id: int | None, details: dict) -> None:
    """Audit row for an action taken from the command line."""
    from referents import audit

    audit.write(session, action, user_id=user_id, person_id=person_id, endpoint="cli", details=details)


def structure_id_by_code(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    structure = structure_by_code(session, code)
    if structure is None:
        raise OrientationError(f"structure inconnue: {code}")
    return structure.id


def territory_id_by_code(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    tid = session.scalar(select(Territory.id).where(Territory.code == code))
    if tid is None:
        raise OrientationError(f"territoire inconnu: {code}")
    return tid


# The service's public names, with those of the rule sets its callers (API, CLI, bench) reach here.
__all__ = ["Assigner", "OrientationError", "active_rule_set",
           "current_orientation_summary", "decision_of", "explain", "get_rule_set", "history", "load_rules_document",
           "load_rules_text", "mark_path_oriented", "OrientationIn", "override", "queue", "queue_ids", "record_orientation",
           "record_orientations",
           "rule_set_versions", "run", "spec_of", "validate"]
