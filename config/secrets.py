"""Checks of the secret keys before serving (issue 22, item 6).

An empty RSA_SECRET_KEY used to start, and `/login` then answered 500; a short or default key
signs sessions anyone can forge. `rsa serve` refuses, on any address but the loopback, a key that
is empty, shorter than 32 bytes or the development default — RSA_SECRET_KEY and RSA_NIR_KEY alike
(the NIR key must be set: derived from the session key it would change with it). An empty session
key is refused everywhere, the loopback included (the app cannot sign a session without one)."""

from __future__ import annotations

from config.settings import Settings

MIN_BYTES = 32
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DEFAULT_KEYS = frozenset({Settings.secret_key, "change-me", "changeme", "secret", "test-secret"})


def is_loopback(host: str) -> bool:
    host = (host or "").strip()
    return host in LOOPBACK or host.startswith("127.")


def problems(settings: Settings, host: str) -> list[str]:
    """The French reasons for refusing to serve on `host` with these settings (empty: fine)."""
    found = []
    if not settings.secret_key:
        found.append("RSA_SECRET_KEY est vide: aucune session ne peut être signée")
    if is_loopback(host):
        return found
    for env, value, required in (("RSA_SECRET_KEY", settings.secret_key, True),
                                 ("RSA_NIR_KEY", settings.nir_key, True)):
        if not value:
            if env != "RSA_SECRET_KEY" and required:
                found.append(f"{env} n'est pas configurée (obligatoire hors de la boucle locale)")
            continue
        if value in DEFAULT_KEYS:
            found.append(f"{env} vaut la valeur par défaut de développement")
        elif len(value.encode()) < MIN_BYTES:
            found.append(f"{env} est trop courte ({len(value.encode())} octets, {MIN_BYTES} au moins)")
    return found


def check(settings: Settings, host: str) -> None:
    """Raise RuntimeError with every reason when the keys are not fit to serve on `host`."""
    found = problems(settings, host)
    if found:
        raise RuntimeError("refus de servir: " + "; ".join(found))
