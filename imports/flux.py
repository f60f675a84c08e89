"""Streaming, safe reader of the CAF/MSA beneficiary flow (VRSB0801).

Memory stays flat whatever the file size: lxml `iterparse` yields one `InfosFoyerRSA` at a
time and the element is cleared (and detached from the root) once read. The parser never
resolves entities, never loads a DTD and never touches the network; a file carrying a
DOCTYPE is refused outright (XXE, billion laughs).

Every byte the parser reads goes through `_Guard` (after gzip decompression): a DOCTYPE or ENTITY
declaration anywhere in the file, NUL bytes (UTF-16/UTF-32, even without BOM), more than
`MAX_TAGS_PER_RECORD` tags without a complete household (20M empty elements in 82 KB of gzip),
or bytes that contradict the declared encoding (UTF-8 declared windows-1252 and the reverse)
refuse the file with a French reason. libxml2 without XML_PARSE_HUGE caps the depth at 256 levels
and text nodes at 10 MB; those refusals are translated too. Memory stays flat whatever the file.

Two versions of the CNAF bénéficiaire flow are read: VRSB0801 (no VERSIONFLUX in the header) and
VRSD0301 (`IdentificationFlux/VERSIONFLUX`; role in `FonctionPersonneRSA`, SDD flag and its dates
in `CalculDroitRSAPersonne`, `PrestationRSA` under `DonneesAdministratives`). Any other version, or
a VRSD0301 person without the role or SDD block, refuses the file naming the block.

Each household becomes a `HouseholdRecord`: its key, its fragment, a SHA-256 of its raw bytes
(to skip unchanged households cheaply) and the plain data the importer needs, or the reason why it
cannot be imported (the record is then rejected, the rest of the file goes on).

Re-imports skip unchanged households unread: the decompressed byte stream is split at household
boundaries (`<InfosFoyerRSA>` … the first `</InfosFoyerRSA>`) before lxml sees it; each household's
raw bytes are hashed (with the declared encoding and the flow version) and its key read from the
bytes. A household known with that digest is handed to lxml as an empty placeholder carrying the
same line breaks (one for a run of them; `skipped_runs=True` yields such a run as one SkippedRun), so
lxml still checks the whole structure (root, header, totals, what lies between
households, truncation, line numbers) but never builds an unchanged household's tree. Skipping is
sound because a digest is only ever stored for bytes that lxml parsed, in the same encoding and flow
version, as one complete top-level household: equal bytes are equally well-formed and mean the same.
Bytes holding `<!`, `<?`, `?>`, `--` or `]]>` (what opens or closes comments, CDATA, processing
instructions: they could hide a boundary, or end one opened before) are always parsed. The byte-level checks (`_Guard`) read every byte, skipped or not.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import hashlib
import math
import re
import secrets
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lxml import etree

ROOT_TAG = "Racine"
HOUSEHOLD_TAG = "InfosFoyerRSA"
_TAGS = ("IdentificationFlux", HOUSEHOLD_TAG, "TransmissionFlux")
_PROLOG_BYTES = 1 << 16
_RIGHT_STATES = set("0123456")
VRSB, VRSD = "VRSB0801", "VRSD0301"
KNOWN_VERSIONS = (VRSB, VRSD)
# Tags (`<`) read without a complete top-level block (header, household, totals): the largest real
# household has a few thousand; past this the file is refused before the tree grows (memory stays flat).
MAX_TAGS_PER_RECORD = 100_000
# Declared encodings accepted (ASCII-compatible, so that the DOCTYPE scan sees every declaration).
_SINGLE_BYTE = ("windows-1252", "cp1252", "iso-8859-1", "iso-8859-15", "latin-1", "latin1", "iso8859-1",
                "iso8859-15", "us-ascii", "ascii")
_UTF8 = ("utf-8", "utf8")
_DECL_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
# Household boundaries in the raw bytes (the splitter of re-imports, see the module's docstring).
_START, _END = b"<InfosFoyerRSA", b"</InfosFoyerRSA>"
_AFTER_START = frozenset(b" \t\r\n>")  # what may follow the name in a household's start tag
_READ_BYTES = 1 << 16  # decompressed bytes read at a time
_FEED_BYTES = 1 << 16  # bytes handed to lxml at a time outside households
# A household still open after this many bytes is handed to lxml as it comes (its own limits apply).
MAX_RECORD_BYTES = 16 << 20
RUN_MAX = 5000  # households skipped unparsed per placeholder (and per SkippedRun)
_ANOMALY_RE = re.compile(rb"<Anomalie[\s/>]")
_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False,
                   "huge_tree": False, "remove_comments": True, "remove_pis": True, "collect_ids": False}
# VRSD0301 closure motives (simplified list) → the VRSB0801 motive they replace.
VRSD_CLOSURE = {"CCG": "PCG", "CMD": "ECH", "CMU": "MUT", "CFD": "RFD", "CAU": "RAU"}


class FluxError(Exception):
    """The file as a whole cannot be imported; the message is one French line for the batch."""


@dataclass
class FlowHeader:
    appli: str | None
    version: str | None
    typeflux: str | None
    natflux: str | None
    created_on: dt.date | None
    created_time: str | None
    dtref: dt.date | None
    schema: str = VRSB  # VRSB0801 | VRSD0301 (IdentificationFlux/VERSIONFLUX)

    @property
    def received_on(self) -> dt.date | None:
        """The day the Département received the information: the flow's creation date (D262-65-2
        CASF: the six weeks run from the receipt), not DTREF nor dates inside the flow."""
        return self.created_on or self.dtref

    @property
    def monthly(self) -> bool:
        return (self.typeflux or "").strip().upper() == "M"

    @property
    def flow_date(self) -> dt.date | None:
        """The date history rows carry: DTREF, else DTCREAFLUX."""
        return self.dtref or self.created_on

    @property
    def organism(self) -> str:
        return "MSA" if (self.appli or "").upper() == "AGO" else "CAF"

    def sort_key(self) -> tuple:
        return (self.created_on or dt.date.min, self.created_time or "")

    def as_dict(self) -> dict:
        return {"APPLIEME": self.appli, "NUMVERSIONAPPLIEME": self.version, "TYPEFLUX": self.typeflux,
                "NATFLUX": self.natflux, "DTCREAFLUX": _iso(self.created_on), "HEUCREAFLUX": self.created_time,
                "DTREF": _iso(self.dtref), "VERSIONFLUX": self.schema}


@dataclass
class HouseholdRecord:
    index: int  # 1-based position in the file
    key: tuple[str, str] | None  # (organism, matricule)
    fragment: bytes
    content_hash: str
    data: dict | None = None
    error: str | None = None
    anomaly: bool = False
    skipped: bool = False  # known unchanged (same key and hash): data not extracted
    person_count: int = 0
    raw_gz: bytes | None = None  # compressed fragment, when the reading process made it
    known_index: int = -1  # skipped: its position in imports.known.KnownHouseholds
    raw: bytes | None = None  # its bytes as in the file, in its encoding (FluxReader(keep_raw=True))

    @property
    def key_text(self) -> str:
        return f"{self.key[0]}:{self.key[1]}" if self.key else f"foyer n°{self.index}"


@dataclass
class Totals:
    households: int | None = None  # NBTOTDOSRSATRANSM
    anomalies: int | None = None  # NBTOTDOSRSATRANSMANO


class SkippedRun:
    """Households known unchanged, skipped unparsed, in one piece: their known positions
    (imports.known.KnownHouseholds), person counts and anomaly flags (what the importer needs of
    them). FluxReader(skipped_runs=True) yields one per run of consecutive skipped households, the
    reading process one per message: no HouseholdRecord, no generator step per household (about
    3 µs each of the reading process's ~20 µs per skipped household, issue 21 item 2)."""

    __slots__ = ("positions", "persons", "anomalies")
    skipped = True

    def __init__(self, positions: array | None = None, persons: array | None = None,
                 anomalies: bytearray | None = None):
        self.positions = positions if positions is not None else array("q")
        self.persons = persons if persons is not None else array("H")
        self.anomalies = anomalies if anomalies is not None else bytearray()

    def __len__(self) -> int:
        return len(self.positions)

    def extend(self, other: SkippedRun) -> None:
        self.positions.extend(other.positions)
        self.persons.extend(other.persons)
        self.anomalies.extend(other.anomalies)


@dataclass
class FluxReader:
    """Iterate a flow file: `for record in reader` after which `header` and `totals` are known."""

    source: Path | BinaryIO
    # want_data(key, raw digest) -> bool, asked from the bytes before lxml sees a household: False
    # skips a household known unchanged (never parsed). It may have `note(key)`, told the key of each
    # household that was parsed, and `last_index`, the known position of the one it just skipped.
    want_data: Callable[[tuple[str, str], str], bool] | None = None
    header: FlowHeader | None = None
    totals: Totals | None = None
    bytes_read: int = 0
    parsed: int = 0  # households whose tree lxml built (the others were skipped from their bytes)
    keep_raw: bool = False  # records keep their raw bytes (`raw`; the generator writes them back unchanged)
    # True: the households skipped unparsed come as SkippedRun objects (one per run of them), not a
    # HouseholdRecord each (the importer and its reading process need only their counts and positions)
    skipped_runs: bool = False
    _records: int = field(default=0, repr=False)

    def __iter__(self) -> Iterator[HouseholdRecord]:
        if isinstance(self.source, str | Path):
            with open_flux(self.source) as f:
                yield from self._iterate(f)
        else:
            yield from self._iterate(self.source)

    def _iterate(self, f: BinaryIO) -> Iterator[HouseholdRecord]:
        try:
            head = f.read(_PROLOG_BYTES)
            declared = check_prolog(head)
            f.seek(0)
        except (gzip.BadGzipFile, EOFError, OSError) as exc:
            raise FluxError(f"fichier illisible: {_one_line(str(exc))}") from None
        self._declared, self._f = declared, f
        guard = _Guard(f, declared, count_tags=False)
        parser = etree.XMLPullParser(events=("end",), tag=_TAGS, **_PARSER_OPTIONS)
        self._marker = f"rsa{secrets.token_hex(8)}"  # unguessable: no household of the file carries it
        self._pending: dict[int, HouseholdRecord | tuple[str, bytes | None]] = {}
        self._tags = 0  # `<` fed to lxml since the last complete top-level block
        try:
            for piece in self._pieces(guard):
                if piece:
                    parser.feed(piece)
                    yield from self._events(parser)
            self.bytes_read = f.tell()
            root = parser.close()
            yield from self._events(parser)
            guard.finish()
        except etree.XMLSyntaxError as exc:
            if guard.error:
                raise FluxError(guard.error) from None
            raise FluxError(_syntax_reason(exc, _error_on_last_line(f, exc))) from None
        except (gzip.BadGzipFile, EOFError) as exc:
            raise FluxError(f"fichier compressé illisible ou tronqué: {_one_line(str(exc))}") from None
        except (LookupError, UnicodeError) as exc:  # unknown or wrong encoding declaration
            raise FluxError(f"encodage du fichier illisible: {_one_line(str(exc))}") from None
        if root is not None and root.tag != ROOT_TAG:
            raise FluxError(f"élément racine {root.tag!r} inattendu ({ROOT_TAG!r} attendu)")
        if self.header is None:
            raise FluxError("bloc IdentificationFlux absent: ce n'est pas un flux bénéficiaires RSA")
        if self.totals is None:
            raise FluxError("bloc TransmissionFlux absent: fichier incomplet")

    def _events(self, parser) -> Iterator[HouseholdRecord]:
        for _event, elem in parser.read_events():
            self._tags = 0  # a complete top-level block: the tree is about to be emptied
            self.bytes_read = self._f.tell()
            parent = elem.getparent()
            if parent is None or parent.tag != ROOT_TAG or parent.getparent() is not None:
                root = elem.getroottree().getroot()
                raise FluxError(f"élément racine {root.tag!r} inattendu ({ROOT_TAG!r} attendu)")
            tag = elem.tag
            if tag == HOUSEHOLD_TAG:
                if self.header is None:
                    raise FluxError("bloc IdentificationFlux absent avant le premier foyer")
                mark = elem.get(self._marker)
                info = self._pending.pop(int(mark), None) if mark is not None else None
                if isinstance(info, SkippedRun):  # households skipped from their bytes: an empty placeholder
                    if self.skipped_runs:
                        self._records += len(info)
                        yield info
                    else:
                        yield from self._skipped_records(info, self._keys_of.pop(int(mark)))
                else:
                    self._records += 1
                    if mark is not None:
                        del elem.attrib[self._marker]
                    self.parsed += 1
                    digest, raw = info or (None, None)
                    rec = parse_household(elem, self._records, self.header, digest=digest)
                    rec.raw = raw
                    note = getattr(self.want_data, "note", None)
                    if note is not None and rec.key is not None:
                        note(rec.key)
                    yield rec
            elif tag == "IdentificationFlux":
                if self.header is not None:
                    raise FluxError("bloc IdentificationFlux en double")
                self.header = parse_header(elem)
            else:
                self.totals = Totals(_int(elem.findtext("NBTOTDOSRSATRANSM")),
                                     _int(elem.findtext("NBTOTDOSRSATRANSMANO")))
            elem.clear()
            while elem.getprevious() is not None:
                del parent[0]

    def _skipped_records(self, run: SkippedRun, keys: list) -> Iterator[HouseholdRecord]:
        """A run's households one record each (FluxReader without skipped_runs)."""
        for i, persons, anomaly, (key, digest) in zip(run.positions, run.persons, run.anomalies, keys, strict=True):
            self._records += 1
            yield HouseholdRecord(index=self._records, key=key, fragment=b"", content_hash=digest, skipped=True,
                                  person_count=persons, anomaly=bool(anomaly), known_index=i)

    def _count(self, data: bytes) -> None:
        self._tags += data.count(b"<")
        if self._tags > MAX_TAGS_PER_RECORD:
            raise FluxError(f"plus de {MAX_TAGS_PER_RECORD:,} balises XML sans fin de foyer InfosFoyerRSA: "
                            "fichier refusé (éléments inattendus ou foyer démesuré)".replace(",", " "))

    def _gap(self, data: bytes) -> Iterator[bytes]:
        """Bytes outside households (prolog, header, totals, whatever lies between): lxml reads them."""
        for i in range(0, len(data), _FEED_BYTES):
            piece = data[i:i + _FEED_BYTES]
            self._count(piece)
            yield piece

    def _pieces(self, guard: _Guard) -> Iterator[bytes]:
        """The byte stream as lxml must see it: households known unchanged replaced by placeholders
        (one for a run of them separated by whitespace only: lxml's work is per run, not per household)."""
        buf, pos, eof, n = b"", 0, False, 0
        self._run = SkippedRun()
        self._run_keys: list | None = None if self.skipped_runs else []  # (key, digest) of each, for records
        self._keys_of: dict[int, list] = {}
        self._run_lines = self._runs = 0
        self._hashed_for: FlowHeader | None = None
        # SkipFilter's fast form: position(key, digest bytes) -> known position (skip) or -1
        self._position = getattr(self.want_data, "position", None)
        while True:
            i = _find_start(buf, pos)
            if i < 0 or i + len(_START) >= len(buf):  # no household start (or not sure yet) in the buffer
                if eof:
                    yield self._end_run()
                    yield from self._gap(buf[pos:])
                    return
                cut = max(pos, len(buf) - len(_START)) if i < 0 else i  # keep what may be a start
                if cut > pos:
                    gap = buf[pos:cut]
                    if gap.isspace() and self._run:
                        self._run_lines += gap.count(b"\n")
                    else:
                        yield self._end_run()
                        yield from self._gap(gap)
                block = guard.read(_READ_BYTES)
                buf, pos, eof = buf[cut:] + block, 0, not block
                continue
            gap = buf[pos:i]
            j = buf.find(_END, i)
            if j < 0 and not eof:  # it goes on past the buffer: keep only its bytes (else no copy per household)
                buf, i = buf[i:], 0
            scanned, tags = 0, 0
            while j < 0 and not eof:
                tags += buf.count(b"<", scanned)
                if self._tags + tags > MAX_TAGS_PER_RECORD or len(buf) > MAX_RECORD_BYTES:
                    break  # lxml reads it as it comes (and refuses it past its limits)
                scanned = len(buf)
                block = guard.read(_READ_BYTES)
                if not block:
                    eof = True
                    break
                buf += block
                j = buf.find(_END, max(0, scanned - len(_END)))
            if j < 0:  # no end in sight (truncated file, or a household past the caps)
                yield self._end_run()
                yield from self._gap(gap)
                yield from self._gap(buf[i:])
                buf, pos = b"", 0
                if eof:
                    return
                continue
            end = j + len(_END)
            n += 1
            frag = buf[i:end]
            pos = end
            if gap and not gap.isspace():  # lxml reads what lies between (the header, say) first
                yield self._end_run()
                yield from self._gap(gap)
                gap = b""
            running = len(self._run)
            if not self._skip(frag):  # (skipped: added to self._run)
                yield self._end_run()
                yield from self._gap(gap)
                yield self._fed(frag, n)
                continue
            if running:
                self._run_lines += gap.count(b"\n")
            else:
                yield from self._gap(gap)
            if b"\n" in frag:
                self._run_lines += frag.count(b"\n")
            if len(self._run) >= RUN_MAX:
                yield self._end_run()

    def _end_run(self) -> bytes:
        """The placeholder of the pending run of skipped households (b"" when there is none): an empty
        household element carrying the run's line breaks, so that lxml's line numbers stay the file's."""
        if not self._run:
            return b""
        self._runs -= 1
        run_id = self._runs  # negative: never a household's number
        self._pending[run_id] = self._run
        if self._run_keys is not None:
            self._keys_of[run_id], self._run_keys = self._run_keys, []
        piece = b"%s %s=\"%d\"%s/>" % (_START, self._marker.encode(), run_id, b"\n" * self._run_lines)
        self._run, self._run_lines = SkippedRun(), 0
        return piece

    def _skip(self, frag: bytes) -> bool:
        """True for a household known unchanged, recognised from its bytes (added to the pending run
        with its known position, person count and anomaly flag); else False (then `_digest` is its raw
        digest, or None when its bytes may not be exactly one element: a second start, or what opens or
        closes a comment, CDATA or a processing instruction, `<!`, `<?`, `?>`, `--`, `]]>`; such a digest
        is never stored, so such bytes are never skipped, and a placeholder has the same effect as the
        bytes it stands for on what surrounds them). A digest equal to a stored one means bytes that
        passed these checks when stored: they are not scanned again."""
        header = self.header
        if header is None:
            self._digest = None
            return False
        if self._hashed_for is not header:  # raw_digest's prefix, hashed once
            self._hash0 = hashlib.sha256(_digest_prefix(self._declared, header.schema))
            self._hashed_for = header
        h = self._hash0.copy()
        h.update(frag)
        self._digest = digest = h.digest()
        want = self.want_data
        if want is not None:
            key = key_from_bytes(frag, header)
            if key is not None:
                if self._position is not None:
                    i = self._position(key, digest)
                    skip = i >= 0
                else:
                    skip = not want(key, digest.hex())
                    i = getattr(want, "last_index", -1)
                if skip:  # (bytes parsed before: within the tag cap; the placeholder's event resets the count)
                    run = self._run
                    run.positions.append(i)
                    run.persons.append(min(frag.count(b"<Personne>"), 65535))
                    run.anomalies.append(b"<Anomalie" in frag and _ANOMALY_RE.search(frag) is not None)
                    if self._run_keys is not None:
                        self._run_keys.append((key, digest.hex()))
                    return True
        if frag.find(_START, 1) >= 0 or not _plain(frag):
            self._digest = None
        return False

    def _fed(self, frag: bytes, n: int) -> bytes:
        """A household lxml parses: its bytes, with the marker that ties its tree to its raw digest
        when it is exactly one element (the digest then stored is the one later re-imports skip by)."""
        self._count(frag)
        if self._digest is None:
            return frag
        self._pending[n] = (self._digest.hex(), frag if self.keep_raw else None)
        return b"%s %s=\"%d\"%s" % (_START, self._marker.encode(), n, frag[len(_START):])

    @property
    def records_seen(self) -> int:
        return self._records


def _plain(frag: bytes) -> bool:
    """No comment, CDATA or processing instruction can start, end or lie in these bytes (the cheap
    one-byte searches first: `!`, `?` and `]` are rare in a flow, `<` is everywhere)."""
    return not ((b"!" in frag and b"<!" in frag) or b"?" in frag or _DASHES.search(frag) is not None
                or (b"]" in frag and b"]]>" in frag))


# `--` searched by the regex engine (memchr on `-`, then one byte): 1.4 times faster than `b"--" in frag`,
# whose two-byte search stumbles on every date's dashes (a household has ~50)
_DASHES = re.compile(rb"--")


def _find_start(buf: bytes, pos: int) -> int:
    """Position of the next household start tag (`<InfosFoyerRSA` then a space or `>`), or of a
    `<InfosFoyerRSA` at the buffer's very end (to be decided with more bytes), or -1."""
    while True:
        i = buf.find(_START, pos)
        if i < 0 or i + len(_START) >= len(buf) or buf[i + len(_START)] in _AFTER_START:
            return i
        pos = i + 1


def raw_digest(fragment: bytes, encoding: str, version: str) -> str:
    """SHA-256 of a household's raw bytes, with the declared encoding and the flow version they were
    read under (the same bytes in another encoding or version may not mean the same)."""
    h = hashlib.sha256(_digest_prefix(encoding, version))
    h.update(fragment)
    return h.hexdigest()


def _digest_prefix(encoding: str, version: str) -> bytes:
    """What raw_digest hashes before the bytes (FluxReader hashes it once per file and copies the state)."""
    return b"rsa-raw-1\0%s\0%s\0" % (encoding.encode("ascii"), version.encode("ascii"))


# key_from_bytes's fast path: FONORG, NUMORG, MATRICULE as the flows write them, within the first bytes
_KEY_RE = re.compile(rb"<FONORG>([A-Z]{3})</FONORG>(?:<NUMORG>[0-9]{0,3}</NUMORG>)?<MATRICULE>([0-9]{1,15})</MATRICULE>")
_KEY_WITHIN = 1024


def key_from_bytes(frag: bytes, header: FlowHeader) -> tuple[str, str] | None:
    """(organism, matricule) read from a household's bytes, as _household_data reads them from its
    tree. Only a hint: a household is skipped when this key's stored digest equals its bytes' digest,
    and equal digests mean equal bytes, whose key was read from their tree when they were stored.
    (So the fast path, the usual layout in the first KB, and the general one, the first MATRICULE and
    the FONORG before it, need not agree on odd bytes: a wrong hint only costs a parse.)"""
    m = _KEY_RE.search(frag, 0, _KEY_WITHIN)  # the usual layout (FONORG, NUMORG, MATRICULE), one search
    if m is not None:
        return (m[1].decode(), m[2].decode())
    i = frag.find(b"<MATRICULE>")
    j = frag.find(b"</MATRICULE>", i, i + 80) if i >= 0 else -1
    if j < 0:
        return None
    mat = frag[i + 11:j].strip()
    o = frag.find(b"<FONORG>", 0, i)
    e = frag.find(b"</FONORG>", o, i) if o >= 0 else -1
    if o >= 0 and e < 0:
        return None
    org = frag[o + 8:e].strip().upper() if o >= 0 else b""
    if not mat or not (mat + org).isascii():
        return None
    return (org.decode() or header.organism, mat.decode())


def check_prolog(head: bytes) -> str:
    """The checks that need only the first bytes: not empty, no DOCTYPE/ENTITY, no UTF-16/UTF-32
    (with or without BOM: NUL bytes), an accepted declared encoding. Returns the declared encoding
    (lower case; "utf-8" when the declaration gives none, as XML says)."""
    if not head.strip():
        raise FluxError("fichier vide")
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")) or b"\x00" in head:
        raise FluxError("encodage UTF-16/UTF-32 non accepté (octets nuls; flux attendu en windows-1252)")
    upper = head.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise FluxError("déclaration DOCTYPE/ENTITY interdite dans un flux (risque d'attaque par entités XML)")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    m = _DECL_RE.match(head)
    declared = m[1].decode("ascii").lower() if m else "utf-8"
    if declared not in _SINGLE_BYTE + _UTF8:
        raise FluxError(f"encodage déclaré {declared!r} non accepté (windows-1252 attendu, UTF-8 toléré)")
    return declared


class _Guard:
    """The byte stream lxml reads, checked block by block (after gzip): the checks hold wherever the
    offending bytes sit in the file, not only in its first 64 KB."""

    def __init__(self, f: BinaryIO, declared: str, count_tags: bool = True):
        self.f = f
        self.count_tags = count_tags
        self.declared = declared
        self.tags = 0  # `<` read since the last complete top-level block (reset by the reader)
        self.error: str | None = None
        self._tail = b""
        self._single_byte = declared in _SINGLE_BYTE
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._utf8_ok = True
        self._non_ascii = False

    def _fail(self, reason: str):
        self.error = reason
        raise FluxError(reason)

    def read(self, size: int = -1) -> bytes:
        if self.error:
            raise FluxError(self.error)
        block = self.f.read(size if size and size > 0 else 1 << 16)
        if not block:
            return block
        if b"\x00" in block:
            self._fail("octets nuls dans le fichier: encodage UTF-16/UTF-32 ou fichier binaire, non accepté")
        window = self._tail + block
        if b"!" in window and b"<!" in window:  # (one-byte search first: `<` is everywhere)
            upper = window.upper()
            if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
                self._fail("déclaration DOCTYPE/ENTITY interdite dans un flux, où qu'elle soit dans le fichier "
                           "(risque d'attaque par entités XML)")
        self._tail = block[-9:]
        if self.count_tags:
            self.tags += block.count(b"<")
        if self.tags > MAX_TAGS_PER_RECORD:
            self._fail(f"plus de {MAX_TAGS_PER_RECORD:,} balises XML sans fin de foyer InfosFoyerRSA: "
                       "fichier refusé (éléments inattendus ou foyer démesuré)".replace(",", " "))
        if self._utf8_ok:
            if not block.isascii():
                self._non_ascii = True
            try:
                self._utf8.decode(block)
            except UnicodeDecodeError:
                self._utf8_ok = False
                if not self._single_byte:
                    self._fail("le fichier déclare l'encodage UTF-8 mais contient des octets invalides en UTF-8 "
                               "(fichier probablement en windows-1252): fichier refusé, rien n'est importé")
        return block

    def finish(self) -> None:
        """End of file: a file declared windows-1252 whose accented bytes all form UTF-8 sequences is
        UTF-8 (names would read "HERVÃ‰"): refused, even though each byte exists in windows-1252."""
        if self._single_byte and self._utf8_ok and self._non_ascii:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                return
            self._fail(f"le fichier déclare l'encodage {self.declared} mais son contenu est en UTF-8 "
                       "(les accents deviendraient « Ã© »): fichier refusé, rien n'est importé; "
                       "demander un flux réémis ou corriger la déclaration XML")


def open_flux(path: Path | str) -> BinaryIO:
    """The file, transparently decompressed when it is gzip (flows are sometimes sent as .xml.gz)."""
    f = open(path, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def read_header(path: Path | str) -> FlowHeader:
    """Only the IdentificationFlux block (used to order files before importing them)."""
    with open_flux(path) as f:
        guard = None
        try:
            declared = check_prolog(f.read(_PROLOG_BYTES))
            f.seek(0)
            guard = _Guard(f, declared)
            for _event, elem in etree.iterparse(guard, events=("end",), tag="IdentificationFlux",
                                                resolve_entities=False, no_network=True, load_dtd=False,
                                                huge_tree=False):
                return parse_header(elem)
        except etree.XMLSyntaxError as exc:
            raise FluxError(guard.error if guard and guard.error else _syntax_reason(exc)) from None
        except (LookupError, UnicodeError) as exc:
            raise FluxError(f"encodage du fichier illisible: {_one_line(str(exc))}") from None
        except (gzip.BadGzipFile, EOFError) as exc:
            raise FluxError(f"fichier compressé illisible ou tronqué: {_one_line(str(exc))}") from None
    raise FluxError("bloc IdentificationFlux absent: ce n'est pas un flux bénéficiaires RSA")


def parse_header(elem) -> FlowHeader:
    v = _leaves(elem)
    try:
        created = _date(v.get("DTCREAFLUX"))
        dtref = _date(v.get("DTREF"))
    except ValueError as exc:
        raise FluxError(f"en-tête du flux invalide: {exc}") from None
    if created is None and dtref is None:
        raise FluxError("en-tête du flux sans DTCREAFLUX ni DTREF")
    return FlowHeader(v.get("APPLIEME"), v.get("NUMVERSIONAPPLIEME"), v.get("TYPEFLUX"), v.get("NATFLUX"),
                      created, v.get("HEUCREAFLUX"), dtref, flow_version(v.get("VERSIONFLUX")))


def flow_version(value: str | None) -> str:
    """VRSB0801 when the header has no VERSIONFLUX (the historic flow), else the declared version,
    which must be one the importer reads."""
    raw = (value or "").strip().upper()
    if not raw:
        return VRSB
    if raw not in KNOWN_VERSIONS:
        raise FluxError(f"version de flux inconnue {raw[:12]!r} (IdentificationFlux/VERSIONFLUX): seules "
                        f"{' et '.join(KNOWN_VERSIONS)} sont lues; fichier refusé")
    return raw


# --- one household ------------------------------------------------------------------------------

def parse_household(elem, index: int, header: FlowHeader, digest: str | None = None) -> HouseholdRecord:
    """A household's tree → its record. `fragment` is the tree serialised in UTF-8 (what the reject
    store and replay read back, whatever the file's encoding); `digest` the SHA-256 of its raw bytes
    (raw_digest), else that of the fragment (a household whose bytes cannot be skipped, a replay)."""
    fragment = etree.tostring(elem, encoding="utf-8", with_tail=False)
    rec = HouseholdRecord(index=index, key=None, fragment=fragment,
                          content_hash=digest or hashlib.sha256(fragment).hexdigest())
    try:
        rec.data = _household_data(elem, header)
        rec.key = (rec.data["organism"], rec.data["matricule"])
        rec.anomaly = rec.data["anomaly"]
    except RecordError as exc:
        rec.error = str(exc)
        rec.key = getattr(exc, "key", None)
    return rec


def parse_fragment(fragment: bytes, index: int, header: FlowHeader) -> HouseholdRecord:
    """Re-read a stored fragment (replay of a rejected record) with the same safe parser."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        elem = etree.fromstring(fragment, parser)
    except etree.XMLSyntaxError as exc:
        raise FluxError(_syntax_reason(exc)) from None
    if elem.tag != HOUSEHOLD_TAG:
        raise FluxError(f"fragment {elem.tag!r} inattendu ({HOUSEHOLD_TAG!r} attendu)")
    return parse_household(elem, index, header)


class RecordError(ValueError):
    """A household that fails validation: rejected with this reason."""


def _household_data(elem, header: FlowHeader) -> dict:
    kids = _kids(elem)
    ident = kids.get("IdentificationRSA")
    if ident is None:
        raise RecordError("bloc IdentificationRSA manquant")
    ik = _kids(ident)
    org = _leaves(ik.get("Organisme"))
    fonorg = (org.get("FONORG") or "").strip().upper()
    matricule = (org.get("MATRICULE") or "").strip()
    if not matricule:
        raise RecordError("MATRICULE manquant")
    if not (matricule.isascii() and matricule.isdigit()) or len(matricule) > 15:
        raise RecordError(f"MATRICULE invalide {matricule[:20]!r} (15 chiffres au plus)")
    organism = fonorg or header.organism
    if organism not in ("CAF", "MSA"):
        raise RecordError(f"organisme FONORG inconnu {fonorg[:5]!r} (CAF ou MSA attendu)")
    key = (organism, matricule)
    try:
        return _household_body(elem, kids, ik, org, key, header.schema)
    except RecordError as exc:
        exc.key = key
        raise


def _household_body(elem, kids: dict, ik: dict, org: dict, key: tuple[str, str], version: str = VRSB) -> dict:
    """`kids`/`ik`: the first child of each tag of the household and of its IdentificationRSA (`_kids`)."""
    demande = _leaves(ik.get("DemandeRSA"))
    if not demande:
        raise RecordError("bloc DemandeRSA manquant")
    d: dict = {"organism": key[0], "matricule": key[1], "numorg": _s(org.get("NUMORG"), 3),
               "departement": _s(_leaves(ik.get("Partenaire")).get("IDEPARTE"), 3),
               "dtdemrsa": _req_date(demande.get("DTDEMRSA"), "DTDEMRSA"),
               "numdemrsa": _s(demande.get("NUMDEMRSA"), 11)}
    cedant = _leaves(ik.get("OrganismeCedant"))
    d["transfer_in"] = None
    if cedant:
        d["transfer_in"] = {"from": _s(f"{cedant.get('FONORGCEDMUT') or ''} {cedant.get('NUMORGCEDMUT') or ''}".strip(), 40),
                            "on": _date_field(cedant.get("DDARRMUT"), "DDARRMUT")}
    prenant = _leaves(ik.get("OrganismePrenant"))
    d["transfer_out"] = None
    if prenant:
        d["transfer_out"] = {"to": _s(f"{prenant.get('FONORGPRENMUT') or ''} {prenant.get('NUMORGPRENMUT') or ''}".strip(), 40),
                             "on": _date_field(prenant.get("DDDEPAMUT"), "DDDEPAMUT")}

    persons = [_person(p, n, version, key) for n, p in enumerate(elem.iterchildren("Personne"), start=1)]
    if not persons:
        raise RecordError("foyer sans Personne")
    if version == VRSD:
        # VRSD0301 has no DEM/CJT: both adults are BEN. The one responsible for the dossier
        # (DossierCafMsa/TOPRESPDOS=1, the allocataire) is the demandeur, the other the conjoint.
        ben = [p for p in persons if p["role"] == "BEN"]
        dem = next((p for p in ben if p.pop("_responsible")), ben[0] if ben else None)
        for p in persons:
            p.pop("_responsible", None)
            if p["role"] == "BEN":
                p["role"] = "DEM" if p is dem else "CJT"
    d["persons"] = persons

    admin = kids.get("DonneesAdministratives")
    if admin is None:
        raise RecordError("bloc DonneesAdministratives manquant (situation familiale et adresse)")
    ak = _kids(admin)
    d["family_situation"] = _s(_leaves(ak.get("SituationFamille")).get("SITFAM"), 3)
    address = None
    for adr in admin.iterchildren("Adresse"):
        fr = _first(adr, "AdresseDetailleeFrance")
        if fr is not None:
            address = _leaves(fr)
            break
    if address:
        numcom = (address.get("NUMCOM") or "").strip()
        d["commune_insee"] = numcom.upper()[:5] or None
        codepos = (address.get("CODEPOS") or "").strip()
        d["postal_code"] = codepos.zfill(5)[:5] if codepos.isdigit() else (codepos[:5] or None)
        d["city"] = _s(address.get("NOMCOM"), 120)
        line = " ".join(x.strip() for x in (address.get("NUMVOIE"), address.get("LIBTYPEVOIE"),
                                             address.get("NOMVOIE")) if x and x.strip())
        d["address_line"] = line[:300] or None
    else:
        d["commune_insee"] = d["postal_code"] = d["city"] = d["address_line"] = None

    prest = kids.get("PrestationRSA")
    if prest is None and version == VRSD:  # VRSD0301: under DonneesAdministratives
        prest = ak.get("PrestationRSA")
    if prest is None:
        raise RecordError("bloc PrestationRSA manquant (état du droit)")
    pk = _kids(prest)
    situation = pk.get("SituationDossierRSA")
    sk = _kids(situation) if situation is not None else {}
    state = (_text2(situation, "EtatDossierRSA", "ETATDOSRSA") if situation is not None else None) or ""
    state = state.strip()
    if state not in _RIGHT_STATES:
        raise RecordError(f"ETATDOSRSA invalide ou manquant {state[:5]!r} (0 à 6 attendu)")
    d["right_state"] = state
    d["suspension_reason"] = d["suspension_on"] = None
    d["closure_reason"] = d["closure_on"] = None
    if situation is not None:
        for tag, motive, start in _SUSPENSIONS:
            block = sk.get(tag)
            if block is not None:
                v = _leaves(block)
                prefix = "D" if tag == "SuspensionDroit" else "V"
                d["suspension_reason"] = _s(f"{prefix}{(v.get(motive) or '').strip()}", 10)
                d["suspension_on"] = _date_field(v.get(start), start)
                break
        for tag in ("FinDroit", "FinDroitMoisAnterieur"):
            block = sk.get(tag)
            if block is not None:
                v = _leaves(block)
                d["closure_reason"] = _s((v.get("MOTICLORSA") or "").strip().upper(), 3)
                d["closure_on"] = _date_field(v.get("DTCLORSA"), "DTCLORSA")
                break
    detail = pk.get("DetailDroitRSA")
    dk = _kids(detail) if detail is not None else {}
    tronc = _leaves(dk.get("TroncCommunDroitRSA"))
    d["no_fixed_address"] = _bool(tronc.get("TOPSANSDOMFIXE"))
    amounts = dk.get("MontantsCalculDroitRSA")
    nbenf = _int(tronc.get("NBENFAUTCHA") or (_text(amounts, "NBENFAUTCHA") if amounts is not None else None))
    d["children_count"] = nbenf if nbenf is not None else sum(1 for p in persons if p["role"] == "ENF")
    d["rsa_amount"] = None
    d["benefit_nature"] = None
    if amounts is not None:
        d["rsa_amount"] = _decimal(_text(amounts, "MTTOTDRORSA"))
    calc = dk.get("DetailCalculDroitRSA")
    if calc is not None:
        natpf = (_text(calc, "NATPF"), _text2(calc, "RSASocle", "NATPF"), _text2(calc, "RSAActivite", "NATPF"))
        d["benefit_nature"] = next((_s(x, 10) for x in natpf if x and x.strip() and x.strip() != "ABS"), None)
    # Not in VRSB0801 but sent by some organisms: the date the right opened.
    d["right_opened_on"] = _date_field(_descendant_text(elem, "DTODRSA"), "DTODRSA")
    d["anomaly"] = "Anomalie" in kids
    return d


_SUSPENSIONS = (("SuspensionDroit", "MOTISUSDRORSA", "DDSUSDRORSA"),
                ("SuspensionVersement", "MOTISUSVERSRSA", "DDSUSVERSRSA"),
                ("RessourcesTropElevees", "MOTISUSVERSRSA", "DDSUSVERSRSA"))
# A person's blocks, read in one pass over its children (one tag comparison each, no ElementPath).
_PERSON_LISTS = frozenset(("Prestations", "Activite", "CaracteristiquesEmployabilite", "DossierPoleEmploi",
                           "DossierCafMsa"))


def _person(p, n: int, version: str = VRSB, key: tuple[str, str] | None = None) -> dict:
    first: dict = {}  # tag → its first child (what p.find(tag) returns)
    lists: dict = {}  # repeated blocks, in document order
    for c in p:
        tag = c.tag
        if tag in _PERSON_LISTS:
            lists.setdefault(tag, []).append(c)
        if tag not in first:
            first[tag] = c
    ident = _leaves(first.get("Identification"))
    if not ident:
        raise RecordError(f"personne n°{n}: bloc Identification manquant")
    last = (ident.get("NOM") or "").strip()
    first_name = (ident.get("PRENOM") or "").strip()
    if not last or not first_name:
        raise RecordError(f"personne n°{n}: NOM ou PRENOM manquant")
    birth = _req_date(ident.get("DTNAI"), "DTNAI", n)
    if version == VRSD:
        return _person_vrsd(p, n, ident, last, first_name, birth, key, first, lists)
    role = None
    first_role = None
    blocks = 0
    for prest in lists.get("Prestations", ()):
        blocks += 1
        v = _leaves(prest)
        r = (v.get("ROLEPERS") or "").strip().upper() or None
        first_role = first_role or r
        if (v.get("NATPREST") or "").strip().upper() == "RSA":
            role = r
    if not blocks and "FonctionPersonneRSA" in first:
        raise FluxError(f"flux lu comme {VRSB} (pas de VERSIONFLUX) mais {_where(n, key)} a un bloc "
                        f"FonctionPersonneRSA propre à {VRSD}: version du flux incohérente, fichier refusé")
    role = role or first_role
    if role is not None and len(role) > 3:  # the schema's maxLength: not a role code at all
        raise RecordError(f"personne n°{n}: ROLEPERS invalide {role[:10]!r} (3 caractères au plus)")
    calc = first.get("MontantCalculDroitRSAPersonne")
    sdd = _bool(_text(calc, "TOPPERSDRODEVORSA")) if calc is not None else False
    activities = []
    for a in lists.get("Activite", ()):
        v = _leaves(a)
        code = (v.get("ACT") or "").strip().upper()
        if not code:
            raise RecordError(f"personne n°{n}: Activite sans code ACT")
        activities.append({"regime": _s(v.get("REG"), 3), "code": code[:3],
                           "start_on": _date_field(v.get("DDACT"), "DDACT", n),
                           "end_on": _date_field(v.get("DFACT"), "DFACT", n)})
    sdd_start = sdd_end = None
    for x in p.iterdescendants(*_SDD_DATES):  # p.findtext(".//DDSOUDRODEV") and the same for DFSOUDRODEV
        if x.tag == "DDSOUDRODEV":
            if sdd_start is None:
                sdd_start = x.text or ""
        elif sdd_end is None:
            sdd_end = x.text or ""
        if sdd_start is not None and sdd_end is not None:
            break
    return _person_record(n, role, ident, last, first_name, birth, sdd, activities, sdd_start, sdd_end, lists)


_SDD_DATES = ("DDSOUDRODEV", "DFSOUDRODEV")


def _where(n: int, key: tuple[str, str] | None) -> str:
    return f"personne n°{n} du foyer {key[0]}:{key[1]}" if key else f"personne n°{n}"


def _person_record(n: int, role: str, ident: dict, last: str, first: str, birth: dt.date, sdd: bool,
                   activities: list[dict], sdd_start: str | None, sdd_end: str | None, lists: dict) -> dict:
    """The person as the importer reads it, whatever the flow's version (the blocks differ, not the record)."""
    return {
        "n": n, "role": role, "civility": _s(ident.get("QUAL"), 3), "last_name": last[:100],
        "birth_name": _s(ident.get("NOMNAI"), 100), "first_name": first[:100], "birth_date": birth,
        "sex": _s(ident.get("SEXE"), 1), "nir": (ident.get("NIR") or "").strip() or None,
        "idassedic": _s(_text2_in(lists.get("DossierPoleEmploi"), "IDASSEDIC"), 20), "sdd": sdd,
        "activities": activities,
        "clock_date": _date_field(sdd_start, "DDSOUDRODEV", n),
        "sdd_end_on": _date_field(sdd_end, "DFSOUDRODEV", n),
    }


def _person_vrsd(p, n: int, ident: dict, last: str, first_name: str, birth: dt.date,
                 key: tuple[str, str] | None, first: dict, lists: dict) -> dict:
    """A VRSD0301 person: role in FonctionPersonneRSA (BEN, ENF, AUT, RDO), SDD flag and its dates in
    CalculDroitRSAPersonne, employability in CaracteristiquesEmployabilite (field paths: WebRSA's
    Fluxcnaf plugin and its VRSD0301 migration notes)."""
    fonction = first.get("FonctionPersonneRSA")
    if fonction is None:
        raise FluxError(f"flux {VRSD}: bloc FonctionPersonneRSA (rôle de la personne) absent pour la {_where(n, key)}: "
                        "fichier refusé, aucun foyer n'est importé sans rôle")
    role = (_text(fonction, "ROLEPERS") or "").strip().upper()
    if not role:
        raise FluxError(f"flux {VRSD}: FonctionPersonneRSA/ROLEPERS vide pour la {_where(n, key)}: fichier refusé")
    if len(role) > 3:
        raise RecordError(f"personne n°{n}: ROLEPERS invalide {role[:10]!r} (3 caractères au plus)")
    calc = first.get("CalculDroitRSAPersonne")
    if calc is None and role == "BEN":
        raise FluxError(f"flux {VRSD}: bloc CalculDroitRSAPersonne (indicateur droits et devoirs "
                        f"TOPPERSDRODEVORSA) absent pour la {_where(n, key)}: fichier refusé")
    v = _leaves(calc)
    activities = []
    for a in lists.get("CaracteristiquesEmployabilite", ()):
        e = _leaves(a)
        code = (e.get("STATUEMPL") or "").strip().upper()
        if not code:
            raise RecordError(f"personne n°{n}: CaracteristiquesEmployabilite sans STATUEMPL")
        activities.append({"regime": _s(e.get("REG"), 3), "code": code[:3],
                           "start_on": _date_field(e.get("DDSTATUEMPL"), "DDSTATUEMPL", n),
                           "end_on": _date_field(e.get("DFSTATUEMPL"), "DFSTATUEMPL", n)})
    return {**_person_record(n, role, ident, last, first_name, birth, _bool(v.get("TOPPERSDRODEVORSA")), activities,
                             v.get("DDSOUDRODEV"), v.get("DFSOUDRODEV"), lists),
            "_responsible": _bool(_text2_in(lists.get("DossierCafMsa"), "TOPRESPDOS"))}


# --- small helpers --------------------------------------------------------------------------------
# Extraction reads each block's children once, in plain loops: ElementPath's find/findtext cost about
# 4 µs a call (path parsing and selector set-up), several times the children's own reading.

def _kids(elem) -> dict:
    """Tag → first child with that tag: what `elem.find(tag)` returns, for every tag in one pass."""
    d: dict = {}
    for c in elem:
        tag = c.tag
        if tag not in d:
            d[tag] = c
    return d


def _first(elem, tag: str):
    """elem.find(tag)."""
    for c in elem:
        if c.tag == tag:
            return c
    return None


def _text(elem, tag: str) -> str | None:
    """elem.findtext(tag): the first such child's text ("" when empty), None without one."""
    for c in elem:
        if c.tag == tag:
            return c.text or ""
    return None


def _text2(elem, tag: str, sub: str) -> str | None:
    """elem.findtext(f"{tag}/{sub}"): the first `sub` child of any `tag` child, in document order."""
    for c in elem:
        if c.tag == tag:
            for x in c:
                if x.tag == sub:
                    return x.text or ""
    return None


def _text2_in(blocks: list | None, sub: str) -> str | None:
    """_text2 over blocks already collected (the person's one pass)."""
    for c in blocks or ():
        for x in c:
            if x.tag == sub:
                return x.text or ""
    return None


def _descendant_text(elem, tag: str) -> str | None:
    """elem.findtext(f".//{tag}")."""
    for x in elem.iterdescendants(tag):
        return x.text or ""
    return None


def _leaves(elem) -> dict[str, str | None]:
    if elem is None:
        return {}
    # (comments, PIs or entity nodes would only add keys that are never looked up)
    return {c.tag: c.text for c in elem}


def _s(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:length] or None


_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    d = _DATES.get(value)  # a flow repeats the same few thousand dates (births, right openings, months)
    if d is not None:
        return d
    if not value.strip():
        return None
    m = _DATE_RE.match(value.strip())
    if not m:
        raise ValueError(f"date invalide {value.strip()[:20]!r}")
    try:
        d = dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"date invalide {value.strip()[:20]!r}") from None
    if len(_DATES) >= _DATES_MAX:  # bounded: memory stays flat
        _DATES.clear()
    _DATES[value] = d
    return d


_DATES: dict[str, dt.date] = {}  # valid dates only: an invalid one is refused again each time, same reason
_DATES_MAX = 8_192  # ~1.5 MB at most


def _date_field(value: str | None, name: str, n: int | None = None) -> dt.date | None:
    """`n`: the person's number, named in the reason (formatted only when there is one)."""
    try:
        return _date(value)
    except ValueError as exc:
        raise RecordError(f"{_field_name(name, n)}: {exc}") from None


def _req_date(value: str | None, name: str, n: int | None = None) -> dt.date:
    d = _date_field(value, name, n)
    if d is None:
        raise RecordError(f"{_field_name(name, n)} manquante")
    return d


def _field_name(name: str, n: int | None) -> str:
    return name if n is None else f"personne n°{n}: {name}"


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


def _int(value: str | None) -> int | None:
    """Counters of the flow (8 digits at most in the schema); anything else is unknown."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def _decimal(value: str | None) -> float | None:
    """Amounts (9 digits, 2 decimals in the schema); out-of-range or non-numbers are unknown."""
    try:
        x = round(float((value or "").strip()), 2) if value and value.strip() else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) and abs(x) < 1e7 else None


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_on_last_line(f: BinaryIO, exc: etree.XMLSyntaxError) -> bool:
    """True when the parser failed on the file's last line: the file was cut short."""
    lineno = getattr(exc, "lineno", None)
    if not lineno:
        return False
    try:
        f.seek(0)
        lines, last = 1, b""
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block
        if last.endswith(b"\n") and lineno == lines - 1:
            return True
        return lineno >= lines
    except (OSError, EOFError):
        return False


def _syntax_reason(exc: etree.XMLSyntaxError, truncated: bool = False) -> str:
    msg = _one_line(str(exc.msg or exc))
    low = msg.lower()
    if "excessive depth" in low:
        kind = "profondeur d'imbrication XML excessive (256 niveaux au plus; un flux en a moins de 10)"
    elif "huge" in low:
        kind = "nœud XML démesuré (limite de 10 Mo par texte)"
    elif truncated or "premature end" in low or "end of data" in low or "not properly terminated" in low:
        kind = "fichier tronqué ou XML incomplet"
    elif "encoding" in low or "utf-8" in low or "bytes" in low:
        kind = "encodage incohérent avec la déclaration XML"
    elif "entity" in low or "doctype" in low:
        kind = "entités XML interdites"
    else:
        kind = "XML mal formé"
    line = f" ligne {exc.lineno}" if getattr(exc, "lineno", None) else ""
    return f"{kind} ({line.strip() + ': ' if line else ''}{msg})"
