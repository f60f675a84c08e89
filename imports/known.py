"""The households already imported, as the flow reader needs them: key → (id, content digest).

A re-import of a 1M-household flow looks up every household once to skip the unchanged ones before
parsing them. Held as Python dicts (a key string, a tuple, a bytes digest and an int per household)
that index cost ~250 bytes a household in the importer and as much again in its reading process:
over 500 MB at a million households. Here it is flat arrays in the order rows come (a 4-byte hash
of the key, the first 8 bytes of the SHA-256 digest, the id) and an open-addressing table of
positions (4 bytes a slot, at most LOAD full): about 18 bytes a household in the lookup, no sorting,
no Python object per household. Plain `array`/`bytes`: neither process loads numpy for it (22 MB).
When a second process reads the file (imports.flux_worker), the lookup (keys, digests, table) is
built there only, from frames the importer writes as the rows come (`send`), and the importer
keeps the ids: 18 and 4 MB at a million households.
The few households outside the sectorisation keep their commune in a small dict (for the
import's warning).

Two keys sharing a key hash (about 120 pairs among a million households, 32 bits each) only cost
a parse: a skip needs the stored digest of the key found to equal the bytes' digest, i.e. the same
bytes, which hold the key. The household found in the other's place is then parsed too (it counts
as met), never skipped wrongly.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable

DIGEST_BYTES = 8  # 64 bits of the SHA-256: two versions of a household collide once in 1.8 × 10^19


_FRAME = struct.Struct("<I")  # rows in the frame that follows (KnownHouseholds.send); 0 ends the set
FRAME_ROWS = 20_000  # 240 KB a frame

_MIX, _MASK = 0x9E3779B97F4A7C15, (1 << 64) - 1
# The table's fill at most: linear probing finds a known key in ~2.2 probes at 0.7 (1.5 at 0.5, what a
# power-of-two table twice the keys gave, 8 MB at a million; 5.7 MB here)
LOAD = 0.7


def key_hash(key: str) -> int:
    """A 64-bit hash of the key, the same in every process: Python's hash of an int is not salted
    (that of a str is), the key's bytes read as one integer (reduced modulo 2^61 - 1), then mixed
    (multiplied, high bits folded down) so that the table's low bits depend on every character.
    Four times cheaper than BLAKE2b; a collision only costs a parse (see the module's docstring)."""
    h = hash(int.from_bytes(key.encode(), "big")) * _MIX & _MASK
    return h ^ (h >> 31)


def key_hash32(key: str) -> int:
    """What the lookup stores and probes by: key_hash folded to 32 bits (4 bytes a household)."""
    h = key_hash(key)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


class KnownHouseholds:
    def __init__(self, keys: array, digests: bytes | bytearray, ids: array, outside: dict[str, str],
                 outside_at: dict[int, str] | None = None, slots: array | None = None):
        self.keys, self.digests, self.ids, self.outside = keys, digests, ids, outside
        self.outside_at = outside_at or {}  # the same communes by position (the reading process sends positions)
        self.slots = slots if slots is not None else _table(keys)

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, int, str | None]], chunk: int = 50_000) -> KnownHouseholds:
        """rows: (key, digest as hex, household id, commune when outside the sectorisation else None),
        appended to flat arrays as they come: the Python objects of a million rows never exist at once.
        The whole set in this process (a file read here); `send` when a second process reads it.
        (`chunk`: kept for callers; rows are no longer buffered.)"""
        keys, digests, kept = array("I"), bytearray(), _Kept()
        for h, d in kept.entries(rows):
            keys.append(h)
            digests += d
        return cls(keys, digests, kept.ids, kept.outside, kept.outside_at)

    @classmethod
    def empty(cls) -> KnownHouseholds:
        return cls(array("I"), b"", array("i"), {})

    def __len__(self) -> int:
        """Households known: by their keys, or by their ids on the importer's side of `send` (no keys)."""
        return len(self.keys) or len(self.ids)

    def index(self, key: str) -> int:
        """Position of the household with this key, or -1."""
        return self.slots[_probe(self.slots, self.keys, key_hash32(key))]

    def unchanged(self, i: int, digest_hex: str) -> bool:
        return i >= 0 and self.same_digest(i, bytes.fromhex(digest_hex))

    def same_digest(self, i: int, digest: bytes) -> bool:
        """Whether the household at position i was stored with this raw digest (its first DIGEST_BYTES)."""
        return self.digests[i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] == digest[:DIGEST_BYTES]

    def id_at(self, i: int) -> int:
        return self.ids[i]

    def want_filter(self) -> SkipFilter:
        return SkipFilter(self)

    @classmethod
    def send(cls, rows: Iterable[tuple[str, str, int, str | None]], out, frame: int = FRAME_ROWS) -> KnownHouseholds:
        """The importer's side of an import read by a second process: the keys' hashes and digests
        written to `out` as the rows come from the database, in frames, for read_lookup; what is
        returned keeps only the ids and communes, the part the importer uses. Building the whole
        lookup here first and sending it held it twice at the import's start: 40 MB of the importer's
        peak at a million households, for the 4 MB it keeps (issue 21 item 3)."""
        kept, keys, digests = _Kept(), array("I"), bytearray()
        for h, d in kept.entries(rows):
            keys.append(h)
            digests += d
            if len(keys) >= frame:
                _write_frame(out, keys, digests)
                keys, digests = array("I"), bytearray()
        if keys:
            _write_frame(out, keys, digests)
        _write_frame(out, array("I"), b"")  # the end
        return cls(array("I"), b"", kept.ids, kept.outside, kept.outside_at, slots=array("i", [-1]))

    @classmethod
    def read_lookup(cls, stream) -> KnownHouseholds:
        """The reading process's side: the frames appended to its own arrays, then the table built
        here. A stream that ends before its end frame is an EOFError, never a smaller set."""
        keys, digests = array("I"), bytearray()
        while True:
            (n,) = _FRAME.unpack(read_exactly(stream, _FRAME.size))
            if not n:
                break
            keys.frombytes(read_exactly(stream, n * keys.itemsize))
            digests += read_exactly(stream, n * DIGEST_BYTES)
        return cls(keys, digests, array("i"), {})


