"""The household (dossier RSA), its persons, their dated history and their path to exit.

History is never overwritten: every change of right state, SDD flag or France Travail
registration is a dated row, and the timeline (CaseEvent) is append-only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from config.db import Base, utcnow
from referents.text import pg_folded

OPEN_RIGHT_STATES = ("2", "3", "4")
SDD_ROLES = ("DEM", "CJT")


class Household(Base):
    """A dossier RSA, keyed by organism (CAF/MSA) + matricule."""

    __tablename__ = "household"
    __table_args__ = (
        UniqueConstraint("organism", "matricule"),
        # person_scope of an MDS worker: the households of the sector, read from the index alone
        Index("ix_household_mds_scope", "mds_id", "id"),
        # Every monthly flow rewrites every household it carries (last_flow_on, last_monthly_batch_id,
        # even unchanged): pages half empty and neither column indexed, PostgreSQL keeps the new row
        # version in the same page without touching the table's indexes (a HOT update, 9× cheaper:
        # 94k unchanged households of a re-import at 100k, 11 s → 1.2 s). Migration 0006.
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organism: Mapped[str] = mapped_column(String(3))  # CAF | MSA
    numorg: Mapped[str | None] = mapped_column(String(3))
    matricule: Mapped[str] = mapped_column(String(15))
    departement: Mapped[str | None] = mapped_column(String(3))  # IDEPARTE
    numdemrsa: Mapped[str | None] = mapped_column(String(11))
    dtdemrsa: Mapped[dt.date | None] = mapped_column(Date)
    right_state: Mapped[str | None] = mapped_column(String(1), index=True)  # ETATDOSRSA
    right_state_on: Mapped[dt.date | None] = mapped_column(Date)
    right_opened_on: Mapped[dt.date | None] = mapped_column(Date)  # DTODRSA when given
    suspension_reason: Mapped[str | None] = mapped_column(String(10))
    suspension_on: Mapped[dt.date | None] = mapped_column(Date)
    closure_reason: Mapped[str | None] = mapped_column(String(3))  # MOTICLORSA
    closure_on: Mapped[dt.date | None] = mapped_column(Date)  # DTCLORSA
    family_situation: Mapped[str | None] = mapped_column(String(3))  # SITFAM
    children_count: Mapped[int | None] = mapped_column(Integer)
    benefit_nature: Mapped[str | None] = mapped_column(String(10))  # NATPF
    rsa_amount: Mapped[float | None] = mapped_column(Numeric(10, 2))
    no_fixed_address: Mapped[bool] = mapped_column(Boolean, default=False)
    commune_insee: Mapped[str | None] = mapped_column(String(5), index=True)
    postal_code: Mapped[str | None] = mapped_column(String(5))
    # Denormalised from the sectorisation (recomputed when it changes): scoping and reports.
    mds_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"), index=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"), index=True)
    city: Mapped[str | None] = mapped_column(String(120))
    address_line: Mapped[str | None] = mapped_column(String(300))
    transferred_from: Mapped[str | None] = mapped_column(String(40))  # OrganismeCedant
    transferred_to: Mapped[str | None] = mapped_column(String(40))  # OrganismePrenant
    last_flow_on: Mapped[dt.date | None] = mapped_column(Date)  # DTREF of the last flow seen
    # The last monthly flow (import batch) of its organism that carried the household: a household of
    # the previous monthly flow absent from the next one is closed (monthly flows are snapshots).
    # Not indexed: read once per monthly import (imports.lifecycle.close_absent_households, a scan),
    # written for every household of every monthly flow (see __table_args__).
    last_monthly_batch_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    persons: Mapped[list[Person]] = relationship(back_populates="household")


class Person(Base):
    """A member of a household. The NIR is kept only for matching: encrypted, plus a keyed hash."""

    __tablename__ = "person"
    __table_args__ = (
        Index("ix_person_identity", "last_name", "first_name", "birth_date"),
        Index("ix_person_nir_hash_birth", "nir_hash", "birth_date"),
        # A monthly flow rewrites the persons of the households that changed (~5 %): room left in each
        # page keeps most of those updates HOT, away from the person's indexes. Migration 0006.
        {"postgresql_with": {"fillfactor": 90}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    role: Mapped[str | None] = mapped_column(String(3))  # ROLEPERS of the RSA benefit
    civility: Mapped[str | None] = mapped_column(String(3))  # QUAL
    last_name: Mapped[str | None] = mapped_column(String(100))
    birth_name: Mapped[str | None] = mapped_column(String(100))
    first_name: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))
    nir_hash: Mapped[str | None] = mapped_column(String(64))
    nir_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    idassedic: Mapped[str | None] = mapped_column(String(20))
    sdd: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    phone_kind: Mapped[str | None] = mapped_column(String(10))  # mobile | landline
    external_ids: Mapped[dict | None]  # ids given by spreadsheets (département, provider…)
    # The date the Département first learned the person is SDD with an open right
    # (start of the current 42-day legal clock); reset by a transfer in or a reopening.
    legal_clock_start: Mapped[dt.date | None] = mapped_column(Date, index=True)
    # Facts of the flow, kept as given (they may be years old; the legal clock runs from receipt):
    # DDSOUDRODEV / DFSOUDRODEV, start and end of the SDD flag.
    sdd_start_on: Mapped[dt.date | None] = mapped_column(Date)
    sdd_end_on: Mapped[dt.date | None] = mapped_column(Date)
    last_contact_on: Mapped[dt.date | None] = mapped_column(Date)
    pseudonymised: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    household: Mapped[Household | None] = relationship(back_populates="persons")
    activities: Mapped[list[Activity]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="Activity.start_on"
    )


# Name search (cases.views.search_persons). SQLite: lower(name) LIKE 'prefix%' on expression indexes.
for _column in ("last_name", "birth_name", "first_name"):
    Index(f"ix_person_lower_{_column}", func.lower(getattr(Person, _column)).label(f"lower_{_column}"),
          postgresql_ops={f"lower_{_column}": "text_pattern_ops"})
# PostgreSQL: the folded names (accents aside, referents.text.pg_folded) in collation "C", so that
# the whole word typed is one index range ("martinon" ≤ name < "martinoo"), not its letters up to the
# first one that has accented forms.
# - The last name's index also gives the matches in the order of the results (folded last name, folded
#   first name, id) and carries what the scope and the other words read (household, the three names): a manager's
#   "MARTIN" (33,499 matches at 1M persons) shows its first page after 50 index entries, and counts
#   up to the cap (SEARCH_COUNT_CAP) without reading the table.
# - The birth name's only holds the persons whose birth name differs from their last name: when it
#   is the same, the last name already finds them, and the search's branch on the birth name never
#   visits them (in the generated million, nobody).
Index("ix_person_name_order", pg_folded(Person.last_name).collate("C"), pg_folded(Person.first_name).collate("C"),
      Person.id, postgresql_include=["last_name", "first_name", "birth_name", "household_id"]).ddl_if(dialect="postgresql")
Index("ix_person_folded_birth_name", pg_folded(Person.birth_name).collate("C"),
      postgresql_where=Person.birth_name.is_distinct_from(Person.last_name)).ddl_if(dialect="postgresql")
Index("ix_person_folded_first_name", pg_folded(Person.first_name).collate("C")).ddl_if(dialect="postgresql")


class Activity(Base):
    """An `Activite` block of the flow: activity code ACT over [start_on, end_on]."""

    __tablename__ = "activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    regime: Mapped[str | None] = mapped_column(String(3))  # REG
    code: Mapped[str] = mapped_column(String(3))  # ACT
    start_on: Mapped[dt.date | None] = mapped_column(Date)  # DDACT
    end_on: Mapped[dt.date | None] = mapped_column(Date)  # DFACT

    person: Mapped[Person] = relationship(back_populates="activities")


class StatusChange(Base):
    """Dated history of right state (household) and SDD flag / role (person). Never updated."""

    __tablename__ = "status_change"
    __table_args__ = (Index("ix_status_change_person_field", "person_id", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    field: Mapped[str] = mapped_column(String(30))  # right_state | sdd | role | ft_registration
    old_value: Mapped[str | None] = mapped_column(String(40))
    new_value: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(40))
    effective_on: Mapped[dt.date] = mapped_column(Date)
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Path(Base):
    """One episode of a person in the RSA of the Département: from the legal clock start
    (right open + SDD known, or a transfer in, or a reopening) to exit.

    Indicators are computed per path: delay = first validated orientation − clock start."""

    __tablename__ = "path"
    __table_args__ = (Index("ix_path_person_open", "person_id", "closed_on"),
                      Index("ix_path_next_due", "next_due_on"))

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), index=True)
    clock_start: Mapped[dt.date] = mapped_column(Date, index=True)  # legal clock
    request_date: Mapped[dt.date | None] = mapped_column(Date, index=True)  # DTDEMRSA: DREES clock
    opening_reason: Mapped[str] = mapped_column(String(20), default="entry")  # entry|transfer_in|reopening
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    close_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The path's outcome, denormalised from its first validated orientation (earliest validated_on,
    # then lowest id; docs/indicators.md) so that the reports read one row per path. Written only by
    # orientation.service.mark_path_oriented; reconciled by orientation.outcomes.refresh_path_outcomes.
    oriented_on: Mapped[dt.date | None] = mapped_column(Date)
    oriented_referent_type: Mapped[str | None] = mapped_column(String(20))
    oriented_origin: Mapped[str | None] = mapped_column(String(20))
    oriented_rule: Mapped[str | None] = mapped_column(String(60))
    oriented_parcours: Mapped[str | None] = mapped_column(String(30))  # the décision's parcours (issue 15)
    # The sector of the path's household (Household.territory_id / mds_id), copied so that the reports
    # read one table without joining a million households. Written only by
    # cases.service.sync_path_sectors (imports, sectorisation, nightly reconciliation).
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"))
    mds_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"))
    # The person's next due date on an open path (cases.followup._due_dates: the soonest of the
    # contract deadline, the review due, the next planned appointment, the end of a suspension) and
    # which one it is, as computed for the day next_due_as_of, so that the "my people" lists sort and
    # page in SQL. Written in the writer's transaction (cases.followup.store_next_due, from the session
    # hooks there) and reconciled nightly (refresh_next_due); NULL on closed paths. A value is read
    # only for as_of on or after next_due_as_of, and not when the appointment or suspension end it
    # names has passed (followup.stored_due_is_valid): such rows are computed again on the fly.
    next_due_on: Mapped[dt.date | None] = mapped_column(Date)
    next_due: Mapped[str | None] = mapped_column(String(20))  # contract | review | appointment | suspension_end
    next_due_as_of: Mapped[dt.date | None] = mapped_column(Date)
    # The terms of that due date, computed for the same day (followup.STORED_TERMS), so that the
    # person file and the lists show them without computing them again: a value is read under the
    # same rule, and not when the next appointment or the end of suspension stored has passed
    # (followup.stored_due).
    contract_due_on: Mapped[dt.date | None] = mapped_column(Date)
    review_due_on: Mapped[dt.date | None] = mapped_column(Date)
    due_review_id: Mapped[int | None] = mapped_column(Integer)  # the review due (no key: a copy, rewritten with it)
    next_appointment_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    suspension_ends_on: Mapped[dt.date | None] = mapped_column(Date)

    person: Mapped[Person] = relationship()


class CaseEvent(Base):
    """The person's timeline: append-only, dated, with its source and author."""

    __tablename__ = "case_event"
    __table_args__ = (Index("ix_case_event_person_date", "person_id", "occurred_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"), index=True)
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    source: Mapped[str] = mapped_column(String(20))  # flow | agent | provider | job | kiosque | france_travail
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    summary: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict | None]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Diagnostic(Base):
    """A socio-professional diagnostic recorded by an agent; the latest one is the fact used."""

    __tablename__ = "diagnostic"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    recorded_on: Mapped[dt.date] = mapped_column(Date)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    # {"health": "none|medium|strong", "housing": …, "mobility", "family", "finance",
    #  "digital", "administrative", "language"}
    constraints: Mapped[dict] = mapped_column(default=dict)
    education_level: Mapped[str | None] = mapped_column(String(20))  # e.g. none, cap, bac, bac+2, master…
    can_seek_work: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)


