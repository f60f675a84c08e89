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
    """Prefixes of lower(name) that an index can serve and that every name matching the folded word
    has: the word up to its first letter that has accented forms, then each of those forms ("joelle" →
    jo, jò, jó, jô, jö, jõ, …; SQLite's lower() keeps the case of what is not ASCII). The folded
    comparison then decides."""
    w = fold(word)
    i = next((k for k, ch in enumerate(w) if ch in _VARIANTS or not ch.isascii()), len(w))
    if i == len(w):
        return [w]
    if w[i] not in _VARIANTS:  # another letter beyond ASCII (ø of ØRSTED): SQLite's lower() keeps its case
        return [w[:i]]
    return [w[:i] + v for v in sorted(_VARIANTS[w[i]])]


def name_starts_with(session: Session, column, word: str):
    """SQL condition: the name starts with `word`, accents and case aside, index-friendly."""
    from sqlalchemy import or_

    if session.get_bind().dialect.name == "postgresql":  # served by the folded-name indexes, whole word
        key = fold(word)
        above = _just_above(key)
        expr = name_key(session, column)
        if above is None:
            return expr.like(like_prefix(word), escape="\\")
        # The prefix as a range in the index's own order (collation "C": code points): the index
        # decides alone. A LIKE was checked again on every row the index gave, three translate() a
        # person, which was two thirds of a broad search ("PETIT", 17,000 names at 1M persons: 63 → 28 ms).
        return (expr >= key) & (expr < above)
    # SQLite: ranges of lower(name) that its expression index serves (a LIKE on an expression is never
    # an index range there: every person was folded in Python, ~1 s a search at 100,000 persons)
    lower, ranges = func.lower(column), []
    for prefix in index_prefixes(word):
        above = _just_above(prefix)
        if above is None:  # nothing to narrow on: the folded comparison alone decides
            ranges = []
            break
        ranges.append((lower >= prefix) & (lower < above))
    exact = folded(session, column).like(like_prefix(word), escape="\\")
    return (or_(*ranges) & exact) if ranges else exact


def name_key(session: Session, column):
    """The folded name as the search compares and sorts it: on PostgreSQL in collation "C" (the
    folded-name indexes' order, cases/models.py), so that one index both finds a prefix and gives
    its matches in order; on SQLite the folded name (its default collation already is binary)."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_folded(column).collate("C")
    return folded(session, column)


def _just_above(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix`, in code point order: its
    last character's successor (None when there is none: an empty prefix, the last code point)."""
    if not prefix:
        return None
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters
        following = 0xE000
    return None if following > 0x10FFFF else prefix[:-1] + chr(following)


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
