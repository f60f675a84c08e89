"""Reading a large flow beside the importer while it writes to the database: in a second process
for a first import (WorkerReader), in a thread of the importer for a re-import (ThreadReader);
reading_mode chooses.

In a second process, the CPU-bound part of an import (XML parsing, field extraction, NIR hashing and encryption,
compression of the raw fragment) runs in a child process that streams prepared records to the
importer through a pipe; the importer's process only plans and writes. The database work stays
in the importer's single transaction, so a broken file or a crash still changes nothing. The pipe
is bounded (the child blocks when the importer lags), so memory stays flat; when the importer dies
(kill -9) the child's next send fails and it exits.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterable
from pathlib import Path

from cases.nir import NirError, NirVault, normalise
from imports.flux import FluxError, FluxReader, HouseholdRecord, SkippedRun
from imports.known import KnownHouseholds, read_exactly

_FRAME = struct.Struct("<?Q")  # (more messages follow, size of the pickled message)
# Parsed records per message. 100 rather than 200: this process holds half the records at a time
# (its peak RSS 1 to 3.5 MB lower, issue 21 item 3), the importer's queue holds twice as many
# messages (the same households read ahead), and 1,000 messages at 100k households cost nothing seen.
BATCH = 100
SKIPPED_BATCH = 5000  # households skipped unparsed per message (3 numbers each)
# Messages read ahead by the importer's side: 1,200 households, more than a chunk, plus what the 1 MB pipe
# holds (PIPE_BYTES: ~3 messages). 16 with the 64 KB pipe; with the wider pipe and the faster reader the
# queue is full more often and a full queue is what the importer's peak RSS counts (issue 21 item 3).
QUEUE_BATCHES = 12
# ... when the fragments cross uncompressed (about 2.4 times the bytes): about the same memory (8 before)
QUEUE_BATCHES_UNCOMPRESSED = 6
# The pipe's kernel buffer (Linux; 64 KB by default): a whole message of records (~0.7 MB with uncompressed
# fragments) fits, so the reading process writes it without waiting for the importer's pipe thread, which
# needs the GIL between two reads: the importer's main thread holds it for up to the switch interval
# (5 ms) at a time when what it calls does not release it (ISA-L's deflate does not).
PIPE_BYTES = 1 << 20
_STOPPED = "processus de lecture arrêté"
MIN_BYTES_ENV = "RSA_FLUX_WORKER_MIN_BYTES"  # files from this size are read in a second process; -1: never


def prepare_record(vault: NirVault, rec: HouseholdRecord, encrypt: bool = False) -> None:
    """Normalise and hash the NIRs of a record (the clear NIR goes no further than here); with
    `encrypt`, also keep their encrypted form (for persons the importer will create)."""
    for p in rec.data["persons"]:
        if "nir_hash" in p:
            continue
        nir = p.pop("nir", None)
        try:
            nir13 = normalise(nir)
        except NirError as exc:
            rec.error = f"personne n°{p['n']}: NIR invalide ({exc})"
            return
        p["nir13"] = nir13
        p["nir_hash"] = vault.hash(nir13)
        if encrypt:
            p["nir_encrypted"] = vault.encrypt(nir13)


def compress(fragment: bytes) -> bytes:
    """The fragment gzipped at level 1 (mtime 0: the same bytes give the same blob), read back by
    gzip.decompress (fragment_of)."""
    return _deflater().compress(fragment, 1, 31)


@functools.cache
def _deflater():
    """ISA-L's deflate: the same gzip format, 3 to 4 times faster than zlib at level 1 (about 20 µs
    against 60 to 100 for a household's 5.6 KB fragment, 100k of them in a first import: issue 21
    item 1). Loaded on first use: the reading process of a SQLite import never compresses (its peak
    RSS counts). zlib on a platform without its wheel."""
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:  # pragma: no cover - no wheel for this platform: the standard library's
        import zlib

        return zlib


def fragment_of(rec: HouseholdRecord) -> bytes:
    """The record's XML, even when only its compressed copy crossed the pipe."""
    return rec.fragment or (gzip.decompress(rec.raw_gz) if rec.raw_gz else b"")