class _Kept:
    """What the importer keeps of each row, by position: its id (4 bytes while ids fit in 32 bits,
    8 after), and its commune when outside the sectorisation."""

    def __init__(self):
        self.ids, self.outside, self.outside_at = array("i"), {}, {}

    def entries(self, rows):
        """(key hash, digest prefix) of each row, what is kept of it set aside as it passes."""
        ids, outside, outside_at = self.ids, self.outside, self.outside_at
        for key, digest, hid, commune in rows:
            if commune is not None:
                outside[key] = commune
                outside_at[len(ids)] = commune
            try:
                ids.append(hid)
            except OverflowError:
                self.ids = ids = array("q", ids)
                ids.append(hid)
            yield key_hash32(key), bytes.fromhex(digest[:2 * DIGEST_BYTES]).ljust(DIGEST_BYTES, b"\0")


def _write_frame(out, keys: array, digests: bytes | bytearray) -> None:
    out.write(_FRAME.pack(len(keys)))
    out.write(memoryview(keys).cast("B"))
    out.write(digests)


def read_exactly(stream, n: int, what: str = "lecture des foyers connus interrompue") -> bytes:
    """n bytes from a pipe, or EOFError(what) when it ends before."""
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(what)
    return data


class SkipFilter:
    """want(key, digest) for FluxReader: False (skip the household unparsed) only for the first
    occurrence in the file of a known household whose content is unchanged. A household met again
    later in the file is always parsed, so that the last of its records wins: every key asked about
    or parsed (`note`) counts as met."""

    def __init__(self, known: KnownHouseholds):
        self.known = known
        self.seen = bytearray((len(known) + 7) >> 3)  # a bit a known household (met in this file)
        self.last_index = -1  # the position of the household just skipped

    def __call__(self, key: tuple[str, str], digest: str) -> bool:
        return self.position(key, bytes.fromhex(digest)) < 0

    def position(self, key: tuple[str, str], digest: bytes) -> int:
        """The reader's fast form of the call (the digest as bytes): the known position of the
        household to skip, or -1 to parse it."""
        known = self.known
        i = known.index(key[0] + key[1])
        if i < 0 or self._meet(i):  # a new household, or one met before in this file
            return -1
        if known.same_digest(i, digest):
            self.last_index = i
            return i
        return -1

    def note(self, key: tuple[str, str]) -> None:
        i = self.known.index(key[0] + key[1])
        if i >= 0:
            self._meet(i)

    def _meet(self, i: int) -> bool:
        """Mark the known household at position i as met in this file; whether it already was."""
        byte, bit = i >> 3, 1 << (i & 7)
        met = self.seen[byte] & bit
        self.seen[byte] |= bit
        return bool(met)


def _table(keys: array) -> array:
    """Open addressing with linear probing: a table at most LOAD full (any size: the slot is the key
    hash modulo it), each slot the position of a key (or -1). The first of two equal key hashes is
    the one found."""
    slots = array("i", [-1]) * (int(len(keys) / LOAD) + 2)
    for p, h in enumerate(keys):
        i = _probe(slots, keys, h)
        if slots[i] < 0:
            slots[i] = p
    return slots


def _probe(slots: array, keys: array, h: int) -> int:
    """The slot of key hash h: the first, from h modulo the table's size on (wrapping around its end),
    that is empty or holds a position whose key hash is h. The table is never full (LOAD)."""
    size = len(slots)
    i = h % size
    while (p := slots[i]) >= 0 and keys[p] != h:
        i += 1
        if i == size:
            i = 0
    return i
