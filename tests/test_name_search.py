"""The name search's condition (referents.text.name_starts_with) selects, on both databases, exactly
the persons one of whose names starts with the typed word once both are folded (accents and case
aside): on PostgreSQL a range of the folded-name index, on SQLite a LIKE; with names around the
range's bounds (the next letter, characters beyond ASCII, LIKE's wildcards typed as such)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cases.models import Person
from referents.text import _just_above, fold, name_starts_with
from tests.factories import make_person

NAMES = ["JOËLLE", "JOELLE", "Joel", "JO", "JOZ", "JOÿ", "JP", "O'NEIL", "N'DIAYE", "NDIAYE", "ÑANDÚ", "NANDO",
         "ZOÉ", "Z", "ØRSTED", "ÉTIENNE", "ETIENNE_", "ETIENNEX", "100%", "1000", "名前", "名"]
WORDS = ["joel", "JOËL", "jo", "j", "joz", "joy", "joÿ", "o'n", "n'", "nan", "ñan", "z", "zoe", "ø", "étienne_",
         "etienne%", "100%", "名", "x", "jp"]


@pytest.mark.parametrize("word", WORDS)
def test_the_folded_prefix_finds_exactly_the_names_that_start_with_it(session, word):
    ids = {}
    for k, name in enumerate(NAMES):
        p = make_person(session, last_name=name, first_name="Camille" if k % 2 else "Dominique")
        ids[p.id] = name
    session.commit()
    found = set(session.scalars(select(Person.id).where(Person.id.in_(ids), name_starts_with(session, Person.last_name,
                                                                                             word))))
    expected = {pid for pid, name in ids.items() if fold(name).startswith(fold(word))}
    assert found == expected, sorted(ids[i] for i in found ^ expected)


def test_just_above_bounds_every_string_that_starts_with_the_prefix():
    assert _just_above("joel") == "joem"
    assert _just_above("") is None
    assert _just_above("a\U0010ffff") is None
    assert _just_above("a\ud7ff") == "a\ue000"  # over the surrogates
    for prefix in ("joel", "o'", "名", "z"):
        above = _just_above(prefix)
        assert all(prefix + tail < above for tail in ("", "a", "zzz", "\U0010ffff", "名前"))
        assert not (prefix[:-1] + above[-1]).startswith(prefix) and prefix < above
