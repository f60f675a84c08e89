"""No N+1 on the list endpoints: the number of SQL statements does not grow with the rows listed.

Each endpoint is called with 5 then 50 persons in the user's scope (each with a validated
orientation, a pending proposal, appointments, a pending contract, a review due and a kiosque
invitation); the statements are counted on the engine (`before_cursor_execute`) and must be equal.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.models import Appointment, Contract, Household, Path, Review
from kiosque.models import Invitation, KiosqueSession
from orientation.models import Orientation
from referents.models import Structure
from tests.factories import make_person

AS_OF = dt.date(2026, 11, 20)


def _add_persons(rt, count: int, kiosque_session_id: int | None) -> tuple[int, int]:
    """`count` persons of one MDS sector with a full follow-up; returns (mds id, kiosque session id)."""
    with rt.session() as s:
        mds_id = None
        for k in range(count):
            person = make_person(s, clock_start=AS_OF - dt.timedelta(days=120), last_name=f"LISTE{k:03d}")
            mds_id = s.get(Household, person.household_id).mds_id
            path_id = s.scalar(select(Path.id).where(Path.person_id == person.id))
            decided = AS_OF - dt.timedelta(days=90)
            s.add(Orientation(person_id=person.id, path_id=path_id, referent_type="mds", structure_id=mds_id,
                              status="validated", decided_on=decided, validated_on=decided, notified_on=decided))
            s.add(Orientation(person_id=person.id, path_id=path_id, referent_type="actipro", structure_id=mds_id,
                              status="proposed", decided_on=AS_OF - dt.timedelta(days=2)))
            s.add(Appointment(person_id=person.id, path_id=path_id, structure_id=mds_id, status="planned",
                              scheduled_at=dt.datetime.combine(AS_OF - dt.timedelta(days=5), dt.time(10))))
            if k % 2:
                s.add(Appointment(person_id=person.id, path_id=path_id, structure_id=mds_id, status="planned",
                                  scheduled_at=dt.datetime.combine(AS_OF + dt.timedelta(days=5), dt.time(10))))
            contract = Contract(person_id=person.id, path_id=path_id, status="pending",
                                due_on=AS_OF - dt.timedelta(days=10))
            s.add(contract)
            s.flush()
            s.add(Review(person_id=person.id, contract_id=contract.id, due_on=AS_OF + dt.timedelta(days=3)))
            if kiosque_session_id is None:
                ks = KiosqueSession(mds_id=mds_id, starts_at=dt.datetime.combine(AS_OF + dt.timedelta(days=7),
                                                                                 dt.time(9)),
                                    place="MDS", capacity=100)
                s.add(ks)
                s.flush()
                kiosque_session_id = ks.id
            s.add(Invitation(person_id=person.id, session_id=kiosque_session_id, invited_on=AS_OF))
        s.commit()
    return mds_id, kiosque_session_id


def _endpoints(kiosque_session_id: int) -> list[tuple[str, str, str | None]]:
    """(role, url, key holding the listed rows) for every list endpoint checked."""
    q = f"as_of={AS_OF.isoformat()}"
    lists = ("my-people", "overdue-contracts", "reviews-due", "appointments-to-update", "without-appointment")
    return ([("manager", "/api/v1/persons?q=liste&per_page=100", "items"),
             ("mds_worker", "/api/v1/persons?q=liste&per_page=100", "items")]
            + [("mds_worker", f"/api/v1/cases/lists/{name}?{q}&days=30", "items") for name in lists]
            + [("manager", f"/api/v1/cases/lists/my-people?{q}", "items"),
               ("mds_worker", "/api/v1/orientation/queue?limit=200", "items"),
               ("mds_worker", f"/api/v1/kiosque/sessions/{kiosque_session_id}/invitations", None)])


def _measure(client, counter, headers, endpoints) -> dict[str, tuple[int, int]]:
    """Per endpoint: (statements issued, rows listed)."""
    out = {}
    for role, url, key in endpoints:
        client.get(url, headers=headers[role])  # warm-up: first-use lookups do not count
        counter.clear()
        resp = client.get(url, headers=headers[role])
        assert resp.status_code == 200, (url, resp.status_code, resp.get_json())
        body = resp.get_json()
        out[f"{role} {url}"] = (len(counter), len(body[key] if key else body))
    return out


def test_list_endpoints_issue_the_same_queries_for_5_and_50_persons(rt, client, make_user, counter):
    mds_id, ks_id = _add_persons(rt, 5, None)
    with rt.session() as s:
        mds_code = s.scalar(select(Structure.code).where(Structure.id == mds_id))
    headers = {"manager": make_user("manager")[1], "mds_worker": make_user("mds_worker", mds_code)[1]}
    endpoints = _endpoints(ks_id)

    small = _measure(client, counter, headers, endpoints)
    _add_persons(rt, 45, ks_id)
    large = _measure(client, counter, headers, endpoints)

    for name, (queries, rows) in small.items():
        big_queries, big_rows = large[name]
        assert big_rows > rows, f"{name}: the list did not grow ({rows} → {big_rows}); the check proves nothing"
        assert big_queries == queries, f"{name}: {queries} statements for {rows} rows, {big_queries} for {big_rows}"
    # the lists that hold everybody really hold the 5, then the 50
    assert small["manager /api/v1/persons?q=liste&per_page=100"][1] == 5
    assert large["mds_worker /api/v1/persons?q=liste&per_page=100"][1] == 50
