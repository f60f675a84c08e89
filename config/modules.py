"""The one list of domain packages, and how the composition root finds their optional rooms
(models, receivers, api, cli, jobs, demo steps).

Every place that needs "all the packages" (the app factory, the `rsa` CLI, the scheduler, the
model registry, `rsa demo`) iterates PACKAGES: a new package is added here once.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

# Lowest layer first: the order of the import-linter layers contract (.importlinter) and of the
# OpenAPI document's tags. imports and reports are independent top layers.
PACKAGES = ("referents", "cases", "orientation", "kiosque", "imports", "reports")


def optional_module(name: str) -> ModuleType | None:
    """The module, or None when it does not exist. A missing import *inside* the module is a real
    error and is raised, not mistaken for an absent room."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def package_modules(room: str) -> Iterator[tuple[str, ModuleType]]:
    """(package, module) for every package that has the room `<package>.<room>`, in PACKAGES order."""
    for package in PACKAGES:
        module = optional_module(f"{package}.{room}")
        if module is not None:
            yield package, module


def import_models() -> None:
    """Import every package's models (and the scheduler's lease table) so that Base.metadata is complete."""
    importlib.import_module("config.locks")
    for package in PACKAGES:
        optional_module(f"{package}.models")


def connect_receivers() -> None:
    """Import every package's `receivers` module: a higher package's reactions to a lower package's
    signals (blinker) are connected when their module is imported, by the composition root, so that
    the lower package never imports the higher one."""
    for package in PACKAGES:
        optional_module(f"{package}.receivers")
