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


def _colliding_keys() -> tuple[str, str]:
    """Two household keys whose 32-bit lookup hashes are equal (found by the birthday bound)."""
    from imports.known import key_hash32

    first: dict[int, str] = {}
    n = 0
    while True:
        key = f"CAF{n:018d}"
        h = key_hash32(key)
        if h in first:
            return first[h], key
        first[h] = key
        n += 1


def test_two_keys_sharing_their_hash_are_parsed_never_skipped_in_each_others_place():
    """4-byte key hashes collide (about 120 pairs at a million households): the second key is found at
    the first's place, whose digest is not its bytes' digest, so it is parsed; the first, then counted
    as met, is parsed too. Neither is ever skipped as the other."""
    k1, k2 = _colliding_keys()
    rows = [(k1, "11" * 32, 1, None), (k2, "22" * 32, 2, None)]
    known = KnownHouseholds.build(iter(rows))
    assert known.index(k1) == known.index(k2) == 0  # the first of two equal hashes is the one found
    want = known.want_filter()
    assert want(("CAF", k2[3:]), "22" * 32) is True  # k2 unchanged, found at k1's place: parsed
    assert want(("CAF", k1[3:]), "11" * 32) is True  # k1 unchanged, met (through k2): parsed
    want = known.want_filter()  # another file, k1 first
    assert want(("CAF", k1[3:]), "11" * 32) is False  # skipped as itself
    assert want.last_index == 0 and known.id_at(want.last_index) == 1
    assert want(("CAF", k2[3:]), "22" * 32) is True


def test_the_table_holds_any_number_of_keys_at_its_load():
    """The table is sized from the keys (not a power of two), wraps around its end, finds every key."""
    from imports.known import LOAD

    for n in (1, 2, 7, 1000):
        rows = [(f"CAF{k:09d}", f"{k:064x}", k + 1, None) for k in range(n)]
        known = KnownHouseholds.build(iter(rows))
        assert n / len(known.slots) <= LOAD
        assert [known.id_at(known.index(key)) for key, *_ in rows] == [k + 1 for k in range(n)]
        assert known.index("CAF999999999") == -1
    # three keys whose slot is the table's last: the second and third wrap around to its start
    from imports.known import key_hash32

    size = int(3 / LOAD) + 2
    last = [k for k in (f"MSA{n}" for n in range(10_000)) if key_hash32(k) % size == size - 1][:3]
    known = KnownHouseholds.build((k, f"{n:064x}", n + 1, None) for n, k in enumerate(last))
    assert len(known.slots) == size and list(known.slots)[:2] == [1, 2] and known.slots[size - 1] == 0
    assert [known.id_at(known.index(k)) for k in last] == [1, 2, 3]
    assert known.index("CAF999999999") == -1
