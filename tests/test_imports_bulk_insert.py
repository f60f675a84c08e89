"""The flow importer's bulk insert (COPY … FROM STDIN on PostgreSQL, executemany on SQLite) stores
exactly what the ORM would: text with COPY's special characters, accents, NULLs, bytes, JSON,
dates and timestamps read back unchanged."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.models import CaseEvent, Household, Person
from config.db import one_of as _one_of
from imports.service import _PG_NAMES_SQL, _BulkInsert, _Ids

# COPY's text format escapes backslash, tab, newline and carriage return; quotes and commas matter to CSV;
# "\N" is its NULL marker when unescaped.
NASTY = ["tab\there", "back\\slash", "new\nline", "carriage\rreturn", "quote ' and \" double", "comma, semi;",
         "\\N", "N", "", "Émilie Ñúñez-Ørsted ÇA œ ß", "emoji 🙂 and 中文", "trailing space ", "a|b"]
BYTES = [bytes(range(256)), b"", b"\\x00\\", b"\t\n\r\\N", None]


def test_bulk_insert_round_trips_text_bytes_nulls_json_and_dates(rt):
    when = dt.datetime(2026, 12, 6, 8, 30, 0, 123456)
    on_the_second = dt.datetime(2026, 12, 6, 8, 30, 0)  # no microseconds: stored as the ORM would
    with rt.sessions() as s, s.begin():
        ids, bulk = _Ids(s), _BulkInsert(s, s.get_bind().dialect.name == "postgresql")
        (hid,) = ids.take(Household.__table__, 1)
        bulk(Household.__table__, [{"id": hid, "organism": "CAF", "matricule": "M\t1\\", "city": NASTY[9],
                                    "address_line": NASTY[0] + NASTY[2], "created_at": bulk.stamp(when),
                                    "updated_at": bulk.stamp(on_the_second)}])
        pids = ids.take(Person.__table__, len(NASTY))
        bulk(Person.__table__, [{"id": pid, "household_id": hid, "last_name": name, "first_name": None,
                                 "birth_name": name[::-1] or None, "birth_date": dt.date(1980, 2, 29),
                                 "nir_encrypted": BYTES[i % len(BYTES)], "sdd": i % 2 == 0,
                                 "created_at": bulk.stamp(when), "updated_at": bulk.stamp(when)}
                                for i, (pid, name) in enumerate(zip(pids, NASTY, strict=True))])
        data = {"text": NASTY, "nested": {"k\t": "v\\", "none": None}, "n": 1.5, "on": "2026-12-06"}
        bulk(CaseEvent.__table__, [{"person_id": pids[0], "path_id": None, "occurred_on": dt.date(2026, 12, 6),
                                    "kind": "flow.test", "source": "flow", "author_id": None,
                                    "summary": NASTY[3] + NASTY[6], "data": data, "recorded_at": bulk.stamp(when)},
                                   {"person_id": pids[1], "path_id": None, "occurred_on": dt.date(2026, 12, 6),
                                    "kind": "flow.test", "source": "flow", "author_id": None, "summary": "",
                                    "data": None, "recorded_at": bulk.stamp(when)}])
    with rt.sessions() as s:
        h = s.get(Household, hid)
        assert (h.matricule, h.city, h.address_line) == ("M\t1\\", NASTY[9], NASTY[0] + NASTY[2])
        assert (h.created_at, h.updated_at) == (when, on_the_second)
        people = s.scalars(select(Person).where(Person.household_id == hid).order_by(Person.id)).all()
        assert [p.last_name for p in people] == NASTY
        assert [p.birth_name for p in people] == [n[::-1] or None for n in NASTY]
        assert [p.first_name for p in people] == [None] * len(NASTY)
        assert [p.nir_encrypted for p in people] == [BYTES[i % len(BYTES)] for i in range(len(NASTY))]
        assert [p.sdd for p in people] == [i % 2 == 0 for i in range(len(NASTY))]
        assert {p.birth_date for p in people} == {dt.date(1980, 2, 29)}
        assert {p.created_at for p in people} == {when}
        assert all(p.pseudonymised is False for p in people)  # the column's Python-side default, filled in
        events = s.scalars(select(CaseEvent).where(CaseEvent.kind == "flow.test").order_by(CaseEvent.id)).all()
        assert [(e.summary, e.data, e.recorded_at) for e in events] == [(NASTY[3] + NASTY[6], data, when),
                                                                         ("", None, when)]
        # The name look-ups of the next chunk find these rows by their exact text.
        assert s.scalar(select(Person.id).where(Person.last_name == "back\\slash")) == pids[1]


def test_lookups_by_list_find_values_with_quotes_backslashes_and_commas(rt):
    """The chunk look-ups pass their lists as one parameter (an array literal on PostgreSQL, JSON on
    SQLite): values with the literal's special characters must still match exactly, and only them."""
    keys = ['M"1', "M\\2", "M,3", "M{4}", "M 5", "NULL", "Ç6"]
    with rt.sessions() as s, s.begin():
        pg = s.get_bind().dialect.name == "postgresql"
        ids, bulk = _Ids(s), _BulkInsert(s, pg)
        hids = ids.take(Household.__table__, len(keys))
        bulk(Household.__table__, [{"id": i, "organism": "CAF", "matricule": k, "created_at": bulk.stamp(dt.datetime(2026, 1, 1)),
                                    "updated_at": bulk.stamp(dt.datetime(2026, 1, 1))} for i, k in zip(hids, keys, strict=True)])
        pids = ids.take(Person.__table__, len(keys))
        bulk(Person.__table__, [{"id": i, "household_id": h, "last_name": k, "first_name": "Zoé \\ \"x\"",
                                 "birth_date": dt.date(1990, 1, 1)} for i, h, k in zip(pids, hids, keys, strict=True)])
        for wanted in (keys, keys[:1], keys[1:4], ["M", "1"]):
            found = set(s.scalars(select(Household.matricule).where(_one_of(Household.__table__.c.matricule, wanted, pg))))
            assert found == set(wanted) & set(keys)
        assert set(s.scalars(select(Person.id).where(_one_of(Person.__table__.c.id, pids[2:], pg)))) == set(pids[2:])
        if pg:
            import json

            names = json.dumps([{"l": k, "f": "Zoé \\ \"x\"", "d": "1990-01-01"} for k in keys[:3]]
                               + [{"l": keys[3], "f": "Zoé", "d": "1990-01-01"}])
            assert {r[0] for r in s.execute(_PG_NAMES_SQL, {"names": names})} == set(pids[:3])


