"""The households already imported, as the flow reader needs them: key → (id, content digest).

A re-import of a 1M-household flow looks up every household once to skip the unchanged ones before
parsing them. Held as Python dicts (a key string, a tuple, a bytes digest and an int per household)
that index cost ~250 bytes a household in the importer and as much again in its reading process:
over 500 MB at a million households. Here it is flat arrays in the order rows come (an 8-byte hash
of the key, the first 16 bytes of the SHA-256 digest, the id) and an open-addressing table of
positions (4 bytes, twice as many slots as households): 40 bytes a household, no sorting, no
Python object per household. Plain `array`/`bytes`: neither process loads numpy for it (22 MB).
The few households outside the sectorisation keep their commune in a small dict (for the
import's warning).

Two keys sharing a key hash (1 chance in 10^7 at a million households) only cost a parse: a skip
needs the stored digest of the key found to equal the bytes' digest, i.e. the same bytes.
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterable

DIGEST_BYTES = 16  # 128 bits of the SHA-256: a collision between two versions of a household is not a concern


_MIX, _MASK = 0x9E3779B97F4A7C15, (1 << 64) - 1


def key_hash(key: str) -> int:
    """A 64-bit hash of the key, the same in every process: Python's hash of an int is not salted
    (that of a str is), the key's bytes read as one integer (reduced modulo 2^61 - 1), then mixed
    (multiplied, high bits folded down) so that the table's low bits depend on every character.
    Four times cheaper than BLAKE2b; a collision only costs a parse (see the module's docstring)."""
    h = hash(int.from_bytes(key.encode(), "big")) * _MIX & _MASK
    return h ^ (h >> 31)


class KnownHouseholds:
    def __init__(self, keys: array, digests: bytes | bytearray, ids: array, outside: dict[str, str],
                 outside_at: dict[int, str] | None = None, slots: array | None = None):
        self.keys, self.digests, self.ids, self.outside = keys, digests, ids, outside
        self.outside_at = outside_at or {}  # the same communes by position (the reading process sends positions)
        self.slots = slots if slots is not None else _table(keys)
        self.mask = len(self.slots) - 1

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, int, str | None]], chunk: int = 50_000) -> KnownHouseholds:
        """rows: (key, digest as hex, household id, commune when outside the sectorisation else None),
        appended to flat arrays as they come: the Python objects of a million rows never exist at once.
        (`chunk`: kept for callers; rows are no longer buffered.)"""
        keys, digests, ids, outside, outside_at = array("Q"), bytearray(), array("q"), {}, {}
        for key, digest, hid, commune in rows:
            if commune is not None:
                outside[key] = commune
                outside_at[len(keys)] = commune
            keys.append(key_hash(key))
            digests += bytes.fromhex(digest)[:DIGEST_BYTES].ljust(DIGEST_BYTES, b"\0")
            ids.append(hid)
        return cls(keys, digests, ids, outside, outside_at)

    @classmethod
    def empty(cls) -> KnownHouseholds:
        return cls(array("Q"), b"", array("q"), {})

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: str) -> int:
        """Position of the household with this key, or -1."""
        h = key_hash(key)
        slots, keys, mask = self.slots, self.keys, self.mask
        i = h & mask
        while (p := slots[i]) >= 0:
            if keys[p] == h:
                return p
            i = (i + 1) & mask
        return -1

    def unchanged(self, i: int, digest_hex: str) -> bool:
        return i >= 0 and self.same_digest(i, bytes.fromhex(digest_hex))

    def same_digest(self, i: int, digest: bytes) -> bool:
        """Whether the household at position i was stored with this raw digest (its first DIGEST_BYTES)."""
        return self.digests[i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] == digest[:DIGEST_BYTES]

    def id_at(self, i: int) -> int:
        return self.ids[i]

    def want_filter(self) -> SkipFilter:
        return SkipFilter(self)

    def for_reader(self) -> KnownHouseholds:
        """What the reading process needs: keys and digests (no ids, no communes)."""
        return KnownHouseholds._lookup_only(self.keys, self.digests, self.slots)

    @classmethod
    def _lookup_only(cls, keys: array, digests: bytes | bytearray, slots: array) -> KnownHouseholds:
        return cls(keys, digests, array("q"), {}, slots=slots)

    def write_lookup(self, out) -> None:
        """for_reader's parts (keys, digests, table: 32 MB at 1M households) onto a stream for the reading
        process: a pickled header of their types and sizes, then their bytes written from the arrays' own
        memory. Pickling the arrays made a copy of them on each side while they crossed (15 MB in the
        importer, 16 MB in the reading process at 1M; issue 21 item 3)."""
        parts = (self.keys, self.digests, self.slots)
        pickle.dump([(getattr(part, "typecode", None), memoryview(part).nbytes) for part in parts], out,
                    protocol=pickle.HIGHEST_PROTOCOL)
        for part in parts:
            out.write(memoryview(part).cast("B"))

    @classmethod
    def read_lookup(cls, stream) -> KnownHouseholds:
        """write_lookup's other end: each part allocated at its size and filled in place from the stream;
        a stream that ends early is an EOFError, never a shorter set."""
        parts = []
        for typecode, size in pickle.load(stream):
            part = bytearray(size) if typecode is None else array(typecode, [0]) * (size // array(typecode).itemsize)
            view, got = memoryview(part).cast("B"), 0
            while got < size:
                n = stream.readinto(view[got:])
                if not n:
                    raise EOFError("lecture des foyers connus interrompue")
                got += n
            parts.append(part)
        return cls._lookup_only(*parts)

    def drop_lookup(self) -> None:
        """The importer's copy once the reading process has its own: only ids and communes are used."""
        self.keys, self.digests, self.slots, self.mask = array("Q"), b"", array("i", [-1]), 0


class SkipFilter:
    """want(key, digest) for FluxReader: False (skip the household unparsed) only for the first
    occurrence in the file of a known household whose content is unchanged. A household met again
    later in the file is always parsed, so that the last of its records wins: every key asked about
    or parsed (`note`) counts as met."""

    def __init__(self, known: KnownHouseholds):
        self.known = known
        self.seen = bytearray(len(known))
        self.last_index = -1  # the position of the household just skipped

    def __call__(self, key: tuple[str, str], digest: str) -> bool:
        return self.position(key, bytes.fromhex(digest)) < 0

    def position(self, key: tuple[str, str], digest: bytes) -> int:
        """The reader's fast form of the call (the digest as bytes): the known position of the
        household to skip, or -1 to parse it."""
        known = self.known
        i = known.index(key[0] + key[1])
        if i < 0 or self.seen[i]:  # a new household, or one met before in this file
            return -1
        self.seen[i] = 1
        if known.same_digest(i, digest):
            self.last_index = i
            return i
        return -1

    def note(self, key: tuple[str, str]) -> None:
        i = self.known.index(key[0] + key[1])
        if i >= 0:
            self.seen[i] = 1


def _table(keys: array) -> array:
    """Open addressing with linear probing: a power-of-two table at most half full, each slot the
    position of a key (or -1). The first of two equal key hashes is the one found."""
    size = 2
    while size < 2 * len(keys):
        size *= 2
    slots, mask = array("i", [-1]) * size, size - 1
    for p, h in enumerate(keys):
        i = h & mask
        while slots[i] >= 0:
            if keys[slots[i]] == h:
                break
            i = (i + 1) & mask
        else:
            slots[i] = p
    return slots
