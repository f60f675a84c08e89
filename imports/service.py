"""Import orchestration: CAF/MSA flows into households, persons, history, paths and exits; the inbox.

One file = one batch = one database transaction: a broken file (or a crash) leaves the database
as it was, and running the same command again imports it from the start without duplicates. A
file already imported (same SHA-256) is recognised at once. Inside a file, households are
handled in chunks: the existing households, raw-record hashes, persons and paths of a chunk are
loaded with a few bulk queries, unchanged households (same fragment hash) are skipped, and the
changes are written with executemany statements.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import logging
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from operator import itemgetter
from pathlib import Path

from sqlalchemy import bindparam, delete, func, select, text, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import sqltypes

from cases.models import (
    OPEN_RIGHT_STATES,
    SDD_ROLES,
    Activity,
    CaseEvent,
    Exit,
    Household,
    Person,
    StatusChange,
)
from cases.models import Path as CasePath
from cases.service import ExitIn, record_exits, reopening_applies, sync_path_sectors
from config.db import one_of, unnest_rows, utcnow
from imports.batches import (  # noqa: F401 (ReplayError re-exported)
    FileDigest,
    ReplayError,
    fail,
    finish,
    may_repeat,
    pending_reject,
    reject,
    sha256_file,
    start_batch,
)
from imports.flux import (
    VRSB,
    FlowHeader,
    FluxError,
    FluxReader,
    HouseholdRecord,
    RecordError,
    SkippedRun,
    parse_fragment,
    read_header,
)
from imports.flux_worker import (
    ThreadReader,
    WorkerReader,
    compress,
    fragment_of,
    prepare_record,
    reading_mode,
)
from imports.known import KnownHouseholds
from imports.models import ImportBatch, RawRecord, RejectedRecord
from referents.service import SectorIndex

log = logging.getLogger(__name__)

KIND = "flux"
CHUNK = 1000
# A re-import (the database already holds households) is lean until it has created LEAN_UNTIL_CREATED
# households: its chunks hold a quarter of the records (each changed household brings its stored
# rows, persons, activities and paths, to compare with) and SQLite's page cache is 2 MB instead of
# 8 MB (a re-import's updates touch few pages; a first import's inserts need the 8 MB, 3 times
# slower without).
# Measured on a 5 %-changed re-import at 100k households, peak RSS of importer + reading process:
# 161 → 137 MB on SQLite, 161 → 144 MB on PostgreSQL, in the same time (issue 21, item 3). A
# re-import that turns out to create many households (a new organism's file) goes back to the first
# import's sizes.
LEAN_CHUNK = 250
# A flow at least this large, of a size and header no earlier batch has, is hashed beside its import (FileDigest)
# rather than before it: 3.5 s of reading at 1M households (4.2 GB).
HASH_BESIDE_FROM = 8 << 20
PAGE_CACHE_KB, LEAN_PAGE_CACHE_KB = 8192, 2048
LEAN_UNTIL_CREATED = 10_000

# MOTICLORSA → exit reason vocabulary shared with the orientation and report packages.
EXIT_REASONS = {"ECH": "end_of_right_resources", "MUT": "transfer", "RFD": "striking_off",
                "RAU": "striking_off", "PCG": "other", "RGD": "other",
                # VRSD0301's simplified motives (WebRSA's VRSD0301 notes: PCG→CCG, ECH→CMD, MUT→CMU, RFD→CFD)
                "CMD": "end_of_right_resources", "CMU": "transfer", "CFD": "striking_off", "CCG": "other",
                "CAU": "other"}
ABSENT_REASON = "absent_flux_mensuel"  # exit reason of a household missing from the next monthly flow
CLOSED_STATES = ("5", "6")

_H = Household.__table__
_P = Person.__table__
_A = Activity.__table__
_SC = StatusChange.__table__
_PATH = CasePath.__table__
_EV = CaseEvent.__table__
_RAW = RawRecord.__table__
_EXIT = Exit.__table__

_HOUSEHOLD_FIELDS = ("organism", "numorg", "matricule", "departement", "numdemrsa", "dtdemrsa", "right_state",
                     "right_state_on", "right_opened_on", "suspension_reason", "suspension_on", "closure_reason",
                     "closure_on", "family_situation", "children_count", "benefit_nature", "rsa_amount",
                     "no_fixed_address", "commune_insee", "postal_code", "mds_id", "territory_id", "city",
                     "address_line", "transferred_from", "transferred_to", "last_flow_on", "last_monthly_batch_id")
_PERSON_FIELDS = ("household_id", "role", "civility", "last_name", "birth_name", "first_name", "birth_date",
                  "sex", "idassedic", "sdd", "legal_clock_start", "sdd_start_on", "sdd_end_on")


# SQLite: one identity-index search per term (MULTI-INDEX OR), 300 terms (the last one repeated),
# as a fixed string: building the equivalent 900-clause SQLAlchemy expression cost more than the query.
_NAMES_SQL = "SELECT id FROM person WHERE " + " OR ".join(
    ["(last_name = ? AND first_name = ? AND birth_date = ?)"] * 300)
# PostgreSQL: the chunk's names as one JSON record set joined on the identity index, one statement per chunk.
_PG_NAMES_SQL = text("SELECT p.id FROM person p JOIN json_to_recordset(CAST(:names AS json)) AS t(l text, f text, d date) "
                     "ON p.last_name = t.l AND p.first_name = t.f AND p.birth_date = t.d")


# The columns the chunk look-ups filter and join on: ANALYZE samples only these (not the raw fragments'
# compressed XML, the names' expression indexes or the JSON of events), a fraction of a full ANALYZE.
_ANALYZE_SQL = ("ANALYZE household (id, organism, matricule), person (id, household_id, nir_hash, birth_date, "
                "last_name, first_name), path (id, person_id, closed_on), raw_record (household_id), "
                "activity (person_id)")


class _Ids:
    """Primary keys for the rows of a chunk, taken in one query (PostgreSQL sequence) or from the
    table's maximum (SQLite: the import's transaction holds the database's write lock), so that
    inserts are plain executemany statements instead of one INSERT … RETURNING per row. On SQLite
    the maximum is read at each take (one look-up at the end of the key's index): rows the unit of
    work inserts in the same transaction (the monthly closures' exits) are counted, and each take
    is inserted before the next."""

    def __init__(self, session: Session):
        self.s = session
        self.pg = session.get_bind().dialect.name == "postgresql"

    def take(self, table, n: int) -> list[int]:
        if n <= 0:
            return []
        if self.pg:
            q = text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)")
            return list(self.s.execute(q, {"t": table.name, "n": n}).scalars())
        nxt = (self.s.execute(select(func.max(table.c.id))).scalar() or 0) + 1
        return list(range(nxt, nxt + n))


class Ref:
    """A row id known only after its INSERT (households, persons, paths created in a chunk)."""

    __slots__ = ("id",)

    def __init__(self, id: int | None = None):
        self.id = id


def _rid(x):
    return x.id if isinstance(x, Ref) else x


@dataclass
class _Writes:
    households_new: list = field(default_factory=list)  # (Ref, values)
    households_upd: list = field(default_factory=list)  # values with id
    persons_new: list = field(default_factory=list)  # (Ref, values, household Ref)
    persons_upd: list = field(default_factory=list)  # (values, person ref, household ref, stored values or None)
    persons_nir: list = field(default_factory=list)  # (person ref, hash, encrypted) for matched persons gaining a NIR
    activities_replace: list = field(default_factory=list)  # person ids whose activities are replaced
    activities_new: list = field(default_factory=list)  # (person ref, values)
    paths_close: list = field(default_factory=list)  # {id, closed_on, close_reason}
    paths_new: list = field(default_factory=list)  # (Ref, person ref, household ref, values)
    status: list = field(default_factory=list)  # (household ref, person ref, values)
    exits: list = field(default_factory=list)  # (person ref, exit date, reason, details): one per open path
    events: list = field(default_factory=list)  # (person ref, path ref, values)
    raw: list = field(default_factory=list)  # (household ref, hash, gz)
    sectors_moved: list = field(default_factory=list)  # ids of known households whose MDS/territory changed
    wind_down: list = field(default_factory=list)  # (person ref, path ref) closed because the person left SDD


class FlowImporter:
    """Imports one flow file inside the caller's transaction."""

    def __init__(self, runtime, session: Session, batch: ImportBatch, progress: Callable[[int], None] | None = None,
                 sectors: SectorIndex | None = None):
        self.rt, self.s, self.batch = runtime, session, batch
        self.progress = progress
        self.sectors = sectors or SectorIndex(session)
        self.header: FlowHeader | None = None
        self.counts = {"households": 0, "persons": 0, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0,
                       "persons_created": 0, "paths_opened": 0, "paths_closed": 0, "exits": 0,
                       "closed_absent": 0, "sdd_ended": 0}
        self.outside: dict[str, int] = defaultdict(int)
        self.anomalies = 0
        self.reader_peak_rss_mb: float | None = None
        self.reading: str | None = None  # flux_worker.reading_mode's choice
        self.parsed = 0
        self.ids = _Ids(session)
        self._analyzed_at = 0
        self._insert_many = _BulkInsert(session, self.ids.pg)
        self._lean, self._chunk = False, CHUNK  # run(): lean on a re-import (LEAN_CHUNK)

    # -- file ---------------------------------------------------------------------------------------
    def _known_rows(self):
        """Every household already imported (imports.known: key, content digest, id; the commune of
        those outside the sectorisation), read in one query, so that unchanged households are
        skipped while reading, without extracting their data. Streamed in batches of 2,000 rows
        (yield_per as an execution option: a server-side cursor on PostgreSQL): fetched whole by
        psycopg's client-side cursor, the rows raised the importer's RSS by 27 MB at 100k
        households (7 MB streamed; 11 MB in batches of 20,000)."""
        q = (select(_H.c.organism, _H.c.matricule, _H.c.id, _H.c.mds_id, _H.c.commune_insee, _RAW.c.content_hash)
             .join(_RAW, _RAW.c.household_id == _H.c.id))
        return ((org + mat, digest, hid, (commune or "sans commune") if mds_id is None else None)
                for org, mat, hid, mds_id, commune, digest in self.s.execute(q, execution_options={"yield_per": 2000}))

    def _seen_values(self) -> dict:
        """What an unchanged household still gets from the flow: the date, and the monthly batch."""
        values = {"last_flow_on": self.header.flow_date}
        if self.header.monthly:
            values["last_monthly_batch_id"] = self.batch.id
        return values

    def _flush_unchanged(self) -> None:
        """The unchanged households seen since the last flush get the flow's date and batch: one
        UPDATE whose ids are one bound parameter (config.db.one_of), not 900 placeholders: rendering
        and parsing those (SQLAlchemy, then psycopg for each statement, too long for its cache) cost
        more than the update on a re-import at 100k households."""
        if self._unchanged:
            self.s.execute(update(_H).where(one_of(_H.c.id, self._unchanged, self.ids.pg)).values(self._seen_values()))
            self._unchanged = []

    def run(self, path: Path) -> tuple[dict, list[str]]:
        self._lean = self.s.execute(select(_H.c.id).limit(1)).first() is not None  # a re-import
        self._chunk = LEAN_CHUNK if self._lean else CHUNK
        if not self.ids.pg:  # a bigger page cache for one large transaction (fewer WAL rewrites)
            old_cache = self.s.execute(text("PRAGMA cache_size")).scalar()
            self._page_cache(LEAN_PAGE_CACHE_KB if self._lean else PAGE_CACHE_KB)
            try:
                return self._run(path)
            finally:
                self.s.execute(text(f"PRAGMA cache_size={int(old_cache)}"))
        return self._run(path)

    def _page_cache(self, kib: int) -> None:
        self.s.execute(text(f"PRAGMA cache_size=-{int(kib)}"))

    def _end_lean(self) -> None:
        """A re-import that creates many households is a first import for them: full-size chunks and cache."""
        if self._lean and self.counts["created"] >= LEAN_UNTIL_CREATED:
            self._lean, self._chunk = False, CHUNK
            if not self.ids.pg:
                self._page_cache(PAGE_CACHE_KB)

    def _run(self, path: Path) -> tuple[dict, list[str]]:
        self._unchanged: list[int] = []
        self.reading = mode = reading_mode(path, lambda: self.s.execute(select(func.count()).select_from(_H)).scalar())
        if mode == "process":  # a first import: the reading process parses and takes the skip decisions
            # On SQLite the reading process is the critical path and this process has time: it compresses
            # the fragments (on PostgreSQL the server needs the second core: the reading process does).
            reader = WorkerReader(path, self.rt.settings.nir_key or self.rt.settings.secret_key,
                                  compress_fragments=self.ids.pg)
            self.known = reader.start(self._known_rows())  # the lookup is built there only
        else:
            self.known = KnownHouseholds.build(self._known_rows())
            reader = FluxReader(path, want_data=self.known.want_filter() if len(self.known) else None,
                                skipped_runs=True)
            if mode == "thread":  # a re-import: read ahead by a thread of this process
                reader = ThreadReader(reader)
        chunk: list[HouseholdRecord] = []
        keys: set = set()
        nirs: set = set()
        done_bytes = 0
        for rec in reader:
            self.header = reader.header
            if self.progress and reader.bytes_read > done_bytes:
                self.progress(reader.bytes_read - done_bytes)
                done_bytes = reader.bytes_read
            # known unchanged, recognised from their bytes (never parsed): a run of them (SkippedRun)
            if isinstance(rec, SkippedRun):
                self._skipped(rec)
                continue
            self.counts["households"] += 1
            if rec.anomaly:
                self.anomalies += 1
            if rec.error is None:
                self._prepare(rec)
            if rec.error is not None:
                self._reject(rec, rec.error)
                continue
            rec_nirs = {p["nir_hash"] for p in rec.data["persons"] if p["nir_hash"]}
            if rec.key in keys or rec_nirs & nirs:
                self._process(chunk)
                chunk, nirs = [], set()
                keys.clear()
            chunk.append(rec)
            keys.add(rec.key)
            nirs |= rec_nirs
            if len(chunk) >= self._chunk:
                self._process(chunk)
                chunk, nirs = [], set()
                keys.clear()
        self.header = reader.header
        self._process(chunk)
        self._flush_unchanged()
        self._close_absent()
        self.reader_peak_rss_mb = getattr(reader, "peak_rss_mb", None)  # operations, not the batch's counts
        self.parsed = reader.parsed  # households whose tree was built (the others skipped from their bytes)
        if self.progress:
            self.progress(max(0, path.stat().st_size - done_bytes))
        return self.counts, self._warnings(reader)

    def _skipped(self, run: SkippedRun) -> None:
        """Households known unchanged, skipped unparsed (their known positions in KnownHouseholds,
        person counts and anomaly flags): counted, and their ids queued for _flush_unchanged."""
        positions, persons, anomalies = run.positions, run.persons, run.anomalies
        n = len(positions)
        self.counts["households"] += n
        self.counts["unchanged"] += n
        self.counts["persons"] += sum(persons)
        self.anomalies += sum(anomalies)
        ids = self.known.ids
        self._unchanged += [ids[i] for i in positions]
        outside_at = self.known.outside_at
        if outside_at:
            for i in positions:
                commune = outside_at.get(i)
                if commune is not None:
                    self.outside[commune] += 1
        if len(self._unchanged) >= CHUNK:
            self._flush_unchanged()

    def _warnings(self, reader) -> list[str]:
        warnings = []
        totals = reader.totals
        if totals.households is not None and totals.households != self.counts["households"]:
            warnings.append(f"total de contrôle NBTOTDOSRSATRANSM={totals.households} mais "
                            f"{self.counts['households']} foyer(s) dans le fichier")
        if totals.anomalies is not None and totals.anomalies != self.anomalies:
            warnings.append(f"total de contrôle NBTOTDOSRSATRANSMANO={totals.anomalies} mais "
                            f"{self.anomalies} foyer(s) avec anomalie dans le fichier")
        outside = sum(self.outside.values())
        if outside:
            communes = ", ".join(sorted(self.outside)[:5]) + (" …" if len(self.outside) > 5 else "")
            warnings.append(f"{outside} foyer(s) hors sectorisation du département (communes {communes}): "
                            "importés sans MDS")
        return warnings

    def _reject(self, rec: HouseholdRecord, reason: str) -> None:
        reject(self.s, self.batch, rec.key_text, reason, fragment_of(rec))
        self.counts["rejected"] += 1

    def _prepare(self, rec: HouseholdRecord) -> None:
        """Normalise and hash NIRs (the clear NIR never goes further than here)."""
        prepare_record(self.rt.vault, rec)

    # -- chunk --------------------------------------------------------------------------------------
    def _process(self, recs: list[HouseholdRecord]) -> None:
        if not recs:
            return
        self._refresh_statistics()
        s = self.s
        flow_date = self.header.flow_date
        mats = sorted({r.key[1] for r in recs})
        orgs = sorted({r.key[0] for r in recs})  # the unique index is (organism, matricule): no scan
        pg = self.ids.pg
        existing = {}
        if pg:  # the chunk's (organism, matricule) pairs, probed on the unique index
            pairs = sorted({r.key for r in recs})
            cond = tuple_(_H.c.organism, _H.c.matricule).in_(select(*unnest_rows(
                [[o for o, _ in pairs], [m for _, m in pairs]], [sqltypes.String(), sqltypes.String()]).c))
        else:
            cond = one_of(_H.c.organism, orgs, pg) & one_of(_H.c.matricule, mats, pg)
        for row in s.execute(select(_H).where(cond)).mappings():
            existing[(row["organism"], row["matricule"])] = dict(row)
        ids = [h["id"] for h in existing.values()]
        hashes = dict(s.execute(select(_RAW.c.household_id, _RAW.c.content_hash)
                                .where(one_of(_RAW.c.household_id, ids, pg))).all()) if ids else {}
        todo, unchanged, rehash = [], [], []
        for r in recs:
            h = existing.get(r.key)
            if h is not None and _same_content(r, hashes.get(h["id"]), rehash, h["id"]):
                unchanged.append(h["id"])
                self.counts["unchanged"] += 1
                self.counts["persons"] += len(r.data["persons"])
                if h["mds_id"] is None:
                    self._note_outside(r.data)
            else:
                todo.append((r, h))
        if unchanged:
            s.execute(update(_H).where(_H.c.id.in_(unchanged)).values(self._seen_values()))
        if rehash:
            s.connection().execute(update(_RAW).where(_RAW.c.household_id == bindparam("_id"))
                                   .values(content_hash=bindparam("c")), rehash)
        if not todo:
            return
        ctx = self._load_people(todo)
        w = _Writes()
        planned = []
        for rec, old in todo:
            try:
                planned.append((rec, self._plan(rec, old, ctx, w, flow_date)))
            except RecordError as exc:
                self._reject(rec, str(exc))
        self._write(w)
        self._end_lean()
        # The households written here are not added to self.known: a household repeated later in
        # the file is read again and recognised by this chunk-level check (existing row and hash),
        # which keeps the importer's memory flat whatever the file's size.

    def _note_outside(self, d: dict) -> None:
        self.outside[d.get("commune_insee") or "sans commune"] += 1

    def _refresh_statistics(self) -> None:
        """PostgreSQL plans the chunk lookups (households, persons by NIR or name, paths) from its
        statistics; inside one import transaction the tables grow from empty to 100,000s of rows
        and stale statistics make it scan them once per chunk (quadratic). ANALYZE, allowed inside
        the transaction, whenever the tables have grown by half since the last one. Only created
        households count: an updated one grows nothing (a 5 %-changed re-import at 100k ran two
        ANALYZE, 2.5 s of its 33 s, for tables that had not grown)."""
        if not self.ids.pg:
            return
        written = self.counts["created"]
        if written < 2_000 or written < 1.5 * self._analyzed_at:
            return
        self.s.execute(text(_ANALYZE_SQL))
        self._analyzed_at = written

    def _load_people(self, todo) -> dict:
        s = self.s
        hids = [h["id"] for _, h in todo if h is not None]
        nir_hashes = sorted({p["nir_hash"] for r, _ in todo for p in r.data["persons"] if p["nir_hash"]})
        cols = (_P.c.id, _P.c.household_id, _P.c.role, _P.c.last_name, _P.c.first_name, _P.c.birth_date,
                _P.c.nir_hash, _P.c.sdd, _P.c.legal_clock_start, _P.c.civility, _P.c.birth_name, _P.c.sex,
                _P.c.idassedic, _P.c.sdd_start_on, _P.c.sdd_end_on)
        pg = self.ids.pg
        persons: dict[int, dict] = {}
        if hids:
            for row in s.execute(select(*cols).where(one_of(_P.c.household_id, hids, pg))).mappings():
                persons[row["id"]] = dict(row)
        if nir_hashes:
            for row in s.execute(select(*cols).where(one_of(_P.c.nir_hash, nir_hashes, pg))).mappings():
                persons[row["id"]] = dict(row)
        known_nirs = {p["nir_hash"] for p in persons.values() if p["nir_hash"]}
        names = sorted({(p["last_name"], p["first_name"], p["birth_date"]) for r, _ in todo for p in r.data["persons"]
                        if not p["nir_hash"] or p["nir_hash"] not in known_nirs})
        if names and pg:  # one join on the identity index against the chunk's names
            found = [r[0] for r in s.execute(_PG_NAMES_SQL, {"names": json.dumps(
                [{"l": n[0], "f": n[1], "d": n[2]} for n in names], default=str)})]
            if found:
                for row in s.execute(select(*cols).where(one_of(_P.c.id, found, pg))).mappings():
                    persons[row["id"]] = dict(row)
        for part in _chunks(names, 300) if not pg else ():
            # SQLite scans the whole identity index for a row-value IN (quadratic over a file)
            ids = [r[0] for r in s.connection().exec_driver_sql(
                _NAMES_SQL, tuple(v for t in part + [part[-1]] * (300 - len(part)) for v in t))]
            if not ids:
                continue
            for row in s.execute(select(*cols).where(one_of(_P.c.id, ids, pg))).mappings():
                persons[row["id"]] = dict(row)
        by_household, by_nir, by_name = defaultdict(list), defaultdict(list), defaultdict(list)
        for p in persons.values():
            if p["household_id"] is not None:
                by_household[p["household_id"]].append(p)
            if p["nir_hash"]:
                by_nir[p["nir_hash"]].append(p)
            by_name[(p["last_name"], p["first_name"], p["birth_date"])].append(p)
        open_paths: dict[int, list[dict]] = defaultdict(list)
        had_closed: set[int] = set()
        if persons:
            q = select(_PATH.c.id, _PATH.c.person_id, _PATH.c.closed_on).where(
                one_of(_PATH.c.person_id, sorted(persons), pg))
            for row in s.execute(q).mappings():
                if row["closed_on"] is None:
                    open_paths[row["person_id"]].append(dict(row))
                else:
                    had_closed.add(row["person_id"])
        return {"by_household": by_household, "by_nir": by_nir, "by_name": by_name, "open_paths": open_paths,
                "had_closed": had_closed, "claimed": set()}

    # -- one household ------------------------------------------------------------------------------
    def _match(self, p: dict, household_id: int | None, ctx: dict, used: set[int]) -> dict | None:
        h = p["nir_hash"]
        if h:
            cands = [c for c in ctx["by_nir"].get(h, []) if c["id"] not in used]
            same = [c for c in cands if c["birth_date"] == p["birth_date"]]
            if same:
                same.sort(key=lambda c: (c["household_id"] != household_id, c["id"]))
                return same[0]
            if cands:
                raise RecordError(f"personne n°{p['n']}: conflit d'identité — NIR déjà connu (personne "
                                  f"#{cands[0]['id']}) avec une autre date de naissance; aucune fusion faite")
        if household_id is not None:
            cands = [c for c in ctx["by_household"].get(household_id, [])
                     if c["id"] not in used and c["role"] == p["role"] and c["birth_date"] == p["birth_date"]
                     and (c["nir_hash"] is None or h is None)]
            if len(cands) == 1:
                return cands[0]
        cands = [c for c in ctx["by_name"].get((p["last_name"], p["first_name"], p["birth_date"]), [])
                 if c["id"] not in used and (c["nir_hash"] is None or h is None)]
        if cands:
            cands.sort(key=lambda c: (c["household_id"] != household_id, c["id"]))
            return cands[0]
        return None

    def _plan(self, rec: HouseholdRecord, old: dict | None, ctx: dict, w: _Writes,
              flow_date: dt.date) -> tuple[Ref, str | None]:
        """Plan the writes of one household; returns its row ref and its commune when unsectorised."""
        d = rec.data
        hid = old["id"] if old else None
        # Identity matching first: a conflict rejects the record before anything is planned.
        used: set[int] = set(ctx["claimed"])
        matches = []
        for p in d["persons"]:
            m = self._match(p, hid, ctx, used)
            if m is not None:
                used.add(m["id"])
            matches.append(m)
        ctx["claimed"] |= {m["id"] for m in matches if m is not None}

        match = self.sectors.find(d["commune_insee"], d["postal_code"])
        sector = match.sector
        outside = None
        if sector is None:
            self._note_outside(d)
            outside = d.get("commune_insee") or "sans commune"
        values = {k: d[k] for k in ("organism", "numorg", "matricule", "departement", "numdemrsa", "dtdemrsa",
                                    "right_state", "suspension_reason", "suspension_on", "closure_reason",
                                    "closure_on", "family_situation", "children_count", "benefit_nature",
                                    "rsa_amount", "no_fixed_address", "commune_insee", "postal_code", "city",
                                    "address_line")}
        values["mds_id"] = sector.mds_id if sector else None
        values["territory_id"] = sector.territory_id if sector else None
        values["last_flow_on"] = flow_date
        values["last_monthly_batch_id"] = (self.batch.id if self.header.monthly
                                           else (old["last_monthly_batch_id"] if old else None))
        # The legal clock (D262-65-2 CASF) runs from the Département's receipt of the information:
        # the creation date of the flow, never DDSOUDRODEV / DTODRSA (kept as facts).
        receipt = self.header.received_on or flow_date
        state, old_state = d["right_state"], (old["right_state"] if old else None)
        state_changed = state != old_state
        values["right_state_on"] = flow_date if state_changed or old is None else old["right_state_on"]
        values["right_opened_on"] = d["right_opened_on"] or (old["right_opened_on"] if old else None)
        t_in, t_out = d["transfer_in"], d["transfer_out"]
        values["transferred_from"] = t_in["from"] if t_in else (old["transferred_from"] if old else None)
        values["transferred_to"] = t_out["to"] if t_out else None
        transfer_in_new = bool(t_in) and (old is None or old["transferred_from"] != t_in["from"]
                                          or (old["right_state"] in CLOSED_STATES))
        transfer_out_new = bool(t_out) and (old is None or old["transferred_to"] != t_out["to"])

        if old is None:
            href = Ref()
            w.households_new.append((href, values))
            self.counts["created"] += 1
        else:
            href = Ref(old["id"])
            # only the columns whose value changed (the rest of the row and its indexes untouched)
            w.households_upd.append({"_id": old["id"], **{k: values[k] for k in _HOUSEHOLD_FIELDS
                                                          if not _same_value(values[k], old[k])}})
            if (old["mds_id"], old["territory_id"]) != (values["mds_id"], values["territory_id"]):
                w.sectors_moved.append(old["id"])  # its existing paths follow (sync_path_sectors)
            self.counts["updated"] += 1
        if state_changed:
            w.status.append((href, None, {"field": "right_state", "old_value": old_state, "new_value": state,
                                          "reason": d["closure_reason"] or d["suspension_reason"]}))
        w.raw.append((href, rec.content_hash, rec.raw_gz or compress(rec.fragment)))

        # End of the right in the Département: closure or transfer out.
        end = None
        if transfer_out_new:
            end = ("transfer", (t_out["on"] or d["closure_on"] or flow_date), "flow.transfer_out",
                   f"Transfert du dossier vers {t_out['to']}")
        elif state in CLOSED_STATES:
            code = d["closure_reason"] or ""
            end = (EXIT_REASONS.get(code, "other"), d["closure_on"] or flow_date, "flow.right_closed",
                   f"Droit RSA clos (motif {code or 'non précisé'})")
        suspended_now = state in ("3", "4") and old_state == "2"

        present: set[int] = set()
        for p, m in zip(d["persons"], matches, strict=True):
            self.counts["persons"] += 1
            pv = {k: p[k] for k in ("role", "civility", "last_name", "birth_name", "first_name", "birth_date",
                                    "sex", "idassedic", "sdd")}
            pv["sdd_start_on"], pv["sdd_end_on"] = p["clock_date"], p.get("sdd_end_on")
            if m is None:
                pref = Ref()
                pv["legal_clock_start"] = None
                w.persons_new.append((pref, pv, href, p["nir_hash"], self._encrypted(p)))
                self.counts["persons_created"] += 1
                if p["sdd"]:
                    w.status.append((href, pref, {"field": "sdd", "old_value": None, "new_value": "1",
                                                  "reason": "premier flux"}))
                open_paths, had_closed = [], False
            else:
                pref = Ref(m["id"])
                present.add(m["id"])
                pv["legal_clock_start"] = m["legal_clock_start"]
                w.persons_upd.append((pv, pref, href, _stored_person(m)))
                if p["nir_hash"] and not m["nir_hash"]:
                    w.persons_nir.append((pref, p["nir_hash"], self._encrypted(p)))
                w.activities_replace.append(m["id"])
                if bool(m["sdd"]) != p["sdd"]:
                    w.status.append((href, pref, {"field": "sdd", "old_value": "1" if m["sdd"] else "0",
                                                  "new_value": "1" if p["sdd"] else "0", "reason": None}))
                    w.events.append((pref, None, {"kind": "flow.sdd_changed", "occurred_on": flow_date,
                                                  "summary": "Soumis aux droits et devoirs" if p["sdd"]
                                                  else "N'est plus soumis aux droits et devoirs",
                                                  "data": {"sdd": p["sdd"]}}))
                if m["role"] != p["role"]:
                    w.status.append((href, pref, {"field": "role", "old_value": m["role"], "new_value": p["role"],
                                                  "reason": None}))
                open_paths, had_closed = ctx["open_paths"].get(m["id"], []), m["id"] in ctx["had_closed"]
            for a in p["activities"]:
                w.activities_new.append((pref, a))
            relevant = p["role"] in SDD_ROLES
            if relevant and suspended_now:
                w.events.append((pref, None, {"kind": "flow.right_suspended", "occurred_on": flow_date,
                                              "summary": f"Droit RSA suspendu (état {state})",
                                              "data": {"right_state": state, "reason": d["suspension_reason"]}}))
            if end is not None:
                reason, on, kind, summary = end
                if open_paths:
                    # Rare: through cases.service.record_exits (positive-exit mapping, structure of the
                    # last orientation, one exit per path, timeline), once the chunk's rows are written.
                    details = f"MOTICLORSA={d['closure_reason'] or ''}" + (f" vers {t_out['to']}" if t_out else "")
                    for op in open_paths:
                        w.events.append((pref, op["id"], {"kind": kind, "occurred_on": on, "summary": summary,
                                                          "data": {"reason": reason}}))
                        w.exits.append((pref, on, reason, details))
                        self.counts["paths_closed"] += 1
                        self.counts["exits"] += 1
                    ctx["open_paths"][pref.id] = []
                    ctx["had_closed"].add(pref.id)
                continue
            if m is not None and m["sdd"] and not p["sdd"] and open_paths:
                # SDD 1→0: the person leaves the backlog; the path closes (no exit: the right goes on),
                # pending decisions and kiosque invitations are cancelled once the rows are written.
                for op in open_paths:
                    w.paths_close.append({"_id": op["id"], "closed_on": flow_date, "close_reason": "sdd_ended"})
                    w.wind_down.append((pref, op["id"]))
                    self.counts["paths_closed"] += 1
                self.counts["sdd_ended"] += 1
                ctx["open_paths"][m["id"]] = []
                ctx["had_closed"].add(m["id"])
                continue
            if not (relevant and p["sdd"] and state in OPEN_RIGHT_STATES) or t_out:
                continue  # (a household leaving by transfer opens nothing, even while its right is open)
            clock = receipt
            if transfer_in_new:
                for op in open_paths:
                    w.paths_close.append({"_id": op["id"], "closed_on": t_in["on"] or flow_date,
                                          "close_reason": "transfer_in"})
                    self.counts["paths_closed"] += 1
                reason, kind = "transfer_in", "flow.transfer_in"
                summary = f"Arrivée par transfert depuis {t_in['from']}"
            elif open_paths:
                continue
            else:
                # A reopening only within 12 months (procedure.yaml) of the previous path's closure.
                reason = "reopening" if had_closed and reopening_applies(self.s, m["id"], clock) else "entry"
                kind, summary = "flow.right_opened", "Droit RSA ouvert, soumis aux droits et devoirs"
            path_ref = Ref()
            w.paths_new.append((path_ref, pref, href, {"clock_start": clock, "request_date": d["dtdemrsa"],
                                                       "opening_reason": reason, "mds_id": values["mds_id"],
                                                       "territory_id": values["territory_id"]}))
            w.events.append((pref, path_ref, {"kind": kind, "occurred_on": flow_date, "summary": summary,
                                              "data": {"clock_start": clock.isoformat(), "opening_reason": reason}}))
            pv["legal_clock_start"] = clock
            self.counts["paths_opened"] += 1
            if m is not None:
                ctx["open_paths"][m["id"]] = [{"id": path_ref, "person_id": m["id"], "closed_on": None}]
        # Persons of the household absent from this record have left it.
        if hid is not None:
            for c in ctx["by_household"].get(hid, []):
                if c["id"] in ctx["claimed"] or c["role"] is None or c["household_id"] != hid:
                    continue
                w.status.append((href, Ref(c["id"]), {"field": "role", "old_value": c["role"], "new_value": None,
                                                      "reason": "absent du foyer"}))
                if c["sdd"]:
                    w.status.append((href, Ref(c["id"]), {"field": "sdd", "old_value": "1", "new_value": "0",
                                                          "reason": "absent du foyer"}))
                w.persons_upd.append(({"role": None, "sdd": False, **{k: c[k] for k in (
                    "civility", "last_name", "birth_name", "first_name", "birth_date", "sex", "idassedic",
                    "legal_clock_start", "sdd_start_on", "sdd_end_on")}}, Ref(c["id"]), Ref(c["household_id"]), None))
                c["role"] = None
        return href, outside

    def _encrypted(self, p: dict) -> bytes | None:
        """The NIR encrypted by the reading process, else now."""
        return p.get("nir_encrypted") or self.rt.vault.encrypt(p["nir13"])

    # -- writes -------------------------------------------------------------------------------------
    def _write(self, w: _Writes) -> None:
        s = self.s
        now = utcnow()
        stamp = self._insert_many.stamp(now)  # the bulk inserts' timestamp, converted once per chunk
        batch_id = self.batch.id
        if w.households_new:
            for (ref, _), i in zip(w.households_new, self.ids.take(_H, len(w.households_new)), strict=True):
                ref.id = i
            self._insert_many(_H, [{**v, "id": ref.id, "created_at": stamp, "updated_at": stamp}
                                   for ref, v in w.households_new])
        if w.households_upd:
            # One statement per set of changed columns: setting all 28 of them rewrote every index of the
            # household table for each row (SQLite compares columns named, not values), 7.3 s of a 70 s
            # 5 %-changed re-import at 1M households on SQLite, 50,000 rows.
            by_columns = defaultdict(list)
            for row in w.households_upd:
                by_columns[tuple(k for k in row if k != "_id")].append(row)
            for columns, rows in by_columns.items():
                stmt = update(_H).where(_H.c.id == bindparam("_id")).values(
                    {k: bindparam(k) for k in columns} | {"updated_at": now})
                s.connection().execute(stmt, rows)
        if w.persons_new:
            for (ref, *_), i in zip(w.persons_new, self.ids.take(_P, len(w.persons_new)), strict=True):
                ref.id = i
            self._insert_many(_P, [{**v, "id": ref.id, "household_id": h.id, "nir_hash": nh, "nir_encrypted": ne,
                                    "created_at": stamp, "updated_at": stamp, "pseudonymised": False}
                                   for ref, v, h, nh, ne in w.persons_new])
        # A person of a changed household whose own fields did not change is not written (most of them:
        # a household's change is often an amount, an activity or another member; the UPDATE of every
        # person of a changed household, all indexes included, was the largest statement of a
        # 5 %-changed re-import: 2 s of 13 on SQLite at 100k households).
        persons_upd = []
        for v, p, h, stored in w.persons_upd:
            row = {**v, "_id": p.id, "household_id": h.id}
            if stored is None or tuple(row[k] for k in _PERSON_FIELDS) != stored:
                persons_upd.append(row)
        if persons_upd:
            stmt = update(_P).where(_P.c.id == bindparam("_id")).values(
                {k: bindparam(k) for k in _PERSON_FIELDS} | {"updated_at": now})
            s.connection().execute(stmt, persons_upd)
        if w.persons_nir:
            stmt = update(_P).where(_P.c.id == bindparam("_id")).values(nir_hash=bindparam("h"),
                                                                        nir_encrypted=bindparam("e"))
            s.connection().execute(stmt, [{"_id": p.id, "h": h, "e": e} for p, h, e in w.persons_nir])
        if w.activities_replace:
            s.execute(delete(_A).where(one_of(_A.c.person_id, sorted(set(w.activities_replace)), self.ids.pg)))
        if w.activities_new:
            self._insert_many(_A, [{**a, "person_id": p.id} for p, a in w.activities_new])
        if w.paths_new:
            for (ref, *_), i in zip(w.paths_new, self.ids.take(_PATH, len(w.paths_new)), strict=True):
                ref.id = i
            self._insert_many(_PATH, [{**v, "id": ref.id, "person_id": p.id, "household_id": h.id, "created_at": stamp,
                                       "closed_on": None, "close_reason": None} for ref, p, h, v in w.paths_new])
        if w.paths_close:
            stmt = update(_PATH).where(_PATH.c.id == bindparam("_id")).values(
                closed_on=bindparam("closed_on"), close_reason=bindparam("close_reason"))
            s.connection().execute(stmt, [{**c, "_id": _rid(c["_id"])} for c in w.paths_close])
        if w.status:
            self._insert_many(_SC, [{**v, "household_id": h.id, "person_id": p.id if p else None,
                                     "effective_on": self.header.flow_date, "batch_id": batch_id,
                                     "recorded_at": stamp}
                                    for h, p, v in w.status])
        if w.events:
            self._insert_many(_EV, [{**v, "person_id": p.id, "path_id": _rid(path), "source": "flow",
                                     "author_id": None, "recorded_at": stamp} for p, path, v in w.events])
        if w.raw:
            if w.households_upd:  # the households created above have no previous fragment to replace
                s.execute(delete(_RAW).where(one_of(_RAW.c.household_id, [v["_id"] for v in w.households_upd],
                                                     self.ids.pg)))
            self._insert_many(_RAW, [{"household_id": h.id, "content_hash": c, "raw_gz": g, "batch_id": batch_id,
                                      "updated_at": stamp} for h, c, g in w.raw])
        if w.sectors_moved:
            sync_path_sectors(s, w.sectors_moved)
        if w.exits:
            record_exits(s, [ExitIn(p.id, on, reason, details=details) for p, on, reason, details in w.exits],
                         source="flow", take_ids=None if self.ids.pg else partial(self.ids.take, _EXIT))
        if w.wind_down:
            from imports.lifecycle import wind_down

            wind_down(s, [(p.id, _rid(path)) for p, path in w.wind_down], self.header.flow_date, "sdd_ended")

    # -- monthly snapshots ----------------------------------------------------------------------------
    def _close_absent(self) -> None:
        """A monthly flow is a snapshot of its organism: a household carried by the previous monthly
        flow of the same organism and absent from this one has no right to follow any more."""
        from imports.lifecycle import close_absent_households, previous_monthly_batch

        if not self.header.monthly:
            return
        prev = previous_monthly_batch(self.s, self.batch.id, self.header)
        if prev is None:
            return
        self.counts["closed_absent"] = close_absent_households(self.s, self.batch.id, prev, self.header)


def _same_value(new, stored) -> bool:
    """A planned column value equal to the stored one (a stored Numeric comes back as a Decimal, the
    flow's amount is a float: compared as floats). Of another type, it is taken as changed: written."""
    if isinstance(stored, Decimal) and isinstance(new, float):
        return float(stored) == new
    return type(new) is type(stored) and new == stored


def _stored_person(m: dict) -> tuple:
    """A matched person's stored fields (as _load_people read them), taken when planned: the planned
    values are compared with them when written, and a person whose fields are all the same is not
    updated."""
    return tuple(m[k] for k in _PERSON_FIELDS)


def _same_content(rec: HouseholdRecord, stored: str | None, rehash: list, hid: int) -> bool:
    """The household's stored digest says its content did not change: the digest of its raw bytes
    (imports.flux.raw_digest), or, stored before digests were taken from raw bytes (or by a replay),
    the SHA-256 of its serialised tree; then the raw digest replaces it (`rehash`), so that the next
    import skips the household unparsed."""
    if stored is None:
        return False
    if stored == rec.content_hash:
        return True
    if hashlib.sha256(fragment_of(rec)).hexdigest() == stored:
        rehash.append({"_id": hid, "c": rec.content_hash})
        return True
    return False


class _BulkInsert:
    """INSERT … executemany straight to the driver (SQLite) or COPY … FROM STDIN (PostgreSQL, inside
    the import's transaction: one stream per table and chunk instead of one statement per row, which
    left the server most of the import's wall time), with the few conversions SQLAlchemy would do
    (dates as ISO text and JSON as text on SQLite, JSON as text on PostgreSQL) and the columns'
    Python-side defaults: per-row parameter processing was a quarter of the import."""

    def __init__(self, session: Session, pg: bool):
        self.s, self.pg = session, pg
        self._sql: dict[tuple, tuple[str, list]] = {}
        self._json = json.JSONEncoder(ensure_ascii=False, default=str).encode  # built once, not per value

    def stamp(self, now: dt.datetime):
        """A timestamp for many rows, converted once: on SQLite the text SQLAlchemy's DateTime stores
        (the per-value sqlite3 adapter cost a tenth of the importer's CPU, ~7 timestamps a household)."""
        return now if self.pg else now.strftime("%Y-%m-%d %H:%M:%S.%f")

    def _convert(self, col):
        t = col.type
        if isinstance(t, sqltypes.JSON):
            return self._json
        if self.pg:
            return None
        if isinstance(t, sqltypes.Numeric):
            return float
        return None  # dates: the sqlite3 adapters registered below (same text as SQLAlchemy stores)

    def __call__(self, table, rows: list[dict]) -> None:
        if not rows:
            return
        given = tuple(rows[0])
        key = (table.name, given)
        if key not in self._sql:
            defaults = [c for c in table.c if c.name not in given and c.default is not None]
            cols = [table.c[n] for n in given] + defaults
            names = ", ".join(f'"{c.name}"' for c in cols)
            if self.pg:
                sql = f'COPY "{table.name}" ({names}) FROM STDIN'
            else:
                sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in cols)})'
            self._sql[key] = (sql, [self._convert(c) for c in cols], defaults)
        sql, convs, defaults = self._sql[key]
        extra = tuple(d.default.arg(None) if d.default.is_callable else d.default.arg for d in defaults)
        todo = [(i, f) for i, f in enumerate(convs) if f is not None]
        get = itemgetter(*given) if len(given) > 1 else (lambda r: (r[given[0]],))
        params = [get(r) + extra for r in rows]
        if todo:
            for n, values in enumerate(params):
                values = list(values)
                for i, f in todo:
                    v = values[i]
                    if v is not None:
                        values[i] = f(v)
                params[n] = values
        if self.pg:
            driver = self.s.connection().connection.driver_connection
            with driver.cursor() as cur, cur.copy(sql) as copy:
                for values in params:
                    copy.write_row(values)
        else:
            self.s.connection().exec_driver_sql(sql, params if not todo else [tuple(v) for v in params])


