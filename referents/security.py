"""Accounts and the audit log as domain functions (no Flask): login checks, user administration,
token listing, audit queries. Passwords and tokens themselves live in referents.service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.db import utcnow
from referents.models import ApiToken, AuditLog, Role, Structure, User
from referents.service import (
    _hasher,
    create_user,
    disable_user,
    hash_password,
    issue_token,
    revoke_tokens,
    structure_by_code,
    verify_password,
)

# The issue's lesson from the field: no 30-day tokens. Above a week, issue a new one.
MAX_TOKEN_TTL_HOURS = 24 * 7
_DUMMY_HASH = _hasher.hash("rsa-timing-equaliser")

ROLE_LABELS = {
    Role.ADMIN.value: "Administrateur",
    Role.MANAGER.value: "Responsable départemental",
    Role.MDS_WORKER.value: "Professionnel de MDS",
    Role.PROVIDER.value: "Prestataire (ActiPro, France Travail, CCAS)",
    Role.ATI.value: "Agent territorial d'insertion",
}


class AccountError(ValueError):
    """A refused account operation; the message is for the user (French)."""


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == (email or "").strip().lower()))


def authenticate(session: Session, email: str, password: str, now: dt.datetime | None = None) -> User | None:
    """The user when the email/password pair is right and the account active, else None.
    Unknown emails cost the same argon2 work as known ones (no account enumeration by timing)."""
    user = user_by_email(session, email)
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_DUMMY_HASH, password or "x")
        except Exception:  # noqa: BLE001 - the outcome is ignored on purpose
            pass
        return None
    if not user.active or not verify_password(user, password or ""):
        user.failed_logins = (user.failed_logins or 0) + 1
        return None
    user.failed_logins = 0
    user.last_login_at = now or utcnow()
    return user


def session_marker(user: User) -> str:
    """Stored in the cookie session; changes with the password, which logs out other sessions."""
    return (user.password_hash or "")[-16:]


def record(session: Session, action: str, user_id: int | None = None, person_id: int | None = None,
           endpoint: str | None = None, ip: str | None = None, details: dict | None = None,
           note: str | None = None) -> AuditLog:
    """Append to the audit log outside a request (CLI, jobs), through the one audit writer."""
    from referents import audit

    return audit.write(session, action, user_id=user_id, person_id=person_id, endpoint=endpoint, ip=ip,
                       details=details, note=note)


def check_ttl(ttl_hours: int | None, default: int) -> int:
    ttl = default if ttl_hours is None else int(ttl_hours)
    if ttl < 1 or ttl > MAX_TOKEN_TTL_HOURS:
        raise AccountError(f"durée de validité entre 1 et {MAX_TOKEN_TTL_HOURS} heures")
    return ttl


def new_token(session: Session, user: User, ttl_hours: int | None, default_ttl: int, label: str = "") -> tuple[str, ApiToken]:
    if not user.active:
        raise AccountError("compte désactivé: pas de jeton")
    token = issue_token(session, user, check_ttl(ttl_hours, default_ttl), label=label)
    row = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc()))
    return token, row


def list_users(session: Session, role: str | None = None, structure_code: str | None = None,
               active: bool | None = None) -> list[User]:
    q = select(User).order_by(User.email)
    if role:
        q = q.where(User.role == role)
    if structure_code:
        q = q.join(Structure, Structure.id == User.structure_id).where(Structure.code == structure_code)
    if active is not None:
        q = q.where(User.active.is_(active))
    return list(session.scalars(q))


def add_user(session: Session, email: str, role: str, password: str | None = None,
             structure_code: str | None = None, display_name: str = "") -> User:
    if user_by_email(session, email) is not None:
        raise AccountError(f"un compte existe déjà pour {email.strip().lower()}")
    try:
        role = Role(role).value
    except ValueError as exc:
        raise AccountError(f"rôle inconnu: {role}") from exc
    if password is not None and len(password) < 12:
        raise AccountError("mot de passe trop court (12 caractères minimum)")
    try:
        return create_user(session, email, role, password=password, structure_code=structure_code,
                           display_name=display_name)
    except ValueError as exc:
        raise AccountError(str(exc)) from exc


def _check_admin_kept(session: Session, user: User, changes: dict, actor: User | None) -> None:
    """An admin cannot demote or disable itself, nor the last active admin (issue 22, item 7):
    nobody would be left to manage the accounts."""
    if user.role != Role.ADMIN.value or not user.active:
        return
    demoted = changes.get("role") is not None and changes["role"] != Role.ADMIN.value
    disabled = changes.get("active") is not None and not changes["active"]
    if not (demoted or disabled):
        return
    if actor is not None and actor.id == user.id:
        raise AccountError("vous ne pouvez pas retirer votre propre rôle d'administrateur ni désactiver "
                           "votre propre compte: demandez-le à un autre administrateur")
    from sqlalchemy import func

    others = session.scalar(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id))
    if not others:
        raise AccountError("c'est le dernier administrateur actif: nommez d'abord un autre administrateur")


def update_user(session: Session, user: User, actor: User | None = None, **changes) -> dict:
    """Apply the given changes; returns {field: [old, new]} (the password is never echoed).
    `actor` is the admin making the change (None from the command line)."""
    _check_admin_kept(session, user, changes, actor)
    diff: dict = {}
    if "role" in changes and changes["role"] is not None:
        try:
            role = Role(changes["role"]).value
        except ValueError as exc:
            raise AccountError(f"rôle inconnu: {changes['role']}") from exc
        if role != user.role:
            diff["role"] = [user.role, role]
            user.role = role
    if "structure_code" in changes:
        code = changes["structure_code"]
        structure = structure_by_code(session, code) if code else None
        if code and structure is None:
            raise AccountError(f"structure inconnue: {code}")
        if (structure.id if structure else None) != user.structure_id:
            diff["structure"] = [user.structure.code if user.structure else None, code]
            user.structure_id = structure.id if structure else None
            user.territory_id = structure.territory_id if structure else None
            session.flush()
            session.refresh(user)
    if user.role in (Role.PROVIDER, Role.MDS_WORKER, Role.ATI) and user.structure_id is None:
        raise AccountError(f"le rôle {user.role} exige une structure")
    if changes.get("display_name") is not None and changes["display_name"] != user.display_name:
        diff["display_name"] = [user.display_name, changes["display_name"]]
        user.display_name = changes["display_name"]
    if changes.get("password") is not None:
        if len(changes["password"]) < 12:
            raise AccountError("mot de passe trop court (12 caractères minimum)")
        user.password_hash = hash_password(changes["password"])
        diff["password"] = "changed"
        from referents.sessions import revoke_user

        revoke_user(session, user)  # a changed password ends every session of the account
    if changes.get("active") is not None and bool(changes["active"]) != user.active:
        diff["active"] = [user.active, bool(changes["active"])]
        if changes["active"]:
            user.active = True
        else:
            from referents.sessions import revoke_user

            disable_user(session, user)
            revoke_user(session, user)
    session.flush()
    return diff


def user_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, now: dt.datetime | None = None) -> ApiToken | None:
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return row


def revoke_all(session: Session, user: User) -> int:
    return revoke_tokens(session, user)


def revoke_sessions(session: Session, user: User) -> int:
    """End every browser session of the account (the tokens are revoked separately)."""
    from referents.sessions import revoke_user

    return revoke_user(session, user)


def audit_query(session: Session, user_id: int | None = None, person_id: int | None = None,
                action: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                limit: int = 100, offset: int = 0) -> tuple[int, list[AuditLog]]:
    """Filtered audit entries, newest first, and the total count for paging."""
    from sqlalchemy import func

    q = select(AuditLog)
    if user_id is not None:
        q = q.where(AuditLog.user_id == user_id)
    if person_id is not None:
        q = q.where(AuditLog.person_id == person_id)
    if action:
        q = q.where(AuditLog.action == action)
    if since is not None:
        q = q.where(AuditLog.at >= since)
    if until is not None:
        q = q.where(AuditLog.at < until)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    rows = session.scalars(q.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit).offset(offset))
    return total, list(rows)