class FranceTravailEvent(Base):
    """A row of a France Travail list (inscriptions, cessations, radiations, stock).

    Kept even when no person matches yet (person_id NULL): matched when the CAF flow brings them."""

    __tablename__ = "france_travail_event"
    __table_args__ = (Index("ix_ft_nir_hash_birth", "nir_hash", "birth_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    nir_hash: Mapped[str] = mapped_column(String(64))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    ft_id: Mapped[str | None] = mapped_column(String(20))  # identifiantpe
    kind: Mapped[str] = mapped_column(String(12))  # inscription | cessation | radiation | stock
    event_on: Mapped[dt.date] = mapped_column(Date)
    code: Mapped[str | None] = mapped_column(String(10))
    motif: Mapped[str | None] = mapped_column(String(120))
    agency: Mapped[str | None] = mapped_column(String(40))  # ale
    commune_insee: Mapped[str | None] = mapped_column(String(5))
    ppae_signed_on: Mapped[dt.date | None] = mapped_column(Date)
    ppae_modality: Mapped[str | None] = mapped_column(String(3))  # SUI GUI REN GLO APR
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The latest stock file that listed this row again (a repeated row is not stored twice): absence
    # from the N latest stock files means the person left France Travail's list (issue 17).
    last_seen_batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FranceTravailRecord(Base):
    """What France Travail tells of a person's orientation (partner API `lectureOrientation` or its
    daily file): a préconisation (the référentiel's diagnostic made at registration), an orientation
    France Travail decided, or a contrat d'engagement signed with France Travail.

    Kept as received, also before the person is known (person_id NULL). `handled_on` says when it
    was applied to the person's path (orientation recorded, contract signed) or set aside for good;
    `outcome` says which, or why it still waits (docs/imports.md)."""

    __tablename__ = "france_travail_record"
    __table_args__ = (Index("ix_ft_record_nir_hash_birth", "nir_hash", "birth_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # content digest: a record is stored once
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    nir_hash: Mapped[str] = mapped_column(String(64))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(14), index=True)  # preconisation | orientation | contract
    parcours_code: Mapped[str | None] = mapped_column(String(3))  # PED PSP PSO EO IND
    parcours: Mapped[str | None] = mapped_column(String(30))  # ours (referents.vocabulary.Parcours)
    organisme_code: Mapped[str | None] = mapped_column(String(3))  # FT CD DCD ML CE IND
    organisme: Mapped[str | None] = mapped_column(String(20))  # ours (referents.vocabulary.Organisme)
    status: Mapped[str | None] = mapped_column(String(20))  # statut: PRECONISE | DECIDE
    state: Mapped[str | None] = mapped_column(String(20))  # etat: EN_ATTENTE BROUILLON OUVERT CLOTURE
    effective_on: Mapped[dt.date] = mapped_column(Date)  # préconisation / decision / signature date
    structure: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(8), default="file")  # file | api
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    handled_on: Mapped[dt.date | None] = mapped_column(Date, index=True)  # applied, or set aside for good
    outcome: Mapped[str | None] = mapped_column(String(80))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Appointment(Base):
    __tablename__ = "appointment"
    __table_args__ = (Index("ix_appointment_person_at", "person_id", "scheduled_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"), index=True)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    scheduled_at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(20), default="follow_up")  # first | follow_up | review
    status: Mapped[str] = mapped_column(String(12), default="planned")  # planned honoured no_show excused cancelled
    source: Mapped[str] = mapped_column(String(20), default="agent")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Contract(Base):
    """Contrat d'engagement (or legacy PPAE / CER for imported history)."""

    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"), index=True)
    orientation_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20), default="engagement")  # engagement | ppae | cer_pro | cer_social
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    signed_on: Mapped[dt.date | None] = mapped_column(Date)
    duration_months: Mapped[int | None] = mapped_column(Integer)
    weekly_hours: Mapped[float] = mapped_column(Numeric(4, 1), default=15)
    hours_reduction_reason: Mapped[str | None] = mapped_column(String(30))
    objectives: Mapped[list | None]  # [{"theme": "employment", "text": "…"}]
    vulnerability: Mapped[bool] = mapped_column(Boolean, default=False)
    # The legal reason (D262-65-2-1 CASF) that sets the review of a social path at 12 months instead of
    # 6: health, disability, invalidity, housing, family (procedure.yaml review.long_reasons).
    review_reason: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending signed ended
    source: Mapped[str] = mapped_column(String(20), default="agent")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "review"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id"))
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    held_on: Mapped[dt.date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(String(20))  # maintain | revise | reorientation
    notes: Mapped[str | None] = mapped_column(Text)
    # Why this review is due 12 months (not 6) after signature: the legal reason, else NULL.
    reason: Mapped[str | None] = mapped_column(String(20))
    # The review is a joint diagnostic: who took part for the referent organisme and for France Travail.
    referent_participant: Mapped[str | None] = mapped_column(String(200))
    france_travail_participant: Mapped[str | None] = mapped_column(String(200))


class Sanction(Base):
    """Suspension procedure: breach → observations → decision → lifting (or suppression)."""

    __tablename__ = "sanction"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    breach_on: Mapped[dt.date] = mapped_column(Date)
    breach: Mapped[str] = mapped_column(Text)
    observations_on: Mapped[dt.date | None] = mapped_column(Date)
    observations: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(12), default="suspension")  # suspension | suppression
    decided_on: Mapped[dt.date | None] = mapped_column(Date)
    rate_percent: Mapped[int | None] = mapped_column(Integer)
    duration_months: Mapped[int | None] = mapped_column(Integer)
    repeated: Mapped[bool] = mapped_column(Boolean, default=False)
    ep_requested_on: Mapped[dt.date | None] = mapped_column(Date)
    ep_opinion_on: Mapped[dt.date | None] = mapped_column(Date)
    ep_opinion: Mapped[str | None] = mapped_column(Text)
    lifted_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="breach")  # breach observations decided lifted closed
    # Decision facts (R262-68-6 CASF): the highest rate allowed for the household and why
    # (household_size: more than one person; single_parent_increase: majoration of L262-9; unknown).
    cap_percent: Mapped[int | None] = mapped_column(Integer)
    cap_reason: Mapped[str | None] = mapped_column(String(30))
    # The monthly allocation the rate applies to (the household's last known amount) and the money
    # withheld / to pay back when the person complies (sanctions.withheld_amounts).
    base_amount: Mapped[float | None] = mapped_column(Numeric(10, 2))
    withheld_amount: Mapped[float | None] = mapped_column(Numeric(10, 2))
    repaid_amount: Mapped[float | None] = mapped_column(Numeric(10, 2))
    lift_reason: Mapped[str | None] = mapped_column(String(20))  # contract complied dropped
    # Four months of total suppression: radiation from France Travail's list proposed (R262-68).
    radiation_proposed_on: Mapped[dt.date | None] = mapped_column(Date)


class Exit(Base):
    __tablename__ = "exit"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    path_id: Mapped[int | None] = mapped_column(ForeignKey("path.id"), index=True)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"), index=True)
    exit_on: Mapped[dt.date] = mapped_column(Date, index=True)
    reason: Mapped[str] = mapped_column(String(30))
    positive: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20))  # flow | provider | agent
    details: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """Something a manager must look at. `key` makes raising idempotent."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[str] = mapped_column(String(10), default="warning")  # info warning critical
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None]
    raised_on: Mapped[dt.date] = mapped_column(Date)
    resolved_on: Mapped[dt.date | None] = mapped_column(Date)
