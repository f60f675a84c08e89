"""Flask app factory: the REST API under /api/v1 (flask-smorest), pages, health, JSON errors."""

from __future__ import annotations

import logging

from flask import Flask, abort, g, jsonify, request
from flask_smorest import Api
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from werkzeug.exceptions import HTTPException

from config.auth import csrf, csrf_check, declared_roles, limiter, public
from config.modules import PACKAGES, optional_module
from config.runtime import Runtime, build_runtime
from config.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# The endpoints that change in bulk the data the reports summarise (config.cli.REPORTS_STALE_AFTER
# for the commands, Job.reports_stale for the jobs): after a success the stored reports are stale.
REPORTS_STALE_AFTER = frozenset({
    "orientation.run", "kiosque.run_planning", "imports.FluxUpload", "imports.FranceTravailUpload",
    "imports.SpreadsheetUpload", "imports.ProviderReturnUpload", "imports_pages.upload",
})

# Security headers of every response (one definition: the app's responses and the errors the WSGI
# server writes itself, see config.edges). The script CSP carries a per-request nonce: no inline
# script runs unless its tag carries nonce="{{ csp_nonce() }}" (issue 22, item 10).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def content_security_policy(nonce: str | None = None) -> str:
    script = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"script-src {script}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def settle(app: Flask) -> int:
    """Prepare a serving process for its requests: build what the first requests would build lazily
    (the mappers' configuration, every page template compiled), then move the whole heap to the
    garbage collector's permanent generation (gc.freeze). The cyclic collector's full passes then no
    longer walk the application's ~200,000 long-lived objects: measured at 1M persons, such a pass
    took 60–70 ms, inside whichever request triggered it (about one in forty). For `rsa serve`'s
    workers (gunicorn's post_worker_init), not for a process that creates many apps (the tests).
    Returns the number of objects frozen."""
    import gc

    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    for name in app.jinja_env.list_templates(filter_func=lambda n: n.endswith(".html")):
        app.jinja_env.get_template(name)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    runtime = runtime or build_runtime(settings)
    settings = runtime.settings
    if not settings.secret_key:  # an empty key used to start, then /login answered 500
        raise RuntimeError("RSA_SECRET_KEY est vide: aucune session ne peut être signée")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        API_TITLE="RSA Haute-Garonne — orientation et parcours",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/v1/docs/static/",
        JSON_SORT_KEYS=False,
        # A cookie session lives as long as an API token (RSA_TOKEN_TTL_HOURS).
        PERMANENT_SESSION_LIFETIME=settings.token_ttl_hours * 3600,
        SESSION_COOKIE_NAME="rsa_session",
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in _csrf below, bearer calls exempt
        WTF_CSRF_TIME_LIMIT=settings.token_ttl_hours * 3600,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.extensions["rsa"] = runtime
    csrf.init_app(app)
    limiter.init_app(app)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # strict CORS: none unless an allowlist is configured
        from flask_cors import CORS

        CORS(app, resources={f"{API_PREFIX}/*": {"origins": origins}}, supports_credentials=False,
             allow_headers=["Authorization", "Content-Type"], max_age=600)
    ui = optional_module("referents.pages")  # the shared layout and HTML error pages
    api = Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    _vendored_swagger_ui(app)
    for name in PACKAGES:  # config.modules.PACKAGES order is the OpenAPI document's tag order
        module = optional_module(f"{name}.api")
        if module is None:
            continue
        for attr in ("blp", "blueprints"):
            obj = getattr(module, attr, None)
            for bp in (obj if isinstance(obj, list | tuple) else [obj] if obj is not None else []):
                api.register_blueprint(bp, url_prefix=f"{API_PREFIX}{bp.url_prefix or ''}")
        pages = getattr(module, "pages", None)
        if pages is not None:
            app.register_blueprint(pages)
    for name in PACKAGES:  # the screens of each package (pages.py next to its api.py)
        screens = optional_module(f"{name}.pages")
        if screens is not None:
            app.register_blueprint(screens.bp)

    @app.get("/healthz")
    @public
    def healthz():
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any database failure is "unhealthy"
            log.error("healthz: database unreachable: %s", exc.__class__.__name__)
            return jsonify(status="error", database="unreachable"), 503
        return jsonify(status="ok", database="ok")

    @app.before_request
    def _fail_closed():
        if request.endpoint is None:
            return None
        if request.endpoint in ("static",) or request.endpoint.startswith("api-docs."):
            return None
        view = app.view_functions.get(request.endpoint)
        if request.method in ("OPTIONS", "HEAD"):
            return None
        if view is None or declared_roles(view, request.method) is None:
            log.error("endpoint %s %s declares no permission: refused", request.method, request.endpoint)
            abort(403)
        return None

    @app.before_request
    def _ids_that_cannot_exist():
        """An id in the URL beyond what a database integer holds names nothing: 404, like any
        missing record (instead of an overflow in the driver)."""
        for value in (request.view_args or {}).values():
            if isinstance(value, int) and not 0 <= value <= 2**63 - 1:
                abort(404)

    @app.before_request
    def _nonce_and_json_depth():
        import secrets

        g.csp_nonce = secrets.token_urlsafe(16)
        from config.edges import check_json_depth

        check_json_depth(request)

    @app.context_processor
    def _csp_nonce():
        return {"csp_nonce": lambda: g.get("csp_nonce", "")}

    @app.before_request
    def _csrf():
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        csrf_check(view is not None and declared_roles(view, request.method) == "public")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if getattr(exc, "response", None) is not None:  # a ready response (e.g. the login page on 429)
            return exc.response
        if (exc.code == 401 and request.method == "GET" and not request.path.startswith(API_PREFIX)
                and "pages.login" in app.view_functions):
            from flask import redirect, url_for  # an HTML page: go to the login form, then back
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")), 303)
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        # The message the code gave (flask-smorest's abort(message=…) or abort(description=…)),
        # else a French text: never werkzeug's generic English description.
        message = data.get("message") if isinstance(data, dict) else None
        if not message and exc.description and exc.description != type(exc).description:
            message = exc.description
        if ui is not None and ui.wants_html():
            return ui.error_page(exc.code, message, _flat(messages))
        body = {"code": exc.code, "status": exc.name}
        if messages:
            body["errors"] = ui.french_messages(messages) if ui is not None else messages
        elif exc.code not in (500,):
            body["message"] = message or (ui.ERROR_TEXTS.get(exc.code) if ui is not None else exc.description)
        return jsonify(body), exc.code

    def _flat(messages) -> list[str]:
        out = []
        for value in (messages or {}).values():
            if isinstance(value, dict):
                out.extend(_flat(value))
            else:
                out.extend(value if isinstance(value, list) else [str(value)])
        return [str(m) for m in out]

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        """A write refused by the database (unknown reference, duplicate): the client's input."""
        _rollback()
        log.warning("integrity error on %s %s: %s", request.method, request.path, exc.orig.__class__.__name__)
        return jsonify(code=409, status="Conflict",
                       message="données incohérentes: référence inconnue ou doublon"), 409

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _data_error(exc: Exception):
        """A value the database cannot hold (PostgreSQL: DataError; SQLite: OverflowError)."""
        _rollback()
        log.warning("out-of-range value on %s %s: %s", request.method, request.path, exc.__class__.__name__)
        return jsonify(code=422, status="Unprocessable Entity", message="valeur hors limites"), 422

    def _rollback():
        session = g.get("db")
        if session is not None:
            session.rollback()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        if ui is not None and ui.wants_html():
            return ui.error_page(500)
        return jsonify(code=500, status="Internal Server Error"), 500

    @app.after_request
    def _reports_stale(response):
        """A bulk change made over HTTP (an upload, the orientation run, the kiosque planning) makes
        the stored reports stale, as the same work run by a command or a job does."""
        if request.endpoint in REPORTS_STALE_AFTER and response.status_code < 400:
            from config.scheduler import reports_stale

            _rollback()  # the view committed its work; the rest (a token's touch) would be rolled back at teardown
            reports_stale(runtime, f"{request.method} {request.path}")
        return response

    @app.after_request
    def _headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", content_security_policy(g.get("csp_nonce")))
        if settings.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    @app.teardown_appcontext
    def _close_db(_exc):
        session = g.pop("db", None)
        if session is not None:
            session.close()

    return app


def _vendored_swagger_ui(app: Flask) -> None:
    """Serve Swagger UI from the swagger-ui-bundle package: no CDN."""
    import swagger_ui_bundle
    from flask import send_from_directory

    static_dir = swagger_ui_bundle.swagger_ui_path

    @app.get("/api/v1/docs/static/<path:filename>")
    @public
    def swagger_static(filename):
        return send_from_directory(static_dir, filename)
