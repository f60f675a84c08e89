"""imports.known: the compact index of imported households the flow reader skips unchanged ones by."""

from __future__ import annotations

from imports.known import KnownHouseholds


def test_lookup_digests_ids_and_communes():
    zero_tail = "ab" * 14 + "0000" + "ff" * 16  # its 16-byte prefix ends with NUL bytes
    rows = [("CAF000000000000002", "11" * 32, 7, None), ("MSA12", zero_tail, 3, "52121"),
            ("CAF000000000000001", "22" * 32, 9, None)]
    known = KnownHouseholds.build(iter(rows), chunk=2)  # several chunks, keys of several widths
    assert len(known) == 3
    for key, digest, hid, commune in rows:
        i = known.index(key)
        assert i >= 0 and known.id_at(i) == hid and known.unchanged(i, digest)
        assert known.outside.get(key) == commune
    i = known.index("MSA12")
    assert not known.unchanged(i, "ab" * 14 + "0001" + "ff" * 16)
    assert known.index("CAF000000000000003") == -1 and known.index("CAF0000000000000011234") == -1
    assert known.index("MSA1") == -1 and not known.unchanged(-1, "11" * 32)


def test_reader_filter_skips_a_known_unchanged_household_once():
    known = KnownHouseholds.build(iter([("CAFX", "33" * 32, 1, None)]))
    want = known.for_reader().want_filter()
    assert want(("CAF", "X"), "33" * 32) is False  # unchanged: skipped
    assert want(("CAF", "X"), "33" * 32) is True  # met again in the same file: read
    assert want(("CAF", "Y"), "33" * 32) is True  # new
    assert KnownHouseholds.build(iter([])).want_filter()(("CAF", "X"), "00" * 32) is True
