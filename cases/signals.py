"""The signals of the cases package: how higher packages answer the questions cases asks and react
to the facts it records, without cases importing them (domain order: referents < cases <
orientation < kiosque < imports, reports; docs/architecture.md).

Two kinds, both blinker signals (as Flask and Indico use them):
- questions: exactly one receiver answers (`answer` raises otherwise, so a missing wiring fails
  loudly instead of silently scoping nobody);
- reactions: any number of receivers act on the same session, inside the caller's transaction, and
  may return a count that the sender adds up.

Receivers live in `<package>/receivers.py` of the higher packages (orientation, kiosque, imports);
the composition root imports them whenever it builds a runtime (config/runtime.py), so the app, the
CLI, the scheduler and the tests all run with them connected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from blinker import Namespace, Signal
from sqlalchemy import Select

_signals = Namespace()


@dataclass(frozen=True)
class OrientationView:
    """The read model of the orientation decisions that cases needs (scope, current referent,
    contract clock, working lists, indicators). Plain SQL selects, so that cases builds its queries
    on them without knowing the orientation models.

    rows: every orientation, columns id, person_id, path_id, status, referent_type, structure_id,
        agent_id, rule, origin, decided_on, validated_on, notified_on;
    notifications: every notice, columns orientation_id, notified_on (the day the notice was decided),
        message_id (its outbox message, NULL when the notice did not go through the outbox: handed over,
        taken over from a previous system) and sent_at (when that message left; NULL until sent)."""

    rows: Select
    notifications: Select

    # Each read model as one subquery's columns, built once (the receiver answers the same view every
    # time; building a subquery and its column collection on every call was a fifth of the CPU of a
    # working list's page). Shared: for a statement that reads the read model once. A statement that
    # reads it twice builds its own subqueries (`rows.subquery()`), so that they do not correlate.
    @functools.cached_property
    def row_columns(self):
        return self.rows.subquery().c

    @functools.cached_property
    def notice_columns(self):
        return self.notifications.subquery().c


# ---- questions ---------------------------------------------------------------------------------

orientation_view = _signals.signal("cases.orientation-view")
"""(sender None) → OrientationView. Answered by orientation/receivers.py."""

orientation_summary = _signals.signal("cases.orientation-summary")
"""(session, person_id=) → the current orientation as shown in the person file (dict) or None."""

reorientation_requested = _signals.signal("cases.reorientation-requested")
"""(session, person_id=, orientation_id=, requested_by=, requested_on=, reason=, wanted_referent_type=,
wanted_structure_id=) → the id of the reorientation request the orientation package recorded."""

exits_recorded = _signals.signal("cases.exits-recorded")
"""(session, ends=[(orientation_id, exit_on), …]) → None: the orientation package ends these current
orientations of persons who exit (status "ended", end reason "exit"), in the same transaction; one
signal for a whole batch of exits (cases.exits.record_exits)."""

exit_corrected = _signals.signal("cases.exit-corrected")
"""(session, person_id=, exit_on=, new_exit_on=) → None: an exit recorded by mistake was cancelled
(new_exit_on None: the orientation it ended is current again) or its date corrected (the orientation
ends on the new date). Answered by orientation/receivers.py (cases/corrections.py)."""

# ---- reactions of the retention purge (cases/retention.py) ---------------------------------------

retention_activity = _signals.signal("cases.retention-activity")
"""(sender None, person_id=<column>, cutoff=<date>) → a SQL condition, correlated to person_id, true
when the package holds activity of that person on or after cutoff (the person is then kept)."""

persons_purging = _signals.signal("cases.persons-purging")
"""(session, person_ids=, files_root=) → number of files deleted: the package scrubs what identifies
these persons in its own tables (the caller commits)."""

households_purging = _signals.signal("cases.households-purging")
"""(session, household_ids=) → number of raw records deleted for these anonymised households."""

retention_sweep = _signals.signal("cases.retention-sweep")
"""(session, cutoff=<datetime>, dry_run=) → {counter: n} for records older than cutoff that belong to
no person (rejected and raw records of the imports)."""


def answer(signal: Signal, sender=None, **kwargs):
    """The single answer to a question signal; an error when no package, or several, answer."""
    results = signal.send(sender, **kwargs)
    if len(results) != 1:
        raise RuntimeError(f"signal {signal.name!r}: {len(results)} receivers answered, exactly one expected "
                           "(are the receivers connected? config/runtime.py imports <package>.receivers)")
    return results[0][1]


def orientations() -> OrientationView:
    return answer(orientation_view)
