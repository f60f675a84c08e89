"""`rsa plan`: the delay forecast and the capacity planner (issue 20).

The simulation is `rsa demo` run forward, working day by working day, on a throwaway database (a
temporary SQLite file; a scratch PostgreSQL database, or schema, when the live one is PostgreSQL):
generated daily flows are imported as flows are (imports.generator, imports.service), the
orientation job runs, MDS agents validate the oldest proposals up to their weekly capacity, the
kiosque planner invites to the sessions of each MDS's weekly seats, agents phone the invited, the
invited come, are absent or excused as drawn from the rates, the present choose their referent,
and referents fix first appointments and contracts. No separate queueing model: what the engine
does is what is forecast. The live database is only read (capacities, seats, the rule set, the
history); nothing is ever written to it.

This module lives in the composition root because it drives imports, orientation and kiosque
together; the analysis of the scratch database and the capacity search are in reports.planning.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.runtime import Runtime, build_runtime
from config.settings import Settings

# --- defaults and their sources (docs/planning.md) -------------------------------------------------
# 13,605 new RSA requests in Haute-Garonne in 2018 (Département): about 262 entrants a week.
DEFAULT_ENTRANTS_PER_YEAR = 13_600
# RDV-Insertion (Plateforme de l'inclusion, "2 leviers concrets pour réduire les délais d'orientation",
# inclusion.gouv.fr, 4 November 2025): 11.2 % no-show when people are invited to choose their slot,
# 23.8 % when summoned. A kiosque invitation is a summons; a person reached by phone before it has
# confirmed, like one who booked: the lower rate applies.
ABSENCE_SUMMONED = 0.238
ABSENCE_CONFIRMED = 0.112
# Hypotheses to confirm with the MDS (no published figure): excused absences, phoning reach.
EXCUSE_RATE = 0.05
PHONING_REACH = 0.5
# Referent chosen at the kiosque: national split of orientations in 2023 (DREES, OARSA): France Travail
# 40 %, Département 32 %, other organisms 28 % (here ActiPro, and ATI for the self-employed).
KIOSQUE_CHOICES = (("pole_emploi", 0.40), ("mds", 0.32), ("actipro", 0.22), ("ati", 0.06))
# Kiosque seats when the live database has no kiosque template: the product's default template
# (kiosque.service.ensure_default_templates: one weekly session of 20 seats per MDS).
DEFAULT_SEATS_PER_MDS = 20
# Validations when the live database shows none over the last weeks: a hypothesis, not a measure.
DEFAULT_VALIDATIONS_PER_WEEK = 150
HISTORY_WEEKS = 8  # weeks of live validations measured for "today's" validation capacity
DRAIN_WEEKS = 6  # inflow goes on six more weeks so that every entrant of the period can be judged at 42 days
KIOSQUE_WEEKDAY = 1  # Tuesday, the product's default template
SDD_TAG = "<TOPPERSDRODEVORSA>1</TOPPERSDRODEVORSA>"
DEPARTEMENT_REFERENTS = ("mds", "actipro", "ati")  # whose appointments and contracts the product records


class PlanningError(ValueError):
    """A planning request the planner refuses; the message is user-facing French."""


@dataclass(frozen=True)
class PlanInputs:
    """Everything a simulation depends on. Same inputs, same seed: same result."""

    start: dt.date
    weeks: int = 12
    entrants_per_week: float = DEFAULT_ENTRANTS_PER_YEAR / 52
    seats: dict[str, int] = field(default_factory=dict)  # MDS code -> kiosque seats per week
    validations: dict[str, int] = field(default_factory=dict)  # MDS code -> proposals validated per week
    referent_capacity: dict[str, int | None] = field(default_factory=dict)  # structure code -> places (None: no limit)
    commune_weights: dict[tuple[str, str], float] | None = None  # (INSEE, postal code) -> weight; None: population
    absence_summoned: float = ABSENCE_SUMMONED
    absence_confirmed: float = ABSENCE_CONFIRMED
    excuse_rate: float = EXCUSE_RATE
    phoning_reach: float = PHONING_REACH
    seed: int = 1
    drain_weeks: int = DRAIN_WEEKS
    drain_inflow: bool = True  # entrants keep arriving during the drain weeks (False: a quicker, emptier drain)
    mds_weights: dict[str, float] = field(default_factory=dict)  # MDS code -> share of the inflow
    rules: dict | None = None  # the live active rule set (name, rules, fallback); None: the bundled one

    def with_(self, **changes) -> PlanInputs:
        return replace(self, **changes)

    @property
    def cohort_end(self) -> dt.date:
        return self.start + dt.timedelta(days=7 * self.weeks - 1)

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=7 * (self.weeks + self.drain_weeks) - 1)

    def describe(self) -> dict:
        d = asdict(self)
        d["start"], d["cohort_end"], d["end"] = self.start.isoformat(), self.cohort_end.isoformat(), self.end.isoformat()
        d.pop("rules")
        d.pop("mds_weights")
        d["commune_weights"] = "historique" if self.commune_weights else "population"
        d["seats_total"], d["validations_total"] = sum(self.seats.values()), sum(self.validations.values())
        return d


# --- the scratch database -------------------------------------------------------------------------

@contextmanager
def scratch_database(live_url: str, pg_kind: str = "auto") -> Iterator[str]:
    """A throwaway database URL, dropped afterwards: a temporary SQLite file, or a new PostgreSQL
    database on the live server (a scratch schema of the live database when the role may not create
    databases, or with pg_kind="schema"). Never the live database's own tables."""
    url = make_url(live_url)
    if url.get_backend_name() != "postgresql":
        folder = Path(tempfile.mkdtemp(prefix="rsa-plan-"))
        try:
            yield f"sqlite:///{folder / 'plan.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    base = url.set(drivername="postgresql+psycopg")
    name = f"rsa_plan_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        if pg_kind == "schema":
            raise PermissionError("scratch schema asked")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        kind = "database"
    except Exception:  # noqa: BLE001 - no CREATEDB privilege: a schema of our own instead
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{name}"'))
        except Exception as exc:  # noqa: BLE001 - the application's least-privileged role
            admin.dispose()
            raise PlanningError("impossible de créer la base de simulation: ce rôle PostgreSQL ne peut créer ni "
                                "base ni schéma; renseignez RSA_MIGRATE_DATABASE_URL (rôle propriétaire du "
                                "schéma, docs/security.md)") from exc
        kind = "schema"
    try:
        if kind == "database":
            yield base.set(database=name).render_as_string(hide_password=False)
        else:
            query = dict(base.query)
            query["options"] = f"-csearch_path={name}"
            yield base.set(query=query).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if kind == "database":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


