"""Login pages (session cookie for the dashboard), /me, user and token administration, audit log.

`pages` is a plain Flask blueprint (HTML forms, CSRF-protected); `blueprints` are the REST API
(bearer tokens or the session cookie)."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlsplit

from flask import Blueprint as PageBlueprint
from flask import current_app, g, redirect, render_template, request, session, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from config.auth import audit, current_user, db, public, requires
from referents import security
from referents import sessions as server_sessions
from referents.models import Role, Structure, Territory, User
from referents.schemas import (
    AuditPageSchema,
    AuditQuerySchema,
    IssuedToken,
    IssuedTokenSchema,
    MeSchema,
    RevokedSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserSchema,
    UserUpdateSchema,
)

log = logging.getLogger(__name__)
ADMIN = Role.ADMIN.value

# --- HTML login ---------------------------------------------------------------------------------

pages = PageBlueprint("pages", __name__, template_folder="templates")

LOGIN_LIMIT_DEFAULT = server_sessions.ACCOUNT_LIMIT_DEFAULT


def _login_limit() -> str:
    """Failures allowed per account (any address)."""
    return current_app.config.get("RSA_LOGIN_RATE_LIMIT", LOGIN_LIMIT_DEFAULT)


def _address_limit() -> str:
    """Failures allowed per client address (any account: password spraying)."""
    return current_app.config.get("RSA_LOGIN_ADDRESS_RATE_LIMIT", server_sessions.ADDRESS_LIMIT_DEFAULT)


def _safe_next(value: str | None) -> str | None:
    """Only same-site paths: no open redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _home() -> str:
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match("/", method="GET")
        return "/"
    except Exception:  # noqa: BLE001 - no dashboard registered at "/": the account page
        return url_for("pages.account")


def _login_page(status: int = 200, **context):
    context.setdefault("next", _safe_next(request.values.get("next")))
    return render_template("referents/login.html", **context), status


def _on_login_breach(verdict):
    email = request.form.get("email", "").strip().lower()[:200]
    user = security.user_by_email(db(), email)
    security.record(db(), "login_blocked", user_id=user.id if user else None, ip=request.remote_addr,
                    endpoint=f"{request.method} {request.path}",
                    details={"email": email, "per": verdict.key, "limit": verdict.limit})
    db().commit()
    log.warning("login rate limit reached per %s (user id %s)", verdict.key, user.id if user else None)
    body, status = _login_page(429, email=email, error="Trop de tentatives de connexion. "
                                                        "Réessayez dans quelques minutes.")
    return current_app.response_class(body, status=status, mimetype="text/html")


@pages.get("/login")
@public
def login():
    if current_user() is not None and request.args.get("next") is None:
        return redirect(_home(), 303)
    message = "Vous êtes déconnecté." if request.args.get("logged_out") else None
    return _login_page(message=message)


@pages.post("/login")
@public
def login_submit():
    """Failures are throttled per address and per account, with counters shared by every worker
    (referents.sessions): a blocked attempt is refused before its password is even checked."""
    email = request.form.get("email", "").strip().lower()[:200]
    password = request.form.get("password", "")
    verdict = server_sessions.check(db(), request.remote_addr, email, account_limit=_login_limit(),
                                    address_limit=_address_limit())
    if verdict.blocked:
        return _on_login_breach(verdict)
    user = security.authenticate(db(), email, password)
    if user is None:
        known = security.user_by_email(db(), email)
        server_sessions.record_failure(db(), request.remote_addr, email)
        security.record(db(), "login_failed", user_id=known.id if known else None, ip=request.remote_addr,
                        endpoint=f"{request.method} {request.path}", details={"email": email})
        db().commit()
        log.warning("login failed (user id %s)", known.id if known else None)
        return _login_page(401, email=email, error="Adresse électronique ou mot de passe incorrect.")
    sid = server_sessions.open_session(db(), user, current_app.extensions["rsa"].settings.token_ttl_hours,
                                       ip=request.remote_addr)
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["sid"] = sid
    session["pw"] = security.session_marker(user)
    g.user = user
    audit("login", details={"method": "password"})
    db().commit()
    log.info("login (user id %s)", user.id)
    return redirect(_safe_next(request.form.get("next")) or _home(), 303)


