"""Cell-level parsing shared by the France Travail, spreadsheet and provider-return importers.

Every parser raises ValueError with a French message that ends up, with the row and column, in
the RejectedRecord. Headers are compared after `normalise_header` so that "N°\\nTéléphones" and
"n telephones" are the same label.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

EXCEL_EPOCH = dt.date(1899, 12, 30)
_SPACES = re.compile(r"\s+")


def is_blank(value) -> bool:
    """None, empty/space-only text, NaN and NaT (pandas' missing values) are blank."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NaTType", "NAType")


def text(value) -> str | None:
    """A cell as clean text: None when blank; integral floats (Excel numbers) without ".0"."""
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime):
        value = value.date() if value.time() == dt.time() else value
    if isinstance(value, dt.date):
        return value.isoformat()
    out = _SPACES.sub(" ", str(value)).strip()
    return out or None


def strip_accents(value: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))


def normalise_header(label) -> str:
    """Lower case, no accents, "N°"/"n°"/"no" → "n", any run of spaces/line breaks/punctuation → one space."""
    s = strip_accents(str(label or "")).lower().replace("°", " ").replace("º", " ")
    s = re.sub(r"[^a-z0-9]+", " ", s).strip()
    s = re.sub(r"^(n|no|num|numero) ", "n ", s)
    return s


def normalise_name(value) -> str | None:
    """Names compared for identity: upper case, no accents, single spaces, no hyphen/apostrophe noise."""
    s = text(value)
    if s is None:
        return None
    s = strip_accents(s).upper()
    s = re.sub(r"[^A-Z]+", " ", s).strip()
    return s or None


def parse_date(value) -> dt.date | None:
    """dd/mm/yyyy, dd-mm-yyyy, yyyy-mm-dd (with an optional time), yyyymmdd, ddmmyyyy, Excel serials,
    and native date cells. None when blank; ValueError when unreadable."""
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _excel_serial(value)
    s = str(value).strip()
    try:
        if m := re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?", s):
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
        if m := re.fullmatch(r"(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?", s):
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        if re.fullmatch(r"\d{8}", s):
            if s[:2] in ("19", "20") and 1 <= int(s[4:6]) <= 12:
                return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
            return dt.date(int(s[4:8]), int(s[2:4]), int(s[:2]))
        if re.fullmatch(r"\d{1,5}(\.\d+)?", s):
            return _excel_serial(float(s))
    except ValueError:
        raise ValueError(f"date impossible « {s} »") from None
    raise ValueError(f"date illisible « {s} » (attendu JJ/MM/AAAA, AAAA-MM-JJ ou numéro de série Excel)")


def _excel_serial(n: float) -> dt.date:
    if not 1 <= n < 2958466:
        raise ValueError(f"numéro de série de date hors limites « {n} »")
    return EXCEL_EPOCH + dt.timedelta(days=int(n))


def parse_datetime(value) -> dt.datetime | None:
    """A date with an optional time (appointments). Midnight when no time is given."""
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().replace(tzinfo=None)
    s = str(value).strip()
    m = re.fullmatch(r"(.+?)[ T](\d{1,2})[:h](\d{2})(?::\d{2})?", s)
    if m:
        day = parse_date(m[1])
        return dt.datetime.combine(day, dt.time(int(m[2]), int(m[3])))
    day = parse_date(value)
    return dt.datetime.combine(day, dt.time()) if day else None


OVERSEAS = ("RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF")


def parse_phone(value, region: str = "FR") -> tuple[str, str] | None:
    """(E.164 number, "mobile" | "landline") or None when blank. A 9-digit number is a French
    number whose leading 0 a spreadsheet dropped."""
    s = text(value)
    if s is None:
        return None
    digits = re.sub(r"[\s.\-/()]", "", s)
    if re.fullmatch(r"[1-9]\d{8}", digits):
        digits = "0" + digits
    number = None
    # Overseas départements are dialled with a 0 from France but are other regions for E.164
    # (0692… is +262 692…).
    for candidate_region in (region, *(OVERSEAS if region == "FR" else ())):
        try:
            candidate = phonenumbers.parse(digits, candidate_region)
        except phonenumbers.NumberParseException:
            raise ValueError(f"numéro de téléphone illisible « {s} »") from None
        if phonenumbers.is_valid_number(candidate):
            number = candidate
            break
    if number is None:
        # A well-formed French number outside the ranges the library knows as allocated (lists
        # carry such numbers): kept, classified by its prefix (06/07 mobile).
        try:
            candidate = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            candidate = None
        if region == "FR" and candidate is not None and candidate.country_code == 33 \
                and re.fullmatch(r"[1-9]\d{8}", str(candidate.national_number)):
            kind = "mobile" if str(candidate.national_number)[0] in "67" else "landline"
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164), kind
        raise ValueError(f"numéro de téléphone invalide « {s} »")
    kind = phonenumbers.number_type(number)
    mobile = kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ("mobile" if mobile else "landline")


