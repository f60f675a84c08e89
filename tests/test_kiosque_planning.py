"""Kiosque sessions, templates and the invitation planner."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from cases.models import Alert, CaseEvent, Path
from kiosque import service as ks
from kiosque.models import Invitation, KiosqueSession, Message
from tests.kiosque_helpers import AS_OF, awaiting, kiosque, mds_id

D = dt.timedelta


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def seats(session, session_id):
    return session.scalar(select(func.count(Invitation.id)).where(Invitation.session_id == session_id,
                                                                   Invitation.status != "cancelled"))


def test_generation_skips_public_holidays_and_closures(session):
    rangueil = mds_id(session, "MDS-RANGUEIL")
    ks.create_template(session, mds_id=rangueil, weekday=4, start_time=dt.time(9, 30), capacity=12)
    ks.add_closure(session, dt.date(2026, 12, 11), "formation de l'équipe", mds_id=rangueil)
    ks.add_closure(session, dt.date(2026, 12, 4), "fermeture d'une autre MDS", mds_id=mds_id(session, "MDS-CENTRE"))
    out = ks.generate_sessions(session, dt.date(2026, 12, 1), dt.date(2027, 1, 10))
    days = sorted(s.starts_at.date() for s in session.scalars(select(KiosqueSession)))
    # Fridays: 4, 11 (closure), 18, 25 (Noël), 1 Jan (Jour de l'an), 8 Jan.
    assert days == [dt.date(2026, 12, 4), dt.date(2026, 12, 18), dt.date(2027, 1, 8)]
    reasons = {s["day"]: s["reason"] for s in out["skipped"]}
    assert "férié" in reasons[dt.date(2026, 12, 25)] and "férié" in reasons[dt.date(2027, 1, 1)]
    assert "fermeture" in reasons[dt.date(2026, 12, 11)]
    assert all(s.capacity == 12 and s.starts_at.time() == dt.time(9, 30) for s in session.scalars(select(KiosqueSession)))
    again = ks.generate_sessions(session, dt.date(2026, 12, 1), dt.date(2027, 1, 10))
    assert again["created"] == 0 and count(session, KiosqueSession) == 3


def test_global_closure_and_validity(session):
    rangueil = mds_id(session, "MDS-RANGUEIL")
    ks.create_template(session, mds_id=rangueil, weekday=1, start_time=dt.time(14, 0),
                       valid_until=dt.date(2026, 12, 20))
    ks.add_closure(session, dt.date(2026, 12, 8), "séminaire départemental")
    out = ks.generate_sessions(session, dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    assert out["created"] == 2  # 1 and 15 Dec; 8 closed everywhere; 22 and 29 past validity


def test_capacity_never_exceeded_and_deadline_first(session):
    s1 = kiosque(session, "MDS-RANGUEIL", AS_OF + D(7), capacity=2)
    s2 = kiosque(session, "MDS-RANGUEIL", AS_OF + D(14), capacity=2)
    late = awaiting(session, clock_start=AS_OF - D(5), email="a@x.fr")
    urgent = awaiting(session, clock_start=AS_OF - D(30), email="b@x.fr")
    middle = awaiting(session, clock_start=AS_OF - D(20), email="c@x.fr")
    tie_a = awaiting(session, clock_start=AS_OF - D(10), email="d@x.fr")
    result = ks.plan(session, AS_OF)
    assert result.invited == 4
    seat = {i.person_id: i.session_id for i in session.scalars(select(Invitation))}
    assert seat[urgent.id] == s1.id and seat[middle.id] == s1.id
    assert seat[tie_a.id] == s2.id and seat[late.id] == s2.id
    assert seats(session, s1.id) <= s1.capacity and seats(session, s2.id) <= s2.capacity
    # One more person: no seat left anywhere in the territory → unplanned, not over capacity.
    awaiting(session, clock_start=AS_OF - D(1), email="e@x.fr")
    again = ks.plan(session, AS_OF)
    assert again.unplanned == 1 and again.invited == 0
    assert seats(session, s1.id) == 2 and seats(session, s2.id) == 2


def test_notice_period_depends_on_channels(session):
    soon = kiosque(session, "MDS-RANGUEIL", AS_OF + D(3))
    later = kiosque(session, "MDS-RANGUEIL", AS_OF + D(6))
    by_letter = awaiting(session, clock_start=AS_OF - D(30))
    by_sms = awaiting(session, clock_start=AS_OF - D(10), phone="+33612345678")
    by_mail = awaiting(session, clock_start=AS_OF - D(10), email="m@x.fr")
    landline_only = awaiting(session, clock_start=AS_OF - D(10), phone="+33561000000")
    too_close = kiosque(session, "MDS-RANGUEIL", AS_OF + D(1))
    ks.plan(session, AS_OF)
    seat = {i.person_id: i.session_id for i in session.scalars(select(Invitation))}
    assert seat[by_letter.id] == later.id  # 5 days for a letter even though it is the most urgent
    assert seat[by_sms.id] == soon.id and seat[by_mail.id] == soon.id  # 2 days when digital
    assert seat[landline_only.id] == later.id  # a landline receives no SMS
    assert too_close.id not in seat.values()
    channels = {(m.person_id, m.channel) for m in session.scalars(select(Message))}
    assert channels == {(by_letter.id, "letter"), (by_sms.id, "sms"), (by_mail.id, "email"),
                        (landline_only.id, "letter")}


def test_neighbour_mds_then_late_seat_and_shortfall_alert(session):
    rangueil = mds_id(session, "MDS-RANGUEIL")
    kiosque(session, "MDS-RANGUEIL", AS_OF + D(7), capacity=2)
    empalot = kiosque(session, "MDS-EMPALOT", AS_OF + D(8), capacity=1)  # same territory (Toulouse)
    kiosque(session, "MDS-MURET", AS_OF + D(5), capacity=50)  # another territory: never used
    after = kiosque(session, "MDS-RANGUEIL", AS_OF + D(21), capacity=10)
    # Deadlines (clock start + 42 days) from AS_OF+10 to AS_OF+14: all after the first sessions.
    persons = [awaiting(session, clock_start=AS_OF - D(32) + D(i), email=f"p{i}@x.fr") for i in range(5)]
    result = ks.plan(session, AS_OF)
    assert (result.own_mds, result.neighbour_mds, result.after_deadline) == (2, 1, 2)
    assert result.shortfalls == {rangueil: 3}
    alert = session.scalar(select(Alert).where(Alert.kind == "kiosque.capacity_shortfall"))
    assert alert.structure_id == rangueil and alert.data["missing"] == 3 and "3 place" in alert.message
    seat = {i.person_id: i.session_id for i in session.scalars(select(Invitation))}
    # The two most urgent at home, then the neighbour MDS, then the session after the deadline.
    assert seat[persons[2].id] == empalot.id
    assert seat[persons[3].id] == seat[persons[4].id] == after.id
    assert result.alerts_raised == 1


def test_planning_twice_adds_nothing(session):
    kiosque(session, "MDS-RANGUEIL", AS_OF + D(7), capacity=1)
    for i in range(3):
        awaiting(session, clock_start=AS_OF - D(30 - i), phone="+33700000001")
    first = ks.plan(session, AS_OF)
    session.commit()
    before = (count(session, Invitation), count(session, Message), count(session, CaseEvent), count(session, Alert))
    second = ks.plan(session, AS_OF)
    after = (count(session, Invitation), count(session, Message), count(session, CaseEvent), count(session, Alert))
    assert first.invited == 1 and second.invited == 0 and before == after
    assert session.scalar(select(Alert)).data["missing"] == 2


def test_who_is_to_invite(session):
    kiosque(session, "MDS-RANGUEIL", AS_OF + D(7))
    kio = awaiting(session, clock_start=AS_OF - D(10))
    stale = awaiting(session, clock_start=AS_OF - D(20), status="proposed", decided_on=AS_OF - D(8))
    fresh = awaiting(session, clock_start=AS_OF - D(20), status="proposed", decided_on=AS_OF - D(3))
    mds_default = awaiting(session, clock_start=AS_OF - D(20), status="proposed", decided_on=AS_OF - D(30),
                           origin="default_mds")
    validated = awaiting(session, clock_start=AS_OF - D(20), status="validated")
    closed = awaiting(session, clock_start=AS_OF - D(20))
    session.scalar(select(Path).where(Path.person_id == closed.id)).closed_on = AS_OF - D(1)
    ks.plan(session, AS_OF)
    invited = set(session.scalars(select(Invitation.person_id)))
    assert invited == {kio.id, stale.id}
    assert not invited & {fresh.id, mds_default.id, validated.id, closed.id}
    events = {e.person_id: e.kind for e in session.scalars(select(CaseEvent))}
    assert events == {kio.id: "kiosque.invited", stale.id: "kiosque.invited"}


def test_cancelled_session_frees_people_for_replanning(session):
    s1 = kiosque(session, "MDS-RANGUEIL", AS_OF + D(7))
    s2 = kiosque(session, "MDS-RANGUEIL", AS_OF + D(9))
    p = awaiting(session, clock_start=AS_OF - D(10), email="c@x.fr")
    ks.plan(session, AS_OF)
    ks.cancel_session(session, s1)
    assert session.scalar(select(Message)).status == "cancelled"
    ks.plan(session, AS_OF)
    pending = session.scalar(select(Invitation).where(Invitation.status == "pending"))
    assert pending.person_id == p.id and pending.session_id == s2.id


def test_capacity_cannot_drop_below_booked(session):
    s1 = kiosque(session, "MDS-RANGUEIL", AS_OF + D(7))
    for i in range(3):
        awaiting(session, clock_start=AS_OF - D(10 + i), email=f"x{i}@x.fr")
    ks.plan(session, AS_OF)
    with pytest.raises(ks.KiosqueError):
        ks.update_session(session, s1, capacity=2)
    ks.update_session(session, s1, capacity=3)
    assert s1.capacity == 3


def test_overdue_person_is_invited_without_counting_a_shortfall(session):
    own = kiosque(session, "MDS-RANGUEIL", AS_OF + D(7), capacity=5)
    overdue = awaiting(session, clock_start=AS_OF - D(50), email="o@x.fr")  # deadline 8 days ago
    result = ks.plan(session, AS_OF)
    assert (result.overdue, result.after_deadline, result.shortfalls) == (1, 1, {})
    assert session.scalar(select(Invitation.session_id).where(Invitation.person_id == overdue.id)) == own.id
    assert session.scalar(select(Alert)) is None
