"""`rsa import …`: every importer's commands."""

from __future__ import annotations

import click

from config.cli import emit, get_runtime, json_option  # noqa: F401


@click.group("import")
def import_group():
    """Imports: flux CAF/MSA, listes France Travail, tableurs, retours prestataires."""


# --- CAF/MSA flows: import flux, rejects, replay, generate-flux (issue 3) -----------------------


# --- France Travail lists, spreadsheets, provider returns (issue 9) ------------------------------


COMMANDS = [import_group]
