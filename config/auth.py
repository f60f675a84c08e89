"""Authentication and permission declaration for every HTTP endpoint.

Every view declares who may call it with @requires(...) or @public. The app refuses, fail-closed,
any endpoint that declares nothing (see config.app). Scope (which persons a user may see) is not
decided here but by cases.service.person_scope, used by every query.
"""

from __future__ import annotations

import functools
from pathlib import PurePath

from flask import abort, current_app, g, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from referents.models import Role, User

ALL_ROLES = tuple(r.value for r in Role)
STAFF = (Role.ADMIN.value, Role.MANAGER.value)

# Extensions bound by config.app.create_app. CSRF is checked explicitly (see csrf_check) so that
# bearer-token API calls are exempt while every cookie-authenticated form or fetch is protected.
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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
        # The cookie alone is not enough: its server-side session must still be live (logout and
        # revocation end it everywhere), and the password must not have changed since.
        from referents.sessions import session_user

        user = session_user(db(), session.get("sid"))
        if user is not None and user.id == uid and session.get("pw") == (user.password_hash or "")[-16:]:
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
    """Record an access in the audit log, in the request's session (through the one audit writer)."""
    from referents import audit as audit_log

    user = g.get("user")
    audit_log.write(db(), action, user_id=user.id if user else None, person_id=person_id,
                    endpoint=f"{request.method} {request.path}", ip=request.remote_addr, details=details)


def bearer_request() -> bool:
    return request.headers.get("Authorization", "").startswith("Bearer ")


def csrf_check(public_view: bool = False) -> None:
    """CSRF for state-changing requests that a browser could forge: every request riding on the
    session cookie (HTML form or fetch), and the public forms (login). Bearer-token calls cannot
    be forged cross-site: exempt. Without any identity the view answers 401 anyway."""
    if request.method in SAFE_METHODS or bearer_request():
        return
    if public_view or session.get("user_id"):
        csrf.protect()


# Magic numbers of the formats the product accepts in uploads.
_SIGNATURES = {
    "xlsx": (b"PK\x03\x04",), "ods": (b"PK\x03\x04",), "zip": (b"PK\x03\x04",),
    "xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",), "pdf": (b"%PDF-",),
    "gz": (b"\x1f\x8b",),
}
_TEXT = {"csv", "txt", "xml", "json", "yaml", "yml"}


def check_upload(file, allowed_extensions, max_bytes: int | None = None) -> str:
    """Check an uploaded file (werkzeug FileStorage) before anyone parses it: known extension,
    content matching the extension (magic number, or text without NUL bytes), size. Returns the
    sanitised file name; aborts with 415 (wrong type) or 413 (too large) otherwise.

    The whole request is already capped by MAX_CONTENT_LENGTH (RSA_MAX_UPLOAD_MB)."""
    allowed = {e.lower().lstrip(".") for e in allowed_extensions}
    if file is None or not getattr(file, "filename", ""):
        abort(400, description="aucun fichier reçu")
    name = secure_filename(file.filename) or "upload"
    suffixes = [x.lstrip(".").lower() for x in PurePath(file.filename).suffixes]
    ext = suffixes[-1] if suffixes else ""
    if ext not in allowed:
        abort(415, description=f"type de fichier refusé: .{ext or '?'} (acceptés: "
                               f"{', '.join('.' + e for e in sorted(allowed))})")
    stream = file.stream
    pos = stream.tell()
    head = stream.read(8192)
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(pos)
    if max_bytes is not None and size > max_bytes:
        abort(413, description=f"fichier trop volumineux ({size} octets, maximum {max_bytes})")
    if ext in _SIGNATURES:
        if not head.startswith(_SIGNATURES[ext]):
            abort(415, description=f"le contenu du fichier ne correspond pas à l'extension .{ext}")
    elif ext in _TEXT:
        if b"\x00" in head:
            abort(415, description=f"le fichier .{ext} n'est pas un fichier texte")
        if ext == "xml" and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            abort(415, description="le fichier .xml ne commence pas par une balise")
    return name