def _gzip_fragment(rec: HouseholdRecord) -> None:
    """An importable record's fragment kept gzipped (`raw_gz`), the only form the importer keeps: it
    gets the fragment back from it if it must reject the record (fragment_of)."""
    rec.raw_gz = compress(rec.fragment)
    rec.fragment = b""


def _child(out, path: str, known: KnownHouseholds, secret: str, compress_fragments: bool = True) -> None:
    """Child process: read the file, write pickled ("records", [HouseholdRecord], skipped, header,
    bytes_read) messages, then ("end", header, totals, peak RSS in MB) or ("error", FluxError text) /
    ("crash", text). The skip decision is taken here: a household known unchanged crosses the pipe
    as three numbers in `skipped` (known positions, person counts, anomaly flags), never as a record.
    Without `compress_fragments` the fragments cross uncompressed and the importer's side compresses
    them (`WorkerReader`): on SQLite this process is the import's critical path, the importer has time."""
    def send(msg):  # framed: the importer's side queues the bytes, unpickled only when consumed
        blob = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_FRAME.pack(msg[0] == "records", len(blob)))
        out.write(blob)

    try:
        vault = NirVault(secret)
        want = known.want_filter() if len(known) else None  # nothing known: no key to read from the bytes
        del known
        reader = FluxReader(Path(path), want_data=want, skipped_runs=True)
        batch: list[HouseholdRecord] = []
        skipped = SkippedRun()
        for rec in reader:
            if isinstance(rec, SkippedRun):  # known unchanged: the importer needs ids and counts, not XML
                skipped.extend(rec)
                if len(skipped) >= SKIPPED_BATCH:
                    send(("records", batch, _parts(skipped), reader.header, reader.bytes_read))
                    batch, skipped = [], SkippedRun()
                continue
            if rec.data is not None and rec.error is None:
                prepare_record(vault, rec, encrypt=True)
                if rec.error is None and compress_fragments:
                    _gzip_fragment(rec)
            batch.append(rec)
            if len(batch) >= BATCH:
                send(("records", batch, _parts(skipped), reader.header, reader.bytes_read))
                batch, skipped = [], SkippedRun()
        send(("records", batch, _parts(skipped), reader.header, reader.bytes_read))
        send(("end", reader.header, reader.totals, peak_rss_mb(), reader.parsed))
    except FluxError as exc:
        send(("error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the importer, which fails the batch
        send(("crash", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"))
    out.flush()


def _parts(run: SkippedRun) -> tuple[array, array, bytearray]:
    """A SkippedRun as it crosses the pipe (plain arrays: no class to import on unpickling)."""
    return run.positions, run.persons, run.anomalies


def peak_rss_mb() -> float | None:
    """This process's own peak resident memory (VmHWM: counted from its exec, unlike getrusage's
    ru_maxrss, which a child inherits from the process it was forked from). None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> int:
    """`python -m imports.flux_worker`: (path, secret, compress_fragments) pickled on stdin (the secret
    never on the command line), then the known households' frames (KnownHouseholds.send); messages
    pickled on stdout."""
    try:
        path, secret, compress_fragments = pickle.load(sys.stdin.buffer)
        known = KnownHouseholds.read_lookup(sys.stdin.buffer)
        _child(sys.stdout.buffer, path, known, secret, compress_fragments)
    except (BrokenPipeError, ConnectionResetError):  # the importer is gone (killed): stop quietly
        os._exit(1)
    return 0


class WorkerReader:
    """Same interface as FluxReader (iterate records; then `header`, `totals`, `bytes_read`) with
    the reading done in a child process (a plain subprocess: no re-import of the caller's main
    module, no fork of a process holding database connections); the households skipped unparsed
    come as one SkippedRun per message instead of a record each."""

    def __init__(self, path: Path, secret: str, compress_fragments: bool = True):
        self.path, self.secret = Path(path).resolve(), secret
        # False: the reading process sends fragments as they are and this side compresses them as they
        # arrive (what reaches the importer is the same: `raw_gz`, no fragment, for importable records)
        self.compress_fragments = compress_fragments
        self.header = None
        self.totals = None
        self.bytes_read = 0
        self.peak_rss_mb: float | None = None  # the reading process's own peak, reported at its end
        self.parsed = 0  # households whose tree the reading process built
        self.proc: subprocess.Popen | None = None

    def start(self, known_rows: Iterable[tuple[str, str, int, str | None]] = ()) -> KnownHouseholds:
        """Start the reading process and stream the known households to it as they come (rows as
        KnownHouseholds.build takes them; the reading process builds the lookup and takes the skip
        decisions); what this side keeps of them (ids, communes) is returned. Iterating starts it
        with none known."""
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        self.proc = proc = subprocess.Popen([sys.executable, "-m", "imports.flux_worker"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, cwd=root, env=env)
        try:
            with proc.stdin:
                pickle.dump((str(self.path), self.secret, self.compress_fragments), proc.stdin,
                            protocol=pickle.HIGHEST_PROTOCOL)
                return KnownHouseholds.send(known_rows, proc.stdin)
        except BaseException:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise

    def __iter__(self):
        if self.proc is None:
            self.start()
        proc = self.proc
        widen_pipe(proc.stdout)
        # A thread drains the pipe into a bounded queue: the child keeps reading while the importer
        # writes a chunk (a bare pipe holds only ~40 households, which serialised the two).
        messages: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES if self.compress_fragments
                                            else QUEUE_BATCHES_UNCOMPRESSED)
        stop = threading.Event()

        def pump():  # queues pickled messages: ~2.5 times smaller than the records they hold
            try:
                while True:
                    more, size = _FRAME.unpack(read_exactly(proc.stdout, _FRAME.size, _STOPPED))
                    if not _put(messages, read_exactly(proc.stdout, size, _STOPPED), stop) or not more:
                        return
            except Exception:  # noqa: BLE001 - EOF or a broken pipe: the child stopped
                _put(messages, None, stop)

        thread = threading.Thread(target=pump, name="rsa-flux-pipe", daemon=True)
        try:
            thread.start()
            while True:
                blob = messages.get()
                msg = pickle.loads(blob) if blob is not None else ("eof",)
                del blob
                kind = msg[0]
                if kind == "records":
                    _, records, (positions, persons, anomalies), self.header, self.bytes_read = msg
                    if len(positions):
                        yield SkippedRun(positions, persons, anomalies)
                    if not self.compress_fragments:
                        for rec in records:
                            if rec.data is not None and rec.error is None and rec.raw_gz is None:
                                _gzip_fragment(rec)
                    yield from records
                elif kind == "end":
                    _, self.header, self.totals, self.peak_rss_mb, self.parsed = msg
                    return
                elif kind == "error":
                    raise FluxError(msg[1])
                elif kind == "eof":
                    raise FluxError("lecture du fichier interrompue (processus de lecture arrêté)")
                else:
                    raise RuntimeError(f"processus de lecture: {msg[1]}")
        finally:
            stop.set()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if thread.is_alive():
                thread.join(timeout=5)
            proc.stdout.close()


def widen_pipe(f, size: int = PIPE_BYTES) -> int | None:
    """Ask Linux for a larger pipe buffer (up to /proc/sys/fs/pipe-max-size, 1 MB by default); the
    size obtained, or None where it cannot be changed (another system: the default buffer)."""
    try:
        import fcntl

        return fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError):
        return None


def _put(q: queue.Queue, msg, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(msg, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


class ThreadReader:
    """A FluxReader iterated by a thread of the importer's own process, ahead of it, in batches
    through a bounded queue; same interface as FluxReader (and its attributes as of the batch being
    consumed). For a re-import whose households are mostly known: skipping them from their bytes
    costs little, and the reading runs while the importer waits on the database. A second process
    reads faster (a core of its own: 54.8 against 68.8 s for a 5 %-changed re-import at a million
    households) but adds its own interpreter and libraries (34 MB) and holds the known households'
    lookup (24 MB then, 18 MB since session 12): 164 against 128 MB, over issue 21's 150 (item 3); 151 MB
    on SQLite with the 18 MB lookup. RSA_FLUX_READER=process chooses it."""

    def __init__(self, reader: FluxReader):
        self.reader = reader
        self.header = None
        self.totals = None
        self.bytes_read = 0
        self.parsed = 0

    def __iter__(self):
        reader = self.reader
        batches: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        stop = threading.Event()

        def read():
            try:
                batch = []
                for item in reader:
                    batch.append(item)
                    if len(batch) >= BATCH:
                        if not _put(batches, ("items", batch, reader.header, reader.bytes_read), stop):
                            return
                        batch = []
                _put(batches, ("end", batch, reader.header, reader.bytes_read, reader.totals, reader.parsed), stop)
            except BaseException as exc:  # noqa: BLE001 - raised again in the importer's thread
                _put(batches, ("error", exc), stop)

        thread = threading.Thread(target=read, name="rsa-flux-read", daemon=True)
        thread.start()
        try:
            while True:
                msg = batches.get()
                if msg[0] == "error":
                    raise msg[1]
                _, batch, self.header, self.bytes_read = msg[:4]
                yield from batch
                if msg[0] == "end":
                    self.totals, self.parsed = msg[4], msg[5]
                    return
        finally:
            stop.set()
            thread.join(timeout=5)


def use_worker(path: Path) -> bool:
    """Large plain files only: the child's start-up (~0.3 s) is not worth it below a few MB."""
    threshold = int(os.environ.get(MIN_BYTES_ENV) or (8 << 20))
    if threshold < 0 or (os.cpu_count() or 1) < 2:
        return False
    try:
        return path.stat().st_size >= threshold
    except OSError:
        return False


READER_ENV = "RSA_FLUX_READER"  # "process", "thread" or "inline": how every large flow is read (tests, operators)
# A household's bytes in a flow, about: 4,234 in the generated monthly flows (a VRSB household and its
# persons, as the CNAF schema writes them). Only to tell a re-import from a first import: off by 2 either
# way, it still does.
HOUSEHOLD_BYTES = 4_200
# Known households from which a re-import is read by a thread: with a second process, a 5 %-changed
# re-import on PostgreSQL peaked at 133.1 MB at 100k and 163.8 MB at 1M (the lookup, 24 bytes a household
# there then, 18 now, and 4 in the importer, and what grows with it): over issue 21's 150 MB from about
# 600,000 (SQLite at 1M with the 18-byte lookup: 151.2 MB, importer 98.6 + reader 52.6).
THREAD_FROM_KNOWN = 250_000


def reading_mode(path: Path, known_households) -> str:
    """How a flow is read beside the importer:
    - "inline": in the importer's own loop (files under RSA_FLUX_WORKER_MIN_BYTES, 8 MB; one core);
    - "thread": by a thread of the importer (ThreadReader): a large re-import, the database already
      holding THREAD_FROM_KNOWN households and at least half as many as the file has (by its size):
      most are skipped unparsed, and a second process would hold their lookup (memory over speed);
    - "process": by a second process (WorkerReader) otherwise: a first import, whose parse is most of
      its CPU, or a re-import small enough for the lookup (faster: the reading has a core of its own).
    `known_households`: a callable giving the households in the database (asked for large files only)."""
    if not use_worker(path):
        return "inline"
    forced = os.environ.get(READER_ENV)
    if forced in ("process", "thread", "inline"):
        return forced
    known = known_households()
    return "thread" if known >= THREAD_FROM_KNOWN and known * HOUSEHOLD_BYTES * 2 >= path.stat().st_size else "process"


if __name__ == "__main__":
    raise SystemExit(main())
