"""What France Travail tells the Département about a person's orientation, read from a daily file
or from the partner API — one interface (`OrientationSource`), chosen by `RSA_FT_MODE`.

The records are those WebRSA 4.32 reads from the partner API `orientationusager/v1/lectureOrientation`
(docs/imports.md, section France Travail, lists the fields and what is still to confirm):

- a **préconisation** (statut PRECONISE): the parcours France Travail's diagnostic recommends at
  registration (PED / PSP / PSO; EO and IND name none), with its organisme when given;
- an **orientation decided** by France Travail (statut DECIDE): parcours, organisme (FT, CD, DCD, ML,
  CE), date, structure;
- a **contrat d'engagement** signed with France Travail: its signature date.

Codes are translated by referents.vocabulary (the one mapping, read both ways).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cases import nir as nirlib
from imports.tabular import FileError, RowError, decode
from imports.values import normalise_header, parse_date
from referents.vocabulary import organisme_of_ft_code, parcours_of_ft_code

KINDS = ("preconisation", "orientation", "contract")
KIND_ALIASES = {"preconisation": "preconisation", "orientation": "orientation", "decision": "orientation",
                "contrat": "contract", "contract": "contract", "contrat d'engagement": "contract",
                "contrat engagement": "contract"}
STATUSES = ("PRECONISE", "DECIDE")
STATES = ("EN_ATTENTE", "BROUILLON", "OUVERT", "CLOTURE")
COLUMNS = ("type", "nir", "date_naissance", "parcours", "organisme", "statut", "etat", "date", "structure",
           "identifiant")
REQUIRED_COLUMNS = ("nir", "date_naissance", "date")

# Partner API paths (WebRSA 4.32's configuration; the base URL is RSA_FT_API_URL).
USER_SEARCH_PATH = "/partenaire/rechercher-usager/v2/usagers/par-datenaissance-et-nir"
READ_PATH = "/partenaire/orientationusager/v1/lectureOrientation"
WRITE_PATH = "/partenaire/orientationusager/v1/orientation"


@dataclass(frozen=True)
class PartnerRecord:
    """One fact France Travail sent: kind preconisation | orientation | contract."""

    kind: str
    nir13: str
    birth_date: dt.date
    effective_on: dt.date
    parcours_code: str | None = None
    organisme_code: str | None = None
    status: str | None = None
    state: str | None = None
    structure: str | None = None
    external_id: str | None = None
    parcours: str | None = field(default=None, compare=False)
    organisme: str | None = field(default=None, compare=False)

    def key(self, nir_hash: str) -> str:
        """Content digest: the same fact sent again (the API answers the same every day) is one row."""
        import hashlib

        parts = [self.kind, nir_hash, self.birth_date.isoformat(), self.effective_on.isoformat(),
                 self.parcours_code or "", self.organisme_code or "", self.status or "", self.state or "",
                 self.external_id or ""]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def make_record(values: dict) -> PartnerRecord:
    """Check and type one record (CSV row or JSON object with the COLUMNS keys); RowError names the
    column at fault."""
    if values.get("_error"):
        raise RowError(None, values["_error"])
    raw_kind = (str(values.get("type") or "")).strip().lower()
    status = (str(values.get("statut") or "")).strip().upper() or None
    if not raw_kind:
        raw_kind = {"PRECONISE": "preconisation", "DECIDE": "orientation"}.get(status or "", "")
    kind = KIND_ALIASES.get(raw_kind.replace("é", "e"))
    if kind is None:
        raise RowError("type", f"type inconnu « {raw_kind} » (preconisation, orientation, contrat)")
    if status is not None and status not in STATUSES:
        raise RowError("statut", f"statut inconnu « {status} » ({', '.join(STATUSES)})")
    if kind == "preconisation" and status == "DECIDE" or kind == "orientation" and status == "PRECONISE":
        raise RowError("statut", f"statut {status} incohérent avec le type {kind}")
    try:
        nir13 = nirlib.normalise(values.get("nir"))
    except nirlib.NirError as exc:
        raise RowError("nir", str(exc)) from None
    if not nir13:
        raise RowError("nir", "NIR absent")
    dates = {}
    for column in ("date_naissance", "date"):
        try:
            dates[column] = parse_date(_date_text(values.get(column)))
        except ValueError as exc:
            raise RowError(column, str(exc)) from None
        if dates[column] is None:
            raise RowError(column, "date absente")
    state = (str(values.get("etat") or "")).strip().upper() or None
    if state is not None and state not in STATES:
        raise RowError("etat", f"état inconnu « {state} » ({', '.join(STATES)})")
    parcours_code = (str(values.get("parcours") or "")).strip().upper() or None
    organisme_code = (str(values.get("organisme") or "")).strip().upper() or None
    try:
        parcours = parcours_of_ft_code(parcours_code)
    except ValueError as exc:
        raise RowError("parcours", str(exc)) from None
    try:
        organisme = organisme_of_ft_code(organisme_code)
    except ValueError as exc:
        raise RowError("organisme", str(exc)) from None
    if kind in ("preconisation", "orientation") and parcours_code is None:
        raise RowError("parcours", "code parcours absent")
    if kind == "orientation" and organisme_code is None:
        raise RowError("organisme", "code organisme absent")
    structure = (str(values.get("structure") or "")).strip()[:200] or None
    external_id = (str(values.get("identifiant") or "")).strip()[:60] or None
    return PartnerRecord(kind=kind, nir13=nir13, birth_date=dates["date_naissance"], effective_on=dates["date"],
                         parcours_code=parcours_code, organisme_code=organisme_code,
                         status=status or {"preconisation": "PRECONISE", "orientation": "DECIDE"}.get(kind),
                         state=state, structure=structure, external_id=external_id, parcours=parcours,
                         organisme=organisme)


def _date_text(value) -> str | None:
    """API timestamps (2025-03-01T10:12:00…) keep their date."""
    if value is None:
        return None
    text = str(value).strip()
    return text[:10] if len(text) > 10 and text[4:5] == "-" and text[10:11] in ("T", " ") else text


def records_from_lecture(nir: str, birth_date, item: dict) -> list[dict]:
    """The COLUMNS-shaped records of one `lectureOrientation` answer item (the API's field names:
    parcours, organisme, statut, etat, date_entree_parcours / date_creation, structure.libelle_structure,
    decision.{date_decision, organisme_decision, structure}, and contrat_engagement.date_signature)."""
    out = []
    status = (item.get("statut") or "").upper()
    decision = item.get("decision") or {}
    base = {"nir": nir, "date_naissance": birth_date, "parcours": item.get("parcours"),
            "etat": item.get("etat"), "identifiant": item.get("id") or item.get("identifiant")}
    structure = (item.get("structure") or {}).get("libelle_structure")
    if status == "PRECONISE":
        out.append({**base, "type": "preconisation", "statut": status, "organisme": item.get("organisme"),
                    "date": item.get("date_entree_parcours") or item.get("date_creation"), "structure": structure})
    elif status == "DECIDE":
        out.append({**base, "type": "orientation", "statut": status,
                    "organisme": decision.get("organisme_decision") or item.get("organisme"),
                    "date": decision.get("date_decision") or item.get("date_entree_parcours")
                    or item.get("date_creation"),
                    "structure": (decision.get("structure") or {}).get("libelle_structure")
                    or (item.get("structure_decision") or {}).get("libelle_structure") or structure})
    contract = item.get("contrat_engagement") or {}
    if contract.get("date_signature"):
        out.append({"nir": nir, "date_naissance": birth_date, "type": "contrat",
                    "date": contract["date_signature"], "identifiant": contract.get("id"),
                    "structure": structure})
    return out


# --------------------------------------------------------------------------- the daily file

@dataclass
class ParsedFile:
    records: list[tuple[int, PartnerRecord]]  # (line or item number, record)
    rejects: list[tuple[int, str | None, str, dict]]  # (line, column, reason, raw values)
    encoding: str = "utf-8"


def read_file(path: Path | str) -> ParsedFile:
    """A France Travail orientation file: CSV (`;`, header line) or JSON (a list of records, or
    {"records": […]}, each a COLUMNS object or a `lectureOrientation` item with nir and
    date_naissance), read through FileSource. FileError when the file as a whole cannot be read."""
    source = FileSource(Path(path))
    parsed = ParsedFile([], [], source.encoding)
    for line, values in source.records():
        try:
            parsed.records.append((line, make_record(values)))
        except RowError as exc:
            parsed.rejects.append((line, exc.column, exc.message, values))
    parsed.encoding = source.encoding
    return parsed


def _csv_items(text: str) -> list[tuple[int, dict]]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    except csv.Error as exc:
        raise FileError(f"CSV mal formé: {exc}") from None
    rows = [r for r in rows]
    if not rows:
        raise FileError("fichier vide")
    names = [normalise_header(c).replace(" ", "_") for c in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise FileError(f"colonne(s) obligatoire(s) absente(s) de l'en-tête: {', '.join(missing)} "
                        f"(en-tête attendu: {';'.join(COLUMNS)})")
    out = []
    for index, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            out.append((index, {"_error": f"{len(cells)} colonnes au lieu de {len(names)}"}))
            continue
        out.append((index, dict(zip(names, cells, strict=True))))
    return out


def _json_items(text: str) -> list[tuple[int, dict]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileError(f"JSON mal formé (ligne {exc.lineno}, colonne {exc.colno})") from None
    if isinstance(doc, dict):
        doc = doc.get("records")
    if not isinstance(doc, list):
        raise FileError("JSON: une liste d'enregistrements (ou {\"records\": [...]}) est attendue")
    out = []
    for index, obj in enumerate(doc, start=1):
        if not isinstance(obj, dict):
            out.append((index, {"_error": "enregistrement qui n'est pas un objet JSON"}))
        elif "type" in obj or "statut" in obj and "parcours" in obj and "orientation" not in obj:
            out.append((index, {k: obj.get(k) for k in COLUMNS}))
        else:
            for rec in records_from_lecture(obj.get("nir"), obj.get("date_naissance"), obj.get("orientation") or {}):
                out.append((index, rec))
            if not obj.get("orientation"):
                out.append((index, {"_error": "ni « type » ni « orientation »"}))
    return out


# --------------------------------------------------------------------------- the partner API

class PartnerError(Exception):
    """A failed call. `transient` (timeout, 429, 5xx): try again later; otherwise it will not work
    as it is (refused credentials, request France Travail rejects)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.transient, self.status, self.retry_after = transient, status, retry_after


