"""Inbox entries of the list importers (France Travail, spreadsheets, provider returns).

The kind of a file dropped in RSA_INBOX is recognised from its name (case-insensitive globs,
first match wins, after the CAF/MSA patterns of imports.service.INBOX_KINDS):

- `tableur_<mapping>_<anything>.(xlsx|xls|ods|csv)`: spreadsheet read with the named mapping;
- `retour_<STRUCTURE-CODE>_<anything>.(xlsx|xls|ods|csv)`: provider return of that structure;
- `*inscriptions*.csv`, `*cessations*.csv`, `*radiations*.csv`, `*stock*.csv`: France Travail lists;
- `orientations_ft*.csv|json`: France Travail's préconisations, orientations and contracts.

To change the patterns, edit LIST_INBOX_KINDS (a list of (glob, kind, handler)).
"""

from __future__ import annotations

from pathlib import Path

SHEET_SUFFIXES = ("xlsx", "xls", "ods", "csv")


def _failed(path: Path, error: str) -> dict:
    return {"path": str(path), "status": "failed", "error": error}


def _ft_handler(kind: str):
    def handler(runtime, paths, progress=None) -> list[dict]:
        from imports.france_travail import import_file

        return [import_file(runtime, kind, p) for p in sorted(paths)]

    return handler


def _spreadsheet_handler(runtime, paths, progress=None) -> list[dict]:
    from imports.spreadsheets import MappingError, import_file, list_mappings

    with runtime.session() as s:
        known = {m["name"] for m in list_mappings(s)}
    results = []
    for path in sorted(paths):
        rest = Path(path).stem.split("_", 1)[1] if "_" in Path(path).stem else ""
        parts = rest.split("_")
        mapping = next(("_".join(parts[:n]) for n in range(len(parts), 0, -1) if "_".join(parts[:n]) in known), None)
        if mapping is None:
            results.append(_failed(path, "correspondance de colonnes absente du nom du fichier "
                                         "(tableur_<correspondance>_….xlsx)"))
            continue
        try:
            results.append(import_file(runtime, path, mapping))
        except MappingError as exc:
            results.append(_failed(path, str(exc)))
    return results


def _provider_handler(runtime, paths, progress=None) -> list[dict]:
    from imports.provider_returns import import_file

    results = []
    for path in sorted(paths):
        parts = Path(path).stem.split("_")
        code = parts[1].upper() if len(parts) > 1 else ""
        try:
            results.append(import_file(runtime, path, code))
        except ValueError as exc:  # unknown structure
            results.append(_failed(path, f"{exc} (retour_<CODE-STRUCTURE>_….xlsx)"))
    return results


def _ft_orientations_handler(runtime, paths, progress=None) -> list[dict]:
    from imports.france_travail_orientation import import_file

    return [import_file(runtime, p) for p in sorted(paths)]


LIST_INBOX_KINDS = (
    # France Travail's orientation file first: "orientations_ft_…" must not be read as another list.
    [(f"orientations_ft*.{ext}", "france_travail:orientations", _ft_orientations_handler) for ext in ("csv", "json")]
    + [(f"tableur_*.{ext}", "spreadsheet", _spreadsheet_handler) for ext in SHEET_SUFFIXES]
    + [(f"retour_*.{ext}", "provider_return", _provider_handler) for ext in SHEET_SUFFIXES]
    + [(f"*{kind}*.csv", f"france_travail:{kind}", _ft_handler(kind))
       for kind in ("inscriptions", "cessations", "radiations", "stock")]
)
