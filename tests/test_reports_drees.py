"""Issue 19: the indicators as the official tables count them — the DREES delay (DTDEMRSA → first
orientation) counts each person's first orientation once, whatever their transfer or reopening
paths; a path closed without orientation before D+42 is shown apart, not as a failure. Expected
figures computed by hand below; both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.models import Path
from orientation import outcomes
from orientation.models import Orientation
from reports import indicators as ind
from reports import service
from reports.indicators import ReportFilter
from tests.factories import make_person

D = dt.date
AS_OF = D(2026, 11, 20)


def _orient(session, path: Path, validated_on: dt.date, referent_type: str = "mds") -> None:
    session.add(Orientation(person_id=path.person_id, path_id=path.id, referent_type=referent_type, origin="auto",
                            status="validated", rule_id="R1", decided_on=validated_on, validated_on=validated_on))
    session.flush()
    outcomes.refresh_path_outcomes(session)


def _second_path(session, person, clock_start, request_date, reason) -> Path:
    path = Path(person_id=person.id, household_id=person.household_id, clock_start=clock_start,
                request_date=request_date, opening_reason=reason)
    session.add(path)
    session.flush()
    return path


def _world(session):
    """P: entry path closed (transfer out) 28 days after the request, unoriented; transfer-in path
    with the same DTDEMRSA oriented on 04-21. Q: oriented 14 days after the request, exit, then a
    reopening path with a new request oriented 9 days later."""
    p = make_person(session, clock_start=D(2026, 3, 1), request_date=D(2026, 2, 20))
    first_p = session.scalar(select(Path).where(Path.person_id == p.id))
    first_p.closed_on, first_p.close_reason = D(2026, 3, 20), "transfer_out"
    second_p = _second_path(session, p, D(2026, 4, 1), D(2026, 2, 20), "transfer_in")
    _orient(session, second_p, D(2026, 4, 21))
    q = make_person(session, clock_start=D(2026, 3, 5), request_date=D(2026, 3, 1))
    first_q = session.scalar(select(Path).where(Path.person_id == q.id))
    _orient(session, first_q, D(2026, 3, 15))
    first_q.closed_on, first_q.close_reason = D(2026, 5, 1), "exit:employment_permanent"
    second_q = _second_path(session, q, D(2026, 6, 1), D(2026, 6, 1), "reopening")
    _orient(session, second_q, D(2026, 6, 10), "pole_emploi")
    session.flush()
    return p, q


def test_transfer_and_reopening_paths_counted_once_in_the_drees_delay(session):
    p, q = _world(session)
    report = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    demande = report["clocks"]["demande"]
    # One row per person: P from 02-20 to 04-21 (60 days), Q from 03-01 to 03-15 (14 days).
    assert (demande["cohort_size"], demande["oriented"]) == (2, 2)
    assert demande["mean_days"] == 37.0 and demande["median_days"] == 37.0
    assert demande["closed_before_legal_delay"] == 0
    assert demande["denominators"]["42"] == 2 and demande["share_within_42"] == 0.5
    # The legal clock restarts on each path: P's transfer-in (20 days), Q's two paths (10 and 9 days);
    # P's first path, closed unoriented 19 days after its start, is shown apart.
    legal = report["clocks"]["legal"]
    assert (legal["cohort_size"], legal["oriented"], legal["closed_before_legal_delay"]) == (3, 3, 1)
    assert legal["mean_days"] == round((20 + 10 + 9) / 3, 1)
    cohort = ind.persons_behind(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)), "cohort", clock="demande")
    assert sorted(r["person_id"] for r in cohort) == sorted([p.id, q.id])


def test_unoriented_person_counted_once_and_early_closure_apart(session):
    # R: two paths (a transfer), never oriented, the latest still open: one failure, not two.
    r = make_person(session, clock_start=D(2026, 5, 1), request_date=D(2026, 4, 25))
    first_r = session.scalar(select(Path).where(Path.person_id == r.id))
    first_r.closed_on = D(2026, 5, 20)
    _second_path(session, r, D(2026, 6, 1), D(2026, 4, 25), "transfer_in")
    # S: closed without orientation 50 days after the clock start: a failure, not apart.
    s = make_person(session, clock_start=D(2026, 5, 1), request_date=D(2026, 5, 1))
    session.scalar(select(Path).where(Path.person_id == s.id)).closed_on = D(2026, 6, 20)
    session.flush()
    report = service.delays(session, ReportFilter(as_of=AS_OF, start=D(2026, 1, 1)))
    demande, legal = report["clocks"]["demande"], report["clocks"]["legal"]
    assert (demande["cohort_size"], demande["oriented"], demande["closed_before_legal_delay"]) == (2, 0, 0)
    assert demande["share_within_42"] == 0.0 and demande["denominators"]["42"] == 2
    # Legal: R's first path closed 19 days after its start → apart; R's open path and S are failures.
    assert (legal["cohort_size"], legal["closed_before_legal_delay"]) == (2, 1)
    assert legal["denominators"]["42"] == 2 and legal["share_within_42"] == 0.0
