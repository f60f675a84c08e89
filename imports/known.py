"""The households already imported, as the flow reader needs them: key → (id, content digest).

A re-import of a 1M-household flow looks up every household once to skip the unchanged ones before
parsing them. Held as Python dicts (a key string, a tuple, a bytes digest and an int per household)
that index cost ~250 bytes a household in the importer and as much again in its reading process:
over 500 MB at a million households. Here it is three sorted flat arrays (an 8-byte hash of the key,
the first 16 bytes of the SHA-256 digest, the id): 32 bytes a household, looked up by binary search.
They are plain `array`/`bytes` objects, so the reading process needs no numpy (22 MB of its memory);
the importer sorts them with numpy, which it has loaded anyway. The few households outside the
sectorisation keep their commune in a small dict (for the import's warning).

Two keys sharing a key hash (1 chance in 10^7 at a million households) only cost a parse: a skip
needs the stored digest of the key found to equal the bytes' digest, i.e. the same bytes.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable

DIGEST_BYTES = 16  # 128 bits of the SHA-256: a collision between two versions of a household is not a concern


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


class KnownHouseholds:
    def __init__(self, keys: array, digests: bytes, ids: array, outside: dict[str, str],
                 outside_at: dict[int, str] | None = None):
        self.keys, self.digests, self.ids, self.outside = keys, digests, ids, outside
        self.outside_at = outside_at or {}  # the same communes by position (the reading process sends positions)

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, int, str | None]], chunk: int = 50_000) -> KnownHouseholds:
        """rows: (key, digest as hex, household id, commune when outside the sectorisation else None).
        Appended to flat arrays as they come, so that the Python objects of a million rows never exist at
        once, then sorted by key hash."""
        keys, digests, ids, outside, where = array("Q"), bytearray(), array("q"), {}, {}
        for key, digest, hid, commune in rows:
            if commune is not None:
                outside[key] = commune
                where[len(keys)] = key
            keys.append(key_hash(key))
            digests += bytes.fromhex(digest)[:DIGEST_BYTES].ljust(DIGEST_BYTES, b"\0")
            ids.append(hid)
        if not keys:
            return cls.empty()
        import numpy as np  # the importer's process only (loaded there anyway)

        k = np.frombuffer(keys, dtype=np.uint64)
        order = np.argsort(k, kind="stable")
        sorted_keys = array("Q", k[order].tobytes())
        sorted_digests = np.frombuffer(bytes(digests), dtype=np.uint8).reshape(-1, DIGEST_BYTES)[order].tobytes()
        sorted_ids = array("q", np.frombuffer(ids, dtype=np.int64)[order].tobytes())
        del k, keys, digests, ids
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        outside_at = {int(position[p]): outside[key] for p, key in where.items()}
        return cls(sorted_keys, sorted_digests, sorted_ids, outside, outside_at)

    @classmethod
    def empty(cls) -> KnownHouseholds:
        return cls(array("Q"), b"", array("q"), {})

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: str) -> int:
        """Position of the household with this key, or -1."""
        h = key_hash(key)
        i = bisect_left(self.keys, h)
        return i if i < len(self.keys) and self.keys[i] == h else -1

    def unchanged(self, i: int, digest_hex: str) -> bool:
        return i >= 0 and self.digests[i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] == bytes.fromhex(digest_hex)[:DIGEST_BYTES]

    def id_at(self, i: int) -> int:
        return self.ids[i]

    def want_filter(self) -> SkipFilter:
        return SkipFilter(self)

    def for_reader(self) -> KnownHouseholds:
        """What the reading process needs: keys and digests (no ids, no communes)."""
        return KnownHouseholds(self.keys, self.digests, array("q"), {})

    def drop_lookup(self) -> None:
        """The importer's copy once the reading process has its own: only ids and communes are used."""
        self.keys, self.digests = array("Q"), b""


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
        i = self.known.index(key[0] + key[1])
        if i < 0:  # a new household
            return True
        if self.seen[i]:
            return True
        self.seen[i] = 1
        if self.known.unchanged(i, digest):
            self.last_index = i
            return False
        return True

    def note(self, key: tuple[str, str]) -> None:
        i = self.known.index(key[0] + key[1])
        if i >= 0:
            self.seen[i] = 1