def parse_email(value) -> str | None:
    s = text(value)
    if s is None:
        return None
    return _email(s)


@functools.lru_cache(maxsize=4096)
def _email(s: str) -> str:
    """Cached: lists repeat the same few referent addresses on every row (validation is costly)."""
    try:
        return validate_email(s, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"adresse e-mail invalide « {s} »: {exc}") from None


def parse_hours(value) -> float | None:
    if is_blank(value):
        return None
    if isinstance(value, int | float):
        hours = float(value)
    else:
        s = str(value).strip().lower().replace(",", ".").removesuffix("h").strip()
        try:
            hours = float(s)
        except ValueError:
            raise ValueError(f"nombre d'heures illisible « {value} »") from None
    if not 0 <= hours <= 60:
        raise ValueError(f"nombre d'heures hebdomadaires hors limites « {value} »")
    return hours


ROLES = {"DEM": "DEM", "DEMANDEUR": "DEM", "ALLOCATAIRE": "DEM", "CJT": "CJT", "CONJOINT": "CJT",
         "ENF": "ENF", "ENFANT": "ENF", "AUT": "AUT", "AUTRE": "AUT", "RDO": "RDO"}
CIVILITIES = {"M": "MR", "MR": "MR", "MONSIEUR": "MR", "MME": "MME", "MADAME": "MME", "MLLE": "MLE",
              "MLE": "MLE", "MADEMOISELLE": "MLE"}


def parse_role(value) -> str | None:
    s = normalise_name(value)
    if s is None:
        return None
    if s.replace(" ", "") in ROLES:
        return ROLES[s.replace(" ", "")]
    raise ValueError(f"rôle inconnu « {text(value)} » (DEM, CJT, ENF, AUT)")


def parse_civility(value) -> str | None:
    s = normalise_name(value)
    if s is None:
        return None
    s = s.replace(" ", "")
    if s in CIVILITIES:
        return CIVILITIES[s]
    raise ValueError(f"civilité inconnue « {text(value)} »")


def split_postal_city(value) -> tuple[str | None, str | None]:
    """ "31000 Toulouse" → ("31000", "Toulouse")."""
    s = text(value)
    if s is None:
        return None, None
    m = re.fullmatch(r"(\d{5})\s*[-,]?\s*(.*)", s)
    if not m:
        m2 = re.fullmatch(r"(.*?)\s*[-,]?\s*(\d{5})", s)
        if not m2:
            raise ValueError(f"code postal absent de « {s} »")
        return m2[2], m2[1] or None
    return m[1], m[2] or None


def parse_postal_code(value) -> str | None:
    s = text(value)
    if s is None:
        return None
    if re.fullmatch(r"\d{4}", s):
        s = "0" + s  # Excel dropped the leading zero
    if not re.fullmatch(r"\d{5}", s):
        raise ValueError(f"code postal invalide « {s} »")
    return s


def parse_organism_number(value, default_organism: str = "CAF") -> tuple[str, str] | None:
    """(organism, matricule): "CAF0027004992" → ("CAF", "0027004992"); "ISQCJQO" → (default, "ISQCJQO")."""
    s = text(value)
    if s is None:
        return None
    s = s.replace(" ", "").upper()
    organism = default_organism
    if m := re.fullmatch(r"(CAF|MSA)[-:]?(\w+)", s):
        organism, s = m[1], m[2]
    if not re.fullmatch(r"[0-9A-Z]{1,15}", s):
        raise ValueError(f"numéro d'allocataire invalide « {text(value)} »")
    return organism, s
