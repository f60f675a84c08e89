"""Reference data loading, sector lookup, users and API tokens (plain functions over a session)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.db import utcnow
from referents.models import ApiToken, Commune, Role, Sector, Structure, Territory, User
from referents.sessions import live_credential

DATA = Path(__file__).resolve().parent / "data"
_hasher = PasswordHasher()


class ReferenceDataError(ValueError):
    """A reference file that cannot be loaded; the message names the row and the problem."""


def _read_csv(path: Path | str) -> list[dict[str, str]]:
    text = Path(path).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def load_territories(session: Session, path: Path | str = DATA / "territories.csv") -> int:
    existing = {t.code: t for t in session.scalars(select(Territory))}
    added = 0
    for row in _read_csv(path):
        t = existing.get(row["code"])
        if t is None:
            session.add(Territory(code=row["code"], name=row["name"]))
            added += 1
        elif t.name != row["name"]:
            t.name = row["name"]
    session.flush()
    return added


def load_communes(session: Session, path: Path | str = DATA / "communes_31.csv") -> int:
    existing = {c.insee: c for c in session.scalars(select(Commune))}
    added = 0
    for row in _read_csv(path):
        values = dict(
            name=row["nom"],
            postal_codes=row["codes_postaux"],
            population=int(row["population"] or 0),
            arrondissement=row["arrondissement"],
            epci_siren=row["epci_siren"],
            epci_name=row["epci_nom"],
        )
        c = existing.get(row["code_insee"])
        if c is None:
            session.add(Commune(insee=row["code_insee"], **values))
            added += 1
        else:
            for k, v in values.items():
                if getattr(c, k) != v:
                    setattr(c, k, v)
    session.flush()
    return added


def load_structures(session: Session, path: Path | str = DATA / "structures.csv") -> int:
    territories = {t.code: t.id for t in session.scalars(select(Territory))}
    existing = {s.code: s for s in session.scalars(select(Structure))}
    added = 0
    for n, row in enumerate(_read_csv(path), start=2):
        if row["territory"] and row["territory"] not in territories:
            raise ReferenceDataError(f"{path}: ligne {n}: territoire inconnu {row['territory']!r}")
        values = dict(
            name=row["name"],
            kind=row["kind"],
            territory_id=territories.get(row["territory"]),
            capacity=int(row["capacity"]) if row.get("capacity") else None,
            variant=row.get("variant") or None,
            address=row.get("address") or None,
            phone=row.get("phone") or None,
        )
        s = existing.get(row["code"])
        if s is None:
            session.add(Structure(code=row["code"], **values))
            added += 1
        else:
            # Capacities edited by the Département in the database are kept.
            values.pop("capacity")
            for k, v in values.items():
                if getattr(s, k) != v:
                    setattr(s, k, v)
    session.flush()
    return added


SECTOR_COLUMNS = ("commune_insee", "postal_code", "territory", "mds", "actipro", "pole_emploi", "ati", "ccas")


def load_sectorisation(session: Session, path: Path | str = DATA / "sectorisation.csv", replace: bool = False) -> dict:
    """Load a sectorisation file. With replace, it becomes the whole sectorisation (atomic:
    any bad row raises before anything is written)."""
    rows = _read_csv(path)
    if not rows:
        raise ReferenceDataError(f"{path}: fichier vide")
    missing = [c for c in SECTOR_COLUMNS if c not in rows[0]]
    if missing:
        raise ReferenceDataError(f"{path}: colonnes manquantes: {', '.join(missing)}")
    territories = {t.code: t.id for t in session.scalars(select(Territory))}
    structures = {s.code: s for s in session.scalars(select(Structure))}
    communes = set(session.scalars(select(Commune.insee)))
    wanted: dict[tuple[str, str], dict] = {}
    for n, row in enumerate(rows, start=2):
        key = (row["commune_insee"].strip(), (row.get("postal_code") or "").strip())
        if key[0] not in communes:
            raise ReferenceDataError(f"{path}: ligne {n}: commune inconnue {key[0]!r}")
        if key in wanted:
            raise ReferenceDataError(f"{path}: ligne {n}: secteur en double {key}")
        if row["territory"] not in territories:
            raise ReferenceDataError(f"{path}: ligne {n}: territoire inconnu {row['territory']!r}")
        values = {"territory_id": territories[row["territory"]]}
        for col, kind in (("mds", "mds"), ("actipro", "actipro"), ("pole_emploi", "pole_emploi"),
                          ("ati", "ati"), ("ccas", "ccas")):
            code = (row.get(col) or "").strip()
            if not code:
                if col == "mds":
                    raise ReferenceDataError(f"{path}: ligne {n}: MDS manquante")
                values[f"{col}_id"] = None
                continue
            s = structures.get(code)
            if s is None or s.kind != kind:
                raise ReferenceDataError(f"{path}: ligne {n}: structure {code!r} inconnue ou pas de type {kind}")
            values[f"{col}_id"] = s.id
        wanted[key] = values
    existing = {(s.commune_insee, s.postal_code): s for s in session.scalars(select(Sector))}
    stats = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
    for key, values in wanted.items():
        s = existing.get(key)
        if s is None:
            session.add(Sector(commune_insee=key[0], postal_code=key[1], **values))
            stats["added"] += 1
        elif any(getattr(s, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(s, k, v)
            stats["updated"] += 1
        else:
            stats["unchanged"] += 1
    if replace:
        for key, s in existing.items():
            if key not in wanted:
                session.delete(s)
                stats["removed"] += 1
    session.flush()
    return stats


def load_reference_data(session: Session) -> dict:
    """Idempotent: a second call adds nothing."""
    result = {
        "territories": load_territories(session),
        "communes": load_communes(session),
        "structures": load_structures(session),
    }
    if session.scalar(select(func.count()).select_from(Sector)) == 0:
        result["sectors"] = load_sectorisation(session)["added"]
    else:
        result["sectors"] = 0
    return result


@dataclass(frozen=True)
class SectorMatch:
    sector: Sector | None
    reason: str | None = None  # why there is no sector


def find_sector(session: Session, commune_insee: str | None, postal_code: str | None = None) -> SectorMatch:
    """The sector of an address: (commune, postal code) first, then the whole commune."""
    if not commune_insee:
        return SectorMatch(None, "adresse sans commune")
    rows = session.scalars(select(Sector).where(Sector.commune_insee == commune_insee)).all()
    if not rows:
        return SectorMatch(None, f"commune {commune_insee} hors sectorisation du département")
    by_pc = {s.postal_code: s for s in rows}
    if postal_code and postal_code in by_pc:
        return SectorMatch(by_pc[postal_code])
    if "" in by_pc:
        return SectorMatch(by_pc[""])
    if len(rows) == 1:
        return SectorMatch(rows[0])
    return SectorMatch(None, f"code postal {postal_code or '?'} non sectorisé dans la commune {commune_insee}")


_SECTOR_INDEX = "rsa.sector_index"


class SectorIndex:
    """The whole sectorisation in memory, for batch work (orientation runs, planning)."""

    @classmethod
    def of(cls, session: Session) -> SectorIndex:
        """The index of this session's transaction, built once: a day's roll call, orientation run,
        validations and planning share one (each built its own: ~25 ms of ORM loading a time). It is
        dropped when the transaction ends and when the session writes a sector."""
        index = session.info.get(_SECTOR_INDEX)
        if index is None:
            _install_sector_hooks()
            index = session.info[_SECTOR_INDEX] = cls(session)
        return index

    @classmethod
    def adopt(cls, session: Session, index: SectorIndex) -> SectorIndex:
        """Lend a long-lived caller's index to this session's transaction (the forecast keeps one for
        its whole run: the sectorisation does not change in it). Its rows must be detached and loaded
        (built in a session of their own that has ended). The same hooks apply: a sector written
        through the session drops it from the transaction and marks it stale, and the caller must then
        build a new one (`stale`)."""
        if index.stale:
            raise ValueError("index de sectorisation périmé")
        _install_sector_hooks()
        session.info[_SECTOR_INDEX] = index
        return index

    def __init__(self, session: Session):
        self.stale = False  # set when a sector is written through a session that holds it
        self._by_key: dict[tuple[str, str], Sector] = {}
        self._communes: dict[str, list[Sector]] = {}
        for s in session.scalars(select(Sector)):
            self._by_key[(s.commune_insee, s.postal_code)] = s
            self._communes.setdefault(s.commune_insee, []).append(s)

    def find(self, commune_insee: str | None, postal_code: str | None = None) -> SectorMatch:
        if not commune_insee:
            return SectorMatch(None, "adresse sans commune")
        rows = self._communes.get(commune_insee)
        if not rows:
            return SectorMatch(None, f"commune {commune_insee} hors sectorisation du département")
        if postal_code and (commune_insee, postal_code) in self._by_key:
            return SectorMatch(self._by_key[(commune_insee, postal_code)])
        if (commune_insee, "") in self._by_key:
            return SectorMatch(self._by_key[(commune_insee, "")])
        if len(rows) == 1:
            return SectorMatch(rows[0])
        return SectorMatch(None, f"code postal {postal_code or '?'} non sectorisé dans la commune {commune_insee}")


def _drop_sector_index(session, *_args) -> None:
    session.info.pop(_SECTOR_INDEX, None)


def _drop_stale_sector_index(session) -> None:
    index = session.info.pop(_SECTOR_INDEX, None)
    if index is not None:
        index.stale = True


def _drop_if_sectors_written(session, _context, _instances) -> None:
    if _SECTOR_INDEX in session.info and any(
            isinstance(obj, Sector) for obj in (*session.new, *session.dirty, *session.deleted)):
        _drop_stale_sector_index(session)


def _drop_on_sector_statement(orm_execute_state) -> None:
    """An UPDATE/INSERT/DELETE on the sector table through the session (bulk writes)."""
    if orm_execute_state.is_select or _SECTOR_INDEX not in orm_execute_state.session.info:
        return
    statement = orm_execute_state.statement
    table = getattr(statement, "table", None)
    if table is not None:
        writes = getattr(table, "name", None) == Sector.__tablename__
    else:  # raw SQL only when it names the table (the import's PRAGMAs do not); anything else: it may
        sql = getattr(statement, "text", None)
        writes = Sector.__tablename__ in sql.lower() if isinstance(sql, str) else True
    if writes:
        _drop_stale_sector_index(orm_execute_state.session)


def _install_sector_hooks() -> None:
    from sqlalchemy import event

    for name, fn in (("after_transaction_end", _drop_sector_index), ("before_flush", _drop_if_sectors_written),
                     ("do_orm_execute", _drop_on_sector_statement)):
        if not event.contains(Session, name, fn):
            event.listen(Session, name, fn)


def structure_by_code(session: Session, code: str, kind: str | None = None) -> Structure | None:
    """The structure with that code (and of that kind, when given), or None."""
    q = select(Structure).where(Structure.code == code)
    if kind is not None:
        q = q.where(Structure.kind == kind)
    return session.scalar(q)


# --- users and tokens -------------------------------------------------------------------

def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, email: str, role: str, password: str | None = None,
                structure_code: str | None = None, display_name: str = "") -> User:
    role = Role(role).value
    structure = None
    if structure_code:
        structure = structure_by_code(session, structure_code)
        if structure is None:
            raise ValueError(f"structure inconnue: {structure_code}")
    if role in (Role.PROVIDER, Role.MDS_WORKER, Role.ATI) and structure is None:
        raise ValueError(f"le rôle {role} exige une structure")
    user = User(
        email=email.strip().lower(),
        role=role,
        display_name=display_name or email,
        password_hash=hash_password(password) if password else None,
        structure_id=structure.id if structure else None,
        territory_id=structure.territory_id if structure else None,
    )
    session.add(user)
    session.flush()
    return user


TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, ttl_hours: int, label: str = "",
                now: dt.datetime | None = None) -> str:
    """Create a token and return it in clear: the only time it is ever visible."""
    now = now or utcnow()
    token = "rsa_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_token_digest(token), prefix=token[:10], label=label,
                         created_at=now, expires_at=now + dt.timedelta(hours=ttl_hours)))
    session.flush()
    return token


def user_for_token(session: Session, token: str, now: dt.datetime | None = None) -> User | None:
    now = now or utcnow()
    found = live_credential(session, ApiToken.token_hash, _token_digest(token), now)
    if found is None:
        return None
    row, user = found
    # Touch at most once a minute: an UPDATE on every call would serialise the concurrent requests
    # of one token on its row lock until each request's transaction ends.
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
    return user


def revoke_tokens(session: Session, user: User, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    n = 0
    for t in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))):
        t.revoked_at = now
        n += 1
    return n


def disable_user(session: Session, user: User) -> None:
    user.active = False
    revoke_tokens(session, user)
