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
import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select, text, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cases.models import OPEN_RIGHT_STATES, SDD_ROLES, Alert, CaseEvent, Household, Path, Person
from cases.service import add_event, raise_alert
from orientation.facts import build_facts, chunks, snapshot
from orientation.models import Notification, Orientation, ReorientationRequest, RuleSet
from orientation.rules import (
    REFERENT_LABELS,
    VARIANT_LABELS,
    RuleSetError,
    RuleSetSpec,
    load_default,
    parse_rule_set,
    parse_yaml,
)
from orientation.rules import (
    explain as explain_decision,
)
from referents.models import Agent, Structure, Territory
from referents.service import SectorIndex, structure_by_code

PENDING = ("proposed", "awaiting_capacity", "unsectorised", "kiosque")
STATUSES = ("proposed", "validated", "awaiting_capacity", "unsectorised", "kiosque", "overridden",
            "refused", "ended", "superseded")
REFERENT_TYPES = ("pole_emploi", "actipro", "ati", "mds")
ORIGINS = ("auto", "agent", "kiosque", "default_mds", "reorientation")
CLOSED_RIGHT_STATES = ("1", "5", "6")
TARGET_DAYS, LEGAL_DAYS = 30, 42
ALERT_DAYS = (21, 35, LEGAL_DAYS)
DEFAULT_AGENT_CAPACITY = 60  # caseload target of an agent without a capacity of their own
FAILED_PHONING = ("wrong_number", "declined")
ORIGIN_LABELS = {"auto": "l'algorithme d'orientation", "agent": "un professionnel du Département",
                 "kiosque": "la personne au Kiosque Insertion", "default_mds": "l'orientation par défaut de la loi",
                 "reorientation": "une réorientation"}


class OrientationError(ValueError):
    """An action the domain refuses; the message is in French for the user."""


# --- rule sets ----------------------------------------------------------------------------------

def _document(spec: RuleSetSpec) -> list:
    doc = spec.as_document()
    return [*doc["rules"], {**doc["fallback"], "fallback": True}]


def spec_of(row: RuleSet) -> RuleSetSpec:
    rules = [dict(r) for r in row.rules if not r.get("fallback")]
    fallback = next((dict(r) for r in row.rules if r.get("fallback")), None)
    if fallback is not None:
        fallback.pop("fallback")
    spec = parse_rule_set({"name": row.name, "rules": rules, "fallback": fallback})
    spec.version = row.version
    return spec


def active_rule_set(session: Session) -> tuple[RuleSet, RuleSetSpec]:
    """The active rule set; the default YAML (v1) is stored on first use."""
    row = session.scalar(select(RuleSet).where(RuleSet.active.is_(True)).order_by(RuleSet.version.desc()).limit(1))
    if row is None:
        spec, text = load_default()
        row = store_rule_set(session, spec, text)
    return row, spec_of(row)


def store_rule_set(session: Session, spec: RuleSetSpec, source_text: str | None = None,
                   user_id: int | None = None, base_version: int | None = None) -> RuleSet:
    """Store a validated rule set as the new active version (every version is kept). Loading the
    same rules as the active version changes nothing. base_version guards against concurrent edits."""
    current = session.scalar(select(RuleSet).where(RuleSet.active.is_(True)).order_by(RuleSet.version.desc()).limit(1))
    if base_version is not None and (current.version if current else 0) != base_version:
        raise OrientationError(f"le jeu de règles a changé entre-temps (version active: "
                               f"{current.version if current else 'aucune'}, attendue: {base_version})")
    document = _document(spec)
    if current is not None and current.rules == document and current.name == spec.name:
        return current
    top = session.scalar(select(func.max(RuleSet.version))) or 0
    version = top + 1
    if spec.version is not None and spec.version > top:
        version = spec.version
    if current is not None:
        session.execute(update(RuleSet).where(RuleSet.active.is_(True)).values(active=False))
    row = RuleSet(version=version, name=spec.name, rules=document, source_text=source_text, active=True,
                  created_by=user_id)
    session.add(row)
    session.flush()
    return row


def load_rules_text(session: Session, text: str, user_id: int | None = None) -> RuleSet:
    """Validate a YAML rule set and make it the active version (RuleSetError when invalid)."""
    return store_rule_set(session, parse_yaml(text), text, user_id)


def load_rules_document(session: Session, doc: dict, user_id: int | None = None,
                        base_version: int | None = None) -> RuleSet:
    spec = parse_rule_set(doc)
    return store_rule_set(session, spec, json.dumps(doc, ensure_ascii=False, indent=2), user_id, base_version)


def rule_set_as_dict(row: RuleSet) -> dict:
    rules = [r for r in row.rules if not r.get("fallback")]
    fallback = next(({k: v for k, v in r.items() if k != "fallback"} for r in row.rules if r.get("fallback")), None)
    return {"version": row.version, "name": row.name, "active": row.active, "created_at": row.created_at,
            "created_by": row.created_by, "rules": rules, "fallback": fallback}


def rule_set_versions(session: Session) -> list[dict]:
    return [{"version": r.version, "name": r.name, "active": r.active, "created_at": r.created_at,
             "created_by": r.created_by, "rules": sum(1 for x in r.rules if not x.get("fallback"))}
            for r in session.scalars(select(RuleSet).order_by(RuleSet.version))]


def get_rule_set(session: Session, version: int | None = None) -> RuleSet | None:
    if version is None:
        return active_rule_set(session)[0]
    return session.scalar(select(RuleSet).where(RuleSet.version == version))


# --- assignment ---------------------------------------------------------------------------------

