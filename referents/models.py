"""Who follows whom, where: the Département's organisation as data."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    MDS_WORKER = "mds_worker"
    PROVIDER = "provider"
    ATI = "ati"


class Territory(Base):
    """A Direction Territoriale des Solidarités."""

    __tablename__ = "territory"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))


class Commune(Base):
    __tablename__ = "commune"

    insee: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    postal_codes: Mapped[str] = mapped_column(String(120), default="")  # space-separated
    population: Mapped[int] = mapped_column(Integer, default=0)
    arrondissement: Mapped[str] = mapped_column(String(8), default="")
    epci_siren: Mapped[str] = mapped_column(String(9), default="")
    epci_name: Mapped[str] = mapped_column(String(160), default="")


class Structure(Base):
    """An organisme référent or one of its sites: an MDS, an ActiPro lot, a France Travail
    agency, an ATI team, a CCAS. Capacity NULL means unbounded."""

    __tablename__ = "structure"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"), index=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(40))  # e.g. "diplomes" for Dispositif Diplômés
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    territory: Mapped[Territory | None] = relationship()


class Sector(Base):
    """Sectorisation: a commune (and, inside Toulouse, a postal code) to its structures.

    postal_code is '' when the whole commune has one sector."""

    __tablename__ = "sector"
    __table_args__ = (UniqueConstraint("commune_insee", "postal_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    commune_insee: Mapped[str] = mapped_column(ForeignKey("commune.insee"), index=True)
    postal_code: Mapped[str] = mapped_column(String(5), default="")
    territory_id: Mapped[int] = mapped_column(ForeignKey("territory.id"))
    mds_id: Mapped[int] = mapped_column(ForeignKey("structure.id"))
    actipro_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    pole_emploi_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    ati_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    ccas_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))

    territory: Mapped[Territory] = relationship()
    mds: Mapped[Structure] = relationship(foreign_keys=[mds_id])
    actipro: Mapped[Structure | None] = relationship(foreign_keys=[actipro_id])
    pole_emploi: Mapped[Structure | None] = relationship(foreign_keys=[pole_emploi_id])
    ati: Mapped[Structure | None] = relationship(foreign_keys=[ati_id])
    ccas: Mapped[Structure | None] = relationship(foreign_keys=[ccas_id])


class Agent(Base):
    """A referent (counsellor, social worker, ATI) of a structure. Capacity = caseload target."""

    __tablename__ = "agent"

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(30))
    capacity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    structure: Mapped[Structure] = relationship()


class User(Base):
    """Someone who logs in. Scope comes from role + structure (+ territory)."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"), index=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)

    structure: Mapped[Structure | None] = relationship()


class ApiToken(Base):
    """A personal API token; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()


class AuditLog(Base):
    """Append-only: who read or changed which person, logins, exports."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))  # read, update, create, login, login_failed, export…
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: survives the purge
    endpoint: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[dict | None]
    note: Mapped[str | None] = mapped_column(Text)

    # Read side only (the author's e-mail in the audit listings), loaded with the entries in one query.
    user: Mapped[User | None] = relationship(viewonly=True, lazy="selectin")


# --- the audit log is append-only ---------------------------------------------------------------

class AuditLogIsAppendOnly(RuntimeError):
    """Raised on any attempt to change or delete an audit record through the application."""


def _refuse_audit_change(_mapper, _connection, target) -> None:
    raise AuditLogIsAppendOnly(f"le journal d'audit est en ajout seul (entrée {target.id})")


def _install_audit_guards() -> None:
    from sqlalchemy import DDL, event
    from sqlalchemy.orm import Session

    event.listen(AuditLog, "before_update", _refuse_audit_change)
    event.listen(AuditLog, "before_delete", _refuse_audit_change)

    @event.listens_for(Session, "do_orm_execute")
    def _no_bulk_audit_change(state):  # update(AuditLog)/delete(AuditLog) statements
        if (state.is_update or state.is_delete) and any(
                m.class_ is AuditLog for m in state.all_mappers):
            raise AuditLogIsAppendOnly("le journal d'audit est en ajout seul")

    # The database itself refuses UPDATE/DELETE, raw SQL included (also installed by config.migrate).
    event.listen(AuditLog.__table__, "after_create", DDL(AUDIT_GUARD_SQL).execute_if(dialect="postgresql"))
    for statement in AUDIT_GUARD_SQLITE:
        event.listen(AuditLog.__table__, "after_create", DDL(statement).execute_if(dialect="sqlite"))


AUDIT_GUARD_SQL = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""

# SQLite has no functions in its triggers, but RAISE does the same. One statement each (DDL runs one).
AUDIT_GUARD_SQLITE = tuple(
    f"CREATE TRIGGER IF NOT EXISTS audit_log_append_only_{op.lower()} BEFORE {op} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for op in ("UPDATE", "DELETE"))

_install_audit_guards()


# --- sessions and login throttling (issue 22, item 5; logic in referents.sessions) -------------

class UserSession(Base):
    """A browser session held server-side: the signed cookie only carries a random id whose hash is
    here. Logout, revocation, disabling the account or changing the password end it at once, for
    every worker and every copy of the cookie."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    ip: Mapped[str | None] = mapped_column(String(45))


class LoginFailure(Base):
    """One failed login: the shared counter of the login throttle (per address and per account,
    the same for every worker and every server)."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    ip: Mapped[str] = mapped_column(String(45), index=True)
    email: Mapped[str] = mapped_column(String(200), index=True)
