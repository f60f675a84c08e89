"""The next due date stored on the path (issue 21 item 5): equal to _due_dates' after each kind of
write, the "my people" lists sorted and paged in SQL in the order the Python sort gave, and the
nightly reconciliation repairing a wrong stored value."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from cases import followup
from cases import service as cs
from cases.models import Path
from config import clock
from tests.factories import make_person
from tests.test_cases import manager, orient, user_of

D = dt.date
TODAY = D(2026, 11, 20)


def stored(session, person_id):
    """(next_due_on, next_due, next_due_as_of) of the person's open path, None when no path is open."""
    return session.execute(select(Path.next_due_on, Path.next_due, Path.next_due_as_of)
                           .where(Path.person_id == person_id, Path.closed_on.is_(None))).one_or_none()


def computed(session, person_id, day):
    due = followup._due_dates(session, [person_id], day)[person_id]
    return (D.fromisoformat(due["next_due_on"]) if due["next_due_on"] else None, due["next_due"], day)


def test_the_stored_due_date_follows_each_kind_of_write(session, today):
    p = make_person(session, commune="31395", postal_code="31600", clock_start=D(2026, 9, 1))
    seen = []

    def check(expected_kind):
        session.commit()  # the hooks write in the writer's transaction, before its commit
        row = stored(session, p.id)
        assert tuple(row) == computed(session, p.id, today)
        path = session.scalar(select(Path).where(Path.person_id == p.id, Path.closed_on.is_(None)))
        assert followup.stored_due(path, today) == followup._due_dates(session, [p.id], today)[p.id]  # the terms too
        assert row.next_due == expected_kind
        seen.append((row.next_due, row.next_due_on))

    check(None)  # a new path: nothing due yet
    orient(session, p, "MDS-MURET", "mds", D(2026, 11, 2), notified_on=D(2026, 11, 4))
    check("contract")  # the notice starts the contract's month
    assert seen[-1][1] == D(2026, 12, 4)
    appt = cs.record_appointment(session, p.id, dt.datetime(2026, 11, 27, 9), "planned", source="agent")
    check("appointment")
    cs.update_appointment_status(session, appt.id, "cancelled", source="agent")
    check("contract")
    cs.record_contract(session, p.id, D(2026, 11, 19), source="agent")
    check("review")  # signed on a social path: its review is due in 6 months
    review_due = seen[-1][1]
    sanction = cs.record_breach(session, p.id, D(2026, 11, 19), "Rendez-vous non honorés", source="agent")
    cs.record_observations(session, sanction.id, D(2026, 11, 19), "Aucune observation", source="agent")
    cs.decide_sanction(session, sanction.id, D(2026, 11, 20), rate_percent=30, duration_months=1, source="agent")
    check("suspension_end")
    assert seen[-1][1] < review_due
    cs.lift_sanction(session, sanction.id, D(2026, 11, 20), source="agent", cause="complied")
    check("review")
    # a bulk write that goes round the unit of work says so (orientation and imports do)
    session.execute(update(Path).where(Path.person_id == p.id).values(next_due_on=None, next_due=None))
    cs.touch_due(session, [p.id])
    check("review")
    cs.record_exit(session, p.id, D(2026, 11, 20), "transfer", source="agent")
    session.commit()
    assert stored(session, p.id) is None
    assert session.execute(select(Path.next_due_on, Path.next_due, Path.next_due_as_of)
                           .where(Path.person_id == p.id)).one() == (None, None, None)  # cleared when closed


def _reference(session, user, as_of, structure_id=None):
    """The previous behaviour: every person's due dates computed, sorted in Python."""
    ids = followup._scoped_open_ids(session, user, followup._mine(structure_id))
    due = followup._due_dates(session, ids, as_of)
    names = followup._names(session, ids)
    rows = [followup._listed(names[i], **due[i]) for i in ids]
    rows.sort(key=lambda r: (r["next_due_on"] is None, r["next_due_on"] or "", r["last_name"] or "", r["person_id"]))
    return rows


