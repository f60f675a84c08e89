"""How the composition root finds a package's optional rooms (api, cli, jobs, bench modules)."""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_module(name: str) -> ModuleType | None:
    """The module, or None when it does not exist. A missing import *inside* the module is a real
    error and is raised, not mistaken for an absent room."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