# Dates handed straight to sqlite3 by _BulkInsert: the text SQLAlchemy's SQLite types read back
# (the same as Python 3.11's default adapters, deprecated from 3.12, hence registered explicitly).
sqlite3.register_adapter(dt.date, dt.date.isoformat)
sqlite3.register_adapter(dt.datetime, lambda v: v.isoformat(" "))


def _chunks(seq, size):
    seq = list(seq)
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# --- files ----------------------------------------------------------------------------------------

def _result(path, status, counts=None, error=None, batch_id=None, warnings=None, seconds=None,
            reader_peak_rss_mb=None, parsed=None, reading=None) -> dict:
    counts = counts or {}
    return {"path": str(path), "status": status,
            **{k: counts.get(k, 0) for k in ("households", "persons", "created", "updated", "unchanged", "rejected",
                                             "closed_absent", "sdd_ended")},
            "error": error, "batch_id": batch_id, "warnings": warnings or [], "seconds": seconds,
            "reader_peak_rss_mb": reader_peak_rss_mb,
            "reading": reading,  # how the file was read (flux_worker.reading_mode): "process", "thread", "inline"
            "parsed": parsed}  # households whose tree was built (unchanged ones are recognised from their bytes)


def import_file(runtime, path: Path | str, *, progress: Callable[[int], None] | None = None,
                created_by: int | None = None, sectors: SectorIndex | None = None) -> dict:
    """Import one flow file in one transaction; returns the file's result dict. `sectors`: a caller's
    long-lived sectorisation index (SectorIndex.adopt), for a caller importing many flows while no
    sector changes (the forecast); by default the import builds its own."""
    path = Path(path)
    t0 = time.perf_counter()
    digest: FileDigest | None = None
    try:
        size = path.stat().st_size
        if size >= HASH_BESIDE_FROM and not _may_repeat(runtime, path, size):
            digest = FileDigest(path)  # no earlier batch has its size and header: not a file already seen
            sha = digest.placeholder
        else:
            sha = sha256_file(path)
    except OSError as exc:
        return _result(path, "failed", error=f"fichier illisible: {exc.strerror or exc}")
    header = None
    try:
        with runtime.sessions() as session, session.begin():
            start = start_batch(session, KIND, path, sha256=sha, created_by=created_by)
            if start.duplicate:
                if progress:
                    progress(path.stat().st_size)
                b = start.batch
                return _result(path, "duplicate", b.counts, batch_id=b.id, warnings=b.warnings,
                               seconds=time.perf_counter() - t0)
            if sectors is not None:
                SectorIndex.adopt(session, sectors)
            importer = FlowImporter(runtime, session, start.batch, progress,
                                    sectors=None if sectors is None else SectorIndex.of(session))
            counts, warnings = importer.run(path)
            # France Travail rows kept without a person are linked to those this flow brought (issue 9).
            from imports.france_travail import match_pending

            counts["france_travail_matched"] = match_pending(session)
            header = importer.header.as_dict()
            start.batch.header = header
            if digest is not None:
                start.batch.sha256 = _file_digest(digest)
            finish(start.batch, counts, warnings)
            session.flush()
            batch_id = start.batch.id
        log.info("flux %s importé: %s", path.name, counts)
        return _result(path, "imported", counts, batch_id=batch_id, warnings=warnings,
                       seconds=time.perf_counter() - t0, reader_peak_rss_mb=importer.reader_peak_rss_mb,
                       parsed=importer.parsed, reading=importer.reading)
    except FluxError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a file must never take the importer down
        log.exception("flux %s: erreur inattendue", path.name)
        reason = f"erreur inattendue: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if digest is not None:
        try:
            sha = digest.result()
        except OSError:
            sha = None  # (fail hashes what is there, if anything)
    batch = fail(runtime.sessions, KIND, path, sha, reason, header)
    log.warning("flux %s rejeté: %s", path.name, reason)
    return _result(path, "failed", error=reason, batch_id=batch.id, seconds=time.perf_counter() - t0)


