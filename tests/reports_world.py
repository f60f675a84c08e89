"""The small committed dataset shared by the report API and browser tests (issue 5).

Legal delays of the oriented: 5, 10, 10, 30, 42, 100 days (median 20, p90 71); one June entrant never
oriented; one November entrant (19 days old) whose name would be a spreadsheet formula."""

from __future__ import annotations

import datetime as dt

from tests.test_reports_indicators import D, orient, person


def build_world(rt) -> dict:
    with rt.session() as s:
        june = D(2026, 6, 1)
        for days in (10, 10, 30, 42, 100):
            orient(s, person(s, june), june + dt.timedelta(days=days), referent_type="actipro")
        person(s, june)  # never oriented
        evil = person(s, D(2026, 11, 1), last_name="=HYPERLINK(\"http://x\",\"clic\")")
        h = person(s, D(2026, 10, 15), first_name="-Ana")
        orient(s, h, D(2026, 10, 20))
        return {"evil": evil.id}