class FranceTravailClient:
    """The partner API with OAuth2 client credentials: a token is asked for once and reused until
    shortly before it expires; a 401 renews it once. No retry loop here: the callers (daily read,
    outbox) decide when to try again."""

    def __init__(self, settings, *, clock=time.monotonic):
        if not settings.ft_api_url or not settings.ft_token_url or not settings.ft_client_id:
            raise PartnerError("API France Travail non configurée (RSA_FT_API_URL, RSA_FT_TOKEN_URL, "
                               "RSA_FT_CLIENT_ID, RSA_FT_CLIENT_SECRET)", transient=False)
        self.settings = settings
        self.base = settings.ft_api_url.rstrip("/")
        self.timeout = float(settings.ft_timeout_seconds)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.calls = 0  # HTTP requests made (token included): the reports print it

    # -- OAuth2
    def token(self, renew: bool = False) -> str:
        if self._token and not renew and self._clock() < self._expires_at - 30:
            return self._token
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.settings.ft_client_id,
                                       "client_secret": self.settings.ft_client_secret,
                                       "scope": self.settings.ft_scope}).encode()
        status, body, _ = self._http("POST", self.settings.ft_token_url, form,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        if status == 401 or status == 400:
            raise PartnerError("jeton OAuth2 refusé: identifiant ou secret client invalide", transient=False,
                               status=status)
        self._raise_for(status, body, "jeton OAuth2")
        try:
            doc = json.loads(body)
            self._token = doc["access_token"]
            self._expires_at = self._clock() + float(doc.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise PartnerError("réponse du serveur de jetons illisible", transient=True, status=status) from None
        return self._token

    # -- calls
    def user_token(self, nir13: str, birth_date: dt.date) -> str | None:
        """France Travail's token for one person (NIR with its key, birth date), or None when France
        Travail does not know the person."""
        body = json.dumps({"dateNaissance": birth_date.isoformat(), "nir": nir15(nir13)}).encode()
        status, doc = self._call("POST", USER_SEARCH_PATH, body)
        if status in (204, 404):
            return None
        return (doc or {}).get("jetonUsager")

    def read_orientation(self, user_token: str) -> list[dict]:
        status, doc = self._call("GET", READ_PATH, None, {"ft-jeton-usager": user_token})
        if status == 204 or doc is None:
            return []
        return doc if isinstance(doc, list) else [doc]

    def send_orientation(self, user_token: str, payload: dict, idempotency_key: str) -> dict:
        status, doc = self._call("POST", WRITE_PATH, json.dumps(payload).encode(),
                                 {"ft-jeton-usager": user_token, "Idempotency-Key": idempotency_key})
        return doc or {}

    def _call(self, method: str, path: str, body: bytes | None, headers: dict | None = None):
        for attempt in (1, 2):
            h = {"Accept": "application/json", "Content-Type": "application/json",
                 "Authorization": f"Bearer {self.token(renew=attempt == 2)}",
                 "pa-identifiant-agent": self.settings.ft_agent_id, "pa-nom-agent": "rsa",
                 "pa-prenom-agent": "rsa", **(headers or {})}
            status, raw, reply_headers = self._http(method, self.base + path, body, h)
            if status == 401 and attempt == 1:
                continue  # token expired or revoked: renew once
            if status == 401:
                raise PartnerError("accès refusé par l'API France Travail (401) malgré un jeton renouvelé",
                                   transient=False, status=401)
            if status in (204, 404) and path == USER_SEARCH_PATH:
                return status, None
            self._raise_for(status, raw, path, reply_headers)
            if status == 204 or not raw:
                return status, None
            try:
                return status, json.loads(raw)
            except ValueError:
                raise PartnerError(f"réponse illisible de {path}", transient=True, status=status) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for(status: int, raw: bytes, what: str, headers=None) -> None:
        if 200 <= status < 300:
            return
        if status == 429:
            retry = headers.get("Retry-After") if headers else None
            raise PartnerError(f"{what}: trop de requêtes (429)", transient=True, status=429,
                               retry_after=int(retry) if retry and str(retry).isdigit() else None)
        if status >= 500:
            raise PartnerError(f"{what}: erreur du serveur France Travail ({status})", transient=True, status=status)
        detail = ""
        try:
            doc = json.loads(raw)
            detail = f": {doc.get('message') or doc.get('codeRetour') or ''}".rstrip(": ")
        except (ValueError, AttributeError):
            pass
        raise PartnerError(f"{what}: requête refusée ({status}){detail}", transient=False, status=status)

    def _http(self, method: str, url: str, body: bytes | None, headers: dict):
        self.calls += 1
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 (configured URL)
                return reply.status, reply.read(), reply.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers
        except TimeoutError:
            raise PartnerError(f"délai dépassé ({self.timeout:g} s) pour {url}", transient=True) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise PartnerError(f"délai dépassé ({self.timeout:g} s) pour {url}", transient=True) from None
            raise PartnerError(f"France Travail injoignable: {exc.reason}", transient=True) from None
        except OSError as exc:  # connection reset while reading
            raise PartnerError(f"échange interrompu avec France Travail: {exc}", transient=True) from None


def nir15(nir13: str) -> str:
    """The NIR with its 2-digit key, as France Travail resolves people (Corsica: 2A→19, 2B→18)."""
    body = nir13[:13].upper()
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - number % 97:02d}"


# --------------------------------------------------------------------------- one interface

@dataclass(frozen=True)
class PersonToRead:
    person_id: int
    nir13: str
    birth_date: dt.date


class OrientationSource(Protocol):
    """Where France Travail's records come from: `records` yields (where, values) pairs, values in
    the COLUMNS shape (checked by make_record), where = a line/item number or a person id."""

    name: str

    def records(self, persons: Iterable[PersonToRead]) -> Iterator[tuple[int, dict]]: ...


@dataclass
class FileSource:
    """The daily file France Travail deposits (CSV or JSON); `persons` is not used: the file says whom."""

    path: Path
    name: str = "file"
    encoding: str = "utf-8"

    def records(self, persons=()) -> Iterator[tuple[int, dict]]:
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            raise FileError(f"fichier illisible: {exc.strerror}") from None
        text, self.encoding = decode(data)
        stripped = text.lstrip()
        if Path(self.path).suffix.lower() == ".json" or stripped.startswith(("[", "{")):
            yield from _json_items(stripped)
        else:
            yield from _csv_items(text)


@dataclass
class ApiSource:
    """The partner API, person by person: resolve the person (NIR + birth date), read the orientation.
    Errors are kept per person (`errors`) so that one failure does not stop the day's reading."""

    client: FranceTravailClient
    name: str = "api"
    errors: list[dict] = field(default_factory=list)
    unknown: int = 0

    def records(self, persons: Iterable[PersonToRead]) -> Iterator[tuple[int, dict]]:
        for p in persons:
            try:
                token = self.client.user_token(p.nir13, p.birth_date)
                if token is None:
                    self.unknown += 1
                    continue
                items = self.client.read_orientation(token)
            except PartnerError as exc:
                self.errors.append({"person_id": p.person_id, "error": str(exc), "transient": exc.transient})
                if not exc.transient and exc.status in (None, 401):
                    raise  # credentials refused: every other call would fail the same way
                continue
            for item in items:
                for rec in records_from_lecture(p.nir13, p.birth_date.isoformat(), item):
                    yield p.person_id, rec


def source_for(settings, path: Path | str | None = None) -> OrientationSource:
    """The source chosen by configuration: a file given (inbox, CLI) is read as a file; otherwise
    RSA_FT_MODE=api reads the partner API, and file mode has nothing to read without a file."""
    if path is not None:
        return FileSource(Path(path))
    if settings.ft_mode == "api":
        return ApiSource(FranceTravailClient(settings))
    raise FileError("mode fichier (RSA_FT_MODE=file): déposer le fichier France Travail dans la boîte de dépôt "
                    "ou le passer en argument")
