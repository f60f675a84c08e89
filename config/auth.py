"""Authentication and permission declaration for every HTTP endpoint.

Every view declares who may call it with @requires(...) or @public. The app refuses, fail-closed,
any endpoint that declares nothing (see config.app). Scope (which persons a user may see) is not
decided here but by cases.service.person_scope, used by every query.
"""

from __future__ import annotations

import functools

from flask import abort, current_app, g, request, session
from sqlalchemy.orm import Session

from referents.models import Role, User

ALL_ROLES = tuple(r.value for r in Role)
STAFF = (Role.ADMIN.value, Role.MANAGER.value)


def db() -> Session:
    """The request's database session (closed at teardown, committed by the view)."""
    if "db" not in g:
        g.db = current_app.extensions["rsa"].sessions()
    return g.db


def runtime():
    return current_app.extensions["rsa"]


def current_user() -> User | None:
    if "user" not in g:
        g.user = _authenticate()
    return g.user


def _authenticate() -> User | None:
    from referents.service import user_for_token

    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return user_for_token(db(), header[7:].strip())
    uid = session.get("user_id")
    if uid:
        user = db().get(User, uid)
        if user is not None and user.active and session.get("pw") == (user.password_hash or "")[-16:]:
            return user
    return None


def requires(*roles: str):
    """Declare and enforce the roles allowed on a view (401 without identity, 403 wrong role)."""
    allowed = tuple(str(r) for r in roles) or ALL_ROLES

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                abort(401)
            if user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapper._rsa_roles = allowed
        return wrapper

    return decorate


def public(view):
    """Declare a view open without authentication (health, login, OpenAPI)."""
    view._rsa_public = True
    return view


def declared_roles(view_func, method: str):
    """The declaration of an endpoint for one HTTP method: a roles tuple, 'public' or None."""
    targets = [view_func]
    view_class = getattr(view_func, "view_class", None)
    if view_class is not None:
        targets.insert(0, getattr(view_class, method.lower(), None))
    for t in targets:
        if t is None:
            continue
        if getattr(t, "_rsa_public", False):
            return "public"
        if getattr(t, "_rsa_roles", None):
            return t._rsa_roles
    return None


def audit(action: str, person_id: int | None = None, details: dict | None = None) -> None:
    """Record an access in the audit log, in the request's session."""
    from referents.models import AuditLog

    user = g.get("user")
    db().add(AuditLog(user_id=user.id if user else None, action=action, person_id=person_id,
                      endpoint=f"{request.method} {request.path}", ip=request.remote_addr, details=details))
