"""The households already imported, as the flow reader needs them: key → (id, content digest).

A re-import of a 1M-household flow looks up every household once to skip the unchanged ones before
extracting them. Held as Python dicts (a key string, a tuple, a bytes digest and an int per household)
that index cost ~250 bytes a household in the importer and as much again in its reading process:
over 500 MB at a million households. Here it is three sorted numpy arrays (key, the first 16 bytes
of the SHA-256 digest, id): ~42 bytes a household, looked up by binary search. The few households
outside the sectorisation keep their commune in a small dict (for the import's warning).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DIGEST_BYTES = 16  # 128 bits of the SHA-256: a collision between two versions of a household is not a concern


class KnownHouseholds:
    def __init__(self, keys: np.ndarray, digests: np.ndarray, ids: np.ndarray, outside: dict[str, str]):
        self.keys, self.digests, self.ids, self.outside = keys, digests, ids, outside

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, int, str | None]], chunk: int = 50_000) -> KnownHouseholds:
        """rows: (key, digest as hex, household id, commune when outside the sectorisation else None).
        Built chunk by chunk so that the Python objects of a million rows never exist at once."""
        keys, digests, ids, outside = [], [], [], {}
        kb, db, ib = [], [], []

        def flush():
            if kb:
                keys.append(np.array(kb, dtype=bytes))
                digests.append(np.array(db, dtype=f"S{DIGEST_BYTES}"))
                ids.append(np.array(ib, dtype=np.int64))
                kb.clear(), db.clear(), ib.clear()

        for key, digest, hid, commune in rows:
            kb.append(key.encode())
            db.append(bytes.fromhex(digest)[:DIGEST_BYTES])
            ib.append(hid)
            if commune is not None:
                outside[key] = commune
            if len(kb) >= chunk:
                flush()
        flush()
        if not keys:
            return cls.empty()
        width = max(a.dtype.itemsize for a in keys)
        all_keys = np.concatenate([a.astype(f"S{width}") for a in keys])
        order = np.argsort(all_keys, kind="stable")
        return cls(all_keys[order], np.concatenate(digests)[order], np.concatenate(ids)[order], outside)

    @classmethod
    def empty(cls) -> KnownHouseholds:
        return cls(np.array([], dtype="S1"), np.array([], dtype=f"S{DIGEST_BYTES}"), np.array([], dtype=np.int64), {})

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, key: str) -> int:
        """Position of the household with this key, or -1."""
        k = key.encode()
        if not len(self.keys) or len(k) > self.keys.dtype.itemsize:
            return -1
        i = int(np.searchsorted(self.keys, k))
        return i if i < len(self.keys) and self.keys[i] == k else -1

    def unchanged(self, i: int, digest_hex: str) -> bool:
        # numpy's fixed-width bytes drop trailing NULs: compare both sides that way (for a fixed
        # width, equal once stripped ⇔ equal).
        return i >= 0 and self.digests[i] == bytes.fromhex(digest_hex)[:DIGEST_BYTES].rstrip(b"\0")

    def id_at(self, i: int) -> int:
        return int(self.ids[i])

    def want_filter(self):
        """want(key, digest) for FluxReader: False (skip the extraction) only for the first occurrence
        in the file of a known household whose content is unchanged. A household met again later in
        the file is always extracted, so that the last of its records wins."""
        seen = np.zeros(len(self.keys), dtype=bool)

        def want(key: tuple[str, str], digest: str) -> bool:
            i = self.index(key[0] + key[1])
            if i < 0:  # a new household
                return True
            if seen[i]:
                return True
            seen[i] = True
            return not self.unchanged(i, digest)

        return want

    def for_reader(self) -> KnownHouseholds:
        """What the reading process needs: keys and digests (no ids, no communes)."""
        return KnownHouseholds(self.keys, self.digests, np.array([], dtype=np.int64), {})
