"""Orientation's own vocabulary: the statuses of a decision and where it came from, with their French
labels. Referent types, outcomes and legal delays are the product's (referents.vocabulary).

`Origin.label` is the short name of the reports' breakdowns; `Origin.phrase` completes the notice's
sentence "Cette décision a été prise par …" (rule 5: every notice says how the decision was taken).
"""

from __future__ import annotations

from referents.vocabulary import LabelledEnum


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


S = OrientationStatus
STATUSES: tuple[str, ...] = OrientationStatus.codes()
# Decisions still waiting for something (a validation, a place, a sector, the kiosque).
PENDING: tuple[str, ...] = tuple(m.value for m in (S.PROPOSED, S.AWAITING_CAPACITY, S.UNSECTORISED, S.KIOSQUE))
# Decisions no longer live: the person's current orientation is among the others.
FINISHED: tuple[str, ...] = tuple(m.value for m in (S.SUPERSEDED, S.OVERRIDDEN, S.ENDED, S.REFUSED))
ORIGINS: tuple[str, ...] = Origin.codes()
ORIGIN_PHRASES: dict[str, str] = {o.value: o.phrase for o in Origin}
ORIGIN_LABELS: dict[str, str] = Origin.labels()
NOT_ORIENTED = "Non orienté"  # label of a path without a validated decision (reports)
VARIANT_LABELS = {"diplomes": "Dispositif Diplômés"}  # rule variants (rules_v1.yaml)
