"""Kiosque planning for 10,000 persons awaiting a kiosque over the 30 MDS, on SQLite and PostgreSQL.

Each MDS holds one weekly kiosque of 40 seats over the next 8 weeks (9,600 seats for 10,000
people: some MDS run short, so the neighbour / late / shortfall branches run too). Persons have
e-mail, mobile or only a postal address. The planner writes invitations, timeline events, outbox
messages and alerts; the time includes the commit. Target: < 10 s. --quick: 1,000 persons.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time

from sqlalchemy import delete, func, insert, select

from bench.harness import BenchContext, Row
from config.db import Base
from config.modules import import_models
from config.runtime import build_runtime
from config.settings import Settings

AS_OF = dt.date(2026, 11, 20)
TARGET_S = 10.0


def _populate(rt, n: int) -> None:
    from cases.models import Household, Path, Person
    from kiosque.models import KiosqueSession
    from orientation.models import Orientation
    from referents.models import Structure

    rnd = random.Random(7)
    now = dt.datetime(2026, 11, 20, 6, 0)
    with rt.session() as s:
        mds = [(i, t) for i, t in s.execute(select(Structure.id, Structure.territory_id)
                                            .where(Structure.kind == "mds").order_by(Structure.id))]
        households, persons, paths, orientations = [], [], [], []
        for i in range(1, n + 1):
            mds_id, territory = mds[rnd.randrange(len(mds))]
            start = AS_OF - dt.timedelta(days=rnd.randint(0, 20))
            contact = rnd.random()
            households.append({"id": i, "organism": "CAF", "matricule": f"K{i:014d}", "right_state": "2",
                               "mds_id": mds_id, "territory_id": territory, "no_fixed_address": False,
                               "postal_code": "31000", "city": "Toulouse", "address_line": f"{i} rue du Banc",
                               "created_at": now, "updated_at": now})
            persons.append({"id": i, "household_id": i, "role": "DEM", "last_name": f"NOM{i}", "first_name": "Alex",
                            "sdd": True, "pseudonymised": False, "legal_clock_start": start,
                            "email": f"p{i}@exemple.fr" if contact < 0.5 else None,
                            "phone": "+33612345678" if 0.3 < contact < 0.8 else None,
                            "created_at": now, "updated_at": now})
            paths.append({"id": i, "person_id": i, "household_id": i, "clock_start": start, "request_date": start,
                          "opening_reason": "entry", "created_at": now, "mds_id": mds_id,
                          "territory_id": territory})
            orientations.append({"id": i, "person_id": i, "path_id": i, "referent_type": "kiosque",
                                 "mode": "kiosque", "origin": "auto", "status": "kiosque", "algorithmic": True,
                                 "decided_on": start + dt.timedelta(days=1), "created_at": now})
        for model, rows in ((Household, households), (Person, persons), (Path, paths), (Orientation, orientations)):
            for k in range(0, len(rows), 5000):
                s.execute(insert(model), rows[k:k + 5000])
        sessions = []
        for mds_id, _ in mds:
            for week in range(8):
                day = AS_OF + dt.timedelta(days=4 + 7 * week)  # Tuesdays
                sessions.append({"mds_id": mds_id, "starts_at": dt.datetime.combine(day, dt.time(9, 30)),
                                 "place": "Salle du kiosque", "capacity": max(1, 40 * n // 10_000),
                                 "status": "planned", "created_at": now})
        s.execute(insert(KiosqueSession), sessions)


def _reset(rt) -> None:
    from cases.models import Alert, CaseEvent
    from kiosque.models import Invitation, Message

    with rt.session() as s:
        for model in (Message, CaseEvent, Invitation, Alert):
            s.execute(delete(model))


def run(ctx: BenchContext) -> list[Row]:
    from kiosque import service
    from kiosque.models import Invitation
    from referents.service import load_reference_data

    n = 1_000 if ctx.quick else 10_000
    rows: list[Row] = []
    for backend in ctx.backends:
        url, cleanup = ctx.fresh_database(backend)
        try:
            import_models()
            rt = build_runtime(Settings.from_env(env={}).with_(database_url=url))
            Base.metadata.create_all(rt.engine)
            with rt.session() as s:
                load_reference_data(s)
            _populate(rt, n)
            times, result = [], None
            for _ in range(ctx.repeat):
                _reset(rt)
                t0 = time.perf_counter()
                with rt.session() as s:
                    result = service.plan(s, AS_OF)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with rt.session() as s:
                again = service.plan(s, AS_OF)
            rerun = time.perf_counter() - t0
            with rt.session() as s:
                invited = s.scalar(select(func.count(Invitation.id)))
            rt.dispose()
        finally:
            cleanup()
        elapsed = statistics.median(times)
        rows += [
            Row("kiosque", backend, f"plan {n:,} persons / 30 MDS", elapsed, "s", f"< {TARGET_S:g} s",
                elapsed < TARGET_S),
            Row("kiosque", backend, "planning throughput", n / elapsed, "persons/s"),
            Row("kiosque", backend, "invitations given", invited, "seats"),
            Row("kiosque", backend, "seats missing before deadline", sum(result.shortfalls.values()), "persons"),
            Row("kiosque", backend, "second run (adds nothing)", rerun, "s", "0 added", again.invited == 0),
        ]
    return rows
