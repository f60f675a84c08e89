"""The legal deadlines of orientation: who is late (J+21, J+35, past the 42 days of the law), the
daily alerts, and the law's default to the MDS for a person whose earlier step failed (through the
signal orientation.signals.failed_prior_step: kiosque answers it)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from cases.models import Alert
from orientation.facts import chunks
from orientation.models import Orientation
from orientation.service import (
    Assigner,
    alert_row,
    bulk_insert,
    record_orientation,
    refresh_statistics,
    to_orient_query,
)
from orientation.signals import failed_prior_step
from orientation.vocabulary import PENDING
from referents.vocabulary import LEGAL_DAYS, TARGET_DAYS, OrientationStatus, Origin

ALERT_DAYS = (21, 35, LEGAL_DAYS)  # J+21 (information), J+35 (warning; the MDS default), the legal limit


def deadline_level(days: int) -> str:
    d21, d35, legal = ALERT_DAYS
    if days >= legal:
        return "past_limit"
    if days >= d35:
        return "d35"
    if days >= d21:
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
                    new_alerts.append(alert_row(key, kind, f"Personne {it['person_id']} {msg} "
                                             f"(délai démarré le {it['clock_start'].isoformat()})", as_of,
                                             it["person_id"], it["mds_id"], {"days": it["days"],
                                                                             "legal_on": it["legal_on"].isoformat()},
                                             severity=sev))
    bulk_insert(session, Alert, new_alerts)
    # The law's default: not oriented at D+35 and the kiosque invitation failed → proposed to the MDS.
    late = {it["person_id"]: it for it in items if it["days"] >= 35
            and not (it["decision_status"] in PENDING and it["decision_origin"] == Origin.DEFAULT_MDS)}
    defaulted = []
    if late:
        failed = set()
        for _receiver, ids in failed_prior_step.send(session, person_ids=list(late)):
            failed.update(ids or ())
        assigner = Assigner(session)
        for pid in sorted(failed):
            o = record_orientation(session, pid, "mds", origin=Origin.DEFAULT_MDS, decided_on=as_of,
                                   status=OrientationStatus.PROPOSED, path_id=late[pid]["path_id"],
                                   assigner=assigner,
                                   reason="non orientée à J+35 et invitation au Kiosque Insertion sans suite: "
                                          "orientation par défaut vers la MDS (information manquante du fait "
                                          "de la personne)")
            defaulted.append(o.id)
    session.flush()
    return {"as_of": as_of.isoformat(), "to_orient": len(items), "d21": counts["orientation.d21"],
            "d35": counts["orientation.d35"], "past_limit": counts["orientation.past_limit"],
            "alerts_raised": len(new_alerts), "default_mds": len(defaulted)}
