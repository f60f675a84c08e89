"""Orientation's vocabulary: the groups of decision statuses and the labels orientation uses. The
statuses and origins themselves (OrientationStatus, Origin) live in referents.vocabulary, so that cases
(below orientation) can name them too; they are re-exported here.
"""

from __future__ import annotations

from referents.vocabulary import OrientationStatus, Origin

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