@pages.post("/logout")
@public
def logout():
    user = current_user()
    if user is not None and not request.headers.get("Authorization"):
        audit("logout")
    # The session ends server-side: a copy of the cookie kept before logout no longer works.
    server_sessions.end(db(), session.get("sid"))
    db().commit()
    session.clear()
    return redirect(url_for("pages.login", logged_out=1), 303)


@pages.get("/compte")
@requires()
def account():
    user = current_user()
    return render_template("referents/account.html", user=user, role_label=security.ROLE_LABELS.get(user.role))


# --- REST: who am I ---------------------------------------------------------------------------

blp_me = Blueprint("account", __name__, url_prefix="/me", description="Mon compte: identité, rôle, périmètre.")


def _nir_access(role: str) -> str:
    from cases.nir import nir_view

    shown = nir_view(role, "1840531555123")
    return "none" if shown is None else "full" if shown == "1840531555123" else "masked"


@blp_me.route("")
class Me(MethodView):
    @requires()
    @blp_me.response(200, MeSchema)
    def get(self):
        """Qui suis-je: rôle, structure, accès au NIR."""
        user = current_user()
        structure = db().get(Structure, user.structure_id) if user.structure_id else None
        territory = db().get(Territory, user.territory_id) if user.territory_id else None
        return {
            "id": user.id, "email": user.email, "display_name": user.display_name, "role": user.role,
            "role_label": security.ROLE_LABELS.get(user.role, user.role),
            "structure": {"code": structure.code, "name": structure.name, "kind": structure.kind} if structure else None,
            "territory": territory.code if territory else None,
            "nir_access": _nir_access(user.role),
            "auth": "token" if request.headers.get("Authorization", "").startswith("Bearer ") else "session",
        }


# --- REST: users and tokens (admins) ----------------------------------------------------------

blp_users = Blueprint("users", __name__, url_prefix="/users",
                      description="Comptes et jetons d'accès (administrateurs).")


