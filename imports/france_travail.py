"""France Travail lists (inscriptions, cessations, radiations, stock): `;`-separated CSV.

Columns `nir;identifiantpe;nom;prenom;dtnai;date;code[;motif];nir2[;codeinsee;localite;adresse;ale]`
(`motif` only in cessations and radiations), optionally followed by the PPAE columns
`date_signature_ppae;modalite`, with or without a header line.

Every row is kept as a FranceTravailEvent — also when no person matches yet (person_id NULL):
`match_pending` links such rows when the CAF flow brings the person. The registration history
per person is the list of events; its changes of state (registered / ceased / struck off) are
dated StatusChange rows (field "ft_registration") and timeline events. A person whose latest event
is an inscription or a stock line, with a PPAE signature date on it, is *already followed by
France Travail* (`ft_status`), which the orientation engine uses.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from cases import nir as nirlib
from cases.models import FranceTravailEvent, Person, StatusChange
from cases.models import Path as CasePath
from cases.service import add_event
from imports.tabular import FileError, RowError, check_controls, read_rows, reject_row, run_batch
from imports.values import normalise_header, parse_date, text

KINDS = {"inscriptions": "inscription", "cessations": "cessation", "radiations": "radiation", "stock": "stock"}
STATE_OF_KIND = {"inscription": "registered", "stock": "registered", "cessation": "ceased", "radiation": "struck_off",
                 "absent": "absent"}
STATE_LABELS = {"registered": "inscrit à France Travail", "ceased": "inscription France Travail cessée",
                "struck_off": "radié de France Travail",
                "absent": "absent des derniers fichiers stock de France Travail"}
# The states that mean the person left France Travail's list: timeline event + alert to the referent.
LEFT_STATES = ("ceased", "struck_off", "absent")
ABSENT_CODE = "ABSENT"
PPAE_MODALITIES = {"SUI": "suivi", "GUI": "guidé", "REN": "renforcé", "GLO": "global", "APR": "à approfondir"}

BASE = ["nir", "identifiantpe", "nom", "prenom", "dtnai", "date", "code"]
ADDRESS = ["codeinsee", "localite", "adresse", "ale"]
PPAE = ["date_signature_ppae", "modalite"]
HEADER_ALIASES = {normalise_header(c): c for c in BASE + ["motif", "nir2"] + ADDRESS + PPAE}
HEADER_ALIASES.update({"date signature": "date_signature_ppae", "date ppae": "date_signature_ppae",
                       "modalite ppae": "modalite", "agence": "ale", "code insee": "codeinsee"})
REQUIRED = ("nir", "dtnai", "date")


def layouts(kind: str) -> dict[int, list[str]]:
    """Positional layouts of a header-less file, by number of columns."""
    base = BASE + (["motif"] if kind in ("cessation", "radiation") else []) + ["nir2"]
    return {len(base): base, len(base) + 2: base + PPAE, len(base) + 4: base + ADDRESS,
            len(base) + 6: base + ADDRESS + PPAE}


def _columns(kind: str, rows: list[list[str]]) -> tuple[list[str] | None, int]:
    """(column names, index of the first data row). None names: positional per row."""
    if rows and normalise_header(rows[0][0] if rows[0] else "") == "nir":
        names = [HEADER_ALIASES.get(normalise_header(c), normalise_header(c) or f"col{i}")
                 for i, c in enumerate(rows[0])]
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise FileError(f"colonne(s) obligatoire(s) absente(s) de l'en-tête: {', '.join(missing)}")
        return names, 1
    return None, 0


def _parse_row(kind: str, names: list[str] | None, cells: list[str], vault) -> dict:
    if names is None:
        while len(cells) > 1 and not cells[-1].strip() and len(cells) not in layouts(kind):
            cells = cells[:-1]
        names = layouts(kind).get(len(cells))
        if names is None:
            raise RowError(None, f"{len(cells)} colonnes: attendu {', '.join(map(str, sorted(layouts(kind))))}")
    values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(names)}
    check_controls(values)
    nir13 = None
    for column in ("nir", "nir2"):
        try:
            nir13 = nirlib.normalise(values.get(column))
        except nirlib.NirError as exc:
            if column == "nir" or not nir13:
                raise RowError(column, str(exc)) from None
        if nir13:
            break
    if not nir13:
        raise RowError("nir", "NIR absent")
    out = {"nir_hash": vault.hash(nir13), "ft_id": text(values.get("identifiantpe")), "raw": values}
    for column, key, required in (("dtnai", "birth_date", True), ("date", "event_on", True),
                                  ("date_signature_ppae", "ppae_signed_on", False)):
        try:
            out[key] = parse_date(values.get(column))
        except ValueError as exc:
            raise RowError(column, str(exc)) from None
        if required and out[key] is None:
            raise RowError(column, "date absente")
    modality = (text(values.get("modalite")) or "").upper() or None
    if modality and modality not in PPAE_MODALITIES:
        raise RowError("modalite", f"modalité PPAE inconnue « {modality} » ({', '.join(PPAE_MODALITIES)})")
    insee = text(values.get("codeinsee"))
    if insee and (len(insee) != 5 or not insee[:2].isalnum()):
        raise RowError("codeinsee", f"code INSEE invalide « {insee} »")
    out.update(code=(text(values.get("code")) or None), motif=text(values.get("motif")),
               agency=text(values.get("ale")), commune_insee=insee, ppae_modality=modality)
    if out["code"] and len(out["code"]) > 10:
        raise RowError("code", f"code trop long « {out['code']} »")
    return out


def import_file(runtime, kind: str, path: Path | str, *, created_by: int | None = None) -> dict:
    """Import one France Travail list; returns the batch report (see imports.tabular.run_batch)."""
    if kind not in KINDS:
        raise ValueError(f"type de liste inconnu « {kind} » ({', '.join(KINDS)})")
    event_kind = KINDS[kind]

    def body(session: Session, batch):
        rows, detected = read_rows(path, separator=";")
        names, first = _columns(event_kind, rows)
        parsed, rejects, seen = [], [], {}
        for index, cells in enumerate(rows[first:], start=first + 1):
            if not any(c.strip() for c in cells):
                continue
            try:
                row = _parse_row(event_kind, names, cells, runtime.vault)
            except RowError as exc:
                rejects.append(reject_row(session, batch, index, exc.column, exc.message, _masked(names, cells)))
                continue
            key = (row["nir_hash"], row["event_on"], row["code"])
            if key in seen:
                rejects.append(reject_row(session, batch, index, None, f"ligne en double de la ligne {seen[key]}",
                                          _masked(names, cells)))
                continue
            seen[key] = index
            row["line"] = index
            parsed.append(row)
        counts = {"rows": len(parsed) + len(rejects), "stored": 0, "matched": 0, "unmatched": 0, "unchanged": 0,
                  "state_changes": 0}
        touched: set[int] = set()
        seen_again: list[tuple] = []
        for chunk_start in range(0, len(parsed), 500):
            chunk = parsed[chunk_start:chunk_start + 500]
            hashes = {r["nir_hash"] for r in chunk}
            persons: dict[str, list[tuple[int, dt.date | None]]] = {}
            for pid, h, birth in session.execute(select(Person.id, Person.nir_hash, Person.birth_date)
                                                 .where(Person.nir_hash.in_(hashes)).order_by(Person.id)):
                persons.setdefault(h, []).append((pid, birth))
            known = set(session.execute(
                select(FranceTravailEvent.nir_hash, FranceTravailEvent.event_on, FranceTravailEvent.code)
                .where(FranceTravailEvent.kind == event_kind, FranceTravailEvent.nir_hash.in_(hashes))).all())
            for row in chunk:
                if (row["nir_hash"], row["event_on"], row["code"]) in known:
                    counts["unchanged"] += 1
                    if event_kind == "stock":
                        seen_again.append((row["nir_hash"], row["event_on"], row["code"]))
                    continue
                person_id = None
                if row["nir_hash"] in persons:
                    same = [pid for pid, birth in persons[row["nir_hash"]] if birth in (row["birth_date"], None)]
                    if not same:
                        rejects.append(reject_row(session, batch, row["line"], "dtnai",
                                                  "NIR connu avec une autre date de naissance: identité en conflit",
                                                  _masked(None, row["raw"])))
                        continue
                    person_id = same[0]
                session.add(FranceTravailEvent(
                    person_id=person_id, nir_hash=row["nir_hash"], birth_date=row["birth_date"], ft_id=row["ft_id"],
                    kind=event_kind, event_on=row["event_on"], code=row["code"], motif=row["motif"],
                    agency=row["agency"], commune_insee=row["commune_insee"], ppae_signed_on=row["ppae_signed_on"],
                    ppae_modality=row["ppae_modality"], batch_id=batch.id,
                    last_seen_batch_id=batch.id if event_kind == "stock" else None))
                counts["stored"] += 1
                counts["matched" if person_id else "unmatched"] += 1
                if person_id:
                    touched.add(person_id)
        session.flush()
        for i in range(0, len(seen_again), 300):
            _mark_seen(session, seen_again[i:i + 300], batch.id)
        for pid in sorted(touched):
            counts["state_changes"] += sync_person(session, pid, batch_id=batch.id)
        if event_kind == "stock":
            absences = runtime.settings.ft_stock_absences
            counts["absent_from_stock"] = record_stock_absences(session, batch, absences)
        warnings = []
        if detected["encoding"] not in ("utf-8", "utf-8-sig"):
            warnings.append(f"encodage détecté: {detected['encoding']}")
        return counts, rejects, warnings

    return run_batch(runtime, f"france_travail:{kind}", path, body, header={"list": kind}, created_by=created_by)


def _masked(names, cells) -> dict:
    """The row for the reject record, NIR included (rejects are visible to managers only)."""
    if isinstance(cells, dict):
        return cells
    if names is None:
        return {f"col{i + 1}": c for i, c in enumerate(cells)}
    return {n: (cells[i] if i < len(cells) else None) for i, n in enumerate(names)}


def _state(event: FranceTravailEvent) -> str:
    return STATE_OF_KIND[event.kind]


def sync_person(session: Session, person_id: int, batch_id: int | None = None) -> int:
    """Append the missing "ft_registration" state changes (and timeline events) of a person from
    their France Travail events. Idempotent: returns the number of changes recorded."""
    events = session.scalars(select(FranceTravailEvent).where(FranceTravailEvent.person_id == person_id)
                             .order_by(FranceTravailEvent.event_on, FranceTravailEvent.id)).all()
    if not events:
        return 0
    last = session.scalars(select(StatusChange).where(StatusChange.person_id == person_id,
                                                      StatusChange.field == "ft_registration")
                           .order_by(StatusChange.effective_on.desc(), StatusChange.id.desc()).limit(1)).first()
    current = last.new_value if last else None
    since = last.effective_on if last else None
    todo = [e for e in events if since is None or e.event_on > since]
    if events[-1] not in todo and _state(events[-1]) != current:
        todo.append(events[-1])  # an older event arrived late and changes the latest state
    path_id = session.scalar(select(CasePath.id).where(CasePath.person_id == person_id, CasePath.closed_on.is_(None))
                             .order_by(CasePath.id.desc()).limit(1))
    changes = 0
    for event in todo:
        state = _state(event)
        if state == current:
            continue
        session.add(StatusChange(person_id=person_id, field="ft_registration", old_value=current, new_value=state,
                                 reason=(event.motif or event.code or event.kind)[:40], effective_on=event.event_on,
                                 batch_id=batch_id))
        data = {"list": event.kind, "code": event.code, "motif": event.motif, "agency": event.agency,
                "ppae_signed_on": event.ppae_signed_on.isoformat() if event.ppae_signed_on else None,
                "ppae_modality": event.ppae_modality}
        summary = STATE_LABELS[state] + (f" (code {event.code})" if event.code else "") + \
            (f", motif {event.motif}" if event.motif else "")
        add_event(session, person_id, f"france_travail.{state}", event.event_on, "france_travail", summary=summary,
                  data=data, path_id=path_id)
        if state in LEFT_STATES and event is events[-1]:
            _alert_referent(session, person_id, event, summary)
        current = state
        changes += 1
    session.flush()
    return changes


def match_pending(session: Session) -> int:
    """Link the France Travail rows kept without a person to the persons who arrived since
    (same NIR hash and birth date), then record their state. Returns the number of rows linked."""
    pairs = session.execute(
        select(FranceTravailEvent.id, Person.id)
        .join(Person, and_(Person.nir_hash == FranceTravailEvent.nir_hash,
                           or_(Person.birth_date == FranceTravailEvent.birth_date,
                               FranceTravailEvent.birth_date.is_(None), Person.birth_date.is_(None))))
        .where(FranceTravailEvent.person_id.is_(None)).order_by(FranceTravailEvent.id, Person.id)).all()
    linked: dict[int, int] = {}
    for event_id, person_id in pairs:
        linked.setdefault(event_id, person_id)
    for event_id, person_id in linked.items():
        session.get(FranceTravailEvent, event_id).person_id = person_id
    session.flush()
    for person_id in sorted(set(linked.values())):
        sync_person(session, person_id)
    return len(linked)


def ft_status(session: Session, person_id: int) -> dict | None:
    """The person's current France Travail situation from their latest event (event_on, then id):
    registered, PPAE, and `followed` = registered with a PPAE (no double accompaniment)."""
    event = session.scalars(select(FranceTravailEvent).where(FranceTravailEvent.person_id == person_id)
                            .order_by(FranceTravailEvent.event_on.desc(), FranceTravailEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    registered = event.kind in ("inscription", "stock")
    from imports.france_travail_orientation import person_summary

    ft = person_summary(session, person_id)
    oriented_to_ft = ft["orientation_organisme"] == "france_travail"
    followed = registered and (event.ppae_signed_on is not None or oriented_to_ft
                               or ft["contract_signed_on"] is not None)
    return {"state": _state(event), "registered": registered, "since": event.event_on, "code": event.code,
            "motif": event.motif, "agency": event.agency, "ppae_signed_on": event.ppae_signed_on,
            "ppae_modality": event.ppae_modality, "oriented_by_france_travail_on": ft["oriented_on"],
            "france_travail_organisme": ft["orientation_organisme"], "contract_signed_on": ft["contract_signed_on"],
            "preconisation": ft["preconisation"], "followed": followed}


def _mark_seen(session: Session, keys: list[tuple], batch_id: int) -> None:
    """Stock rows listed again by this stock file (not stored twice): remember the file saw them."""
    session.execute(update(FranceTravailEvent).where(
        FranceTravailEvent.kind == "stock",
        or_(*[and_(FranceTravailEvent.nir_hash == h, FranceTravailEvent.event_on == on,
                   FranceTravailEvent.code.is_(None) if code is None else FranceTravailEvent.code == code)
              for h, on, code in keys])).values(last_seen_batch_id=batch_id),
        execution_options={"synchronize_session": False})


def record_stock_absences(session: Session, batch, absences: int) -> int:
    """After a stock file: a person still registered (latest event an inscription or a stock line)
    whose stock lines are missing from the `absences` latest stock files (this one included) has
    left France Travail's list: an `absent` event dated by this file, a state change, a timeline event
    and an alert to the referent. Returns the number of persons newly found absent."""
    from imports.models import ImportBatch

    if absences < 1:
        return 0
    window = session.scalars(select(ImportBatch.id).where(
        ImportBatch.kind == "france_travail:stock",
        or_(ImportBatch.status == "imported", ImportBatch.id == batch.id))
        .order_by(ImportBatch.id.desc()).limit(absences)).all()
    if len(window) < absences:
        return 0
    oldest = min(window)
    day = (batch.started_at or dt.datetime.now()).date()
    last_seen = (select(FranceTravailEvent.person_id, func.max(FranceTravailEvent.last_seen_batch_id).label("seen"))
                 .where(FranceTravailEvent.kind == "stock", FranceTravailEvent.person_id.is_not(None))
                 .group_by(FranceTravailEvent.person_id).subquery())
    candidates = session.execute(select(last_seen.c.person_id).where(last_seen.c.seen < oldest)).scalars().all()
    found = 0
    for pid in candidates:
        latest = session.scalars(select(FranceTravailEvent).where(FranceTravailEvent.person_id == pid)
                                 .order_by(FranceTravailEvent.event_on.desc(), FranceTravailEvent.id.desc())
                                 .limit(1)).first()
        if latest is None or latest.kind not in ("inscription", "stock") or latest.event_on > day:
            continue
        session.add(FranceTravailEvent(person_id=pid, nir_hash=latest.nir_hash, birth_date=latest.birth_date,
                                       ft_id=latest.ft_id, kind="absent", event_on=day, code=ABSENT_CODE,
                                       motif=f"absent des {absences} derniers fichiers stock", agency=latest.agency,
                                       batch_id=batch.id))
        session.flush()
        sync_person(session, pid, batch_id=batch.id)
        found += 1
    return found


def _alert_referent(session: Session, person_id: int, event: FranceTravailEvent, summary: str) -> None:
    """An alert to the person's referent (the structure and agent of the current orientation)."""
    from cases.models import Alert
    from cases.signals import orientations

    o = orientations().rows.subquery().c
    current = session.execute(select(o.structure_id, o.agent_id, o.referent_type).where(
        o.person_id == person_id, o.status == "validated").order_by(o.validated_on.desc(), o.id.desc())
        .limit(1)).first()
    key = f"france_travail.left:{person_id}:{event.kind}:{event.event_on.isoformat()}"
    if session.scalar(select(Alert.id).where(Alert.key == key)) is not None:
        return
    session.add(Alert(key=key, kind="france_travail.left", severity="warning", person_id=person_id,
                      structure_id=current.structure_id if current else None,
                      message=f"Personne {person_id}: {summary} le {event.event_on:%d/%m/%Y}",
                      data={"list": event.kind, "code": event.code, "motif": event.motif,
                            "agent_id": current.agent_id if current else None,
                            "referent_type": current.referent_type if current else None},
                      raised_on=event.event_on))
