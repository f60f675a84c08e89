"""The shared frame of every page: layout, navigation per role, landing on `/`, the stylesheet
shipped in the package, French HTML error pages, and the Jinja filters that write dates as
JJ/MM/AAAA and codes as labels.

Each package's `pages.py` renders its own templates, which extend `layout/base.html` from here.
Nothing here needs JavaScript."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from marshmallow import ValidationError

from config.auth import current_user, public, requires
from referents import vocabulary as voc
from referents.models import Role

bp = Blueprint("ui", __name__, template_folder="templates")
STATIC = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/"

ADMIN, MANAGER, MDS, PROVIDER, ATI = (Role.ADMIN.value, Role.MANAGER.value, Role.MDS_WORKER.value,
                                      Role.PROVIDER.value, Role.ATI.value)
STAFF = (ADMIN, MANAGER)
FOLLOWERS = (MDS, PROVIDER, ATI)

# The navigation: (endpoint, label, roles). An entry shows only when its endpoint is registered.
NAVIGATION = (
    ("reports_pages.dashboard", "Tableau de bord", STAFF),
    ("orientation_pages.proposals", "Propositions à valider", (ADMIN, MANAGER, MDS)),
    ("cases_pages.follow_up", "Mes personnes", FOLLOWERS),
    ("cases_pages.search", "Rechercher une personne", (ADMIN, MANAGER, MDS, PROVIDER, ATI)),
    ("kiosque_pages.sessions", "Kiosques insertion", (ADMIN, MANAGER, MDS)),
    ("imports_pages.returns", "Fichier retour mensuel", (PROVIDER,)),
    ("imports_pages.batches", "Lots d'import", STAFF),
)
# Where each role starts its day.
LANDING = {ADMIN: "reports_pages.dashboard", MANAGER: "reports_pages.dashboard",
           MDS: "orientation_pages.proposals", PROVIDER: "cases_pages.follow_up", ATI: "cases_pages.follow_up"}

ERROR_TITLES = {
    400: "Demande incorrecte", 401: "Connexion nécessaire", 403: "Accès refusé", 404: "Page introuvable",
    405: "Action non permise", 409: "Conflit", 413: "Fichier trop volumineux", 415: "Type de fichier refusé",
    422: "Données refusées", 429: "Trop de demandes", 500: "Erreur interne", 503: "Service indisponible",
}
ERROR_TEXTS = {
    400: "La demande n'a pas pu être comprise.",
    401: "Connectez-vous pour continuer.",
    403: "Votre rôle ne donne pas accès à cette page ou à cette action.",
    404: "Cette page n'existe pas, ou la personne ou l'élément demandé n'est pas dans votre périmètre.",
    405: "Cette action n'est pas possible à cette adresse.",
    409: "La demande entre en conflit avec les données enregistrées.",
    413: "Le fichier envoyé dépasse la taille permise.",
    415: "Ce type de fichier n'est pas accepté ici.",
    422: "Les données envoyées ont été refusées.",
    429: "Trop de demandes en peu de temps: réessayez dans quelques minutes.",
    500: "Une erreur inattendue est survenue. Elle a été journalisée; réessayez plus tard.",
    503: "Le service est momentanément indisponible.",
}


# --------------------------------------------------------------------------- landing, assets

@bp.get("/")
@requires()
def home():
    """Each role lands on its work page."""
    endpoint = LANDING.get(current_user().role)
    if endpoint and endpoint in current_app.view_functions:
        return redirect(url_for(endpoint), 303)
    return redirect(url_for("pages.account"), 303)


@bp.get("/static/rsa/<path:filename>")
@public
def asset(filename):
    """The stylesheet and icons, shipped in the package (no CDN)."""
    response = send_from_directory(STATIC, filename, max_age=3600)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.app_context_processor
def _frame():
    user = current_user() if request else None
    nav = []
    if user is not None:
        for endpoint, label, roles in NAVIGATION:
            if user.role in roles and endpoint in current_app.view_functions:
                nav.append({"url": url_for(endpoint), "label": label, "endpoint": endpoint,
                            "current": request.endpoint == endpoint})
    from referents.security import ROLE_LABELS

    return {"nav": nav, "user": user, "role_label": ROLE_LABELS.get(user.role) if user else None,
            "voc": voc, "messages": get_flashed_messages(with_categories=True)}


# --------------------------------------------------------------------------- filters

@bp.app_template_filter("date_fr")
def date_fr(value) -> str:
    """JJ/MM/AAAA from a date, a datetime or an ISO string; "—" for nothing."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value.strftime("%d/%m/%Y")


