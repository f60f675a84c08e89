"""Spreadsheet cells in and out (issue 22, item 9): the one guard of every xlsx and CSV export, and
the one definition of the control characters an import refuses.

- Out: a data string that starts with a character a spreadsheet would take for a formula (`=`, `+`,
  `-`, `@`, tab, carriage return) is written with a leading apostrophe, and as a string cell: a
  name such as `=CMD|' /C CALC'!A0` is shown, never evaluated (OWASP "CSV injection").
- In: names are kept verbatim, but a value holding a control character (C0 except tab and line
  breaks, DEL, C1 such as U+0081) is a broken or hostile record: the row is rejected with its reason.

Lowest package (referents) so that every exporter and importer can use it."""

from __future__ import annotations

import re

DANGEROUS_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def safe_text(value):
    """A data string that no spreadsheet will evaluate as a formula (other values unchanged)."""
    if isinstance(value, str) and value.startswith(DANGEROUS_PREFIXES):
        return "'" + value
    return value


def safe_row(values) -> list:
    return [safe_text(v) for v in values]


def append_safe(ws, values) -> None:
    """openpyxl `ws.append`, with every string guarded and typed as a string (never a formula)."""
    ws.append(safe_row(values))
    for cell in ws[ws.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"


def control_characters(value) -> list[str]:
    """The control characters of a text value, as U+XXXX codes (empty when clean)."""
    if not isinstance(value, str):
        return []
    return sorted({f"U+{ord(c):04X}" for c in CONTROL.findall(value)})


def control_reason(value) -> str | None:
    """The French reason for refusing a value holding control characters, or None."""
    found = control_characters(value)
    if not found:
        return None
    return f"caractère(s) de contrôle interdit(s) ({', '.join(found)}): valeur corrompue ou mal encodée"