class Assigner:
    """Structures, their load and their agents' caseloads, in memory for a run (or one action).

    Load of a structure = its validated orientations; an agent's caseload = their validated ones."""

    def __init__(self, session: Session):
        self.session = session
        self.sectors = SectorIndex(session)
        self.structures = {s.id: s for s in session.scalars(select(Structure))}
        self.variants = {}
        for s in sorted(self.structures.values(), key=lambda s: s.id):
            if s.variant and s.active:
                self.variants.setdefault((s.kind, s.variant), s.id)
        self.load = Counter(dict(session.execute(
            select(Orientation.structure_id, func.count(Orientation.id))
            .where(Orientation.status == "validated", Orientation.structure_id.is_not(None))
            .group_by(Orientation.structure_id)).all()))
        caseload = Counter(dict(session.execute(
            select(Orientation.agent_id, func.count(Orientation.id))
            .where(Orientation.status == "validated", Orientation.agent_id.is_not(None))
            .group_by(Orientation.agent_id)).all()))
        self._agents: dict[int, list] = defaultdict(list)
        self._capacity: dict[int, int] = {}
        self._caseload = caseload
        for a in session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.id)):
            cap = a.capacity or DEFAULT_AGENT_CAPACITY
            self._capacity[a.id] = cap
            heapq.heappush(self._agents[a.structure_id], (caseload[a.id] / cap, a.id))

    def structure_for(self, referent_type: str, commune: str | None, postal_code: str | None,
                      variant: str | None = None) -> tuple[int | None, str | None]:
        """(structure id, None) or (None, why there is none)."""
        kind = "mds" if referent_type == "kiosque" else referent_type
        if variant and (kind, variant) in self.variants:
            return self.variants[(kind, variant)], None
        match = self.sectors.find(commune, postal_code)
        if match.sector is None:
            return None, match.reason
        sid = getattr(match.sector, f"{kind}_id", None)
        if sid is None:
            return None, f"aucune structure {REFERENT_LABELS.get(kind, kind)} dans le secteur de la commune {commune}"
        return sid, None

    def has_room(self, structure_id: int | None) -> bool:
        s = self.structures.get(structure_id)
        return s is None or s.capacity is None or self.load[structure_id] < s.capacity

    def take(self, structure_id: int | None) -> int | None:
        """Count one more person in the structure; the agent with the lowest caseload/capacity."""
        if structure_id is None:
            return None
        self.load[structure_id] += 1
        heap = self._agents.get(structure_id)
        if not heap:
            return None
        _, agent_id = heapq.heappop(heap)
        self._caseload[agent_id] += 1
        heapq.heappush(heap, (self._caseload[agent_id] / self._capacity[agent_id], agent_id))
        return agent_id

    def release(self, structure_id: int | None, agent_id: int | None) -> None:
        if structure_id is not None and self.load[structure_id] > 0:
            self.load[structure_id] -= 1
        if agent_id is not None and self._caseload[agent_id] > 0:
            self._caseload[agent_id] -= 1
            heap = self._agents.get(structure_id) or []
            self._agents[structure_id] = [(self._caseload[a] / self._capacity[a], a) for _, a in heap]
            heapq.heapify(self._agents[structure_id])

    def code(self, structure_id: int | None) -> str | None:
        s = self.structures.get(structure_id)
        return s.code if s else None


def _channel(email: str | None) -> str:
    return "email" if email else "letter"


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
                                                    Orientation.status == "validated"))
    return (select(Person.id, Person.email, Path.id.label("path_id"), Path.clock_start,
                   Household.commune_insee, Household.postal_code, Household.mds_id, Household.territory_id)
            .join(Household, Household.id == Person.household_id)
            .join(Path, and_(Path.person_id == Person.id, Path.closed_on.is_(None)))
            .where(Person.sdd.is_(True), Person.role.in_(SDD_ROLES), Household.right_state.in_(OPEN_RIGHT_STATES),
                   ~validated)
            .where(Path.clock_start <= as_of if as_of is not None else true())
            .order_by(Person.id, Path.clock_start, Path.id))


def end_closed(session: Session, as_of: dt.date) -> int:
    """End the orientations (current and pending) of closed paths and closed rights."""
    live = ("validated", *PENDING)
    rows = session.execute(
        select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status,
               Path.closed_on, Path.close_reason)
        .join(Path, Path.id == Orientation.path_id)
        .where(Orientation.status.in_(live), Path.closed_on.is_not(None))).all()
    closed_right = session.execute(
        select(Orientation.id, Orientation.person_id, Orientation.path_id, Orientation.status,
               Household.closure_on, Household.closure_reason)
        .join(Person, Person.id == Orientation.person_id)
        .join(Household, Household.id == Person.household_id)
        .where(Orientation.status.in_(live), Household.right_state.in_(CLOSED_RIGHT_STATES))).all()
    seen, updates, events = set(), [], []
    for oid, pid, path_id, status, on, reason in [*rows, *closed_right]:
        if oid in seen:
            continue
        seen.add(oid)
        on = min(on or as_of, as_of)
        reason = reason or "right_closed"
        updates.append({"id": oid, "status": "ended", "ended_on": on, "end_reason": reason[:40]})
        if status == "validated":
            events.append(dict(person_id=pid, path_id=path_id, kind="orientation.ended", occurred_on=on,
                               source="job", summary=f"Fin de l'orientation (motif: {reason})",
                               data={"orientation_id": oid, "reason": reason}))
    if updates:
        session.execute(update(Orientation), updates)
    _bulk_insert(session, CaseEvent, events)
    return len(updates)


