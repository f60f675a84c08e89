"""Bulk population for the scale benchmarks: N persons with history, straight into the database.

Streams rows (never the whole population in memory) into PostgreSQL with COPY, or SQLite with
executemany in one transaction. Each person: a household sectorised over the real MDS, one path
(15 % closed), ~80 % oriented (structure chosen by referent type, 10 % with a superseded first
decision), 2–5 timeline events, 0–2 appointments. Ids are 1..N for household/person/path, so a
benchmark can pick persons by id.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

AS_OF = dt.date(2026, 11, 20)
REFERENT_TYPES = ("pole_emploi", "actipro", "ati", "mds")
ORIGINS = ("auto", "auto", "auto", "agent", "kiosque", "default_mds")
LAST_NAMES = ("MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
              "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL",
              "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT",
              "MULLER", "LEFEVRE", "FAURE", "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER", "GARNIER",
              "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT",
              "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU", "GAUTIER", "MASSON", "SANCHEZ", "NGUYEN",
              "BOURGEOIS", "BENOIT", "RENAUD", "DUMAS", "LOPEZ", "MARTINEZ", "BRUN", "ESTEBAN")
# Surname = a common stem + an ending: 1,500 surnames, so that one name matches ~0.07 % of the
# population (a département's real long tail), not the 1/60 of the stems alone.
ENDINGS = ("", "ON", "EAU", "IER", "AND", "OT", "IN", "EL", "AS", "ARD", "ET", "OU", "AC", "ES", "AUD", "Y",
           "OUX", "ENS", "AT", "IS", "ANT", "ERT", "OL", "ICK", "A")
FIRST_NAMES = ("Camille", "Léa", "Manon", "Inès", "Chloé", "Sarah", "Lucas", "Hugo", "Nathan", "Théo",
               "Yanis", "Karim", "Fatima", "Aïcha", "Jérôme", "Hélène", "Noémie", "Loïc", "Amine", "Zoé")
EVENT_KINDS = ("flow_entry", "right_state", "orientation", "notification", "appointment", "contract")

COLUMNS = {
    "household": ("id", "organism", "matricule", "right_state", "dtdemrsa", "mds_id", "territory_id",
                  "commune_insee", "no_fixed_address", "created_at", "updated_at"),
    "person": ("id", "household_id", "role", "last_name", "birth_name", "first_name", "birth_date", "sdd",
               "pseudonymised", "legal_clock_start", "created_at", "updated_at"),
    "path": ("id", "person_id", "household_id", "clock_start", "request_date", "opening_reason", "closed_on",
             "created_at", "oriented_on", "oriented_referent_type", "oriented_origin", "oriented_rule",
             "territory_id", "mds_id"),
    "orientation": ("id", "person_id", "path_id", "referent_type", "structure_id", "mode", "origin", "status",
                    "algorithmic", "decided_on", "validated_on", "notified_on", "rule_id", "created_at"),
    "case_event": ("id", "person_id", "path_id", "occurred_on", "kind", "source", "summary", "recorded_at"),
    "appointment": ("id", "person_id", "path_id", "structure_id", "scheduled_at", "kind", "status", "source",
                    "created_at"),
}


def last_name(rnd: random.Random) -> str:
    return LAST_NAMES[rnd.randrange(len(LAST_NAMES))] + ENDINGS[rnd.randrange(len(ENDINGS))]


def structures(session) -> dict[str, list[tuple[int, int | None]]]:
    """(id, territory_id) of the reference structures by kind."""
    from sqlalchemy import select

    from referents.models import Structure

    out: dict[str, list[tuple[int, int | None]]] = {}
    for sid, kind, territory in session.execute(select(Structure.id, Structure.kind, Structure.territory_id)
                                                .order_by(Structure.id)):
        out.setdefault(kind, []).append((sid, territory))
    return out


def generate(n: int, by_kind: dict[str, list[tuple[int, int | None]]], seed: int = 31,
             chunk: int = 20_000) -> Iterator[dict[str, list[tuple]]]:
    """Yield chunks {table: rows} for persons 1..n (deterministic for a seed)."""
    rnd = random.Random(seed)
    now = dt.datetime(2026, 11, 20, 8, 0)
    mds = by_kind["mds"]
    oid = eid = aid = 0
    tables: dict[str, list[tuple]] = {name: [] for name in COLUMNS}
    for i in range(1, n + 1):
        mds_id, territory_id = mds[i % len(mds)]
        start = AS_OF - dt.timedelta(days=rnd.randint(0, 729))
        request = start - dt.timedelta(days=rnd.randint(0, 40))
        closed = start + dt.timedelta(days=rnd.randint(60, 700)) if rnd.random() < 0.15 else None
        if closed is not None and closed > AS_OF:
            closed = None
        last = last_name(rnd)
        tables["household"].append((i, "CAF", f"B{i:014d}", "2", request, mds_id, territory_id, "31555", False,
                                    now, now))
        tables["person"].append((i, i, "DEM", last, last, FIRST_NAMES[rnd.randrange(len(FIRST_NAMES))],
                                 dt.date(1960, 1, 1) + dt.timedelta(days=rnd.randint(0, 16_000)), True, False,
                                 start, now, now))
        outcome = (None, None, None, None)  # the path's first validated orientation (Path.oriented_*)
        events = [(start, "flow_entry", "flow")]
        if rnd.random() < 0.8:
            decided = start + dt.timedelta(days=int(rnd.expovariate(1 / 35)))
            if decided <= AS_OF:
                rt = REFERENT_TYPES[rnd.randrange(4)]
                pool = by_kind.get(rt) or mds
                structure_id = mds_id if rt == "mds" else pool[rnd.randrange(len(pool))][0]
                origin = ORIGINS[rnd.randrange(len(ORIGINS))]
                if rnd.random() < 0.1:  # a first decision later superseded by a reorientation
                    oid += 1
                    rule = f"R{rnd.randrange(12)}"
                    tables["orientation"].append((oid, i, i, rt, structure_id, "auto", "auto", "superseded", True,
                                                  decided, decided, decided, rule, now))
                    outcome = (decided, rt, "auto", rule)
                    decided = min(decided + dt.timedelta(days=rnd.randint(30, 200)), AS_OF)
                    origin = "reorientation"
                oid += 1
                rule = f"R{rnd.randrange(12)}"
                tables["orientation"].append((oid, i, i, rt, structure_id, "auto", origin,
                                              "ended" if closed else "validated", True, decided, decided, decided,
                                              rule, now))
                if outcome[0] is None:
                    outcome = (decided, rt, origin, rule)
                events += [(decided, "orientation", "job"), (decided, "notification", "job")]
                for _ in range(rnd.choice((0, 1, 1, 2))):
                    at = dt.datetime.combine(decided + dt.timedelta(days=rnd.randint(3, 60)), dt.time(9, 30))
                    aid += 1
                    status = "planned" if at.date() >= AS_OF else rnd.choice(("honoured", "honoured", "no_show"))
                    tables["appointment"].append((aid, i, i, structure_id, at, "first", status, "agent", now))
                    events.append((at.date(), "appointment", "agent"))
        tables["path"].append((i, i, i, start, request, "entry", closed, now, *outcome, territory_id, mds_id))
        if rnd.random() < 0.3:
            events.append((start + dt.timedelta(days=rnd.randint(1, 200)), "right_state", "flow"))
        for on, kind, source in events:
            eid += 1
            tables["case_event"].append((eid, i, i, min(on, AS_OF), kind, source, "", now))
        if i % chunk == 0 or i == n:
            yield tables
            tables = {name: [] for name in COLUMNS}


def _sqlite_value(v):
    if isinstance(v, dt.datetime):
        return v.isoformat(" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def load(engine, backend: str, n: int, by_kind, seed: int = 31) -> dict[str, int]:
    """Generate and load n persons with history in one transaction; ANALYZE; row counts per table."""
    counts = dict.fromkeys(COLUMNS, 0)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for tables in generate(n, by_kind, seed):
            for name, rows in tables.items():
                cols = COLUMNS[name]
                counts[name] += len(rows)
                if not rows:
                    continue
                if backend == "postgresql":
                    with cur.copy(f'COPY "{name}" ({", ".join(cols)}) FROM STDIN') as copy:
                        for r in rows:
                            copy.write_row(r)
                else:
                    cur.executemany(f'INSERT INTO "{name}" ({", ".join(cols)}) '
                                    f'VALUES ({", ".join("?" * len(cols))})',
                                    [tuple(_sqlite_value(v) for v in r) for r in rows])
        if backend == "postgresql":  # ids were given explicitly: move the sequences past them
            for name in COLUMNS:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                            f"(SELECT COALESCE(MAX(id), 1) FROM \"{name}\"))")
        raw.commit()
        if backend == "postgresql":
            raw.driver_connection.autocommit = True  # VACUUM runs outside a transaction
            cur = raw.cursor()
            cur.execute("VACUUM ANALYZE")
        else:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        if backend == "postgresql":
            raw.driver_connection.autocommit = False
        raw.close()
    return counts



def create(rt, backend: str, n: int) -> tuple[dict, dict[str, int], float]:
    """A fresh benchmark database: schema, reference data, then n persons with history.
    Returns (structures by kind, row counts, seconds spent generating and loading)."""
    import time

    from config.db import Base
    from config.modules import import_models
    from referents.service import load_reference_data

    import_models()
    Base.metadata.create_all(rt.engine)
    with rt.session() as s:
        load_reference_data(s)
        by_kind = structures(s)
    t0 = time.perf_counter()
    counts = load(rt.engine, backend, n, by_kind)
    return by_kind, counts, time.perf_counter() - t0