def _may_repeat(runtime, path: Path, size: int) -> bool:
    try:
        header = read_header(path).as_dict()
    except (FluxError, OSError):
        return True  # (hashed first; the import says what is wrong with it)
    with runtime.sessions() as session:
        return may_repeat(session, KIND, size, header)


def _file_digest(digest: FileDigest) -> str:
    try:
        return digest.result()
    except OSError as exc:
        raise FluxError(f"fichier illisible pendant l'import: {exc.strerror or exc}") from None


def order_files(paths) -> list[Path]:
    """DTCREAFLUX / HEUCREAFLUX order whatever the given order; unreadable headers last."""
    keyed = []
    for n, p in enumerate(paths):
        p = Path(p)
        try:
            key = (0, read_header(p).sort_key())
        except (FluxError, OSError):
            key = (1, ())
        keyed.append((key, n, p))
    keyed.sort(key=lambda x: (x[0][0], x[0][1], x[1]))
    return [p for _, _, p in keyed]


def import_files(runtime, paths, *, progress: Callable[[int], None] | None = None,
                 created_by: int | None = None) -> list[dict]:
    """Import flow files in the order of their creation date/time; one result dict per file."""
    return [import_file(runtime, p, progress=progress, created_by=created_by) for p in order_files(paths)]


# --- rejects and replay ---------------------------------------------------------------------------