# --- what today looks like (read-only) ------------------------------------------------------------

def _mds_weights_by_population(session) -> dict[str, float]:
    """Share of the inflow of each MDS when entrants are spread over communes by population (the
    generator's draw): the commune's population, split evenly over its postal codes, to the MDS of
    its sector."""
    import csv

    from imports.generator import COMMUNES_CSV
    from referents.models import Structure
    from referents.service import SectorIndex

    sectors = SectorIndex(session)
    codes = dict(session.execute(select(Structure.id, Structure.code).where(Structure.kind == "mds")).all())
    weights: dict[str, float] = {}
    with open(COMMUNES_CSV, encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            pop = max(int(row["population"] or 0), 1)
            postcodes = row["codes_postaux"].split() or ["31000"]
            for pc in postcodes:
                match = sectors.find(row["code_insee"], pc)
                code = codes.get(getattr(match.sector, "mds_id", None))
                if code:
                    weights[code] = weights.get(code, 0.0) + pop / len(postcodes)
    return weights


def _history(session, as_of: dt.date) -> dict:
    """The live database's last 12 months: entrants per week, by MDS and by (commune, postal code)."""
    from cases.models import Household, Path
    from referents.models import Structure

    since = as_of - dt.timedelta(days=365)
    rows = session.execute(
        select(Structure.code, Household.commune_insee, Household.postal_code, func.count(Path.id))
        .join(Household, Household.id == Path.household_id)
        .outerjoin(Structure, Structure.id == Path.mds_id)
        .where(Path.clock_start > since, Path.clock_start <= as_of)
        .group_by(Structure.code, Household.commune_insee, Household.postal_code)).all()
    by_mds: dict[str, float] = {}
    communes: dict[tuple[str, str], float] = {}
    total = 0
    for code, insee, pc, n in rows:
        total += n
        if code:
            by_mds[code] = by_mds.get(code, 0) + n
        if insee and insee.startswith("31"):
            communes[(insee, pc or "")] = communes.get((insee, pc or ""), 0) + n
    return {"entrants": total, "by_mds": by_mds, "communes": communes}


def spread(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` split over the keys in proportion to their weights, in whole units that sum to the
    total (largest remainders, ties by key)."""
    keys = sorted(weights)
    wsum = sum(weights[k] for k in keys)
    if total <= 0 or wsum <= 0:
        return {k: 0 for k in keys}
    exact = {k: total * weights[k] / wsum for k in keys}
    out = {k: int(math.floor(exact[k])) for k in keys}
    rest = total - sum(out.values())
    for k in sorted(keys, key=lambda k: (-(exact[k] - out[k]), k))[:rest]:
        out[k] += 1
    return out


def today(runtime: Runtime, as_of: dt.date, from_history: bool = False) -> dict:
    """What the live database says about today, read-only: MDS codes and their inflow weights,
    kiosque seats per week per MDS (active templates), validations per week per MDS (agents'
    validations of the last weeks), places left per structure (capacity minus current load), the
    active rule set and, with from_history, the last 12 months of entrants."""
    from kiosque.models import SessionTemplate
    from orientation.models import Orientation, RuleSet
    from referents.models import Structure

    s = runtime.sessions()
    try:
        try:
            mds = list(s.scalars(select(Structure.code).where(Structure.kind == "mds", Structure.active.is_(True))
                                 .order_by(Structure.code)))
        except SQLAlchemyError:
            raise PlanningError("la base n'est pas initialisée: lancer `rsa init` avant de planifier") from None
        if not mds:
            raise PlanningError("la base n'a pas de MDS: lancer `rsa init` avant de planifier")
        weights = _mds_weights_by_population(s)
        history = _history(s, as_of) if from_history else None
        if history and history["entrants"]:
            weights = {**{m: 0.0 for m in mds}, **history["by_mds"]}
        weights = {m: weights.get(m, 0.0) for m in mds}
        seats = {m: 0 for m in mds}
        templates = s.execute(select(Structure.code, func.sum(SessionTemplate.capacity))
                              .join(Structure, Structure.id == SessionTemplate.mds_id)
                              .where(SessionTemplate.active.is_(True)).group_by(Structure.code)).all()
        if templates:
            seats.update({code: int(n or 0) for code, n in templates if code in seats})
            seats_source = "modèles de kiosque actifs de la base"
        else:
            seats = {m: DEFAULT_SEATS_PER_MDS for m in mds}
            seats_source = f"aucun modèle de kiosque: {DEFAULT_SEATS_PER_MDS} places par MDS (modèle par défaut)"
        since = as_of - dt.timedelta(weeks=HISTORY_WEEKS)
        from cases.models import Household, Person

        validated = s.execute(
            select(Structure.code, func.count(Orientation.id))
            .join(Person, Person.id == Orientation.person_id)
            .join(Household, Household.id == Person.household_id)
            .join(Structure, Structure.id == Household.mds_id)
            .where(Orientation.validated_on > since, Orientation.validated_on <= as_of,
                   Orientation.validated_by.is_not(None),  # validated by an agent, not by the run
                   Orientation.origin.in_(("auto", "default_mds")))  # proposals, not kiosque choices
            .group_by(Structure.code)).all()
        if validated:
            validations = {m: 0 for m in mds}
            for code, n in validated:
                if code in validations:
                    validations[code] = int(math.ceil(n / HISTORY_WEEKS))
            validations_source = f"validations par les agents des {HISTORY_WEEKS} dernières semaines"
        else:
            validations = spread(DEFAULT_VALIDATIONS_PER_WEEK, weights)
            validations_source = (f"aucune validation récente: {DEFAULT_VALIDATIONS_PER_WEEK} par semaine "
                                  "(hypothèse) réparties selon le flux")
        load = dict(s.execute(select(Orientation.structure_id, func.count(Orientation.id))
                              .where(Orientation.status == "validated").group_by(Orientation.structure_id)).all())
        capacity = {}
        for st in s.scalars(select(Structure).where(Structure.capacity.is_not(None))):
            capacity[st.code] = max(0, st.capacity - load.get(st.id, 0))
        active = s.scalar(select(RuleSet).where(RuleSet.active.is_(True)).order_by(RuleSet.version.desc()).limit(1))
        rules = None
        if active is not None:
            from orientation.service import spec_of

            rules = {"name": active.name, **spec_of(active).as_document()}
    finally:
        s.rollback()
        s.close()
    return {"mds": mds, "weights": weights, "seats": seats, "seats_source": seats_source,
            "validations": validations, "validations_source": validations_source,
            "referent_capacity": capacity, "rules": rules, "history": history}


def inputs_from_today(runtime: Runtime, as_of: dt.date, *, weeks: int = 12, entrants_per_week: float | None = None,
                      seats_total: int | None = None, seats_by_mds: dict[str, int] | None = None,
                      validations_total: int | None = None, validations_by_mds: dict[str, int] | None = None,
                      referent_capacity: dict[str, int | None] | None = None, from_history: bool = False,
                      seed: int = 1, **rates) -> tuple[PlanInputs, dict]:
    """PlanInputs from today's state of the live database and the user's overrides; also returns
    the description of today (sources of each default)."""
    now = today(runtime, as_of, from_history)
    mds, weights = now["mds"], now["weights"]
    history = now["history"]

    def by_mds(total, given, current, what):
        if given:
            unknown = sorted(set(given) - set(mds))
            if unknown:
                raise PlanningError(f"{what}: MDS inconnue(s) {', '.join(unknown)}")
            return {m: int(given.get(m, 0)) for m in mds}
        if total is not None:
            return spread(int(total), weights)
        return dict(current)

    if entrants_per_week is None:
        if history and history["entrants"]:
            entrants_per_week = history["entrants"] / 52
        else:
            entrants_per_week = DEFAULT_ENTRANTS_PER_YEAR / 52
    capacity = dict(now["referent_capacity"])
    if referent_capacity is not None:
        capacity.update(referent_capacity)
    inputs = PlanInputs(
        start=as_of, weeks=weeks, entrants_per_week=float(entrants_per_week),
        seats=by_mds(seats_total, seats_by_mds, now["seats"], "places de kiosque"),
        validations=by_mds(validations_total, validations_by_mds, now["validations"], "validations"),
        referent_capacity=capacity,
        commune_weights=history["communes"] if history and history["communes"] else None,
        seed=seed, mds_weights=weights, rules=now["rules"], **rates)
    return inputs, now


# --- the simulation -------------------------------------------------------------------------------

class _Flows:
    """Daily flows of new entrants, through the product's generator: each working day, a daily flow
    (TYPEFLUX=I) derived from a one-household stub, whose new households are that day's entrants."""

    def __init__(self, inputs: PlanInputs, folder: Path):
        from imports.generator import household_xml

        self.inputs, self.folder = inputs, folder
        self.rng = random.Random(f"plan-flows:{inputs.seed}")
        # Mean SDD adults per generated new household, measured on the generator itself.
        probe = [household_xml(inputs.seed, i, inputs.start, recent=True, state="2").count(SDD_TAG)
                 for i in range(400)]
        self.per_household = max(sum(probe) / len(probe), 0.1)
        self.next_index = 1
        self.carry = 0.0
        self.communes = None
        if inputs.commune_weights:
            keys = sorted(inputs.commune_weights)
            self.communes = (keys, [inputs.commune_weights[k] for k in keys])

    def write(self, day: dt.date) -> Path | None:
        from imports.generator import derive_flux, generate_monthly

        wanted = self.inputs.entrants_per_week / 5 / self.per_household + self.carry
        n = int(wanted)
        self.carry = wanted - n
        if n <= 0:
            return None
        prev_month_end = day.replace(day=1) - dt.timedelta(days=1)
        stub = self.folder / "stub.xml"
        generate_monthly(stub, households=1, seed=self.inputs.seed, month=f"{prev_month_end:%Y-%m}",
                         start_index=self.next_index - 1)
        out = self.folder / f"RSABEI-{day:%Y%m%d}.xml"
        derive_flux([stub], out, seed=self.inputs.seed, daily=True, change_rate=0.0, new_households=n,
                    day=day.day)
        self.next_index += n
        if self.communes:
            self._relocate(out)
        return out

    _ADDRESS = re.compile(r"<NUMCOM>[^<]*</NUMCOM><CODEPOS>[^<]*</CODEPOS><NOMCOM>[^<]*</NOMCOM>")

    def _relocate(self, path: Path) -> None:
        """--from-history: each new household to a (commune, postal code) drawn from the last 12 months."""
        keys, weights = self.communes
        raw = path.read_text(encoding="cp1252")

        def place(_m):
            insee, pc = self.rng.choices(keys, weights)[0]
            return f"<NUMCOM>{insee}</NUMCOM><CODEPOS>{pc or '31000'}</CODEPOS><NOMCOM>COMMUNE {insee}</NOMCOM>"

        path.write_text(self._ADDRESS.sub(place, raw), encoding="cp1252", newline="\n")


def _quota(weekly: int, weekday: int) -> int:
    """The share of a weekly quota done on a working day (0..4): whole units, summing to the week."""
    return (weekly * (weekday + 1)) // 5 - (weekly * weekday) // 5


class _Simulation:
    def __init__(self, runtime: Runtime, inputs: PlanInputs, folder: Path, progress=None):
        self.rt, self.inputs, self.folder, self.progress = runtime, inputs, folder, progress
        self._sectors = None  # the run's sectorisation index (_sector_index)
        self.stats = {"entrants_households": 0, "flows": 0, "auto_validated": 0, "agent_validated": 0,
                      "invited": 0, "phoned_reached": 0, "present": 0, "absent": 0, "excused": 0,
                      "first_appointments": 0, "contracts": 0}
        self.weekly: list[dict] = []
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # process time: on a shared machine wall time counts waits

    # -- setup
    def setup(self) -> None:
        from config.db import Base
        from kiosque import service as kiosque
        from referents.models import Structure
        from referents.service import load_reference_data

        # The models' schema, which the suite checks equal to the migrations' (a throwaway database
        # needs no migration history, and creating it directly takes a fraction of the time).
        Base.metadata.create_all(self.rt.engine)
        with self.rt.session() as s:
            load_reference_data(s)
        with self.rt.session() as s:
            if self.inputs.rules:
                from orientation.service import load_rules_document

                load_rules_document(s, self.inputs.rules)
            by_code = {st.code: st for st in s.scalars(select(Structure))}
            for code, cap in self.inputs.referent_capacity.items():
                if code in by_code:
                    by_code[code].capacity = cap
            self.mds_ids = {st.code: st.id for st in by_code.values() if st.kind == "mds"}
            for code, seats in sorted(self.inputs.seats.items()):
                if seats > 0 and code in self.mds_ids:
                    kiosque.create_template(s, mds_id=self.mds_ids[code], weekday=KIOSQUE_WEEKDAY,
                                            start_time=dt.time(9, 30), capacity=int(seats))
            day = self.inputs.start
            while day <= self.inputs.end + dt.timedelta(weeks=8):
                last = min(day + dt.timedelta(days=364), self.inputs.end + dt.timedelta(weeks=8))
                kiosque.generate_sessions(s, day, last)
                day = last + dt.timedelta(days=1)
        self.flows = _Flows(self.inputs, self.folder)

    # -- one working day
    @contextmanager
    def _timed(self, phase: str):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[phase] = self.cpu_seconds.get(phase, 0.0) + time.process_time() - c0

    def day(self, day: dt.date) -> None:
        from imports.service import import_file
        from kiosque import service as kiosque
        from orientation import service as orientation
        from orientation.assignment import Assigner
        from orientation.outcomes import mark_path_oriented
        from referents.service import SectorIndex

        if day <= (self.inputs.end if self.inputs.drain_inflow else self.inputs.cohort_end):
            with self._timed("flows"):
                path = self.flows.write(day)
            if path is not None:
                with self._timed("import"):
                    result = import_file(self.rt, path, sectors=self._sector_index())
                if result["status"] != "imported":
                    raise PlanningError(f"flux simulé du {day} non importé: {result['error']}")
                self.stats["flows"] += 1
                self.stats["entrants_households"] += result["created"]
                path.unlink()
        with self.rt.session() as s:
            with self._timed("kiosque_attendance"):
                SectorIndex.adopt(s, self._sector_index())
                # One assigner (structures, loads, caseloads, sectorisation) for the day's roll calls,
                # orientation run and validations: the engine keeps it in step with every orientation
                # it validates or ends in the day's transaction (capacities do not change in a day).
                assigner = Assigner(s)
                assigner.deferred_paths = set()  # the validated paths' outcomes: once, at the day's end
                self._kiosques_held(s, day, assigner)
            with self._timed("orientation_run"):
                self.stats["auto_validated"] += orientation.run(s, day, assigner=assigner)["validated"]
            with self._timed("validation"):
                self._agents_validate(s, day, assigner)
            with self._timed("kiosque_plan"):
                self.stats["invited"] += kiosque.plan(s, day).invited
            if day.weekday() == 0:
                with self._timed("referents"):
                    self._referents_at_work(s, day)
            with self._timed("orientation_run"):
                mark_path_oriented(s, sorted(p for p in assigner.deferred_paths if p is not None))

    def _sector_index(self):
        """One sectorisation index for the whole run, lent to each day's transactions (the import's
        and the day's): nothing in the simulation writes a sector, and if anything did, the index
        would be marked stale by the write and built again from the database here."""
        from referents.service import SectorIndex

        if self._sectors is None or self._sectors.stale:
            with self.rt.session() as s:  # its own session: the rows are detached, loaded, when it ends
                self._sectors = SectorIndex(s)
        return self._sectors

    def _draw(self, *key) -> random.Random:
        """A random stream per person and event: the same person draws the same fate whatever the
        capacities (common random numbers: comparing two capacities compares like with like)."""
        return random.Random(":".join(str(k) for k in (self.inputs.seed, *key)))

    def _kiosques_held(self, s, day: dt.date, assigner=None) -> None:
        """Sessions held today: phoning the day before, then attendance drawn from the rates."""
        from kiosque import service as kiosque
        from kiosque.models import Invitation, KiosqueSession

        start = dt.datetime.combine(day, dt.time())
        invitations = s.execute(
            select(Invitation.id, Invitation.person_id, Invitation.attempt)
            .join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
            .where(Invitation.status == "pending", KiosqueSession.starts_at >= start,
                   KiosqueSession.starts_at < start + dt.timedelta(days=1))
            .order_by(Invitation.id)).all()
        i = self.inputs
        after = dt.datetime.combine(day, dt.time(23, 59))  # the roll call is taken once the session is over
        marks, calls = [], []
        for inv_id, person_id, attempt in invitations:
            rng = self._draw("kiosque", person_id, attempt)
            reached = rng.random() < i.phoning_reach
            calls.append(kiosque.PhoningMark(inv_id, "will_come" if reached else "no_answer", day - dt.timedelta(days=1)))
            self.stats["phoned_reached"] += reached
            roll = rng.random()
            absence = i.absence_confirmed if reached else i.absence_summoned
            if roll < absence:
                marks.append(kiosque.AttendanceMark(inv_id, "absent"))
                self.stats["absent"] += 1
            elif roll < absence + i.excuse_rate:
                marks.append(kiosque.AttendanceMark(inv_id, "excused"))
                self.stats["excused"] += 1
            else:
                x, choice = rng.random(), KIOSQUE_CHOICES[-1][0]
                for referent_type, p in KIOSQUE_CHOICES:
                    if x < p:
                        choice = referent_type
                        break
                    x -= p
                marks.append(kiosque.AttendanceMark(inv_id, "present", choice))
                self.stats["present"] += 1
        # The day's calls, then the day's sheets, each in one batch (one assigner, one re-planning).
        kiosque.record_phonings(s, calls)
        kiosque.record_attendances(s, marks, now=after, assigner=assigner)

    def _agents_validate(self, s, day: dt.date, assigner=None) -> None:
        """Each MDS's agents validate the oldest proposals of their sector, up to today's share of
        their weekly capacity (one validation call for the day: one capacity check for all)."""
        from orientation import service as orientation

        quota = {self.mds_ids[code]: _quota(weekly, day.weekday())
                 for code, weekly in self.inputs.validations.items() if code in self.mds_ids}
        if not any(quota.values()):
            return
        ids = []
        for o in orientation.queue(s, limit=1_000_000)["items"]:  # oldest first
            if quota.get(o["mds_id"], 0) > 0:
                quota[o["mds_id"]] -= 1
                ids.append(o["id"])
        if ids:
            self.stats["agent_validated"] += len(orientation.validate(s, ids, None, day, assigner=assigner)["validated"])

    def _referents_at_work(self, s, day: dt.date) -> None:
        """Mondays: the Département's referents (MDS, ActiPro, ATI) fix a first appointment with the
        people oriented to them last week, and those oriented four weeks ago sign their contract
        (delays drawn per person). France Travail's appointments and PPAE reach the product through
        France Travail's own files, which the simulation does not generate."""
        from cases.models import Appointment, Contract
        from cases.service import AppointmentIn, ContractIn, record_appointments, record_contracts
        from orientation.models import Orientation

        week = dt.timedelta(days=7)
        seen = select(Appointment.person_id)
        first = []
        for o in s.scalars(select(Orientation).where(Orientation.status == "validated",
                                                     Orientation.referent_type.in_(DEPARTEMENT_REFERENTS),
                                                     Orientation.validated_on >= day - week,
                                                     Orientation.validated_on < day,
                                                     Orientation.person_id.not_in(seen))
                           .order_by(Orientation.id)).all():
            delay = self._draw("appointment", o.person_id).randint(5, 20)
            at = dt.datetime.combine(o.validated_on + dt.timedelta(days=delay), dt.time(10, 0))
            # recorded now for the day it will be held (the simulation writes its future in advance)
            first.append(AppointmentIn(o.person_id, at, "honoured", kind="first", structure_id=o.structure_id,
                                       as_of=at.date()))
        # the week's first appointments in one call (same checks, rows and events as one by one)
        self.stats["first_appointments"] += len(record_appointments(s, first, source="agent"))
        signed = select(Contract.person_id).where(Contract.status == "signed")
        contracts = []
        for o in s.scalars(select(Orientation).where(Orientation.status == "validated",
                                                     Orientation.referent_type.in_(DEPARTEMENT_REFERENTS),
                                                     Orientation.validated_on >= day - 5 * week,
                                                     Orientation.validated_on < day - 4 * week,
                                                     Orientation.person_id.not_in(signed))
                           .order_by(Orientation.id)).all():
            delay = self._draw("contract", o.person_id).randint(14, 30)
            signed_on = o.validated_on + dt.timedelta(days=delay)
            contracts.append(ContractIn(o.person_id, signed_on, as_of=signed_on))
        # the week's contracts in one call (same checks, rows, events and reviews as one by one)
        self.stats["contracts"] += len(record_contracts(s, contracts, source="agent"))

    # -- the whole run
    def run(self) -> dict:
        from reports import planning as analysis

        with self._timed("setup"):
            self.setup()
        total = (self.inputs.end - self.inputs.start).days + 1
        for n in range(total):
            day = self.inputs.start + dt.timedelta(days=n)
            if day.weekday() < 5:
                self.day(day)
            if n % 7 == 6:  # the end of a simulated week: the backlog as it stands
                with self.rt.session() as s, self._timed("snapshots"):
                    self.weekly.append(analysis.snapshot(s, day))
            if self.progress:
                self.progress(n + 1, total)
        with self.rt.session() as s:
            return analysis.forecast(s, start=self.inputs.start, cohort_end=self.inputs.cohort_end,
                                     as_of=self.inputs.end, weekly=self.weekly)


def simulate(live: Runtime | Settings | str, inputs: PlanInputs, *, progress: Callable[[int, int], None] | None = None,
             scratch_url: str | None = None) -> dict:
    """One simulation on a throwaway database; returns the forecast (reports.planning.forecast) with
    the inputs and the simulation's counts. `live` only tells where a scratch database may be made."""
    # The scratch database is made with the schema owner's rights (RSA_MIGRATE_DATABASE_URL) where they
    # are set: the application's own role may not create databases or schemas (docs/security.md).
    live_settings = None if isinstance(live, str) else (live if isinstance(live, Settings) else live.settings)
    live_url = live if live_settings is None else (live_settings.migrate_database_url or live_settings.database_url)

    def _run(url: str) -> dict:
        folder = Path(tempfile.mkdtemp(prefix="rsa-plan-flows-"))
        settings = Settings.from_env().with_(
            database_url=url, inbox=str(folder / "inbox"), archive=str(folder / "archive"),
            quarantine=str(folder / "quarantine"), reports_dir=str(folder / "reports"),
            outbox_dir=str(folder / "outbox"), scheduler_enabled=False)
        runtime = build_runtime(settings)
        try:
            sim = _Simulation(runtime, inputs, folder, progress)
            result = sim.run()
        finally:
            runtime.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        result["inputs"] = inputs.describe()
        result["simulation"] = {**sim.stats, "seconds": {k: round(v, 2) for k, v in sim.seconds.items()},
                                "cpu_seconds": {k: round(v, 2) for k, v in sim.cpu_seconds.items()}}
        return result

    if scratch_url is not None:
        if scratch_url == live_url:
            raise PlanningError("la base de simulation ne peut pas être la base réelle")
        return _run(scratch_url)
    with scratch_database(live_url) as url:
        return _run(url)


def capacity(live: Runtime | Settings | str, inputs: PlanInputs, *, target_days: int = 30, share: float = 0.95,
             max_runs: int = 20, progress: Callable[[str], None] | None = None) -> dict:
    """The smallest kiosque seats and validations per MDS reaching the target on the same inflow
    (reports.planning.search_capacity: a monotone search in a bounded number of simulations)."""
    from reports.planning import search_capacity

    def run(seats: dict[str, int], validations: dict[str, int]) -> dict:
        return simulate(live, inputs.with_(seats=seats, validations=validations))

    return search_capacity(run, today_seats=inputs.seats, today_validations=inputs.validations,
                           weekly_inflow=spread(int(round(inputs.entrants_per_week)), inputs.mds_weights),
                           target_days=target_days, share=share, max_runs=max_runs, progress=progress)