def _user_or_404(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        abort(404, message="utilisateur inconnu")
    return user


def _admin_audit(action: str, target: User, details: dict | None = None) -> None:
    audit(action, details={"user_id": target.id, "email": target.email, **(details or {})})


@blp_users.route("")
class Users(MethodView):
    @requires(ADMIN)
    @blp_users.arguments(UserListQuerySchema, location="query")
    @blp_users.response(200, UserSchema(many=True))
    def get(self, args):
        """Liste des comptes."""
        users = security.list_users(db(), role=args.get("role"), structure_code=args.get("structure"),
                                    active=args.get("active"))
        return users

    @requires(ADMIN)
    @blp_users.arguments(UserCreateSchema)
    @blp_users.response(201, UserSchema)
    def post(self, args):
        """Crée un compte (mot de passe optionnel: un compte d'API n'en a pas)."""
        try:
            user = security.add_user(db(), args["email"], args["role"], password=args.get("password"),
                                     structure_code=args.get("structure"), display_name=args.get("display_name") or "")
        except security.AccountError as exc:
            db().rollback()
            abort(422, message=str(exc))
        _admin_audit("user_create", user, {"role": user.role})
        db().commit()
        return user


@blp_users.route("/<int:user_id>")
class UserItem(MethodView):
    @requires(ADMIN)
    @blp_users.response(200, UserSchema)
    def get(self, user_id):
        """Un compte."""
        return _user_or_404(user_id)

    @requires(ADMIN)
    @blp_users.arguments(UserUpdateSchema)
    @blp_users.response(200, UserSchema)
    def patch(self, args, user_id):
        """Modifie rôle, structure, nom, mot de passe ou activation."""
        user = _user_or_404(user_id)
        changes = dict(args)
        if "structure" in changes:
            changes["structure_code"] = changes.pop("structure")
        try:
            diff = security.update_user(db(), user, actor=current_user(), **changes)
        except security.AccountError as exc:
            db().rollback()
            abort(422, message=str(exc))
        if diff:
            _admin_audit("user_update", user, {"changes": diff})
        db().commit()
        return user

    @requires(ADMIN)
    @blp_users.response(204)
    def delete(self, user_id):
        """Désactive le compte et révoque ses jetons (le compte reste pour le journal d'audit)."""
        user = _user_or_404(user_id)
        if user.active:
            try:
                security.update_user(db(), user, actor=current_user(), active=False)
            except security.AccountError as exc:
                db().rollback()
                abort(422, message=str(exc))
            _admin_audit("user_disable", user)
        db().commit()


@blp_users.route("/<int:user_id>/tokens")
class UserTokens(MethodView):
    @requires(ADMIN)
    @blp_users.response(200, TokenSchema(many=True))
    def get(self, user_id):
        """Jetons d'un compte (jamais en clair)."""
        return security.user_tokens(db(), _user_or_404(user_id))

    @requires(ADMIN)
    @blp_users.arguments(TokenRequestSchema)
    @blp_users.response(201, IssuedTokenSchema)
    def post(self, args, user_id):
        """Émet un jeton: il est affiché cette seule fois."""
        user = _user_or_404(user_id)
        try:
            token, row = security.new_token(db(), user, args.get("ttl_hours"),
                                            current_app.extensions["rsa"].settings.token_ttl_hours,
                                            label=args.get("label") or "")
        except security.AccountError as exc:
            db().rollback()
            abort(422, message=str(exc))
        _admin_audit("token_issue", user, {"token_id": row.id, "expires_at": row.expires_at.isoformat()})
        db().commit()
        return IssuedToken(row, token)

    @requires(ADMIN)
    @blp_users.response(200, RevokedSchema)
    def delete(self, user_id):
        """Révoque tous les jetons du compte."""
        user = _user_or_404(user_id)
        n = security.revoke_all(db(), user)
        _admin_audit("token_revoke", user, {"count": n})
        db().commit()
        return {"revoked": n}


@blp_users.route("/<int:user_id>/tokens/<int:token_id>")
class UserToken(MethodView):
    @requires(ADMIN)
    @blp_users.response(200, RevokedSchema)
    def delete(self, user_id, token_id):
        """Révoque un jeton."""
        user = _user_or_404(user_id)
        row = security.revoke_token(db(), token_id)
        if row is None or row.user_id != user.id:
            abort(404, message="jeton inconnu")
        _admin_audit("token_revoke", user, {"token_id": token_id})
        db().commit()
        return {"revoked": 1}


@blp_users.route("/<int:user_id>/sessions")
class UserSessions(MethodView):
    @requires(ADMIN)
    @blp_users.response(200, RevokedSchema)
    def delete(self, user_id):
        """Met fin à toutes les sessions de navigateur du compte (côté serveur, sur tous les postes)."""
        user = _user_or_404(user_id)
        n = security.revoke_sessions(db(), user)
        _admin_audit("session_revoke", user, {"count": n})
        db().commit()
        return {"revoked": n}


# --- REST: audit log (admins, read-only: there is no way to change it) -----------------------

blp_audit = Blueprint("audit", __name__, url_prefix="/audit",
                      description="Journal d'audit: lectures et modifications de dossiers, connexions, exports.")


def _naive_utc(value):
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


@blp_audit.route("")
class Audit(MethodView):
    @requires(ADMIN)
    @blp_audit.arguments(AuditQuerySchema, location="query")
    @blp_audit.response(200, AuditPageSchema)
    def get(self, args):
        """Entrées du journal, les plus récentes d'abord, filtrables."""
        since, until = _naive_utc(args.get("since")), _naive_utc(args.get("until"))
        total, rows = security.audit_query(
            db(), user_id=args.get("user_id"), person_id=args.get("person_id"), action=args.get("action"),
            since=since, until=until,
            limit=args["limit"], offset=args["offset"])
        return {"total": total, "items": rows}


blueprints = [blp_me, blp_users, blp_audit]
