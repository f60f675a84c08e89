"""The one clock of the process: what "today" and "now" mean for pages, API defaults and write checks.

Batch commands take `--as-of`; the web application and the services' defaults read this clock
instead of the system's, so that a replay, a demo or a test can fix the day (`RSA_FROZEN_NOW`,
ISO date-time, read through config.settings by the runtime; `freeze()` in tests). Unset, it is the
system clock (local time, as the Département works).
"""

from __future__ import annotations

import datetime as dt

_frozen: dt.datetime | None = None


def freeze(at: dt.datetime | dt.date | None) -> None:
    """Fix "now" (a date means that day at noon); None goes back to the system clock."""
    global _frozen
    if isinstance(at, dt.date) and not isinstance(at, dt.datetime):
        at = dt.datetime.combine(at, dt.time(12, 0))
    _frozen = at


def frozen() -> bool:
    """Whether "now" is fixed (a replay, a demo, a test) rather than the system clock."""
    return _frozen is not None


def now() -> dt.datetime:
    return _frozen if _frozen is not None else dt.datetime.now()


def today() -> dt.date:
    return now().date()