def list_rejects(session: Session, batch_id: int | None = None, status: str | None = None,
                 limit: int = 1000) -> list[dict]:
    q = (select(RejectedRecord, ImportBatch.file_name).join(ImportBatch, ImportBatch.id == RejectedRecord.batch_id)
         .order_by(RejectedRecord.id).limit(limit))
    if batch_id is not None:
        q = q.where(RejectedRecord.batch_id == batch_id)
    if status is not None:
        q = q.where(RejectedRecord.status == status)
    return [{"id": r.id, "batch_id": r.batch_id, "file": name, "key": r.record_key, "reason": r.reason,
             "status": r.status, "created_at": r.created_at, "replayed_at": r.replayed_at}
            for r, name in session.execute(q).all()]


def replay(runtime, reject_id: int) -> dict:
    """Retry one rejected household (after a correction of reference data or of the records
    it conflicted with), with the date of its original flow. Refused when a later flow already
    updated the household."""
    with runtime.sessions() as s, s.begin():
        rec, batch = pending_reject(s, reject_id, KIND, "un flux CAF/MSA")
        h = batch.header or {}
        header = FlowHeader(h.get("APPLIEME"), h.get("NUMVERSIONAPPLIEME"), h.get("TYPEFLUX"), h.get("NATFLUX"),
                            _date_or_none(h.get("DTCREAFLUX")), h.get("HEUCREAFLUX"), _date_or_none(h.get("DTREF")),
                            h.get("VERSIONFLUX") or VRSB)
        try:
            record = parse_fragment(rec.raw or b"", 1, header)
        except FluxError as exc:
            raise ReplayError(f"rejet {reject_id}: {exc}") from None
        if record.key is not None and record.error is None:
            later = s.execute(select(RawRecord.batch_id).join(Household, Household.id == RawRecord.household_id)
                              .where(Household.organism == record.key[0],
                                     Household.matricule == record.key[1])).scalar()
            if later is not None and later > rec.batch_id:
                raise ReplayError(f"rejet {reject_id}: le foyer a déjà été mis à jour par un flux plus récent "
                                  f"(lot {later}); rejouer ce rejet effacerait des données plus récentes")
        importer = FlowImporter(runtime, s, batch)
        importer.header = header
        if record.error is None:
            importer._prepare(record)
        if record.error is not None:
            rec.reason = record.error
            return {"id": reject_id, "status": "pending", "reason": record.error}
        importer._process([record])
        if importer.counts["rejected"]:
            # _process rejected it again: keep the original reject, drop the new copy
            new = s.scalars(select(RejectedRecord).where(RejectedRecord.batch_id == batch.id,
                                                         RejectedRecord.id != rec.id,
                                                         RejectedRecord.status == "pending")
                            .order_by(RejectedRecord.id.desc())).first()
            reason = new.reason if new is not None else rec.reason
            if new is not None:
                s.delete(new)
            rec.reason = reason
            return {"id": reject_id, "status": "pending", "reason": reason}
        rec.status, rec.replayed_at = "replayed", utcnow()
        counts = dict(batch.counts or {})
        for k in ("created", "updated"):
            counts[k] = counts.get(k, 0) + importer.counts[k]
        counts["rejected"] = max(0, counts.get("rejected", 0) - 1)
        counts["replayed"] = counts.get("replayed", 0) + 1
        batch.counts = counts
        return {"id": reject_id, "status": "replayed", "key": record.key_text, "reason": None}


