"""The composition root's one list of packages, demo-step discovery, and the import contracts' file
agreeing with them (the contracts themselves are checked by `lint-imports`, first step of `make test`)."""

from __future__ import annotations

import configparser
from pathlib import Path

from config.demo import demo_steps
from config.modules import PACKAGES, package_modules
from config.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_demo_steps_are_found_in_each_package_in_pipeline_order():
    steps = demo_steps()
    assert [s.key for s in steps] == ["imports", "replay", "orientation", "kiosque", "cases", "reports"]
    imports_step = next(s for s in steps if s.key == "imports")
    assert imports_step.run.__module__ == "imports.demo"  # <package>/demo.py is found first
    assert all(s.key in PACKAGES or s.key == "replay" for s in steps)


def test_every_package_room_is_found_through_the_one_list():
    assert [p for p, _ in package_modules("api")] == list(PACKAGES)
    # reports has its models room since the stored report snapshots (issue 21 item 5)
    assert {p for p, _ in package_modules("models")} == {"referents", "cases", "orientation", "kiosque", "imports",
                                                          "reports"}


def test_the_layers_contract_names_the_packages_of_the_one_list_lowest_first():
    contracts = configparser.ConfigParser()
    contracts.read(REPO / ".importlinter", encoding="utf-8")
    layers = [line.strip() for line in contracts["importlinter:contract:layers"]["layers"].splitlines() if line.strip()]
    domain = [layer for layer in reversed(layers) if not layer.startswith("config.")]
    flat = [name.strip() for layer in domain for name in layer.split("|")]
    assert flat == list(PACKAGES)
    roots = contracts["importlinter"]["root_packages"].split()
    assert set(PACKAGES) <= set(roots)
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    shipped = {p.rstrip("*") for p in setup["options.packages.find"]["include"].split()}
    assert set(PACKAGES) | {"config"} == shipped  # the wheel ships exactly the packages of the list


def test_settings_say_whether_the_environment_chose_a_value():
    assert Settings.is_set("log_level", env={"RSA_LOG_LEVEL": "DEBUG"}) is True
    assert Settings.is_set("log_level", env={}) is False
