"""The legal parameters of the path (cases/data/*.yaml), the sources of facts, and the error every
case rule raises. Shared by the sub-domain modules of cases."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Person
from config import clock

DATA_DIR = Path(__file__).resolve().parent / "data"


SOURCES = ("flow", "agent", "provider", "job", "kiosque", "france_travail")


class CaseValidationError(ValueError):
    """A domain rule refused the input; `messages` maps field → list of French messages (API: 422)."""

    def __init__(self, messages: dict[str, list[str]] | str):
        if isinstance(messages, str):
            messages = {"_schema": [messages]}
        self.messages = messages
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items()))


@functools.cache
def _load_yaml(name: str) -> dict:
    with open(DATA_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def procedure() -> dict:
    """The legal parameters (cases/data/procedure.yaml): deadlines, reasons, sanction bounds."""
    return _load_yaml("procedure.yaml")


def exit_reasons() -> dict[str, dict]:
    """Exit reason → {label, positive} (cases/data/exit_reasons.yaml)."""
    return _load_yaml("exit_reasons.yaml")["reasons"]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise CaseValidationError({"source": [f"source inconnue {source!r} (attendu: {', '.join(SOURCES)})"]})


def _require_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise CaseValidationError({"person_id": [f"personne {person_id} inconnue"]})
    return person


def _require_persons(session: Session, person_ids) -> dict[int, Person]:
    """_require_person for many persons: one query (person id -> Person), the first unknown refused."""
    ids = sorted(set(person_ids))
    found: dict[int, Person] = {}
    for i in range(0, len(ids), 5000):
        found.update((p.id, p) for p in session.scalars(select(Person).where(Person.id.in_(ids[i:i + 5000]))))
    for pid in person_ids:
        if pid not in found:
            raise CaseValidationError({"person_id": [f"personne {pid} inconnue"]})
    return found


def _as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    return dt.datetime.combine(value, dt.time(0, 0))


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None




# Sources whose dates a person typed (an agent, a provider): they are checked against the clock.
# Partners' files (CAF/MSA flows, France Travail lists) are recorded as they come (nothing is lost).
TYPED_SOURCES = ("agent", "provider")
OUTCOME_AFTER_THE_FACT = ("honoured", "no_show")


def _clock(as_of):
    """The end of the as_of day (dates are injectable), else now."""
    import datetime as dt

    return dt.datetime.combine(as_of, dt.time(23, 59, 59)) if as_of is not None else clock.now()


def check_not_future(field: str, label: str, day, source: str, as_of=None) -> None:
    """A date typed by a person is not in the future (CaseValidationError naming the field)."""
    import datetime as dt

    if source not in TYPED_SOURCES or day is None:
        return
    limit = _clock(as_of)
    moment = day if isinstance(day, dt.datetime) else dt.datetime.combine(day, dt.time())
    if moment > limit:
        raise CaseValidationError({field: [f"{label}: le {day:%d/%m/%Y} est dans le futur"]})


def check_outcome_time(status: str, scheduled_at, source: str, as_of=None) -> None:
    """An appointment is honoured (or missed) only once its time has come."""
    if source not in TYPED_SOURCES or status not in OUTCOME_AFTER_THE_FACT:
        return
    if scheduled_at > _clock(as_of):
        raise CaseValidationError({"status": [
            f"Issue du rendez-vous: le rendez-vous du {scheduled_at:%d/%m/%Y à %H h %M} n'a pas encore eu lieu"]})
