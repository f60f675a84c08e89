"""imports.known: the compact index of imported households the flow reader skips unchanged ones by."""

from __future__ import annotations

import io

from imports.known import DIGEST_BYTES, KnownHouseholds


def test_lookup_digests_ids_and_communes():
    zero_tail = "ab" * 6 + "0000" + "ff" * 24  # its stored prefix (DIGEST_BYTES) ends with NUL bytes
    rows = [("CAF000000000000002", "11" * 32, 7, None), ("MSA12", zero_tail, 3, "52121"),
            ("CAF000000000000001", "22" * 32, 9, None)]
    known = KnownHouseholds.build(iter(rows), chunk=2)  # several chunks, keys of several widths
    assert len(known) == 3
    for key, digest, hid, commune in rows:
        i = known.index(key)
        assert i >= 0 and known.id_at(i) == hid and known.unchanged(i, digest)
        assert known.outside.get(key) == commune
    i = known.index("MSA12")
    assert DIGEST_BYTES == 8 and not known.unchanged(i, "ab" * 6 + "0001" + "ff" * 24)
    assert known.index("CAF000000000000003") == -1 and known.index("CAF0000000000000011234") == -1
    assert known.index("MSA1") == -1 and not known.unchanged(-1, "11" * 32)


def test_reader_filter_skips_a_known_unchanged_household_once():
    out = io.BytesIO()
    KnownHouseholds.send(iter([("CAFX", "33" * 32, 1, None)]), out)
    want = KnownHouseholds.read_lookup(io.BytesIO(out.getvalue())).want_filter()  # the reading process's
    assert want(("CAF", "X"), "33" * 32) is False  # unchanged: skipped
    assert want(("CAF", "X"), "33" * 32) is True  # met again in the same file: read
    assert want(("CAF", "Y"), "33" * 32) is True  # new
    assert KnownHouseholds.build(iter([])).want_filter()(("CAF", "X"), "00" * 32) is True


def test_ids_past_32_bits_are_kept_whole_on_both_sides():
    """Ids are held in 4 bytes while they fit (4 MB at a million households), in 8 from the first that
    does not: none is truncated, by build or by send."""
    rows = [("CAF1", "11" * 32, 7, None), ("CAF2", "22" * 32, 2**31, None), ("CAF3", "33" * 32, 2**40 + 5, "31555")]
    built = KnownHouseholds.build(iter(rows))
    kept = KnownHouseholds.send(iter(rows), io.BytesIO())
    for known in (built, kept):
        assert [known.id_at(i) for i in range(3)] == [7, 2**31, 2**40 + 5]
        assert known.outside_at == {2: "31555"}
    assert KnownHouseholds.build(iter(rows[:1])).ids.itemsize == 4
