"""Old contracts to replace: CER and PPAE signed before 2025-01-01.

Since 2025-01-01 every person oriented signs one contrat d'engagement (L262-35 CASF, L5411-6 code du
travail). For the people already followed on that date, the transitional rule of décret n° 2024-1244
du 30 décembre 2024 (JORF 31/12/2024, NOR TSSD2416580D) gives each organisme référent two years from
2025-01-01 to conclude a contrat d'engagement in place of their PPAE or CER: by 2027-01-01
(docs/imports.md: the article number is to confirm on Légifrance). The working list shows who is
still pending; the indicator counts them (one definition, used by the CLI and the API).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from cases.models import Contract, Household, Person
from cases.models import Path as CasePath

CUTOFF = dt.date(2025, 1, 1)  # signed before: a legacy CER / PPAE
DEADLINE = dt.date(2027, 1, 1)  # to be replaced by a contrat d'engagement by then (décret 2024-1244)
LEGACY_KINDS = ("ppae", "cer_pro", "cer_social")
KIND_LABELS = {"ppae": "PPAE", "cer_pro": "CER (professionnel)", "cer_social": "CER (social)"}


def _legacy(as_of: dt.date):
    """Legacy contracts still in force on the as-of date for a person whose path is open."""
    return and_(Contract.kind.in_(LEGACY_KINDS), Contract.signed_on < CUTOFF, Contract.signed_on <= as_of,
                Contract.status == "signed")


def _replaced(as_of: dt.date):
    """A contrat d'engagement signed by the as-of date, after the legacy one, for the same person."""
    ce = aliased(Contract)
    return exists(select(ce.id).where(ce.person_id == Contract.person_id, ce.kind == "engagement",
                                      ce.signed_on.is_not(None), ce.signed_on <= as_of,
                                      ce.signed_on >= Contract.signed_on))


def _in_rsa():
    return exists(select(CasePath.id).where(CasePath.person_id == Contract.person_id, CasePath.closed_on.is_(None)))


def indicator(session: Session, as_of: dt.date) -> dict:
    """Persons with a legacy contract, how many replaced by a contrat d'engagement, how many pending."""
    total = session.scalar(select(func.count(func.distinct(Contract.person_id))).where(_legacy(as_of), _in_rsa()))
    replaced = session.scalar(select(func.count(func.distinct(Contract.person_id)))
                              .where(_legacy(as_of), _in_rsa(), _replaced(as_of)))
    pending = (total or 0) - (replaced or 0)
    return {"as_of": as_of.isoformat(), "deadline": DEADLINE.isoformat(), "days_left": (DEADLINE - as_of).days,
            "legacy_persons": total or 0, "replaced": replaced or 0, "pending": pending,
            "share_replaced": round((replaced or 0) / total, 4) if total else None,
            "overdue": pending if as_of >= DEADLINE else 0}


def working_list(session: Session, as_of: dt.date, *, mds_id: int | None = None, limit: int = 1000) -> list[dict]:
    """The persons still to move to a contrat d'engagement, oldest contract first."""
    q = (select(Contract.person_id, Contract.kind, Contract.signed_on, Person.last_name, Person.first_name,
                Household.mds_id)
         .join(Person, Person.id == Contract.person_id)
         .join(Household, Household.id == Person.household_id, isouter=True)
         .where(_legacy(as_of), _in_rsa(), ~_replaced(as_of))
         .order_by(Contract.signed_on, Contract.person_id).limit(limit))
    if mds_id is not None:
        q = q.where(Household.mds_id == mds_id)
    seen, out = set(), []
    for r in session.execute(q):
        if r.person_id in seen:
            continue
        seen.add(r.person_id)
        out.append({"person_id": r.person_id, "last_name": r.last_name, "first_name": r.first_name,
                    "contract": r.kind, "contract_label": KIND_LABELS[r.kind], "signed_on": r.signed_on.isoformat(),
                    "deadline": DEADLINE.isoformat(), "days_left": (DEADLINE - as_of).days, "mds_id": r.mds_id})
    return out
