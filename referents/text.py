"""Names and dates as people type them: search insensitive to accents and case ("joelle" finds
JOËLLE) on SQLite and PostgreSQL alike, and dates written JJ/MM/AAAA.

One folding, written once: Python's (`fold`) for the words typed, and the same in SQL over the
stored names (`folded`): PostgreSQL's translate() and lower(), SQLite through the Python function
registered on the connection (SQLite's own lower() only knows ASCII)."""

from __future__ import annotations

import datetime as dt
import re

from marshmallow import fields
from sqlalchemy import func
from sqlalchemy.orm import Session

ACCENTED = "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖòóôõöÙÚÛÜùúûüÝýÿŸ"
PLAIN = "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOoooooUUUUuuuuYyyY"
_TABLE = str.maketrans(ACCENTED, PLAIN)
SQLITE_FUNCTION = "rsa_fold"


def fold(text: str | None) -> str:
    """Lower case without accents: the key both sides of a name search are compared on."""
    return (text or "").translate(_TABLE).lower()


def folded(session: Session, column):
    """The SQL expression of fold(column) for the session's database."""
    if session.get_bind().dialect.name == "sqlite":
        raw = session.connection().connection.dbapi_connection
        raw.create_function(SQLITE_FUNCTION, 1, lambda v: None if v is None else fold(v), deterministic=True)
        return getattr(func, SQLITE_FUNCTION)(column)
    return pg_folded(column)


def pg_folded(column):
    """fold(column) in PostgreSQL, with the two alphabets written as constants in the statement (not
    bound parameters): the expression then is the one of the folded-name indexes (cases/models.py),
    and a prepared statement's generic plan can still use them."""
    from sqlalchemy import literal_column

    return func.lower(func.translate(column, literal_column(f"'{ACCENTED}'"), literal_column(f"'{PLAIN}'")))


# plain lower-case letter → itself and its accented forms (both cases: SQLite's lower() is ASCII-only)
_VARIANTS: dict[str, set[str]] = {}
for _accented, _plain in zip(ACCENTED, PLAIN, strict=True):
    _VARIANTS.setdefault(_plain.lower(), {_plain.lower()}).add(_accented)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def index_prefixes(word: str) -> list[str]:
    """LIKE patterns on lower(name) that an index can serve and that every name matching the folded
    word satisfies: the word up to its first letter that has accented forms, then each of those
    forms ("joelle" → jo%, jò%, jó%, jô%, jö%, jõ%). The folded comparison then decides."""
    w = fold(word)
    i = next((k for k, ch in enumerate(w) if ch in _VARIANTS), len(w))
    if i == len(w):
        return [_escape(w) + "%"]
    return [_escape(w[:i] + v) + "%" for v in sorted(_VARIANTS[w[i]])]


def name_starts_with(session: Session, column, word: str):
    """SQL condition: the name starts with `word`, accents and case aside, index-friendly."""
    from sqlalchemy import or_

    if session.get_bind().dialect.name == "postgresql":  # served by the folded-name index, whole word
        return pg_folded(column).like(like_prefix(word), escape="\\")
    narrow = or_(*[func.lower(column).like(p, escape="\\") for p in index_prefixes(word)])
    return narrow & folded(session, column).like(like_prefix(word), escape="\\")


def like_prefix(word: str) -> str:
    """A LIKE pattern for names starting with the folded word (LIKE's wildcards escaped with '\\')."""
    return _escape(fold(word)) + "%"


JJMMAAAA = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")


def parse_date_fr(value: str | None) -> dt.date | None:
    """JJ/MM/AAAA (or AAAA-MM-JJ, what a date field sends); ValueError with a French message."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    m = JJMMAAAA.match(value)
    try:
        if m:
            return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"date impossible: {value} (attendu JJ/MM/AAAA)") from None


class FrenchDate(fields.Date):
    """A marshmallow date that also takes JJ/MM/AAAA, refused with a French message."""

    default_error_messages = {"invalid": "Date invalide (attendu JJ/MM/AAAA ou AAAA-MM-JJ)."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dt.date):
            return value
        try:
            return parse_date_fr(value)
        except ValueError:
            raise self.make_error("invalid") from None
