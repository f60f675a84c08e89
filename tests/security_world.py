"""A small world for the security tests: one user per role, persons inside and outside each scoped
role's scope, all with NIRs (to prove none leaks). Shared by tests/test_security_*.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select

from cases.models import Path
from orientation.models import Orientation
from referents.models import ApiToken, Structure
from referents.service import create_user, issue_token
from tests.factories import make_person

ROLES = ("admin", "manager", "mds_worker", "provider", "ati")
SCOPED = ("mds_worker", "provider", "ati")
STRUCTURES = {"mds_worker": "MDS-MURET", "provider": "ACTIPRO-TLS-EST", "ati": "ATI-TOULOUSE"}
# Valid 13-character NIRs (first digits: sex, year, month, département 31, commune, order).
NIRS = ["1850531555001", "2900131555002", "1780931395003", "2011231555004", "1660631555005",
        "2720431395006", "1930231555007"]


@dataclass
class World:
    headers: dict[str, dict] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    person_of: dict[str, int] = field(default_factory=dict)  # role → a person in its scope
    other: int = 0  # a person outside every scoped role's scope
    victim_user: int = 0
    victim_token: int = 0
    structure: int = 0
    nirs: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # person id → a last name found nowhere else


def _orient(session, person, code, referent_type, on):
    s = session.scalar(select(Structure).where(Structure.code == code))
    path = session.scalar(select(Path).where(Path.person_id == person.id))
    session.add(Orientation(person_id=person.id, path_id=path.id if path else None, referent_type=referent_type,
                            structure_id=s.id, status="validated", decided_on=on, validated_on=on,
                            mode="auto", origin="auto", explanation="test"))


def build_world(rt) -> World:
    w = World(nirs=list(NIRS))
    with rt.session() as s:
        for role in ROLES:
            user = create_user(s, f"{role}@matrix.test", role, structure_code=STRUCTURES.get(role))
            w.users[role] = user.id
            w.headers[role] = {"Authorization": f"Bearer {issue_token(s, user, ttl_hours=1)}"}
        victim = create_user(s, "victim@matrix.test", "provider", structure_code="ACTIPRO-TLS-EST")
        issue_token(s, victim, ttl_hours=1)
        w.victim_user = victim.id
        w.victim_token = s.scalar(select(ApiToken.id).where(ApiToken.user_id == victim.id))
        w.structure = s.scalar(select(Structure.id).where(Structure.code == "ACTIPRO-TLS-EST"))
        on = dt.date(2026, 10, 20)
        nirs = iter(NIRS)

        def person(**kw):
            nir = next(nirs)
            name = f"ZORGLUB{'ABCDEFG'[len(w.names)]}"
            p = make_person(s, email=f"p{nir[-3:]}@example.org", phone="+33612345678", last_name=name, **kw)
            p.nir_hash, p.nir_encrypted = rt.vault.hash(nir), rt.vault.encrypt(nir)
            w.names[p.id] = name
            return p

        w.person_of["admin"] = person(commune="31555", postal_code="31000").id
        w.person_of["manager"] = person(commune="31555", postal_code="31100").id
        w.person_of["mds_worker"] = person(commune="31395", postal_code="31600").id  # Muret
        p = person(commune="31555", postal_code="31500")
        _orient(s, p, "ACTIPRO-TLS-EST", "actipro", on)
        w.person_of["provider"] = p.id
        p = person(commune="31555", postal_code="31400")
        _orient(s, p, "ATI-TOULOUSE", "ati", on)
        w.person_of["ati"] = p.id
        p = person(commune="31483", postal_code="31800")  # Saint-Gaudens, another ActiPro
        _orient(s, p, "ACTIPRO-COMMINGES", "actipro", on)
        w.other = p.id
    return w
