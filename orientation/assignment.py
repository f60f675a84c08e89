"""Assignment: the structure (by sector and capacity) and the agent (by caseload) of a decision."""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orientation.models import Orientation
from referents.models import Agent, Structure
from referents.service import SectorIndex
from referents.vocabulary import OrientationStatus, Outcome

DEFAULT_AGENT_CAPACITY = 60  # caseload target of an agent without a capacity of their own
# Structure kinds the sectorisation names per commune (referents.models.Sector columns).
SECTOR_KINDS = ("mds", "actipro", "pole_emploi", "ati", "ccas")

class Assigner:
    """Structures, their load and their agents' caseloads, in memory for a run (or one action).

    Load of a structure = its validated orientations; an agent's caseload = their validated ones."""

    def __init__(self, session: Session):
        self.session = session
        # When a batch sets it to a set, validations add their path here and the batch refreshes the
        # paths' outcomes once at its end (orientation.outcomes.mark_path_oriented), same transaction.
        self.deferred_paths: set[int] | None = None
        self.sectors = SectorIndex.of(session)
        self.structures = {s.id: s for s in session.scalars(select(Structure))}
        self.variants = {}
        for s in sorted(self.structures.values(), key=lambda s: s.id):
            if s.variant and s.active:
                self.variants.setdefault((s.kind, s.variant), s.id)
        self.by_territory: dict[tuple[str, int | None], int] = {}
        self.any_of_kind: dict[str, int] = {}
        for s in sorted(self.structures.values(), key=lambda s: s.id):
            if s.active and not s.variant:
                self.by_territory.setdefault((s.kind, s.territory_id), s.id)
                self.any_of_kind.setdefault(s.kind, s.id)
        self.load = Counter(dict(session.execute(
            select(Orientation.structure_id, func.count(Orientation.id))
            .where(Orientation.status == OrientationStatus.VALIDATED, Orientation.structure_id.is_not(None))
            .group_by(Orientation.structure_id)).all()))
        caseload = Counter(dict(session.execute(
            select(Orientation.agent_id, func.count(Orientation.id))
            .where(Orientation.status == OrientationStatus.VALIDATED, Orientation.agent_id.is_not(None))
            .group_by(Orientation.agent_id)).all()))
        self._agents: dict[int, list] = defaultdict(list)
        self._capacity: dict[int, int] = {}
        self._caseload = caseload
        for a in session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.id)):
            cap = a.capacity or DEFAULT_AGENT_CAPACITY
            self._capacity[a.id] = cap
            heapq.heappush(self._agents[a.structure_id], (caseload[a.id] / cap, a.id))

    def structure_for(self, referent_type: str, commune: str | None, postal_code: str | None,
                      variant: str | None = None) -> tuple[int | None, str | None]:
        """(structure id, None) or (None, why there is none)."""
        kind = "mds" if referent_type == "kiosque" else referent_type
        if variant and (kind, variant) in self.variants:
            return self.variants[(kind, variant)], None
        match = self.sectors.find(commune, postal_code)
        if match.sector is None:
            return None, match.reason
        if kind not in SECTOR_KINDS:
            # No sectorisation column (missions locales, Cap emploi): the structure of that kind in the
            # sector's territory, else the Département's only one (referents/data/README.md).
            sid = self.by_territory.get((kind, match.sector.territory_id)) or self.any_of_kind.get(kind)
        else:
            sid = getattr(match.sector, f"{kind}_id", None)
        if sid is None:
            return None, f"aucune structure {Outcome.label_of(kind)} dans le secteur de la commune {commune}"
        return sid, None

    def has_room(self, structure_id: int | None) -> bool:
        s = self.structures.get(structure_id)
        return s is None or s.capacity is None or self.load[structure_id] < s.capacity

    def take(self, structure_id: int | None) -> int | None:
        """Count one more person in the structure; the agent with the lowest caseload/capacity."""
        if structure_id is None:
            return None
        self.load[structure_id] += 1
        heap = self._agents.get(structure_id)
        if not heap:
            return None
        _, agent_id = heapq.heappop(heap)
        self._caseload[agent_id] += 1
        heapq.heappush(heap, (self._caseload[agent_id] / self._capacity[agent_id], agent_id))
        return agent_id

    def release(self, structure_id: int | None, agent_id: int | None) -> None:
        if structure_id is not None and self.load[structure_id] > 0:
            self.load[structure_id] -= 1
        if agent_id is not None and self._caseload[agent_id] > 0:
            self._caseload[agent_id] -= 1
            heap = self._agents.get(structure_id) or []
            self._agents[structure_id] = [(self._caseload[a] / self._capacity[a], a) for _, a in heap]
            heapq.heapify(self._agents[structure_id])

    def code(self, structure_id: int | None) -> str | None:
        s = self.structures.get(structure_id)
        return s.code if s else None


def _channel(email: str | None) -> str:
    return "email" if email else "letter"
