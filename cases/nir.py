"""NIR protection: encrypted at rest (Fernet) and matched through a keyed hash (HMAC-SHA256).

The NIR is normalised to its first 13 characters (the MSA sends the 2-digit key, the CAF does not).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re

_NIR_RE = re.compile(r"^[12378][0-9]{2}(0[1-9]|1[0-2]|[2-9][0-9])(2[AB]|[0-9]{2})[0-9]{6}$")


class NirError(ValueError):
    pass


def normalise(raw: str | None) -> str | None:
    """13-character NIR, or None when empty. Raises NirError when it cannot be one."""
    if raw is None:
        return None
    nir = re.sub(r"[\s.\-]", "", str(raw)).upper()
    if not nir:
        return None
    if len(nir) not in (13, 15):
        raise NirError(f"NIR de longueur {len(nir)} (13 ou 15 attendus)")
    nir = nir[:13]
    if not _NIR_RE.match(nir):
        raise NirError("NIR mal formé")
    return nir


def key_check(nir15: str) -> bool:
    """True when the 2-digit key of a 15-character NIR is right (Corsica: 2A→19, 2B→18)."""
    body, key = nir15[:13].upper(), nir15[13:15]
    body = body.replace("2A", "19").replace("2B", "18")
    return key.isdigit() and 97 - int(body) % 97 == int(key)


class NirVault:
    """Holds the keys; one per process, built from settings."""

    def __init__(self, secret: str):
        self._material = hashlib.sha256(("rsa-nir:" + secret).encode()).digest()
        self._hmac_key = hashlib.sha256(("rsa-nir-hash:" + secret).encode()).digest()
        # Keyed once; each hash copies this state (the key's two pad blocks are not re-hashed per NIR).
        self._keyed = hmac.new(self._hmac_key, digestmod=hashlib.sha256)

    @functools.cached_property
    def _fernet(self):
        """Loaded on first use: an import's process that only matches NIRs (its reading process
        encrypts them) does not carry cryptography's 8 MB (issue 21 item 3)."""
        from cryptography.fernet import Fernet

        return Fernet(base64.urlsafe_b64encode(self._material))

    def hash(self, nir13: str | None) -> str | None:
        if not nir13:
            return None
        h = self._keyed.copy()
        h.update(nir13.encode())
        return h.hexdigest()

    def encrypt(self, nir13: str | None) -> bytes | None:
        return self._fernet.encrypt(nir13.encode()) if nir13 else None

    def decrypt(self, token: bytes | None) -> str | None:
        return self._fernet.decrypt(token).decode() if token else None

    @staticmethod
    def mask(nir13: str | None) -> str | None:
        """What an MDS worker sees: sex and birth year/month only."""
        return None if not nir13 else nir13[:5] + "•" * 8


def vault_for(settings) -> NirVault:
    return NirVault(settings.nir_key or settings.secret_key)


def nir_view(role: str, nir13: str | None) -> str | None:
    """What a role may see of a NIR: managers and admins the NIR, MDS workers a masked form,
    everybody else (providers, ATI) nothing. The single rule used by every API and export."""
    if not nir13:
        return None
    if role in ("admin", "manager"):
        return nir13
    if role == "mds_worker":
        return NirVault.mask(nir13)
    return None