def refresh_statistics(session: Session) -> None:
    """PostgreSQL: up-to-date planner statistics of the tables the run itself fills. After a bulk
    run, stale statistics make the "no validated orientation" anti-join quadratic (minutes instead
    of milliseconds on 100,000 persons); ANALYZE samples the table in a fraction of a second."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE orientation, path"))


def run(session: Session, as_of: dt.date, progress: Callable[[int, int], None] | None = None) -> dict:
    """Orient every person to orient at the as-of date (decisions dated on the as-of date).
    progress(done, total) is called after each batch."""
    row, spec = active_rule_set(session)
    evaluator = spec.compile(as_of)
    ended = end_closed(session, as_of)
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
        return (0, p.id) if p is not None and p.status == "awaiting_capacity" else (1, pid)

    ids = sorted(candidates, key=order)
    assigner = Assigner(session)
    alert_keys = set(session.scalars(select(Alert.key).where(Alert.kind.in_(
        ("orientation.unsectorised", "orientation.awaiting_capacity")))))
    stats = Counter()
    decisions = Counter({k: 0 for k in (*REFERENT_TYPES, "kiosque")})
    done = 0
    for chunk in chunks(ids):
        facts_by_person = build_facts(session, chunk, as_of)
        new_rows, meta, superseded, promoted, alerts = [], [], [], [], []
        for pid in chunk:
            cand = candidates[pid]
            facts = facts_by_person[pid]
            existing = pending.get(cand.path_id)
            if existing is not None and existing.origin != "auto":
                # A person's decision (kiosque, agent, MDS default) is not redone by the rules; when it
                # waits for a place and one is free, it is validated.
                if existing.status == "awaiting_capacity" and assigner.has_room(existing.structure_id):
                    promoted.append(_promotion(existing, assigner, as_of, pid, cand))
                else:
                    stats["kept"] += 1
                continue
            decision = evaluator.evaluate(facts)
            rule = decision.rule
            referent_type = rule.outcome
            structure_id, why = assigner.structure_for(referent_type, facts["commune"], facts["postal_code"],
                                                       decision.variant)
            if existing is not None and (existing.rule_id, existing.referent_type, existing.structure_id) == \
                    (rule.id, referent_type, structure_id):
                if existing.status == "awaiting_capacity" and assigner.has_room(structure_id):
                    promoted.append(_promotion(existing, assigner, as_of, pid, cand))
                else:
                    stats["unchanged"] += 1
                continue
            if structure_id is None:
                status = "unsectorised"
            elif rule.mode == "kiosque":
                status = "kiosque"
            elif rule.mode == "propose":
                status = "proposed"
            elif assigner.has_room(structure_id):
                status = "validated"
            else:
                status = "awaiting_capacity"
            agent_id = assigner.take(structure_id) if status == "validated" else None
            snap = snapshot(facts, (*decision.facts_read, *_placeholders(rule.explain)))
            text = explain_decision(rule, decision.variant, row.version, facts, decision.facts_read)
            if status == "unsectorised":
                text += f" Aucune structure n'a pu être désignée: {why}."
            if existing is not None:
                superseded.append(existing.id)
                stats["superseded"] += 1
            new_rows.append(dict(
                person_id=pid, path_id=cand.path_id, referent_type=referent_type, structure_id=structure_id,
                agent_id=agent_id, rule_set_version=row.version, rule_id=rule.id, mode=rule.mode, origin="auto",
                status=status, facts=snap, explanation=text, algorithmic=True, decided_on=as_of,
                validated_on=as_of if status == "validated" else None,
                notified_on=as_of if status == "validated" else None,
                supersedes_id=existing.id if existing is not None else None))
            meta.append((pid, cand, status, referent_type, structure_id, why, rule.id))
            decisions[referent_type] += 1
            stats[status] += 1
        if superseded:
            session.execute(update(Orientation).where(Orientation.id.in_(superseded)).values(status="superseded"))
        events, notifications = [], []
        if new_rows:
            # One new row per person in a batch: map the returned ids by person (any order, so that the
            # dialects insert in large batches).
            id_of = _insert_orientations(session, new_rows)
            for pid, cand, status, rtype, sid, why, rule_id in meta:
                oid = id_of[pid]
                label = REFERENT_LABELS[rtype]
                data = {"orientation_id": oid, "rule": rule_id, "referent_type": rtype,
                        "structure": assigner.code(sid), "status": status}
                if status == "validated":
                    events.append(_event(pid, cand.path_id, "orientation.validated", as_of,
                                         f"Orientation validée automatiquement: {label} (règle {rule_id})", data))
                    events.append(_event(pid, cand.path_id, "orientation.notified", as_of,
                                         f"Orientation notifiée par {_channel_label(cand.email)}", data))
                    notifications.append({"orientation_id": oid, "channel": _channel(cand.email),
                                          "notified_on": as_of})
                else:
                    events.append(_event(pid, cand.path_id, "orientation.proposed", as_of,
                                         f"Proposition: {label} (règle {rule_id}, statut {status})", data))
                if status == "unsectorised":
                    alerts.append(_alert(f"orientation.unsectorised:{cand.path_id}", "orientation.unsectorised",
                                         f"Personne {pid} hors sectorisation: {why}", as_of, pid, None,
                                         {"orientation_id": oid}))
                elif status == "awaiting_capacity":
                    alerts.append(_capacity_alert(assigner, pid, cand.path_id, sid, oid, as_of))
        if promoted:
            session.execute(update(Orientation), [{k: v for k, v in p.items() if not k.startswith("_")}
                                                   for p in promoted])
            for p in promoted:
                data = {"orientation_id": p["id"], "structure": assigner.code(p["_structure"])}
                events.append(_event(p["_person"], p["_path"], "orientation.validated", as_of,
                                     f"Place libérée: orientation validée vers {REFERENT_LABELS[p['_referent_type']]}",
                                     data))
                events.append(_event(p["_person"], p["_path"], "orientation.notified", as_of,
                                     f"Orientation notifiée par {_channel_label(p['_email'])}", data))
                notifications.append({"orientation_id": p["id"], "channel": _channel(p["_email"]),
                                      "notified_on": as_of})
            session.execute(update(Alert).where(Alert.key.in_(
                [f"orientation.awaiting_capacity:{p['_path']}" for p in promoted]), Alert.resolved_on.is_(None))
                .values(resolved_on=as_of))
            stats["validated"] += len(promoted)
            stats["promoted"] += len(promoted)
        _bulk_insert(session, CaseEvent, events)
        _bulk_insert(session, Notification, notifications)
        mark_path_oriented(session, [cand.path_id for _pid, cand, status, *_rest in meta if status == "validated"]
                           + [p["_path"] for p in promoted])
        fresh = [a for a in alerts if a["key"] not in alert_keys]
        if fresh:
            _bulk_insert(session, Alert, fresh)
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


def _bulk_insert(session: Session, model, rows: list[dict]) -> None:
    """Core executemany (the ORM bulk path is several times slower for 100,000 rows)."""
    if rows:
        session.connection().execute(model.__table__.insert(), rows)


def _promotion(existing: _Pending, assigner: Assigner, as_of: dt.date, pid: int, cand) -> dict:
    """The update validating a decision that waited for a place (and what its events need)."""
    agent_id = assigner.take(existing.structure_id)
    return {"id": existing.id, "status": "validated", "validated_on": as_of, "notified_on": as_of,
            "agent_id": agent_id, "_person": pid, "_path": cand.path_id, "_email": cand.email,
            "_referent_type": existing.referent_type, "_structure": existing.structure_id}


@functools.cache
def _placeholders(template: str) -> tuple[str, ...]:
    from orientation.rules import _PLACEHOLDER

    return tuple(_PLACEHOLDER.findall(template))


def _channel_label(email: str | None) -> str:
    return "courriel" if email else "courrier"


def _event(pid, path_id, kind, on, summary, data, source="job", author_id=None) -> dict:
    return dict(person_id=pid, path_id=path_id, kind=kind, occurred_on=on, source=source, summary=summary,
                data=data, author_id=author_id)


def _alert(key, kind, message, on, pid, sid, data, severity="warning") -> dict:
    return dict(key=key, kind=kind, message=message, raised_on=on, severity=severity, person_id=pid,
                structure_id=sid, data=data)


def _capacity_alert(assigner: Assigner, pid, path_id, sid, oid, on) -> dict:
    s = assigner.structures.get(sid)
    return _alert(f"orientation.awaiting_capacity:{path_id}", "orientation.awaiting_capacity",
                  f"Personne {pid} en attente de place: {s.code if s else sid} est complète "
                  f"({assigner.load[sid]}/{s.capacity if s else '?'})", on, pid, sid, {"orientation_id": oid})


# --- decisions made by a person -----------------------------------------------------------------

def mark_path_oriented(session: Session, path_ids: Iterable[int | None]) -> int:
    """Keep the paths' denormalised outcome (Path.oriented_on, oriented_referent_type, oriented_origin,
    oriented_rule) in step with their first validated orientation: called wherever an orientation
    becomes validated. The columns are recomputed from the orientations of these paths by the one
    definition (reports.service.update_path_outcomes), so a later validation never overwrites the
    first one. Returns the number of paths changed."""
    from reports.service import update_path_outcomes

    ids = [i for i in path_ids if i is not None]
    return update_path_outcomes(session, ids) if ids else 0


def _open_path_id(session: Session, person_id: int) -> int | None:
    return session.scalar(select(Path.id).where(Path.person_id == person_id, Path.closed_on.is_(None))
                          .order_by(Path.clock_start.desc(), Path.id.desc()).limit(1))


def _validate_row(session: Session, o: Orientation, on: dt.date, assigner: Assigner, user_id: int | None,
                  source: str) -> bool:
    """Make `o` the current orientation if its structure has room (else awaiting capacity): agent,
    notification, events, previous validated orientation ended. Returns True when validated."""
    if o.structure_id is not None and not assigner.has_room(o.structure_id):
        o.status = "awaiting_capacity"
        session.flush()
        a = _capacity_alert(assigner, o.person_id, o.path_id, o.structure_id, o.id, on)
        raise_alert(session, a["key"], a["kind"], a["message"], on, person_id=o.person_id,
                    structure_id=o.structure_id, data=a["data"])
        return False
    for prev in session.scalars(select(Orientation).where(Orientation.person_id == o.person_id,
                                                          Orientation.status == "validated",
                                                          Orientation.id != o.id)):
        prev.status, prev.ended_on, prev.end_reason = "ended", on, "reorientation"
        assigner.release(prev.structure_id, prev.agent_id)
        add_event(session, prev.person_id, "orientation.ended", on, source,
                  f"Fin de l'orientation {REFERENT_LABELS.get(prev.referent_type, prev.referent_type)} (réorientation)",
                  {"orientation_id": prev.id, "reason": "reorientation"}, path_id=prev.path_id, author_id=user_id)
    o.status, o.validated_on, o.validated_by, o.notified_on = "validated", on, user_id, on
    if o.agent_id is None:
        o.agent_id = assigner.take(o.structure_id)
    else:
        assigner.load[o.structure_id] += 1
    email = session.scalar(select(Person.email).where(Person.id == o.person_id))
    session.add(Notification(orientation_id=o.id, channel=_channel(email), notified_on=on))
    data = {"orientation_id": o.id, "rule": o.rule_id, "referent_type": o.referent_type,
            "structure": assigner.code(o.structure_id), "origin": o.origin}
    label = REFERENT_LABELS.get(o.referent_type, o.referent_type)
    add_event(session, o.person_id, "orientation.validated", on, source, f"Orientation validée: {label}", data,
              path_id=o.path_id, author_id=user_id)
    add_event(session, o.person_id, "orientation.notified", on, source,
              f"Orientation notifiée par {_channel_label(email)}", data, path_id=o.path_id, author_id=user_id)
    session.execute(update(Alert).where(Alert.key == f"orientation.awaiting_capacity:{o.path_id}",
                                        Alert.resolved_on.is_(None)).values(resolved_on=on))
    session.flush()
    mark_path_oriented(session, [o.path_id])
    return True


def _source_of(origin: str) -> str:
    return {"kiosque": "kiosque", "auto": "job", "default_mds": "job"}.get(origin, "agent")


def record_orientation(session: Session, person_id: int, referent_type: str, *, origin: str, decided_on: dt.date,
                       structure_id: int | None = None, user_id: int | None = None, reason: str | None = None,
                       status: str = "validated", path_id: int | None = None,
                       assigner: Assigner | None = None) -> Orientation:
    """A decision made by a person (kiosque outcome, agent, MDS default, réorientation).

    Supersedes the person's pending decisions; a validated decision ends the current one. The structure
    comes from the sectorisation when not given; a full structure → awaiting capacity; no structure →
    unsectorised (with an alert)."""
    if referent_type not in (*REFERENT_TYPES, "kiosque"):
        raise OrientationError(f"type de référent inconnu: {referent_type!r}")
    if origin not in ORIGINS:
        raise OrientationError(f"origine inconnue: {origin!r}")
    if status not in ("validated", "proposed", "kiosque"):
        raise OrientationError(f"statut initial impossible: {status!r}")
    person = session.get(Person, person_id)
    if person is None:
        raise OrientationError(f"personne {person_id} inconnue")
    if referent_type == "kiosque":
        status = "kiosque"
    assigner = assigner or Assigner(session)
    path_id = path_id or _open_path_id(session, person_id)
    household = session.get(Household, person.household_id) if person.household_id else None
    why = None
    if structure_id is None:
        structure_id, why = assigner.structure_for(referent_type, household.commune_insee if household else None,
                                                   household.postal_code if household else None)
    elif structure_id not in assigner.structures:
        raise OrientationError(f"structure {structure_id} inconnue")
    else:
        s = assigner.structures[structure_id]
        wanted_kind = "mds" if referent_type == "kiosque" else referent_type
        if s.kind != wanted_kind and not (wanted_kind == "mds" and s.kind == "ccas"):
            raise OrientationError(f"la structure {s.code} n'est pas de type {wanted_kind}")
    pending = session.scalars(select(Orientation).where(Orientation.person_id == person_id,
                                                        Orientation.status.in_(PENDING))).all()
    for p in pending:
        p.status = "superseded"
    mode = "kiosque" if referent_type == "kiosque" else ("propose" if status == "proposed" else "auto")
    who = ORIGIN_LABELS.get(origin, origin)
    target = REFERENT_LABELS[referent_type]
    code = assigner.code(structure_id)
    text = (f"Décision prise par {who} le {decided_on.isoformat()}: {target}"
            f"{f' ({code})' if code else ''}." + (f" Motif: {reason}." if reason else "")
            + " Cette décision n'a pas été établie par un algorithme.")
    initial = "unsectorised" if structure_id is None and referent_type != "kiosque" else status
    if structure_id is None:
        text += f" Aucune structure n'a pu être désignée: {why}."
    o = Orientation(person_id=person_id, path_id=path_id, referent_type=referent_type, structure_id=structure_id,
                    mode=mode, origin=origin, status=initial if initial != "validated" else "proposed",
                    explanation=text, algorithmic=False, decided_on=decided_on, override_reason=None,
                    supersedes_id=pending[-1].id if pending else None)
    session.add(o)
    session.flush()
    source = _source_of(origin)
    data = {"orientation_id": o.id, "referent_type": referent_type, "structure": code, "origin": origin,
            "reason": reason}
    if initial == "validated":
        if not _validate_row(session, o, decided_on, assigner, user_id, source):
            add_event(session, person_id, "orientation.proposed", decided_on, source,
                      f"Décision {target} en attente de place ({code})", {**data, "status": o.status},
                      path_id=path_id, author_id=user_id)
    else:
        add_event(session, person_id, "orientation.proposed", decided_on, source,
                  f"Proposition: {target} ({who}, statut {o.status})", data, path_id=path_id, author_id=user_id)
        if initial == "unsectorised":
            raise_alert(session, f"orientation.unsectorised:{path_id or 'p' + str(person_id)}",
                        "orientation.unsectorised", f"Personne {person_id} hors sectorisation: {why}", decided_on,
                        person_id=person_id, data={"orientation_id": o.id})
    session.flush()
    return o


# --- validation queue, override ------------------------------------------------------------------

def queue(session: Session, scope: ColumnElement[bool] | None = None, status: str = "proposed",
          mds_id: int | None = None, territory_id: int | None = None, referent_type: str | None = None,
          rule_id: str | None = None, structure_id: int | None = None, limit: int = 100,
          offset: int = 0) -> dict:
    """Pending decisions (validation queue, awaiting capacity, unsectorised, kiosque) with filters."""
    if status not in PENDING:
        raise OrientationError(f"file inconnue: {status!r} (files: {', '.join(PENDING)})")
    q = _queue_filter(select(Orientation.id), scope, status, mds_id, territory_id, referent_type, rule_id,
                      structure_id)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    rows = session.execute(
        _queue_filter(select(Orientation, Person.first_name, Person.last_name, Household.mds_id, Path.clock_start,
                             Structure.code), scope, status, mds_id, territory_id, referent_type, rule_id,
                      structure_id)
        .outerjoin(Path, Path.id == Orientation.path_id)
        .outerjoin(Structure, Structure.id == Orientation.structure_id)
        .order_by(Orientation.decided_on, Orientation.id).limit(limit).offset(offset)).all()
    items = [{"id": o.id, "person_id": o.person_id, "first_name": fn, "last_name": ln, "status": o.status,
              "referent_type": o.referent_type, "structure": code, "rule_id": o.rule_id, "mode": o.mode,
              "origin": o.origin, "decided_on": o.decided_on, "clock_start": clock, "mds_id": mds,
              "explanation": o.explanation} for o, fn, ln, mds, clock, code in rows]
    return {"total": total, "items": items}


def _queue_filter(q, scope, status, mds_id, territory_id, referent_type, rule_id, structure_id):
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
             scope: ColumnElement[bool] | None = None) -> dict:
    """Validate proposals one by one or in batch. Out of scope or not "proposed" → skipped with why."""
    ids = list(dict.fromkeys(orientation_ids))
    q = select(Orientation).where(Orientation.id.in_(ids)).order_by(Orientation.decided_on, Orientation.id)
    if scope is not None:
        q = q.join(Person, Person.id == Orientation.person_id).where(scope)
    rows = {o.id: o for o in session.scalars(q)}
    assigner = Assigner(session)
    out = {"validated": [], "awaiting_capacity": [], "skipped": []}
    for oid in ids:
        o = rows.get(oid)
        if o is None:
            out["skipped"].append({"id": oid, "reason": "décision inconnue ou hors de votre périmètre"})
        elif o.status != "proposed":
            out["skipped"].append({"id": oid, "reason": f"statut {o.status}: seule une proposition se valide"})
        elif o.structure_id is None:
            out["skipped"].append({"id": oid, "reason": "aucune structure: utiliser une modification"})
        elif _validate_row(session, o, as_of, assigner, user_id, "agent"):
            out["validated"].append(oid)
        else:
            out["awaiting_capacity"].append(oid)
    return out


def queue_ids(session: Session, scope=None, **filters) -> list[int]:
    q = _queue_filter(select(Orientation.id), scope, filters.pop("status", "proposed"), filters.get("mds_id"),
                      filters.get("territory_id"), filters.get("referent_type"), filters.get("rule_id"),
                      filters.get("structure_id"))
    return list(session.scalars(q.order_by(Orientation.id)))


def override(session: Session, orientation_id: int, user_id: int | None, referent_type: str, reason: str,
             as_of: dt.date, structure_id: int | None = None, scope: ColumnElement[bool] | None = None) -> Orientation:
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
    original.status = "overridden"
    session.flush()
    new = record_orientation(session, original.person_id, referent_type, origin="agent", decided_on=as_of,
                             structure_id=structure_id, user_id=user_id, reason=reason, status="validated",
                             path_id=original.path_id)
    new.supersedes_id, new.override_reason = original.id, reason.strip()
    add_event(session, original.person_id, "orientation.overridden", as_of, "agent",
              f"Proposition {REFERENT_LABELS.get(original.referent_type, original.referent_type)} modifiée en "
              f"{REFERENT_LABELS[referent_type]}: {reason.strip()}",
              {"orientation_id": original.id, "new_orientation_id": new.id, "reason": reason.strip()},
              path_id=original.path_id, author_id=user_id)
    session.flush()
    return new


# --- réorientation ------------------------------------------------------------------------------

def request_reorientation(session: Session, person_id: int, user_id: int | None, reason: str, as_of: dt.date,
                          wanted_referent_type: str | None = None,
                          wanted_structure_id: int | None = None) -> ReorientationRequest:
    if not reason or not reason.strip():
        raise OrientationError("le motif de la demande de réorientation est obligatoire")
    if wanted_referent_type is not None and wanted_referent_type not in REFERENT_TYPES:
        raise OrientationError(f"type de référent inconnu: {wanted_referent_type!r}")
    if session.get(Person, person_id) is None:
        raise LookupError(f"personne {person_id} inconnue")
    if session.scalar(select(ReorientationRequest.id).where(ReorientationRequest.person_id == person_id,
                                                            ReorientationRequest.status == "pending")):
        raise OrientationError("une demande de réorientation est déjà en attente pour cette personne")
    current = session.scalar(select(Orientation).where(Orientation.person_id == person_id,
                                                       Orientation.status == "validated")
                             .order_by(Orientation.id.desc()).limit(1))
    req = ReorientationRequest(person_id=person_id, orientation_id=current.id if current else None,
                               requested_by=user_id, requested_on=as_of, reason=reason.strip(),
                               wanted_referent_type=wanted_referent_type, wanted_structure_id=wanted_structure_id)
    session.add(req)
    session.flush()
    add_event(session, person_id, "orientation.reorientation_requested", as_of, "agent",
              f"Demande de réorientation: {reason.strip()}",
              {"request_id": req.id, "wanted_referent_type": wanted_referent_type},
              path_id=current.path_id if current else _open_path_id(session, person_id), author_id=user_id)
    return req


def decide_reorientation(session: Session, request_id: int, user_id: int | None, accept: bool, as_of: dt.date,
                         reason: str | None = None, referent_type: str | None = None,
                         structure_id: int | None = None) -> ReorientationRequest:
    req = session.get(ReorientationRequest, request_id)
    if req is None:
        raise LookupError(f"demande {request_id} inconnue")
    if req.status != "pending":
        raise OrientationError(f"demande déjà traitée ({req.status})")
    req.decided_by, req.decided_on, req.decision_reason = user_id, as_of, (reason or "").strip() or None
    if accept:
        rtype = referent_type or req.wanted_referent_type
        if rtype is None:
            raise OrientationError("le type de référent de la nouvelle orientation est requis")
        new = record_orientation(session, req.person_id, rtype, origin="reorientation", decided_on=as_of,
                                 structure_id=structure_id or req.wanted_structure_id, user_id=user_id,
                                 reason=req.reason, status="validated")
        req.status, req.new_orientation_id = "accepted", new.id
        kind, summary = "orientation.reorientation_accepted", f"Réorientation acceptée: {REFERENT_LABELS[rtype]}"
    else:
        if not req.decision_reason:
            raise OrientationError("le motif du refus est obligatoire")
        req.status = "refused"
        kind, summary = "orientation.reorientation_refused", f"Réorientation refusée: {req.decision_reason}"
    add_event(session, req.person_id, kind, as_of, "agent", summary, {"request_id": req.id},
              path_id=_open_path_id(session, req.person_id), author_id=user_id)
    session.flush()
    return req


def reorientation_requests(session: Session, status: str | None = "pending",
                           scope: ColumnElement[bool] | None = None) -> list[dict]:
    q = select(ReorientationRequest).join(Person, Person.id == ReorientationRequest.person_id)
    if status:
        q = q.where(ReorientationRequest.status == status)
    if scope is not None:
        q = q.where(scope)
    return [reorientation_as_dict(r) for r in session.scalars(q.order_by(ReorientationRequest.id))]


def reorientation_as_dict(r: ReorientationRequest) -> dict:
    return {"id": r.id, "person_id": r.person_id, "orientation_id": r.orientation_id, "requested_by": r.requested_by,
            "requested_on": r.requested_on, "reason": r.reason, "wanted_referent_type": r.wanted_referent_type,
            "wanted_structure_id": r.wanted_structure_id, "status": r.status, "decided_on": r.decided_on,
            "decision_reason": r.decision_reason, "new_orientation_id": r.new_orientation_id}


# --- deadlines ---------------------------------------------------------------------------------

def deadline_level(days: int) -> str:
    if days >= LEGAL_DAYS:
        return "past_limit"
    if days >= 35:
        return "d35"
    if days >= 21:
        return "d21"
    return "ok"


def deadlines(session: Session, as_of: dt.date, scope: ColumnElement[bool] | None = None,
              level: str | None = None) -> list[dict]:
    """Every person to orient with the clock: target (D+30), legal limit (D+42), days elapsed, level."""
    q = to_orient_query(as_of)
    if scope is not None:
        q = q.where(scope)
    rows = {r.id: r for r in session.execute(q)}
    latest = _latest_decisions(session, list(rows))
    out = []
    for pid, r in rows.items():
        days = (as_of - r.clock_start).days
        lvl = deadline_level(days)
        if level and lvl != level:
            continue
        d = latest.get(pid)
        out.append({"person_id": pid, "path_id": r.path_id, "clock_start": r.clock_start,
                    "target_on": r.clock_start + dt.timedelta(days=TARGET_DAYS),
                    "legal_on": r.clock_start + dt.timedelta(days=LEGAL_DAYS), "days": days, "level": lvl,
                    "mds_id": r.mds_id, "decision_status": d[1] if d else None,
                    "decision_origin": d[2] if d else None})
    out.sort(key=lambda x: (-x["days"], x["person_id"]))
    return out


def _latest_decisions(session: Session, person_ids: list[int]) -> dict[int, tuple]:
    out = {}
    for chunk in chunks(person_ids):
        for row in session.execute(select(Orientation.person_id, Orientation.status, Orientation.origin,
                                          Orientation.decided_on, Orientation.id)
                                   .where(Orientation.person_id.in_(chunk))
                                   .order_by(Orientation.person_id, Orientation.decided_on, Orientation.id)):
            out[row.person_id] = tuple(row)
    return out


def check_deadlines(session: Session, as_of: dt.date) -> dict:
    """Daily: alerts at D+21 and D+35, D+42 flagged past the legal limit; at D+35 a person whose
    kiosque invitation failed is proposed to the MDS (the law's default)."""
    from kiosque.models import Invitation

    refresh_statistics(session)
    items = deadlines(session, as_of)
    existing = set(session.scalars(select(Alert.key).where(Alert.kind.in_(
        ("orientation.d21", "orientation.d35", "orientation.past_limit")))))
    new_alerts, counts = [], Counter()
    for it in items:
        for threshold, kind, sev, msg in (
                (21, "orientation.d21", "info", "non orientée à J+21 (objectif: J+30)"),
                (35, "orientation.d35", "warning", "non orientée à J+35 (limite légale: J+42)"),
                (LEGAL_DAYS, "orientation.past_limit", "critical", "délai légal de 42 jours dépassé")):
            if it["days"] >= threshold:
                key = f"{kind}:{it['path_id']}"
                counts[kind] += 1
                if key not in existing:
                    existing.add(key)
                    new_alerts.append(_alert(key, kind, f"Personne {it['person_id']} {msg} "
                                             f"(délai démarré le {it['clock_start'].isoformat()})", as_of,
                                             it["person_id"], it["mds_id"], {"days": it["days"],
                                                                             "legal_on": it["legal_on"].isoformat()},
                                             severity=sev))
    _bulk_insert(session, Alert, new_alerts)
    # The law's default: not oriented at D+35 and the kiosque invitation failed → proposed to the MDS.
    late = {it["person_id"]: it for it in items if it["days"] >= 35
            and not (it["decision_status"] in PENDING and it["decision_origin"] == "default_mds")}
    defaulted = []
    if late:
        failed = set()
        for chunk in chunks(list(late)):
            failed.update(session.scalars(select(Invitation.person_id).where(
                Invitation.person_id.in_(chunk),
                or_(Invitation.status == "absent", Invitation.phoning_outcome.in_(FAILED_PHONING)))))
        assigner = Assigner(session)
        for pid in sorted(failed):
            o = record_orientation(session, pid, "mds", origin="default_mds", decided_on=as_of,
                                   status="proposed", path_id=late[pid]["path_id"], assigner=assigner,
                                   reason="non orientée à J+35 et invitation au Kiosque Insertion sans suite: "
                                          "orientation par défaut vers la MDS (information manquante du fait "
                                          "de la personne)")
            defaulted.append(o.id)
    session.flush()
    return {"as_of": as_of.isoformat(), "to_orient": len(items), "d21": counts["orientation.d21"],
            "d35": counts["orientation.d35"], "past_limit": counts["orientation.past_limit"],
            "alerts_raised": len(new_alerts), "default_mds": len(defaulted)}


# --- explanation ---------------------------------------------------------------------------------

def _structure_code(session: Session, sid: int | None) -> str | None:
    return session.scalar(select(Structure.code).where(Structure.id == sid)) if sid else None


def history(session: Session, person_id: int) -> list[dict]:
    rows = session.execute(select(Orientation, Structure.code).outerjoin(Structure,
                                                                          Structure.id == Orientation.structure_id)
                           .where(Orientation.person_id == person_id).order_by(Orientation.id)).all()
    return [{"id": o.id, "referent_type": o.referent_type, "structure": code, "status": o.status,
             "origin": o.origin, "rule": o.rule_id, "rule_set_version": o.rule_set_version, "mode": o.mode,
             "algorithmic": o.algorithmic, "decided_on": o.decided_on, "validated_on": o.validated_on,
             "ended_on": o.ended_on, "end_reason": o.end_reason, "override_reason": o.override_reason,
             "explanation": o.explanation, "facts": o.facts} for o, code in rows]


def explain(session: Session, person_id: int, as_of: dt.date) -> dict:
    """Why the person is (or would be) oriented as they are, in plain French, with the facts."""
    if session.get(Person, person_id) is None:
        raise LookupError(f"personne {person_id} inconnue")
    hist = history(session, person_id)
    live = [h for h in hist if h["status"] not in ("superseded", "overridden", "ended", "refused")]
    current = live[-1] if live else None
    row, spec = active_rule_set(session)
    facts = build_facts(session, [person_id], as_of)[person_id]
    decision = spec.compile(as_of).evaluate(facts)
    simulation = {"rule": decision.rule.id, "label": decision.rule.label, "referent_type": decision.rule.outcome,
                  "variant": decision.variant, "mode": decision.rule.mode, "rule_set_version": row.version,
                  "explanation": explain_decision(decision.rule, decision.variant, row.version, facts,
                                                  decision.facts_read),
                  "facts": snapshot(facts, decision.facts_read)}
    rule_label = None
    if current and current["rule"]:
        old = get_rule_set(session, current["rule_set_version"]) if current["rule_set_version"] else None
        r = spec_of(old).rule(current["rule"]) if old else None
        rule_label = r.label if r else None
    return {"person_id": person_id, "as_of": as_of.isoformat(), "current": current, "rule_label": rule_label,
            "explanation": current["explanation"] if current else None,
            "rules_today": simulation, "history": hist}


def current_orientation_summary(session: Session, person_id: int) -> dict | None:
    """The current (validated) orientation for `rsa cases show`, or None."""
    row = session.execute(select(Orientation, Structure.code)
                          .outerjoin(Structure, Structure.id == Orientation.structure_id)
                          .where(Orientation.person_id == person_id, Orientation.status == "validated")
                          .order_by(Orientation.validated_on.desc(), Orientation.id.desc()).limit(1)).first()
    if row is None:
        return None
    o, code = row
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


# --- demo ----------------------------------------------------------------------------------------

def demo(ctx) -> dict:
    """`rsa demo`: orient the imported persons and explain one decision in French."""
    with ctx.runtime.session() as s:
        result = run(s, ctx.as_of)
    d = result["decisions"]
    ctx.echo(f"[orientation] {result['considered']} personne(s) à orienter (règles v{result['rule_set_version']}): "
             + ", ".join(f"{REFERENT_LABELS[k]}: {v}" for k, v in d.items()))
    ctx.echo(f"[orientation] {result['validated']} validée(s) d'office, {result['proposed']} proposition(s) à "
             f"valider, {result['kiosque']} invitation(s) au kiosque, {result['unsectorised']} hors "
             f"sectorisation, {result['awaiting_capacity']} en attente de place")
    with ctx.runtime.session() as s:
        o = s.scalar(select(Orientation).where(Orientation.algorithmic.is_(True), Orientation.structure_id.is_not(None))
                     .order_by(Orientation.id).limit(1)) or s.scalar(
            select(Orientation).where(Orientation.algorithmic.is_(True)).order_by(Orientation.id).limit(1))
        if o is not None:
            ctx.echo(f"[orientation] exemple (personne {o.person_id}): {o.explanation}")
            result["example"] = {"person_id": o.person_id, "explanation": o.explanation}
    return result


__all__ = ["RuleSetError", "VARIANT_LABELS", "record_orientation", "run", "validate", "override", "explain",
           "current_orientation_summary", "check_deadlines", "deadlines", "queue", "request_reorientation",
           "decide_reorientation"]
