"""Bring a database to the current schema and load the reference data: `rsa init`, `rsa demo`, the
benchmarks. Its own module so that the CLI and the demo both use it without importing each other."""

from __future__ import annotations

from config.runtime import Runtime


def init_database(rt: Runtime) -> dict:
    """Migrate, then load reference data. Idempotent."""
    from config import migrate
    from referents.service import load_reference_data

    migrated = migrate.upgrade(rt.engine)
    with rt.session() as s:
        loaded = load_reference_data(s)
    return {"migrated": migrated, "loaded": loaded, "changed": migrated or any(loaded.values())}
