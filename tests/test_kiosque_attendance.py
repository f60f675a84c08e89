"""Attendance and outcome: kiosque orientation, first appointment, no-shows, funnel."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cases.models import Appointment, CaseEvent
from kiosque import service as ks
from kiosque.models import Invitation
from orientation.models import Orientation
from tests.kiosque_helpers import AS_OF, awaiting, kiosque, mds_id

D = dt.timedelta


def events(session, person_id):
    return [e.kind for e in session.scalars(select(CaseEvent).where(CaseEvent.person_id == person_id)
                                            .order_by(CaseEvent.id))]


def test_present_person_leaves_oriented_with_an_appointment(session):
    s = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    p = awaiting(session, clock_start=AS_OF - D(10), email="a@x.fr")
    ks.plan(session, AS_OF)
    inv = session.scalar(select(Invitation))
    at = dt.datetime(2026, 12, 8, 14, 0)
    out = ks.record_attendance(session, inv.id, "present", referent_type="actipro", first_appointment_at=at)
    o = session.get(Orientation, out["orientation_id"])
    assert (o.status, o.origin, o.referent_type, o.decided_on) == ("validated", "kiosque", "actipro", s.starts_at.date())
    assert o.structure_id is not None  # from the sectorisation (ActiPro lot of Rangueil)
    appt = session.scalar(select(Appointment).where(Appointment.person_id == p.id))
    assert (appt.kind, appt.status, appt.scheduled_at, appt.source) == ("first", "planned", at, "kiosque")
    assert inv.status == "present" and inv.chosen_referent_type == "actipro" and s.status == "held"
    assert "kiosque.attended" in events(session, p.id)
    # Oriented: no longer invited.
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8))
    assert ks.plan(session, dt.date(2026, 12, 2)).candidates == 0
    with pytest.raises(ks.KiosqueError):
        ks.record_outcome(session, inv.id, "mds")


def test_outcome_can_follow_attendance(session):
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    awaiting(session, clock_start=AS_OF - D(10))
    ks.plan(session, AS_OF)
    inv = session.scalar(select(Invitation))
    with pytest.raises(ks.KiosqueError):
        ks.record_outcome(session, inv.id, "mds")  # not present yet
    ks.record_attendance(session, inv.id, "present")
    oid = ks.record_outcome(session, inv.id, "mds", structure_id=mds_id(session, "MDS-RANGUEIL"))
    assert session.get(Orientation, oid).structure_id == mds_id(session, "MDS-RANGUEIL")


def test_no_show_reinvited_once_then_proposed_to_the_mds(session):
    first = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    second = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8))
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 15))
    p = awaiting(session, clock_start=AS_OF - D(10), phone="+33612345678")
    ks.plan(session, AS_OF)
    inv1 = session.scalar(select(Invitation))
    assert inv1.session_id == first.id
    out = ks.record_attendance(session, inv1.id, "absent")
    inv2 = session.get(Invitation, out["reinvitation_ids"][0])
    assert (inv2.session_id, inv2.attempt, inv2.status) == (second.id, 2, "pending")
    assert "kiosque.reinvited" in events(session, p.id)
    out = ks.record_attendance(session, inv2.id, "absent", now=dt.datetime(2026, 12, 8, 18, 0))
    o = session.get(Orientation, out["default_mds_orientation_id"])
    assert (o.referent_type, o.origin, o.status, o.structure_id) == (
        "mds", "default_mds", "proposed", mds_id(session, "MDS-RANGUEIL"))
    assert o.decided_on == dt.date(2026, 12, 8)
    # No third invitation, now or later.
    assert ks.plan(session, dt.date(2026, 12, 9)).invited == 0
    assert ks.plan(session, dt.date(2026, 12, 30)).invited == 0
    assert len(session.scalars(select(Invitation)).all()) == 2
    assert events(session, p.id).count("kiosque.absent") == 2


def test_excused_person_is_invited_again_without_counting_a_no_show(session):
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8))
    awaiting(session, clock_start=AS_OF - D(10), email="e@x.fr")
    ks.plan(session, AS_OF)
    inv = session.scalar(select(Invitation))
    out = ks.record_attendance(session, inv.id, "excused")
    again = session.get(Invitation, out["reinvitation_ids"][0])
    assert again.attempt == 1 and again.status == "pending"
    with pytest.raises(ks.KiosqueError):
        ks.record_attendance(session, inv.id, "present")


def test_funnel_counts_people_per_session_mds_and_month(session):
    s1 = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    s2 = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8))
    people = [awaiting(session, clock_start=AS_OF - D(10), email=f"f{i}@x.fr") for i in range(4)]
    ks.plan(session, AS_OF)
    invs = {i.person_id: i for i in session.scalars(select(Invitation))}
    assert {i.session_id for i in invs.values()} == {s1.id}
    ks.record_phoning(session, invs[people[0].id].id, "will_come", on=AS_OF)
    ks.record_phoning(session, invs[people[1].id].id, "no_answer", on=AS_OF)
    ks.record_phoning(session, invs[people[2].id].id, "declined", on=AS_OF)
    ks.record_attendance(session, invs[people[0].id].id, "present", referent_type="pole_emploi")
    ks.record_attendance(session, invs[people[1].id].id, "present")
    ks.record_attendance(session, invs[people[2].id].id, "absent")  # re-invited to s2
    ks.record_attendance(session, invs[people[3].id].id, "absent")  # re-invited to s2
    rows = ks.funnel(session, start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 31), by="session")
    by_session = {r["session_id"]: r for r in rows}
    assert {k: by_session[s1.id][k] for k in ("invited", "reached", "attended", "oriented")} == \
        {"invited": 4, "reached": 2, "attended": 2, "oriented": 1}
    assert by_session[s2.id]["invited"] == 2
    # Per MDS and per month a person counts once even when invited twice.
    (mds_row,) = ks.funnel(session, start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 31), by="mds")
    assert (mds_row["invited"], mds_row["oriented"], mds_row["oriented_rate"]) == (4, 1, 0.25)
    (month,) = ks.funnel(session, start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 31), by="month")
    assert month["month"] == "2026-12" and month["invited"] == 4
    assert ks.funnel(session, start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 31),
                     mds_id=mds_id(session, "MDS-CENTRE")) == []


def test_a_batch_of_attendances_records_each_as_one_by_one(session):
    """record_attendances (one assigner, one refresh of the paths' outcomes) gives every person the
    decision, path outcome and re-invitation record_attendance gives them."""
    from cases.models import Path

    s1 = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    s2 = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8))
    people = [awaiting(session, clock_start=AS_OF - D(10), email=f"b{i}@x.fr") for i in range(4)]
    ks.plan(session, AS_OF)
    invs = {i.person_id: i for i in session.scalars(select(Invitation))}
    marks = [ks.AttendanceMark(invs[people[0].id].id, "present", "actipro"),
             ks.AttendanceMark(invs[people[1].id].id, "present", "mds"),
             ks.AttendanceMark(invs[people[2].id].id, "absent"),
             ks.AttendanceMark(invs[people[3].id].id, "excused")]
    out = ks.record_attendances(session, marks)
    assert [o["status"] for o in out] == ["present", "present", "absent", "excused"]
    for person, kind in ((people[0], "actipro"), (people[1], "mds")):
        o = session.scalar(select(Orientation).where(Orientation.person_id == person.id,
                                                     Orientation.status == "validated"))
        assert (o.origin, o.referent_type, o.decided_on) == ("kiosque", kind, s1.starts_at.date())
        assert o.structure_id is not None
        path = session.get(Path, o.path_id)
        session.refresh(path)
        assert (path.oriented_on, path.oriented_referent_type, path.oriented_origin) == \
            (s1.starts_at.date(), kind, "kiosque")
    for person in people[2:]:
        assert session.scalar(select(Orientation).where(Orientation.person_id == person.id,
                                                        Orientation.status == "validated")) is None
        (again,) = session.scalars(select(Invitation).where(Invitation.person_id == person.id,
                                                            Invitation.status == "pending")).all()
        assert again.session_id == s2.id
    assert ks.record_attendances(session, []) == []


def test_a_roll_call_re_invites_its_absents_in_one_planning_as_one_by_one(session):
    """The roll call's absent and excused persons are re-planned together (issue 20: one planning per
    roll call instead of one per person) and get exactly the seats that marking them one by one, in
    the order of the sheet, gave them: the scarce next session goes to the first marked, not to the
    oldest clock. The shortfall alert counts every person the roll call could not re-invite in time."""
    from cases.models import Alert

    first = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 1))
    second = kiosque(session, "MDS-RANGUEIL", dt.date(2026, 12, 8), capacity=3)
    persons = [awaiting(session, clock_start=AS_OF - D(10 + n), last_name=f"P{n}") for n in range(6)]
    ks.plan(session, AS_OF)
    by_person = {i.person_id: i for i in session.scalars(select(Invitation))}
    assert {i.session_id for i in by_person.values()} == {first.id}
    sheet = [persons[n].id for n in (4, 1, 5, 0, 3, 2)]  # the youngest clocks are not marked first
    statuses = ["absent", "excused", "absent", "absent", "excused", "absent"]
    now = dt.datetime(2026, 12, 1, 18, 0)

    def reinvitations():
        return sorted((i.person_id, i.session_id, i.attempt) for i in session.scalars(
            select(Invitation).where(Invitation.status == "pending")))

    nested = session.begin_nested()
    one_by_one = [ks.record_attendance(session, by_person[pid].id, st, now=now) for pid, st in zip(sheet, statuses, strict=True)]
    expected, expected_events = reinvitations(), sorted(
        (e.person_id, e.kind) for e in session.scalars(select(CaseEvent).where(CaseEvent.kind.like("kiosque.%"))))
    nested.rollback()
    session.expire_all()

    marks = [ks.AttendanceMark(by_person[pid].id, st) for pid, st in zip(sheet, statuses, strict=True)]
    batch = ks.record_attendances(session, marks, now=now)
    assert reinvitations() == expected
    assert sorted((e.person_id, e.kind) for e in session.scalars(
        select(CaseEvent).where(CaseEvent.kind.like("kiosque.%")))) == expected_events
    # The three seats of the next session went to the first three lines of the sheet.
    assert {pid for pid, sid, _ in expected if sid == second.id} == set(sheet[:3])
    assert [len(o["reinvitation_ids"]) for o in batch] == [len(o["reinvitation_ids"]) for o in one_by_one] \
        == [1, 1, 1, 0, 0, 0]
    alert = session.scalar(select(Alert).where(Alert.kind == "kiosque.capacity_shortfall"))
    assert alert.data["missing"] == 3 and "3 place(s) manquante(s)" in alert.message
