"""What an orientation notice must say, whatever its channel (letter, e-mail, SMS): the legal content.

The decision, its parcours and organisme; the contrat d'engagement to sign within one month and what
it holds; how the decision was taken — by the algorithm alone, proposed by the algorithm and validated
by an agent, or taken by a person — with, for an algorithmic decision, its purpose and the right to
obtain the rules and how they were applied (CRPA L311-3-1, R311-3-1-1 and -2); the right to ask for a
new orientation; the appeal routes and delays. The sources are mapped in docs/orientation.md.

`legal_context` only reads the decision: it says what happened (rule 5 of the house), never what
was meant to happen. The addresses are the Département's, in orientation/data/notice.yaml.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from orientation.models import Orientation
from referents.vocabulary import (
    APPEAL_MONTHS,
    CONTRACT_MONTHS,
    CONTRACT_WEEKLY_HOURS,
    Organisme,
    Parcours,
    default_parcours_of,
    organisme_of,
)

NOTICE_SETTINGS_PATH = Path(__file__).resolve().parent / "data" / "notice.yaml"
_REQUIRED = {"departement": ("name", "president", "address", "rights_contact"),
             "tribunal": ("name", "address", "online"), "cada": ("name", "address")}

# How the decision was taken (Orientation fields → one of these), and the sentence the notice uses.
HOW_AUTO, HOW_VALIDATED, HOW_PERSON = "algorithme_seul", "algorithme_valide_par_agent", "personne"
PERSON_PHRASES = {
    "agent": "par un professionnel du Département, sans recours à un traitement algorithmique",
    "kiosque": ("à partir de votre choix, exprimé lors du Kiosque Insertion et enregistré par un professionnel "
                "du Département, sans recours à un traitement algorithmique"),
    "default_mds": ("par un professionnel du Département, faute des informations nécessaires pour décider "
                    "autrement dans le délai légal, sans recours à un traitement algorithmique"),
    "reorientation": ("par un professionnel du Département, à la suite d'une demande de réorientation, sans "
                      "recours à un traitement algorithmique"),
}
PURPOSE = ("vous orienter, dans le délai fixé par la loi, vers le parcours et l'organisme référent les plus "
           "adaptés à votre situation, en appliquant les critères nationaux d'orientation (arrêté du 21 novembre "
           "2024) et les règles du Département aux informations transmises par la CAF ou la MSA, par France "
           "Travail et par les professionnels qui vous ont reçu(e)")


class NoticeSettingsError(ValueError):
    """orientation/data/notice.yaml is incomplete (French message)."""


@functools.cache
def notice_settings(path: Path = NOTICE_SETTINGS_PATH) -> dict:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    missing = [f"{block}.{key}" for block, keys in _REQUIRED.items() for key in keys
               if not str((data.get(block) or {}).get(key) or "").strip()]
    if missing:
        raise NoticeSettingsError(f"{Path(path).name}: mentions manquantes: {', '.join(missing)}")
    return data


def how_decided(o: Orientation) -> str:
    """HOW_AUTO when nobody intervened, HOW_VALIDATED when an agent validated an algorithm's proposal,
    HOW_PERSON when a person took the decision (agent, kiosque choice, MDS default, réorientation)."""
    if not o.algorithmic or o.origin != "auto":
        return HOW_PERSON
    validation = o.validation
    if validation is None:  # a decision stored before validations were recorded: as the migration reads it
        validation = "auto" if o.mode == "auto" and o.validated_by is None else "agent"
    return HOW_AUTO if validation == "auto" else HOW_VALIDATED


def legal_context(o: Orientation) -> dict:
    """The notice's legal content for a validated decision (template variables)."""
    s = notice_settings()
    parcours = o.parcours or default_parcours_of(o.referent_type)
    organisme = o.organisme or organisme_of(o.referent_type)
    how = how_decided(o)
    return {
        "parcours": parcours,
        "parcours_label": Parcours.label_of(parcours) if parcours else "",
        "parcours_phrase": Parcours(parcours).phrase if parcours in Parcours.codes() else "",
        "organisme": organisme,
        "organisme_label": Organisme.label_of(organisme) if organisme else "",
        "how": how,
        "how_auto": how == HOW_AUTO,
        "how_validated": how == HOW_VALIDATED,
        "how_person": how == HOW_PERSON,
        "person_phrase": PERSON_PHRASES.get(o.origin, PERSON_PHRASES["agent"]),
        "algorithmic": how != HOW_PERSON,
        "rule_id": o.rule_id or "",
        "rule_set_version": o.rule_set_version,
        "purpose": PURPOSE,
        "contract_months": CONTRACT_MONTHS,
        "contract_hours": CONTRACT_WEEKLY_HOURS,
        "appeal_months": APPEAL_MONTHS,
        "departement_name": s["departement"]["name"],
        "president": s["departement"]["president"],
        "departement_address": s["departement"]["address"],
        "rights_contact": s["departement"]["rights_contact"],
        "tribunal_name": s["tribunal"]["name"],
        "tribunal_address": s["tribunal"]["address"],
        "tribunal_online": s["tribunal"]["online"],
        "cada_name": s["cada"]["name"],
        "cada_address": s["cada"]["address"],
    }