@bp.app_template_filter("datetime_fr")
def datetime_fr(value) -> str:
    """JJ/MM/AAAA à HH h MM."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return date_fr(value)
    return value.strftime("%d/%m/%Y à %H h %M")


VOCABULARIES = ("referents.vocabulary", "orientation.vocabulary", "kiosque.vocabulary")


@bp.app_template_filter("label")
def label(code, enum_name: str) -> str:
    """The French label of a code from the vocabulary modules (`{{ o.status|label('OrientationStatus') }}`):
    referents/vocabulary.py, then orientation's and kiosque's own."""
    import importlib

    if code in (None, ""):
        return "—"
    for module in VOCABULARIES:
        enum = getattr(importlib.import_module(module), enum_name, None)
        if enum is not None:
            return enum.label_of(str(code))
    raise LookupError(f"no vocabulary defines {enum_name}")


@bp.app_template_filter("number_fr")
def number_fr(value) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace(",", "\u202f")


def days_between(start, end) -> int | None:
    if not start or not end:
        return None
    if isinstance(start, str):
        start = dt.date.fromisoformat(start[:10])
    if isinstance(end, str):
        end = dt.date.fromisoformat(end[:10])
    if isinstance(start, dt.datetime):
        start = start.date()
    if isinstance(end, dt.datetime):
        end = end.date()
    return (end - start).days


# --------------------------------------------------------------------------- forms

def form_data(*, drop_empty: bool = True) -> dict:
    """The posted fields without the CSRF token, empty fields dropped (a form sends "" for none)."""
    return {k: v for k, v in request.form.items() if k != "csrf_token" and not (drop_empty and v == "")}


def load_form(schema, data: dict | None = None) -> tuple[dict | None, dict | None]:
    """Validate posted fields with the API's own marshmallow schema: (values, None) or (None, errors)."""
    try:
        return schema.load(form_data() if data is None else data), None
    except ValidationError as exc:
        return None, french_messages(exc.messages)


# Marshmallow's English messages → French (the domain's own messages are French already).
_MARSHMALLOW_FR = (
    (r"Missing data for required field\.", "Ce champ est obligatoire."),
    (r"Field may not be null\.", "Ce champ est obligatoire."),
    (r"Not a valid date\.", "Date invalide (JJ/MM/AAAA)."),
    (r"Not a valid datetime\.", "Date et heure invalides."),
    (r"Not a valid time\.", "Heure invalide."),
    (r"Not a valid integer\.", "Nombre entier attendu."),
    (r"Not a valid number\.", "Nombre attendu."),
    (r"Not a valid string\.", "Texte attendu."),
    (r"Not a valid boolean\.", "Oui ou non attendu."),
    (r"Not a valid list\.", "Liste attendue."),
    (r"Not a valid mapping type\.", "Objet attendu."),
    (r"Not a valid email address\.", "Adresse électronique invalide."),
    (r"Invalid input type\.", "Type de donnée invalide."),
    (r"Unknown field\.", "Champ inconnu."),
    (r"Must be one of: (.*)\.", r"Valeur non prévue (attendu: \1)."),
    (r"Length must be between (\d+) and (\d+)\.", r"Longueur attendue entre \1 et \2."),
    (r"Longer than maximum length (\d+)\.", r"Trop long: \1 au maximum."),
    (r"Shorter than minimum length (\d+)\.", r"Trop court: \1 au minimum."),
    (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.",
     r"Valeur attendue entre \1 et \2."),
    (r"Must be greater than or equal to (\S+)\.", r"Valeur attendue supérieure ou égale à \1."),
    (r"Must be less than or equal to (\S+)\.", r"Valeur attendue inférieure ou égale à \1."),
    (r"Must be greater than (\S+)\.", r"Valeur attendue supérieure à \1."),
    (r"Must be less than (\S+)\.", r"Valeur attendue inférieure à \1."),
)


def french_messages(messages):
    """Marshmallow's English messages in French, whatever their nesting."""
    import re

    if isinstance(messages, dict):
        return {k: french_messages(v) for k, v in messages.items()}
    if isinstance(messages, list | tuple):
        return [french_messages(m) for m in messages]
    if isinstance(messages, str):
        for pattern, french in _MARSHMALLOW_FR:
            if re.fullmatch(pattern, messages):
                return re.sub(pattern, french, messages)
    return messages


def done(message: str, endpoint: str, **values):
    """After a successful form: a confirmation and Post/Redirect/Get."""
    flash(message, "success")
    return redirect(url_for(endpoint, **values), 303)


# --------------------------------------------------------------------------- error pages

def wants_html() -> bool:
    """A browser navigation (not the API, not a bearer call) gets an HTML page."""
    if request.path.startswith(API_PREFIX) or request.headers.get("Authorization", "").startswith("Bearer "):
        return False
    return "text/html" in request.headers.get("Accept", "")


def error_page(code: int, message: str | None = None, details: list[str] | None = None):
    """The French HTML page of an HTTP error (the layout, a heading, what to do next)."""
    code = code if code in ERROR_TITLES else (500 if code >= 500 else 400)
    try:
        body = render_template("errors/error.html", code=code, title=ERROR_TITLES[code],
                               message=message or ERROR_TEXTS[code], details=details or [])
    except Exception:  # noqa: BLE001 - the error page itself failed (database down…): plain text
        body = f"<!doctype html><html lang=fr><title>{ERROR_TITLES[code]}</title><h1>{ERROR_TITLES[code]}</h1>"
    return body, code