def _date_or_none(v):
    return dt.date.fromisoformat(v) if v else None


# --- inbox ----------------------------------------------------------------------------------------

def _flux_handler(runtime, paths, progress=None) -> list[dict]:
    return import_files(runtime, paths, progress=progress)


# (file name glob, kind, handler(runtime, paths, progress=None) -> [result dict with "path" and "status"]).
# First matching pattern wins (case-insensitive); other importers append their entries.
INBOX_KINDS: list[tuple[str, str, Callable]] = [
    ("RSABE*.xml", KIND, _flux_handler),
    ("RSABI*.xml", KIND, _flux_handler),
]

# France Travail lists, spreadsheets (mapping named in the file name) and provider returns
# (structure code in the file name): see imports.inbox_lists (issue 9).
from imports.inbox_lists import LIST_INBOX_KINDS  # noqa: E402

INBOX_KINDS.extend(LIST_INBOX_KINDS)

_SKIP_SUFFIXES = (".part", ".tmp", ".crdownload", ".filepart")


def inbox_files(inbox: Path, settle_seconds: float = 0, now: float | None = None) -> list[Path]:
    """Files ready in the inbox: not hidden, not partial, unmodified for `settle_seconds`."""
    if not inbox.is_dir():
        return []
    now = now or time.time()
    ready = []
    for p in sorted(inbox.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.name.endswith("~") or p.suffix.lower() in _SKIP_SUFFIXES:
            continue
        if settle_seconds and now - p.stat().st_mtime < settle_seconds:
            continue
        ready.append(p)
    return ready


def _kind_for(name: str):
    low = name.lower()
    for pattern, kind, handler in INBOX_KINDS:
        if fnmatch.fnmatchcase(low, pattern.lower()):
            return kind, handler
    return None, None


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), str(target))
    return target


