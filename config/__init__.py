"""Composition root: settings, database, app factory, scheduler wiring and the `rsa` CLI."""
