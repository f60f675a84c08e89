"""The paths' denormalised outcome (Path.oriented_*): maintained by orientation.service without any
refresh, and equal to the full recompute orientation.outcomes.refresh_path_outcomes."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner
from sqlalchemy import select, update

from cases.models import Path
from orientation import jobs
from orientation import outcomes as path_outcomes
from orientation import service as orientation
from orientation.models import Orientation
from referents.models import Structure
from tests.factories import make_person
from tests.rules_helpers import use_rules_v1

AS_OF = dt.date(2026, 11, 20)
COLUMNS = (Path.oriented_on, Path.oriented_referent_type, Path.oriented_origin, Path.oriented_rule)


def outcomes(session) -> dict[int, tuple]:
    """person id → (oriented_on, referent type, origin, rule), read from the database."""
    return {r[0]: tuple(r[1:]) for r in session.execute(select(Path.person_id, *COLUMNS))}


def _population(session):
    """ATI with 3 places for 5 candidates (2 wait for capacity), 2 ActiPro proposals, 1 kiosque."""
    session.scalar(select(Structure).where(Structure.code == "ATI-TOULOUSE")).capacity = 3
    ati = [make_person(session, activities=[("ETI", dt.date(2025, 1, 1), None)], clock_start=dt.date(2026, 10, i))
           for i in range(1, 6)]
    proposed = [make_person(session, activities=[("SSA", dt.date(2025, 1, 1), None)]) for _ in range(2)]
    kiosque = make_person(session)
    session.flush()
    return ati, proposed, kiosque


def test_orientation_service_maintains_the_path_outcome(session):
    use_rules_v1(session)
    ati, proposed, kiosque = _population(session)
    orientation.run(session, AS_OF)  # bulk auto-validations
    seen = outcomes(session)
    validated = [p for p in ati if seen[p.id][0] is not None]
    waiting = [p for p in ati if seen[p.id][0] is None]
    assert len(validated) == 3 and len(waiting) == 2
    for p in validated:
        rule = session.scalar(select(Orientation.rule_id).where(Orientation.person_id == p.id))
        assert seen[p.id] == (AS_OF, "ati", "auto", rule) and rule
    assert all(seen[p.id] == (None, None, None, None) for p in (*proposed, kiosque))

    # validation of proposals from the queue (_validate_row)
    ids = orientation.queue_ids(session, referent_type="actipro")
    orientation.validate(session, ids, user_id=None, as_of=dt.date(2026, 11, 23))
    seen = outcomes(session)
    assert {seen[p.id][:3] for p in proposed} == {(dt.date(2026, 11, 23), "actipro", "auto")}

    # a kiosque outcome (record_orientation, validated), then a reorientation: the first one stays
    orientation.record_orientation(session, kiosque.id, "actipro", origin="kiosque", decided_on=dt.date(2026, 11, 24))
    orientation.record_orientation(session, kiosque.id, "mds", origin="agent", decided_on=dt.date(2026, 11, 26))
    assert outcomes(session)[kiosque.id] == (dt.date(2026, 11, 24), "actipro", "kiosque", None)

    # a place frees up: the promoted decision from awaiting_capacity marks its path
    closing = session.scalar(select(Path).where(Path.person_id == validated[0].id))
    closing.closed_on, closing.close_reason = dt.date(2026, 11, 25), "ECH"
    session.flush()
    assert orientation.run(session, dt.date(2026, 11, 27))["promoted"] == 1
    seen = outcomes(session)
    assert sorted(seen[p.id][0] or dt.date.max for p in waiting) == [dt.date(2026, 11, 27), dt.date.max]
    assert seen[validated[0].id][0] == AS_OF  # closing the path does not erase its outcome

    # everything the service wrote is exactly what the full recompute finds
    assert path_outcomes.refresh_path_outcomes(session) == 0
    assert outcomes(session) == seen


def test_refresh_recomputes_what_the_service_maintained(session):
    use_rules_v1(session)
    ati, proposed, kiosque = _population(session)
    orientation.run(session, AS_OF)
    orientation.validate(session, orientation.queue_ids(session, referent_type="actipro"), user_id=None,
                         as_of=dt.date(2026, 11, 23))
    maintained = outcomes(session)
    assert sum(1 for v in maintained.values() if v[0] is not None) == 5

    session.execute(update(Path).values(**{c.key: None for c in COLUMNS}))
    assert path_outcomes.refresh_path_outcomes(session) == 5
    assert outcomes(session) == maintained

    # a write that bypassed the service (an earlier validated decision inserted by hand, a validated
    # decision deleted) is repaired by the refresh, and only those paths change
    path_id = session.scalar(select(Path.id).where(Path.person_id == proposed[0].id))
    session.add(Orientation(person_id=proposed[0].id, path_id=path_id, referent_type="pole_emploi", origin="agent",
                            status="superseded", decided_on=dt.date(2026, 11, 2), validated_on=dt.date(2026, 11, 2)))
    session.execute(update(Orientation).where(Orientation.person_id == proposed[1].id)
                    .values(status="proposed", validated_on=None))  # a validation undone in SQL
    assert path_outcomes.refresh_path_outcomes(session) == 2
    seen = outcomes(session)
    assert seen[proposed[0].id] == (dt.date(2026, 11, 2), "pole_emploi", "agent", None)
    assert seen[proposed[1].id] == (None, None, None, None)
    assert path_outcomes.refresh_path_outcomes(session) == 0


def test_refresh_job_and_cli(rt, database_url):
    from config.cli import main

    with rt.session() as s:
        p = make_person(s)
        path_id = s.scalar(select(Path.id).where(Path.person_id == p.id))
        s.add(Orientation(person_id=p.id, path_id=path_id, referent_type="mds", origin="agent", status="validated",
                          decided_on=AS_OF, validated_on=AS_OF))
    job = next(j for j in jobs.JOBS if j.id == "orientation.refresh_path_outcomes")
    assert job.func(rt, AS_OF) == {"paths_changed": 1}
    result = CliRunner().invoke(main, ["--database-url", database_url, "report", "refresh", "--json"])
    assert result.exit_code == 0, result.output
    assert '"paths_changed": 0' in result.output
    with rt.session() as s:
        assert outcomes(s)[p.id] == (AS_OF, "mds", "agent", None)