def test_update_rows_writes_each_row_by_its_key_with_nulls_dates_and_computed_values(rt):
    """config.db.update_rows: one statement for all rows (UPDATE … FROM unnest on PostgreSQL,
    executemany on SQLite); strings with the array literal's special characters, NULLs and dates come
    back as written, rows not listed are left alone, and a SET computed in SQL sees the old value."""
    from sqlalchemy import case

    from config.db import update_rows

    names = ['Q"1', "B\\2", "C,3", "D{4}", "NULL", "Ñ 6"]
    with rt.sessions() as s, s.begin():
        pg = s.get_bind().dialect.name == "postgresql"
        ids, bulk = _Ids(s), _BulkInsert(s, pg)
        (hid,) = ids.take(Household.__table__, 1)
        stamp = bulk.stamp(dt.datetime(2026, 1, 1))
        bulk(Household.__table__, [{"id": hid, "organism": "CAF", "matricule": "U1", "created_at": stamp,
                                    "updated_at": stamp}])
        pids = ids.take(Person.__table__, len(names) + 1)
        bulk(Person.__table__, [{"id": pid, "household_id": hid, "last_name": f"old{i}", "first_name": "x",
                                 "birth_date": dt.date(1990, 1, 1), "legal_clock_start": dt.date(2026, 1, 1)}
                                for i, pid in enumerate(pids)])
        rows = [{"id": pid, "last_name": name, "legal_clock_start": None if i % 3 == 0 else dt.date(2025, 2, 28) + dt.timedelta(days=i)}
                for i, (pid, name) in enumerate(zip(pids, names, strict=False))]
        update_rows(s, Person, rows, values={"first_name": lambda new: case((Person.first_name == "x", "was x"), else_="other")})
        update_rows(s, Person, [])  # nothing to write: no statement
    with rt.sessions() as s:
        got = {p.id: (p.last_name, p.legal_clock_start, p.first_name)
               for p in s.scalars(select(Person).where(Person.household_id == hid))}
        for r in rows:
            assert got[r["id"]] == (r["last_name"], r["legal_clock_start"], "was x")
        assert got[pids[-1]] == (f"old{len(names)}", dt.date(2026, 1, 1), "x")  # not listed: unchanged
