"""A synthetic population of SDD persons to orient, bulk-inserted (tests and benchmarks).

Each person is drawn from a profile whose expected rule of the rule set v1 is known, so that a run
under v1 (tests pin it) can be checked against what the rules say for the generated facts. The
benchmark runs the default rule set (v2).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cases.models import Activity, Diagnostic, FranceTravailEvent, Household, Path, Person
from referents.models import Sector

# (weight, profile, expected rule of v1)
PROFILES = (
    (8, "ft_ppae", "FT_ACCOMPANIED"),
    (6, "self_employed", "SELF_EMPLOYED"),
    (5, "student", "TRAINING_OR_STUDIES"),
    (8, "health", "SOCIAL_PRIORITY"),
    (2, "no_fixed_address", "SOCIAL_PRIORITY"),
    (30, "job_seeker", "JOB_READY"),
    (8, "ended_job", "JOB_READY"),
    (12, "no_activity", "PROJECT_SUPPORT"),
    (1, "graduate", "PROJECT_SUPPORT"),
    (18, "unknown", "INSUFFICIENT_DATA"),
    (2, "diagnostic_only", "NO_RULE_MATCHED"),
)
RULE_OUTCOME = {"FT_ACCOMPANIED": "pole_emploi", "SELF_EMPLOYED": "ati", "TRAINING_OR_STUDIES": "ati",
                "SOCIAL_PRIORITY": "mds", "JOB_READY": "pole_emploi", "PROJECT_SUPPORT": "actipro",
                "INSUFFICIENT_DATA": "kiosque", "NO_RULE_MATCHED": "kiosque"}


def insert_population(session: Session, n: int, as_of: dt.date, seed: int = 31,
                      unsectorised_share: float = 0.0) -> Counter:
    """Insert n SDD persons (one household each, open path, clock within the last 60 days).
    Returns the expected count per rule id."""
    rng = random.Random(seed)
    sectors = session.execute(select(Sector.commune_insee, Sector.postal_code).order_by(Sector.id)).all()
    weights = [w for w, _, _ in PROFILES]
    start_hh = (session.scalar(select(func.max(Household.id))) or 0) + 1
    start_p = (session.scalar(select(func.max(Person.id))) or 0) + 1
    households, persons, paths, activities, ft, diags = [], [], [], [], [], []
    expected = Counter()
    for i in range(n):
        hid, pid = start_hh + i, start_p + i
        _, profile, rule = rng.choices(PROFILES, weights)[0]
        expected[rule] += 1
        if rng.random() < unsectorised_share:
            commune, pc = "52121", "52100"  # outside the département: no sector
        else:
            commune, pc = rng.choice(sectors)
            pc = pc or None
        clock = as_of - dt.timedelta(days=rng.randint(0, 60))
        households.append(dict(id=hid, organism="CAF", matricule=f"S{seed % 100:02d}{hid:012d}"[:15],
                               right_state=rng.choice("2223"), dtdemrsa=clock - dt.timedelta(days=10),
                               commune_insee=commune, postal_code=pc,
                               no_fixed_address=profile == "no_fixed_address", children_count=rng.randint(0, 3)))
        persons.append(dict(id=pid, household_id=hid, role="DEM", sdd=True, last_name=f"SYNTH{pid}",
                            first_name="Camille", birth_date=dt.date(rng.randint(1960, 2003), rng.randint(1, 12), 1),
                            legal_clock_start=clock,
                            email=f"p{pid}@example.org" if rng.random() < 0.5 else None))
        paths.append(dict(person_id=pid, household_id=hid, clock_start=clock, request_date=clock,
                          opening_reason="entry"))
        since = as_of - dt.timedelta(days=rng.randint(30, 900))

        def act(code, start=since, end=None, pid=pid):
            activities.append(dict(person_id=pid, code=code, start_on=start, end_on=end))

        if profile == "ft_ppae":
            act("CHO")
            reg = as_of - dt.timedelta(days=rng.randint(20, 300))
            ft.append(dict(person_id=pid, nir_hash=f"h{pid}", kind="inscription", event_on=reg,
                           ppae_signed_on=reg + dt.timedelta(days=10), ppae_modality="SUI"))
        elif profile == "self_employed":
            act(rng.choice(("ETI", "ETI", "EXP", "MAR")))
        elif profile == "student":
            act(rng.choice(("ETU", "SFP", "APP")))
        elif profile == "health":
            act(rng.choice(("MAL", "INV", "HAN", "AAP")))
        elif profile == "no_fixed_address":
            act("SSA")
        elif profile == "job_seeker":
            act(rng.choice(("CHO", "CHO", "CHR", "ASS", "ABA", "CNI")))
        elif profile == "ended_job":
            ended = as_of - dt.timedelta(days=rng.randint(1, 700))
            act("SAL", ended - dt.timedelta(days=800), ended)
        elif profile == "no_activity":
            act("SSA")
        elif profile == "graduate":
            act("SSA")
            diags.append(dict(person_id=pid, recorded_on=as_of - dt.timedelta(days=5),
                              constraints={"health": "none"}, education_level="master", can_seek_work=True))
        elif profile == "diagnostic_only":
            diags.append(dict(person_id=pid, recorded_on=as_of - dt.timedelta(days=5),
                              constraints={"health": "medium", "housing": "none"}, education_level="bac",
                              can_seek_work=True))
    for model, rows in ((Household, households), (Person, persons), (Path, paths), (Activity, activities),
                        (FranceTravailEvent, ft), (Diagnostic, diags)):
        for i in range(0, len(rows), 10_000):
            if rows[i:i + 10_000]:
                session.execute(insert(model), rows[i:i + 10_000])
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy import text

        for table in ("household", "person"):
            session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT MAX(id) FROM {table}))"))
    session.flush()
    return expected


def expected_by_referent(expected_rules: Counter) -> Counter:
    out = Counter()
    for rule, n in expected_rules.items():
        out[RULE_OUTCOME[rule]] += n
    return out