def _caseload(session):
    """A dozen people of one MDS: equal due dates under names that sort differently by collation,
    appointments that pass, a suspension, nobody due, a closed path."""
    people = []
    names = ["ÉVRARD", "EVRARD", "ZOLA", "evrard", "DE LA ROSE", "DELAROSE", "MARTIN", "Ñandú", "AZIZ", "BÉBÉ",
             "MARTIN", "OLIVE"]
    for k, name in enumerate(names):
        p = make_person(session, commune="31395", postal_code="31600", last_name=name, clock_start=D(2026, 9, 1))
        people.append(p)
        if k % 4 != 3:  # a quarter never oriented: nothing due
            orient(session, p, "MDS-MURET", "mds", D(2026, 10, 1 + k % 3), notified_on=D(2026, 10, 1 + k % 3))
        if k % 3 == 0:
            cs.record_appointment(session, p.id, dt.datetime(2026, 11, 21 + k, 9), "planned", source="agent")
        if k == 5:
            cs.record_contract(session, p.id, D(2026, 11, 2), source="agent")
        if k == 6:
            s = cs.record_breach(session, p.id, D(2026, 11, 3), "Contrat refusé", source="agent")
            cs.record_observations(session, s.id, D(2026, 11, 5), "Aucune observation", source="agent")
            cs.decide_sanction(session, s.id, D(2026, 11, 10), rate_percent=30, duration_months=1, source="agent")
    cs.record_exit(session, people[-1].id, D(2026, 11, 15), "transfer", source="agent")
    session.commit()
    return people


@pytest.mark.parametrize("allowance", [200, 1])  # 1: more rows to compute than one query brings
@pytest.mark.parametrize("as_of", [D(2026, 11, 10), TODAY, D(2026, 11, 26), D(2027, 2, 1)])
def test_my_people_pages_equal_the_python_sort(session, today, as_of, allowance, monkeypatch):
    monkeypatch.setattr(followup, "STALE_ALLOWANCE", allowance)
    people = _caseload(session)
    # some rows never computed, one computed for a later day: the list computes them again
    session.execute(update(Path).where(Path.person_id.in_([people[1].id, people[4].id]))
                    .values(next_due_on=None, next_due=None, next_due_as_of=None))
    session.execute(update(Path).where(Path.person_id == people[2].id).values(next_due_as_of=D(2027, 6, 1)))
    session.commit()
    mds = user_of(session, "mds_worker", "MDS-MURET")
    valid = session.scalar(select(Path.id).where(Path.closed_on.is_(None), followup.stored_due_is_valid(as_of))
                           .limit(1))
    assert (valid is not None) == (as_of >= TODAY)  # from today on, rows are read from the stored dates
    for user, structure_id in ((mds, None), (mds, mds.structure_id), (manager(), None)):
        expected = _reference(session, user, as_of, structure_id)
        assert len(expected) >= 6
        assert followup.my_people(session, user, as_of, structure_id=structure_id) == expected
        late = [r for r in expected if r["contract_overdue"]]
        assert late or as_of < D(2026, 11, 1)
        assert structure_id is not None or [(r["person_id"], r["contract_due_on"]) for r in followup.overdue_contracts(session, user, as_of)] \
            == sorted(((r["person_id"], r["contract_due_on"]) for r in late), key=lambda x: (x[1], x[0]))
        for offset, limit in ((0, 3), (3, 3), (6, 4), (9, 5), (10, 100), (20, 5)):
            count, page = cs.my_people_page(session, user, as_of, structure_id=structure_id, offset=offset,
                                            limit=limit)
            assert count == len(expected)
            assert page == expected[offset:offset + limit]


@pytest.mark.parametrize("as_of", [D(2026, 11, 10), TODAY, D(2026, 11, 22), D(2026, 11, 26), D(2027, 2, 1)])
def test_the_person_file_reads_the_stored_terms_when_they_hold(session, today, as_of):
    """The person file's due dates come from the values stored on the path when they hold for the
    day, and equal the computed ones on every day: before the day they were computed for (computed
    again), on it, and after appointments and a suspension have passed (computed again)."""
    people = _caseload(session)
    from_store = 0
    for p in people:
        path = session.scalar(select(Path).where(Path.person_id == p.id, Path.closed_on.is_(None)))
        expected = followup._due_dates(session, [p.id], as_of).get(p.id, followup._empty_due())
        assert cs.next_due_dates(session, p.id, as_of, path) == expected
        if path is not None:
            assert cs.person_detail(session, p, role="mds_worker", vault=_Vault(), as_of=as_of).due == expected
            from_store += followup.stored_due(path, as_of) is not None
    if as_of < TODAY:
        assert from_store == 0  # computed for a later day: never read
    elif as_of == TODAY:
        assert from_store == len(people) - 1  # every open path (one is closed)
    else:
        assert 0 < from_store < len(people) - 1  # passed appointments: those computed again


