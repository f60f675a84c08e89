"""Browser sessions held in the database, and the login throttle (issue 22, item 5).

Sessions: the signed cookie carries only a random session id; its SHA-256 is a `user_session`
row. A request is authenticated by a session only while that row exists, is neither revoked nor
expired and its user is active: logout (`end`) and revocation (`revoke_user`) therefore end the
session everywhere at once, whatever copy of the cookie someone kept.

Throttle: every failed login is a `login_failure` row (address, e-mail, time). Before checking a
password, the failures of the last window are counted per address (any account: password spraying)
and per account (any address: a distributed guess), against limits written like Flask-Limiter's
("5 per minute;30 per hour"). The counters live in the database, so they are the same for every
worker of every server. Plain functions over a session, no Flask."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from limits import parse_many
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, joinedload

from config.db import utcnow
from referents.models import LoginFailure, User, UserSession

ACCOUNT_LIMIT_DEFAULT = "5 per minute;30 per hour"
ADDRESS_LIMIT_DEFAULT = "10 per minute;50 per hour"
FAILURE_RETENTION = dt.timedelta(days=2)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


# --- sessions -----------------------------------------------------------------------------------

def open_session(session: Session, user: User, ttl_hours: int, ip: str | None = None,
                 now: dt.datetime | None = None) -> str:
    """Create a server-side session and return its id (to put in the signed cookie)."""
    now = now or utcnow()
    sid = secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user.id, sid_hash=_digest(sid), created_at=now,
                            expires_at=now + dt.timedelta(hours=ttl_hours), ip=(ip or "")[:45] or None))
    session.flush()
    return sid


def session_user(session: Session, sid: str | None, now: dt.datetime | None = None) -> User | None:
    """The user of a live session, else None (unknown, ended, revoked, expired, account disabled)."""
    if not sid or not isinstance(sid, str):
        return None
    found = live_credential(session, UserSession.sid_hash, _digest(sid), now or utcnow())
    return found[1] if found else None


def live_credential(session: Session, hash_column, digest: str, now: dt.datetime):
    """(credential row, user) for a session or an API token found by its digest, when it is neither
    revoked nor expired and its user is active; else None. The credential, its user and the user's
    structure (the layout names it) in one statement: it runs before every request."""
    model = hash_column.class_
    found = session.execute(select(model, User).join(User, User.id == model.user_id)
                            .options(joinedload(User.structure)).where(hash_column == digest)).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or row.expires_at <= now or not user.active:
        return None
    return row, user


def end(session: Session, sid: str | None, now: dt.datetime | None = None) -> bool:
    """Logout: the session stops working everywhere. True when a live session was ended."""
    if not sid or not isinstance(sid, str):
        return False
    result = session.execute(update(UserSession)
                             .where(UserSession.sid_hash == _digest(sid), UserSession.revoked_at.is_(None))
                             .values(revoked_at=now or utcnow()))
    return result.rowcount > 0


def revoke_user(session: Session, user: User, now: dt.datetime | None = None) -> int:
    """End every session of a user (revocation by an admin, disabled account, lost laptop)."""
    result = session.execute(update(UserSession)
                             .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
                             .values(revoked_at=now or utcnow()))
    return result.rowcount


def live_sessions(session: Session, user: User, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None), UserSession.expires_at > now))


# --- login throttle -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    blocked: bool
    key: str | None = None  # "address" or "account"
    limit: str | None = None


def _windows(spec: str) -> list[tuple[int, dt.timedelta, str]]:
    return [(item.amount, dt.timedelta(seconds=item.get_expiry()), str(item)) for item in parse_many(spec)]


def check(session: Session, ip: str, email: str, *, account_limit: str = ACCOUNT_LIMIT_DEFAULT,
          address_limit: str = ADDRESS_LIMIT_DEFAULT, now: dt.datetime | None = None) -> Verdict:
    """Whether a login attempt from `ip` for `email` must be refused before its password is checked:
    as many failures as a limit allows in its window, per address or per account."""
    now = now or utcnow()
    for key, column, value, spec in (("address", LoginFailure.ip, ip or "-", address_limit),
                                     ("account", LoginFailure.email, email or "", account_limit)):
        if key == "account" and not email:
            continue
        for amount, window, label in _windows(spec):
            count = session.scalar(select(func.count()).select_from(LoginFailure)
                                   .where(column == value, LoginFailure.at > now - window))
            if count >= amount:
                return Verdict(True, key, label)
    return Verdict(False)


def record_failure(session: Session, ip: str, email: str, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    session.add(LoginFailure(at=now, ip=(ip or "-")[:45], email=(email or "")[:200]))
    # Keep the table small: failures older than every window are of no use to the throttle.
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURE_RETENTION))
