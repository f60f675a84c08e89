"""Batch writers' runs: a batch is written in runs in which each person appears once, so that a
person given twice is written by a later run that reads what the earlier one wrote (the result of
calling the single form once per item, in order)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


def distinct_runs(items: Iterable, person_of: Callable, limit: int | None = None) -> Iterator[list]:
    """Consecutive runs of items, each person at most once per run (and at most `limit` items)."""
    run: list = []
    seen: set = set()
    for it in items:
        who = person_of(it)
        if who in seen or (limit is not None and len(run) >= limit):
            yield run
            run, seen = [], set()
        run.append(it)
        seen.add(who)
    if run:
        yield run
