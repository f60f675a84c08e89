"""French formatting shared by every message and letter."""

from __future__ import annotations

import datetime as dt

WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")


def french_date(d: dt.date) -> str:
    return f"{WEEKDAYS[d.weekday()]} {d.day}{'er' if d.day == 1 else ''} {MONTHS[d.month - 1]} {d.year}"


def french_time(t: dt.time) -> str:
    return f"{t.hour} h {t.minute:02d}" if t.minute else f"{t.hour} h"


def display_first_name(first_name: str | None) -> str:
    """Flows give first names in capitals: "SANDRINE" → "Sandrine" (mixed case is kept)."""
    first = (first_name or "").strip()
    return first.title() if first.isupper() else first


def person_context(person) -> dict:
    """The name lines every template starts with."""
    return {"first_name": display_first_name(person.first_name), "last_name": (person.last_name or "").upper()}
