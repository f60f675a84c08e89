"""The product's vocabulary, written once: referent types, organismes, parcours and the legal delays.

Every package, page, export and letter takes its codes and French labels from here (rule 7 of the
house: one definition per fact). It lives in `referents`, the lowest domain package, so that any
package may import it. Enumerations are `StrEnum`s, so a member compares equal to its stored code.
"""

from __future__ import annotations

import enum


class LabelledEnum(enum.StrEnum):
    """A StrEnum whose members carry a short French label (`label`) and, where a letter needs a
    sentence, a longer phrase (`phrase`, defaults to the label)."""

    def __new__(cls, value: str, label: str, phrase: str | None = None):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.phrase = phrase or label
        return member

    @classmethod
    def codes(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def labels(cls) -> dict[str, str]:
        return {m.value: m.label for m in cls}

    @classmethod
    def label_of(cls, code: str | None, default: str | None = None) -> str | None:
        """The label of a code, or `default` (the code itself when None) for an unknown code."""
        try:
            return cls(code).label
        except ValueError:
            return code if default is None else default


class ReferentType(LabelledEnum):
    """The Département's designation rule: who becomes the person's referent."""

    POLE_EMPLOI = ("pole_emploi", "France Travail", "France Travail")
    ACTIPRO = ("actipro", "ActiPro", "un organisme ActiPro du Département")
    ATI = ("ati", "ATI (agent territorial d'insertion)", "un agent territorial d'insertion (ATI) du Département")
    MDS = ("mds", "MDS (Maison des Solidarités)", "la Maison des Solidarités (MDS)")
    MISSION_LOCALE = ("mission_locale", "Mission locale", "la mission locale")
    CAP_EMPLOI = ("cap_emploi", "Cap emploi", "Cap emploi")


class Outcome(LabelledEnum):
    """What an orientation rule may decide: a referent type, or an invitation to a Kiosque."""

    POLE_EMPLOI = ReferentType.POLE_EMPLOI.value, ReferentType.POLE_EMPLOI.label, ReferentType.POLE_EMPLOI.phrase
    ACTIPRO = ReferentType.ACTIPRO.value, ReferentType.ACTIPRO.label, ReferentType.ACTIPRO.phrase
    ATI = ReferentType.ATI.value, ReferentType.ATI.label, ReferentType.ATI.phrase
    MDS = ReferentType.MDS.value, ReferentType.MDS.label, ReferentType.MDS.phrase
    MISSION_LOCALE = (ReferentType.MISSION_LOCALE.value, ReferentType.MISSION_LOCALE.label,
                      ReferentType.MISSION_LOCALE.phrase)
    CAP_EMPLOI = ReferentType.CAP_EMPLOI.value, ReferentType.CAP_EMPLOI.label, ReferentType.CAP_EMPLOI.phrase
    KIOSQUE = ("kiosque", "Kiosque Insertion", "un Kiosque Insertion")


class StructureKind(LabelledEnum):
    """Kinds of structures that follow people (sites of an organisme référent)."""

    MDS = ("mds", "MDS")
    ACTIPRO = ("actipro", "ActiPro")
    POLE_EMPLOI = ("pole_emploi", "France Travail")
    ATI = ("ati", "ATI")
    CCAS = ("ccas", "CCAS")
    MISSION_LOCALE = ("mission_locale", "Mission locale")
    CAP_EMPLOI = ("cap_emploi", "Cap emploi")


class Parcours(LabelledEnum):
    """The three parcours of the national référentiel (arrêté du 21 novembre 2024, L5411-5-1 Code du
    travail): the first step of an orientation decision."""

    EMPLOI = ("emploi", "Emploi", "un parcours emploi, tourné vers le retour rapide à l'emploi")
    SOCIO_PROFESSIONNEL = ("socio_professionnel", "Socio-professionnel",
                           "un parcours socio-professionnel, qui traite ensemble l'emploi et les difficultés "
                           "qui pèsent sur la recherche d'emploi")
    SOCIAL = ("social", "Social", "un parcours social, pour lever d'abord les difficultés qui empêchent pour "
                                  "l'instant de rechercher un emploi")


class Organisme(LabelledEnum):
    """The organisme référent (L5411-5-1 Code du travail): the second step of an orientation decision.
    In Haute-Garonne the Département follows people through its MDS, ATI and CCAS (by delegation),
    and delegates to the ActiPro providers of its insertion programme."""

    FRANCE_TRAVAIL = ("france_travail", "France Travail")
    DEPARTEMENT = ("departement", "Département")
    DELEGATAIRE = ("delegataire", "Délégataire du Département")
    MISSION_LOCALE = ("mission_locale", "Mission locale")
    CAP_EMPLOI = ("cap_emploi", "Cap emploi")


# The Haute-Garonne's referent types and structure kinds on the national organismes (written once;
# docs/orientation.md says why).
ORGANISME_OF: dict[str, Organisme] = {
    "pole_emploi": Organisme.FRANCE_TRAVAIL,
    "mds": Organisme.DEPARTEMENT,
    "ati": Organisme.DEPARTEMENT,
    "ccas": Organisme.DEPARTEMENT,
    "actipro": Organisme.DELEGATAIRE,
    "mission_locale": Organisme.MISSION_LOCALE,
    "cap_emploi": Organisme.CAP_EMPLOI,
}
# The parcours a referent type gives when the decision does not say (v1 rule sets, decisions made by a
# person): the Département's designation rule (DOMAIN §2) read with the référentiel.
DEFAULT_PARCOURS_OF: dict[str, Parcours] = {
    "pole_emploi": Parcours.EMPLOI,
    "actipro": Parcours.SOCIO_PROFESSIONNEL,
    "ati": Parcours.SOCIO_PROFESSIONNEL,
    "mission_locale": Parcours.SOCIO_PROFESSIONNEL,
    "cap_emploi": Parcours.EMPLOI,
    "mds": Parcours.SOCIAL,
}


def organisme_of(referent_type: str | None) -> str | None:
    """The organisme référent of a referent type or structure kind (None for a kiosque invitation)."""
    org = ORGANISME_OF.get(referent_type or "")
    return org.value if org else None


def default_parcours_of(referent_type: str | None) -> str | None:
    p = DEFAULT_PARCOURS_OF.get(referent_type or "")
    return p.value if p else None


# France Travail's codes for the référentiel's two steps (partner API "orientation usager" and the
# daily file; docs/imports.md, section France Travail). Written once, read both ways: what we send
# and what we read. PSO is the parcours SOcial, PSP the parcours Socio-Professionnel: WebRSA 4.32's
# labels and its orientation algorithm read them so, its sender swaps them (docs/imports.md says
# what was checked). EO (entretien d'orientation) and IND (indéterminé) name no parcours.
FT_PARCOURS_CODES: dict[Parcours, str] = {
    Parcours.EMPLOI: "PED",               # parcours emploi direct
    Parcours.SOCIO_PROFESSIONNEL: "PSP",  # parcours socio-professionnel
    Parcours.SOCIAL: "PSO",               # parcours social
}
FT_UNDETERMINED_PARCOURS = ("EO", "IND")
# Organisme référent: FT France Travail, CD the Département, DCD a délégataire of the Département
# (ActiPro), ML mission locale, CE Cap emploi; IND = not determined yet.
FT_ORGANISME_CODES: dict[Organisme, str] = {
    Organisme.FRANCE_TRAVAIL: "FT",
    Organisme.DEPARTEMENT: "CD",
    Organisme.DELEGATAIRE: "DCD",
    Organisme.MISSION_LOCALE: "ML",
    Organisme.CAP_EMPLOI: "CE",
}
FT_UNDETERMINED_ORGANISME = "IND"


def ft_parcours_code(parcours: str | None) -> str:
    """France Travail's code of one of our parcours ("IND" when there is none)."""
    try:
        return FT_PARCOURS_CODES[Parcours(parcours)]
    except ValueError:
        return "IND"


def parcours_of_ft_code(code: str | None) -> str | None:
    """Our parcours for a France Travail code (None for EO, IND or an empty code); an unknown code
    raises ValueError with a French message."""
    code = (code or "").strip().upper()
    if not code or code in FT_UNDETERMINED_PARCOURS:
        return None
    for parcours, ft_code in FT_PARCOURS_CODES.items():
        if ft_code == code:
            return parcours.value
    raise ValueError(f"code parcours France Travail inconnu « {code} » "
                     f"(attendu: {', '.join([*FT_PARCOURS_CODES.values(), *FT_UNDETERMINED_PARCOURS])})")


def ft_organisme_code(organisme: str | None) -> str:
    try:
        return FT_ORGANISME_CODES[Organisme(organisme)]
    except ValueError:
        return FT_UNDETERMINED_ORGANISME


def organisme_of_ft_code(code: str | None) -> str | None:
    """Our organisme for a France Travail code (None for IND or empty); unknown → ValueError."""
    code = (code or "").strip().upper()
    if not code or code == FT_UNDETERMINED_ORGANISME:
        return None
    for organisme, ft_code in FT_ORGANISME_CODES.items():
        if ft_code == code:
            return organisme.value
    raise ValueError(f"code organisme France Travail inconnu « {code} » "
                     f"(attendu: {', '.join([*FT_ORGANISME_CODES.values(), FT_UNDETERMINED_ORGANISME])})")


# The referent type that follows a person oriented by France Travail to an organisme (the
# Département's own designation for CD: the MDS; for a délégataire: ActiPro).
REFERENT_TYPE_OF_ORGANISME: dict[str, str] = {
    Organisme.FRANCE_TRAVAIL.value: ReferentType.POLE_EMPLOI.value,
    Organisme.DEPARTEMENT.value: ReferentType.MDS.value,
    Organisme.DELEGATAIRE.value: ReferentType.ACTIPRO.value,
    Organisme.MISSION_LOCALE.value: ReferentType.MISSION_LOCALE.value,
    Organisme.CAP_EMPLOI.value: ReferentType.CAP_EMPLOI.value,
}


class ObstacleDomain(LabelledEnum):
    """The référentiel's obstacle domains ("difficultés"), read from an agent's diagnostic."""

    HEALTH = ("health", "santé")
    HOUSING = ("housing", "logement")
    MOBILITY = ("mobility", "mobilité")
    FAMILY = ("family", "famille / garde d'enfants")
    CAREGIVER = ("caregiver", "aidant d'un proche")
    FINANCE = ("finance", "finances")
    DIGITAL = ("digital", "numérique")
    ADMINISTRATIVE = ("administrative", "administratif")
    LANGUAGE = ("language", "langue française, calcul")


class ObstacleImpact(LabelledEnum):
    """Impact of an obstacle on job search (référentiel: fort, moyen, sans impact), weakest first."""

    NONE = ("none", "sans impact")
    MEDIUM = ("medium", "impact moyen")
    STRONG = ("strong", "impact fort")


# An orientation decision's status and origin. Orientation owns decisions, but cases (below it) filters
# on the current orientation: the lowest package that needs them is this one. `Origin.label` is the
# short name of the reports' breakdowns; `Origin.phrase` completes the notice's sentence "Cette décision
# a été prise par …" (rule 5: every notice says how the decision was taken).
class OrientationStatus(LabelledEnum):
    """The life of a decision row (append-only): "validated" is THE current orientation."""

    PROPOSED = ("proposed", "Proposée, à valider")
    VALIDATED = ("validated", "Validée")
    AWAITING_CAPACITY = ("awaiting_capacity", "En attente de place")
    UNSECTORISED = ("unsectorised", "Hors sectorisation")
    KIOSQUE = ("kiosque", "Invitée au Kiosque Insertion")
    OVERRIDDEN = ("overridden", "Modifiée par un professionnel")
    REFUSED = ("refused", "Refusée")
    ENDED = ("ended", "Terminée")
    SUPERSEDED = ("superseded", "Remplacée")


class Origin(LabelledEnum):
    """Who or what took the decision."""

    AUTO = ("auto", "Automatique", "l'algorithme d'orientation")
    AGENT = ("agent", "Agent", "un professionnel du Département")
    KIOSQUE = ("kiosque", "Kiosque", "la personne au Kiosque Insertion")
    DEFAULT_MDS = ("default_mds", "MDS par défaut", "l'orientation par défaut de la loi")
    REORIENTATION = ("reorientation", "Réorientation", "une réorientation")
    # The law (L262-35, D262-65-2 CASF): France Travail orients in the Département's place when the
    # Département has not decided within six weeks. Counted apart in the indicators.
    FRANCE_TRAVAIL = ("france_travail", "Orienté par France Travail",
                      "France Travail, faute de décision du Département dans le délai légal de six semaines")
    REPRISE = ("reprise", "Reprise de l'existant",
               "le système précédent du Département (orientation reprise à la mise en service)")


REFERENT_TYPES: tuple[str, ...] = ReferentType.codes()
OUTCOMES: tuple[str, ...] = Outcome.codes()

# Legal and target delays (days / months), each written once.
TARGET_DAYS = 30            # the Département's target for the orientation delay
LEGAL_DAYS = 42             # six weeks from receipt of the information (D262-65-2 CASF)
CONTRACT_MONTHS = 1         # contrat d'engagement within one month of the orientation notice (D5411-14-1)
CONTRACT_WEEKLY_HOURS = 15  # activity of the plan d'action, at least 15 h a week (L5411-6 Code du travail)
APPEAL_MONTHS = 2           # recours administratif (R262-88 CASF) and contentieux (R421-1 CJA)
RECENT_ACTIVITY_MONTHS = 24  # référentiel: professional activity now or in the last two years
YOUTH_AGE_LIMIT = 26        # mission locale: people under 26
REVIEW_MONTHS = 6           # review of a social path
REVIEW_MONTHS_LONG = 12     # review when a legal reason (health, housing…) justifies it


# --- Labels of the other codes that pages, timelines and exports show ---------------------------
# The codes stay where their package defines them; their French labels are written here once
# (orientation's and kiosque's own codes are labelled in orientation/vocabulary.py and
# kiosque/vocabulary.py).


class PersonRole(LabelledEnum):
    DEM = ("DEM", "Demandeur")
    CJT = ("CJT", "Conjoint")
    ENF = ("ENF", "Enfant")
    AUT = ("AUT", "Autre personne du foyer")
    RDO = ("RDO", "Responsable du dossier")


class RightState(LabelledEnum):
    """ETATDOSRSA of the CAF/MSA flow."""

    NEW = ("0", "Nouvelle demande en attente de décision")
    REFUSED = ("1", "Droit refusé")
    OPEN = ("2", "Droit ouvert et versable")
    SUSPENDED = ("3", "Droit ouvert et suspendu")
    PAYMENT_SUSPENDED = ("4", "Droit ouvert, versement suspendu")
    CLOSED = ("5", "Droit clos")
    CLOSED_REGULARISED = ("6", "Droit clos, régularisation ce mois")


class PathOpening(LabelledEnum):
    ENTRY = ("entry", "Entrée dans le RSA")
    TRANSFER_IN = ("transfer_in", "Arrivée d'un autre département")
    REOPENING = ("reopening", "Réouverture du droit")
    TAKEOVER = ("takeover", "Reprise de l'historique")


class AppointmentStatus(LabelledEnum):
    PLANNED = ("planned", "Planifié")
    HONOURED = ("honoured", "Honoré")
    NO_SHOW = ("no_show", "Absence non excusée")
    EXCUSED = ("excused", "Absence excusée")
    CANCELLED = ("cancelled", "Annulé")


class AppointmentKind(LabelledEnum):
    FIRST = ("first", "Premier rendez-vous")
    FOLLOW_UP = ("follow_up", "Rendez-vous de suivi")
    REVIEW = ("review", "Rendez-vous de bilan")


class DueKind(LabelledEnum):
    """What the next due date of a person on an open path is (cases.followup._due_dates' next_due)."""

    CONTRACT = ("contract", "Contrat à signer")
    REVIEW = ("review", "Bilan")
    APPOINTMENT = ("appointment", "Rendez-vous")
    SUSPENSION_END = ("suspension_end", "Fin de suspension")


class ContractKind(LabelledEnum):
    ENGAGEMENT = ("engagement", "Contrat d'engagement")
    PPAE = ("ppae", "PPAE (France Travail)")
    CER_PRO = ("cer_pro", "CER professionnel")
    CER_SOCIAL = ("cer_social", "CER social")


class ContractStatus(LabelledEnum):
    PENDING = ("pending", "À signer")
    SIGNED = ("signed", "Signé")
    ENDED = ("ended", "Terminé")


class ReviewOutcome(LabelledEnum):
    MAINTAIN = ("maintain", "Maintien du parcours")
    REVISE = ("revise", "Révision du contrat")
    REORIENTATION = ("reorientation", "Demande de réorientation")


class SanctionStatus(LabelledEnum):
    BREACH = ("breach", "Manquement signalé")
    OBSERVATIONS = ("observations", "Observations reçues")
    EP_REQUESTED = ("ep_requested", "Avis de l'équipe pluridisciplinaire demandé")
    DECIDED = ("decided", "Décision prise")
    LIFTED = ("lifted", "Levée")
    CLOSED = ("closed", "Close")


class EventSource(LabelledEnum):
    FLOW = ("flow", "Flux CAF/MSA")
    AGENT = ("agent", "Agent du Département")
    PROVIDER = ("provider", "Prestataire")
    JOB = ("job", "Traitement automatique")
    KIOSQUE = ("kiosque", "Kiosque Insertion")
    FRANCE_TRAVAIL = ("france_travail", "France Travail")


class BatchStatus(LabelledEnum):
    RUNNING = ("running", "En cours")
    IMPORTED = ("imported", "Importé")
    FAILED = ("failed", "Refusé")
    DUPLICATE = ("duplicate", "Déjà reçu")


class DeadlineLevel(LabelledEnum):
    OK = ("ok", "Dans les temps")
    D21 = ("d21", "Alerte J+21")
    D35 = ("d35", "Alerte J+35")
    PAST_LIMIT = ("past_limit", "Au-delà de la limite légale")
