"""Sectorisation of households and paths (territory and MDS, denormalised for scoping and reports)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cases.models import Household
from cases.models import Path as PathModel


def sync_path_sectors(session: Session, household_ids=None) -> int:
    """Copy each household's territory and MDS onto its paths (Path.territory_id / mds_id), for all
    households or only household_ids. Set-based; only paths whose copy differs are written. Returns
    their number. Every writer of Household.mds_id calls it; the nightly reconciliation of
    orientation.outcomes.refresh_path_outcomes calls it for everything."""
    from sqlalchemy import update

    h = Household
    differs = or_(PathModel.territory_id.is_distinct_from(h.territory_id), PathModel.mds_id.is_distinct_from(h.mds_id))
    stmt = (update(PathModel).where(PathModel.household_id == h.id, differs)
            .values(territory_id=h.territory_id, mds_id=h.mds_id))
    opts = {"synchronize_session": False}
    if household_ids is None:
        return session.execute(stmt, execution_options=opts).rowcount or 0
    ids, changed = sorted(set(household_ids)), 0
    for i in range(0, len(ids), 900):  # well under SQLite's bound-parameter limit
        changed += session.execute(stmt.where(h.id.in_(ids[i:i + 900])), execution_options=opts).rowcount or 0
    return changed


def apply_sectorisation(session: Session) -> int:
    """Recompute every household's denormalised MDS and territory from the current sectorisation
    (after `rsa referents load-sectorisation`). One UPDATE per distinct address key; returns the
    number of households whose sector changed."""
    from sqlalchemy import update

    from referents.service import SectorIndex

    index = SectorIndex(session)
    changed = 0
    keys = session.execute(select(Household.commune_insee, Household.postal_code, Household.mds_id,
                                  Household.territory_id).distinct()).all()
    for commune, postal_code, mds_id, territory_id in keys:
        sector = index.find(commune, postal_code).sector
        new = (sector.mds_id, sector.territory_id) if sector else (None, None)
        if new == (mds_id, territory_id):
            continue
        where = [Household.commune_insee.is_(None) if commune is None else Household.commune_insee == commune,
                 Household.postal_code.is_(None) if postal_code is None else Household.postal_code == postal_code,
                 Household.mds_id.is_(None) if mds_id is None else Household.mds_id == mds_id]
        result = session.execute(update(Household).where(*where).values(mds_id=new[0], territory_id=new[1]))
        changed += result.rowcount or 0
    if changed:
        sync_path_sectors(session)
    return changed