class _Vault:
    def decrypt(self, value):
        return None


def test_my_people_reads_the_uncommitted_writes_of_its_session(session, today):
    p, q = (make_person(session, commune="31395", postal_code="31600", last_name=n) for n in ("A", "B"))
    session.commit()
    cs.record_appointment(session, q.id, dt.datetime(2026, 11, 24, 9), "planned", source="agent")
    mds = user_of(session, "mds_worker", "MDS-MURET")
    assert [r["person_id"] for r in cs.my_people_page(session, mds, TODAY, limit=1)[1]] == [q.id]
    assert stored(session, q.id).next_due == "appointment"
    session.commit()
    orient(session, p, "MDS-MURET", "mds", D(2026, 10, 1), notified_on=D(2026, 10, 1))  # not committed
    assert [r["person_id"] for r in cs.overdue_contracts(session, mds, TODAY)] == [p.id]


def test_the_nightly_reconciliation_repairs_wrong_stored_values(session, today, rt):
    people = _caseload(session)
    assert followup.refresh_next_due(session, TODAY) == 0  # the hooks kept everything in step
    wrong, passed = people[0], people[3]
    session.execute(update(Path).where(Path.person_id == wrong.id)
                    .values(next_due_on=D(2030, 1, 1), next_due="review", next_due_as_of=TODAY))
    session.execute(update(Path).where(Path.person_id == people[-1].id)
                    .values(next_due_on=D(2030, 1, 1), next_due="review", next_due_as_of=TODAY))  # closed path
    session.commit()
    assert tuple(stored(session, wrong.id)) != computed(session, wrong.id, TODAY)
    later = D(2026, 12, 1)  # people[3]'s appointment of 24/11 has passed
    before = stored(session, passed.id)
    assert before.next_due == "appointment" and before.next_due_on < later
    changed = followup.refresh_next_due(session, later, chunk=5)
    session.commit()
    assert changed >= 3
    for p in people[:-1]:
        row = stored(session, p.id)
        assert (row.next_due_on, row.next_due) == computed(session, p.id, later)[:2]
        assert row.next_due_as_of <= later
    assert tuple(stored(session, passed.id)) == computed(session, passed.id, later)
    assert session.execute(select(Path.next_due_on, Path.next_due_as_of)
                           .where(Path.person_id == people[-1].id)).one() == (None, None)
    assert followup.refresh_next_due(session, later) == 0


def test_the_reconciliation_is_a_nightly_job(rt, today):
    from cases import jobs

    job = next(j for j in jobs.JOBS if j.id == "cases.refresh_next_due")
    assert job.func(rt, TODAY) == {"paths_changed": 0}


def test_the_follow_up_page_pages_my_people_in_due_date_order(rt, client, make_user, monkeypatch):
    """The page shows one page of the caseload at a time, in the list's order, with links to the others."""
    import re

    from cases import pages
    from tests.test_screens import HTML, PASSWORD, _login

    monkeypatch.setattr(pages, "PAGE_ROWS", 2)
    with rt.session() as s:
        for name in ("TROIS", "UN", "DEUX", "AUCUN"):
            p = make_person(s, commune="31395", postal_code="31600", last_name=name, clock_start=D(2026, 9, 1))
            if name != "AUCUN":  # contracts due on the 1st, 2nd and 3rd of November
                day = D(2026, 10, {"UN": 1, "DEUX": 2, "TROIS": 3}[name])
                orient(s, p, "MDS-MURET", "mds", day, notified_on=day)
        s.commit()
        expected = [r["last_name"] for r in cs.my_people(s, user_of(s, "mds_worker", "MDS-MURET"), clock.today(),
                                                         structure_id=user_of(s, "mds_worker", "MDS-MURET").structure_id)]
    assert expected == ["UN", "DEUX", "TROIS"]
    user, _ = make_user("mds_worker", structure_code="MDS-MURET", password=PASSWORD)
    _login(client, user)
    shown = []
    for page in (1, 2):
        html = client.get(f"/suivi?page={page}", headers=HTML).get_data(as_text=True)
        assert "3 personnes" in html
        assert "<td>Contrat à signer</td>" in html and "<td>contract</td>" not in html  # the label, not the code
        shown += re.findall(r'<th scope="row"><a href="/personnes/\d+">([^<]+)</a>', html)
        assert ('rel="next"' in html) == (page == 1) and ('rel="prev"' in html) == (page == 2)
    assert shown == expected