def process_inbox(runtime, *, settle_seconds: float = 0, progress=None) -> dict:
    """Import every recognised file of RSA_INBOX; archive it when imported (or already known),
    quarantine it when it failed or its kind is unknown."""
    settings = runtime.settings
    inbox, archive, quarantine = Path(settings.inbox), Path(settings.archive), Path(settings.quarantine)
    groups: dict[str, tuple[Callable, list[Path]]] = {}
    unknown = []
    for p in inbox_files(inbox, settle_seconds):
        kind, handler = _kind_for(p.name)
        if kind is None:
            unknown.append(p)
            continue
        groups.setdefault(kind, (handler, []))[1].append(p)
    results = []
    for kind, (handler, paths) in groups.items():
        for r in handler(runtime, paths, progress=progress):
            src = Path(r["path"])
            dest = quarantine if r["status"] == "failed" else archive
            if src.exists():
                r["moved_to"] = str(_move(src, dest))
            r["kind"] = kind
            results.append(r)
    for p in unknown:
        results.append({"path": str(p), "kind": None, "status": "failed",
                        "error": "type de fichier non reconnu dans la boîte de dépôt",
                        "moved_to": str(_move(p, quarantine))})
    summary = {s: sum(1 for r in results if r["status"] == s) for s in ("imported", "duplicate", "failed")}
    return {"files": results, **summary}
