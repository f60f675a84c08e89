"""record_exits, the batch form of record_exit (issue 21 item 2: the re-import's closures): the same
database state as record_exit called for each item in turn — exits, paths, ended orientations and
contracts, resolved alerts, timeline events, stored due dates — on a set of persons covering the
edge cases (already exited by the flow or by a provider, no path, a closed path, two open paths,
the same person twice), and the same refusals, with nothing written by a refused batch."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from cases import followup
from cases import service as cs
from cases.models import Alert, CaseEvent, Contract, Exit, Path
from orientation.models import Orientation
from tests.factories import make_person
from tests.test_cases import orient

D = dt.date
TODAY = D(2026, 12, 20)


def _world(session) -> dict[str, int]:
    """Persons in every situation an exit meets; committed, so that each run can be rolled back."""
    w = {}
    # open path, current orientation, a pending and a signed contract, open alerts
    p = make_person(session, clock_start=D(2026, 6, 1))
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 6, 20), notified_on=D(2026, 6, 22))
    cs.record_contract(session, p.id, D(2026, 7, 10), source="agent", as_of=TODAY)
    session.add(Contract(person_id=p.id, path_id=cs.open_path(session, p.id).id, kind="engagement",
                         status="pending", due_on=D(2026, 12, 1), source="agent"))
    for key, kind in ((f"contract_overdue:{p.id}:1", "contract_overdue"), (f"review_due:{p.id}:9", "review_due"),
                      (f"sanction_due:{p.id}:1", "sanction_due")):
        cs.raise_alert(session, key, kind, "test", D(2026, 11, 1), person_id=p.id)
    w["oriented"] = p.id
    # open path, no current orientation; the path's earlier orientation (ended) gives the structure
    p = make_person(session, clock_start=D(2026, 5, 1))
    o = orient(session, p, "MDS-MURET", "mds", D(2026, 5, 20))
    o.status = "ended"
    w["ended_orientation"] = p.id
    # exited by a provider: the flow confirms it (once)
    p = make_person(session, clock_start=D(2026, 4, 1))
    orient(session, p, "ACTIPRO-TLS-EST", "actipro", D(2026, 4, 20))
    cs.record_exit(session, p.id, D(2026, 9, 15), "employment_permanent", source="provider", as_of=TODAY)
    w["provider_exit"] = p.id
    # exited by the flow: the flow again changes nothing, a provider qualifies it
    p = make_person(session, clock_start=D(2026, 3, 1))
    orient(session, p, "MDS-MURET", "mds", D(2026, 3, 20))
    cs.record_exit(session, p.id, D(2026, 10, 31), "other", source="flow")
    w["flow_exit"] = p.id
    # no path at all
    w["no_path"] = make_person(session, clock_start=None).id
    # the last path closed without an exit (SDD ended)
    p = make_person(session, clock_start=D(2026, 2, 1))
    session.execute(update(Path).where(Path.person_id == p.id).values(closed_on=D(2026, 8, 1), close_reason="sdd_ended"))
    w["closed_path"] = p.id
    # two open paths (a transfer in recorded before the earlier path closed)
    p = make_person(session, clock_start=D(2026, 1, 10))
    session.add(Path(person_id=p.id, household_id=p.household_id, clock_start=D(2026, 7, 1),
                     opening_reason="transfer_in"))
    w["two_paths"] = p.id
    # a person the exits leave alone: nothing of theirs moves
    p = make_person(session, clock_start=D(2026, 6, 1))
    cs.raise_alert(session, f"contract_overdue:{p.id}:1", "contract_overdue", "test", D(2026, 11, 1), person_id=p.id)
    w["bystander"] = p.id
    session.commit()
    return w


def _state(session, before: dict) -> dict:
    """The rows exits touch, with the ids the run created replaced by their rank (PostgreSQL's
    sequences do not roll back): exits and events in creation order."""
    followup.apply_pending_due(session, TODAY)  # the stored due dates, as the commit would write them
    session.flush()
    exits = session.scalars(select(Exit).order_by(Exit.id)).all()
    rank = {ex.id: (ex.id if ex.id <= before["exit"] else f"new{i}") for i, ex in enumerate(exits)}
    events = session.scalars(select(CaseEvent).where(CaseEvent.id > before["event"]).order_by(CaseEvent.id)).all()

    def data(d):
        d = dict(d or {})
        if "exit_id" in d:
            d["exit_id"] = rank[d["exit_id"]]
        return d

    return {
        "exits": [(rank[e.id], e.person_id, e.path_id, e.structure_id, e.exit_on, e.reason, e.positive, e.source,
                   e.details) for e in exits],
        "events": [(e.person_id, e.path_id, e.kind, e.occurred_on, e.source, e.summary, data(e.data), e.author_id)
                   for e in events],
        "paths": session.execute(select(Path.id, Path.person_id, Path.closed_on, Path.close_reason, Path.next_due_on,
                                        Path.next_due, Path.next_due_as_of).order_by(Path.id)).all(),
        "orientations": session.execute(select(Orientation.id, Orientation.status, Orientation.ended_on,
                                               Orientation.end_reason).order_by(Orientation.id)).all(),
        "contracts": session.execute(select(Contract.id, Contract.status).order_by(Contract.id)).all(),
        "alerts": session.execute(select(Alert.key, Alert.resolved_on).order_by(Alert.key)).all(),
    }


def _marks(session) -> dict:
    return {"exit": session.scalar(select(func.coalesce(func.max(Exit.id), 0))),
            "event": session.scalar(select(func.coalesce(func.max(CaseEvent.id), 0)))}


def _both(session, items, source, **kw):
    """(state after record_exit for each item, its results' ranks), then the same for record_exits."""
    before = _marks(session)
    one_by_one = [cs.record_exit(session, it.person_id, it.exit_on, it.reason, source=source,
                                 structure_id=it.structure_id, details=it.details, as_of=it.as_of, **kw)
                  for it in items]
    single = _state(session, before), [(ex.person_id, ex.path_id, ex.reason) for ex in one_by_one]
    session.rollback()
    batch = cs.record_exits(session, items, source=source, **kw)
    batched = _state(session, before), [(ex.person_id, ex.path_id, ex.reason) for ex in batch]
    session.rollback()
    return single, batched


def test_a_flow_batch_writes_what_one_by_one_writes(session, today):
    w = _world(session)
    on = D(2026, 11, 30)
    E = cs.ExitIn
    items = [E(w["oriented"], on, "end_of_right_resources", details="MOTICLORSA=ECH"),
             E(w["ended_orientation"], on, "striking_off"),
             E(w["provider_exit"], on, "end_of_right_resources"),
             E(w["provider_exit"], on, "end_of_right_resources"),  # confirmed once only
             E(w["flow_exit"], on, "other"),  # already exited by the flow: nothing
             E(w["no_path"], on, "transfer"),
             E(w["no_path"], on, "transfer"),  # no path: a second exit, as record_exit twice gives
             E(w["closed_path"], on, "other"),
             E(w["two_paths"], on, "absent_flux_mensuel"),
             E(w["two_paths"], on, "absent_flux_mensuel")]  # the second open path closes too
    single, batched = _both(session, items, "flow")
    assert batched == single
    state, results = batched
    # what the edge cases gave, so that equal states cannot both be empty
    kinds = [(pid, kind) for pid, _path, kind, *_ in state["events"]]
    assert kinds.count((w["provider_exit"], "exit.confirmed")) == 1
    assert (w["oriented"], "exit.recorded") in kinds and (w["flow_exit"], "exit.recorded") not in kinds
    by_person = {}
    for _rank, pid, path_id, structure_id, *_rest in state["exits"]:
        by_person.setdefault(pid, []).append((path_id, structure_id))
    assert len(by_person[w["no_path"]]) == 2 and {p for p, _ in by_person[w["no_path"]]} == {None}
    assert len({p for p, _ in by_person[w["two_paths"]]}) == 2
    assert by_person[w["ended_orientation"]][0][1] is not None  # the structure of the path's orientation
    paths = {r.person_id: r for r in state["paths"] if r.person_id == w["closed_path"]}
    assert paths[w["closed_path"]].close_reason == "sdd_ended"
    alerts = dict(state["alerts"])
    assert alerts[f"contract_overdue:{w['oriented']}:1"] == on and alerts[f"review_due:{w['oriented']}:9"] == on
    assert alerts[f"sanction_due:{w['oriented']}:1"] is None and alerts[f"contract_overdue:{w['bystander']}:1"] is None
    assert {c.status for c in state["contracts"]} == {"ended"}
    assert len(results) == len(items) and results[2] == results[3]


def test_a_provider_batch_qualifies_and_records_as_one_by_one(session, today):
    w = _world(session)
    E = cs.ExitIn
    items = [E(w["flow_exit"], D(2026, 10, 20), "employment_permanent", details="CDI", as_of=TODAY),
             E(w["provider_exit"], D(2026, 9, 15), "employment_permanent", as_of=TODAY),  # the same: nothing
             E(w["oriented"], D(2026, 12, 1), "training", structure_id=None, as_of=TODAY),
             E(w["two_paths"], D(2026, 12, 2), "employment_short", as_of=TODAY)]
    single, batched = _both(session, items, "provider", author_id=None)
    assert batched == single
    kinds = [(pid, kind) for pid, _path, kind, *_ in batched[0]["events"]]
    assert kinds == [(w["flow_exit"], "exit.qualified"), (w["oriented"], "exit.recorded"),
                     (w["two_paths"], "exit.recorded")]


@pytest.mark.parametrize("case", ["before_start", "future", "unknown_person", "unknown_reason"])
def test_a_refused_batch_writes_nothing_and_says_why_as_one_by_one(session, today, case):
    w = _world(session)
    E = cs.ExitIn
    good = E(w["oriented"], D(2026, 12, 1), "training", as_of=TODAY)
    bad = {"before_start": E(w["two_paths"], D(2025, 12, 31), "training", as_of=TODAY),  # latest path: 01/07/2026
           "future": E(w["ended_orientation"], D(2026, 12, 21), "training", as_of=TODAY),
           "unknown_person": E(10**9, D(2026, 12, 1), "training"),
           "unknown_reason": E(w["ended_orientation"], D(2026, 12, 1), "moon")}[case]
    before = _marks(session)
    untouched = _state(session, before)
    session.rollback()
    with pytest.raises(cs.CaseValidationError) as single:
        for it in (good, bad):
            cs.record_exit(session, it.person_id, it.exit_on, it.reason, source="agent", as_of=it.as_of)
    session.rollback()
    with pytest.raises(cs.CaseValidationError) as batched:
        cs.record_exits(session, [good, bad], source="agent")
    assert batched.value.messages == single.value.messages
    assert _state(session, before) == untouched
    session.rollback()
    if case == "before_start":
        assert "précède le début du parcours (01/07/2026)" in batched.value.messages["exit_on"][0]


def test_many_persons_in_runs_of_bounded_statements(session, today, monkeypatch):
    """Past the run size, the batch goes on in further runs with the same result."""
    from cases import exits

    people = [make_person(session, clock_start=D(2026, 6, 1)).id for _ in range(7)]
    session.commit()
    items = [cs.ExitIn(pid, D(2026, 11, 30), "end_of_right_resources") for pid in people]
    monkeypatch.setattr(exits, "_RUN", 3)
    single, batched = _both(session, items, "flow")
    assert batched == single and len(batched[0]["exits"]) == 7
    assert all(r.closed_on == D(2026, 11, 30) for r in batched[0]["paths"] if r.person_id in people)



def test_a_flow_batch_with_its_keys_given_writes_the_same_under_those_keys(session, today):
    """record_exits(take_ids=…), as a flow import on SQLite calls it: the new exits take the keys
    given (inserted together), and everything else is what the batch writes without them."""
    w = _world(session)
    on = D(2026, 11, 30)
    E = cs.ExitIn
    items = [E(w["oriented"], on, "end_of_right_resources"), E(w["ended_orientation"], on, "striking_off"),
             E(w["provider_exit"], on, "end_of_right_resources"), E(w["flow_exit"], on, "other"),
             E(w["no_path"], on, "transfer"), E(w["no_path"], on, "transfer"),
             E(w["two_paths"], on, "absent_flux_mensuel")]
    before = _marks(session)
    exits = cs.record_exits(session, items, source="flow")
    plain = _state(session, before), [(ex.person_id, ex.path_id, ex.reason) for ex in exits]
    session.rollback()
    given: list[int] = []

    def take(n: int) -> list[int]:
        ids = list(range(before["exit"] + 500 + len(given), before["exit"] + 500 + len(given) + n))
        given.extend(ids)
        return ids

    exits = cs.record_exits(session, items, source="flow", take_ids=take)
    keyed = _state(session, before), [(ex.person_id, ex.path_id, ex.reason) for ex in exits]
    new_ids = [e.id for e in session.scalars(select(Exit).where(Exit.id > before["exit"]).order_by(Exit.id))]
    session.rollback()
    assert keyed == plain
    assert new_ids == given and len(given) == 5  # oriented, ended_orientation, no_path twice (two runs), two_paths
