"""France Travail's records applied to our paths (issue 17, part 1).

- A **préconisation** is a fact the rules read (orientation.facts: `ft.preconisation`).
- An **orientation decided by France Travail** is recorded when the law gives France Travail the hand:
  the person's open path has no decision of ours and its 42 days (D262-65-2 CASF) have passed. The
  path is then oriented on France Travail's date (origin `france_travail`, counted apart in the
  indicators), our pending proposals are superseded, the kiosque invitation and its queued messages
  are cancelled, and the person leaves our backlog. Before D+42 the record waits; a decision of ours
  taken first wins and the record is set aside.
- A **contrat d'engagement signed with France Travail** is recorded on the path of a person whose
  current orientation is to France Travail: the contract deadline and the overdue list then see it.

Records that cannot be applied yet (person unknown, no open path, D+42 not reached, not yet oriented
to France Travail) wait with their reason in `outcome`; `apply_pending` tries again (daily job).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cases.contracts import record_contract
from cases.models import Alert, Contract, FranceTravailRecord, Household, Person
from cases.models import Path as CasePath
from cases.service import add_event
from config import clock
from imports.france_travail_partner import PartnerRecord
from kiosque.models import Invitation, Message
from orientation.assignment import Assigner
from orientation.models import Orientation
from orientation.outcomes import mark_path_oriented
from orientation.vocabulary import PENDING, Origin
from referents.vocabulary import (
    LEGAL_DAYS,
    REFERENT_TYPE_OF_ORGANISME,
    Organisme,
    Parcours,
    ReferentType,
)

FT_ORIGIN = Origin.FRANCE_TRAVAIL.value
# Outcomes that wait (tried again by apply_pending); every other outcome is final (handled_on set).
WAIT_UNKNOWN = "personne inconnue"
WAIT_NO_PATH = "aucun parcours ouvert"
WAIT_LEGAL_DELAY = "dans le délai légal de 42 jours"
WAIT_NOT_FT = "orientation actuelle hors France Travail"
WAIT_NOT_ORIENTED = "pas encore orienté(e)"
APPLIED_ORIENTATION = "orientation France Travail enregistrée"
APPLIED_CONTRACT = "contrat d'engagement enregistré"
FACT = "préconisation (fait pour les règles)"


def store_records(session: Session, vault, records: Iterable[PartnerRecord], *, source: str,
                  batch_id: int | None = None) -> Counter:
    """Store the records not yet known (content digest), matched to persons by NIR hash + birth date.
    Returns counts: stored, unchanged, matched, unmatched, conflicts (NIR known with another birth date:
    such a record is not stored)."""
    counts = Counter(stored=0, unchanged=0, matched=0, unmatched=0, conflicts=0)
    pending = []
    for rec in records:
        h = vault.hash(rec.nir13)
        pending.append((rec, h, rec.key(h)))
    keys = [k for _, _, k in pending]
    known = set()
    for i in range(0, len(keys), 900):
        known.update(session.scalars(select(FranceTravailRecord.key).where(FranceTravailRecord.key.in_(keys[i:i + 900]))))
    persons: dict[str, list[tuple[int, dt.date | None]]] = {}
    hashes = sorted({h for _, h, _ in pending})
    for i in range(0, len(hashes), 900):
        for pid, h, birth in session.execute(select(Person.id, Person.nir_hash, Person.birth_date)
                                             .where(Person.nir_hash.in_(hashes[i:i + 900])).order_by(Person.id)):
            persons.setdefault(h, []).append((pid, birth))
    for rec, h, key in pending:
        if key in known:
            counts["unchanged"] += 1
            continue
        known.add(key)
        person_id = None
        if h in persons:
            same = [pid for pid, birth in persons[h] if birth in (rec.birth_date, None)]
            if not same:
                counts["conflicts"] += 1
                continue
            person_id = same[0]
        session.add(FranceTravailRecord(
            key=key, person_id=person_id, nir_hash=h, birth_date=rec.birth_date, kind=rec.kind,
            parcours_code=rec.parcours_code, parcours=rec.parcours, organisme_code=rec.organisme_code,
            organisme=rec.organisme, status=rec.status, state=rec.state, effective_on=rec.effective_on,
            structure=rec.structure, external_id=rec.external_id, source=source, batch_id=batch_id,
            outcome=None if person_id else WAIT_UNKNOWN,
            handled_on=None))
        counts["stored"] += 1
        counts["matched" if person_id else "unmatched"] += 1
    session.flush()
    return counts


def match_records(session: Session) -> int:
    """Link records kept without a person to the persons who arrived since (NIR hash + birth date)."""
    pairs = session.execute(
        select(FranceTravailRecord.id, Person.id)
        .join(Person, and_(Person.nir_hash == FranceTravailRecord.nir_hash,
                           or_(Person.birth_date == FranceTravailRecord.birth_date, Person.birth_date.is_(None))))
        .where(FranceTravailRecord.person_id.is_(None)).order_by(FranceTravailRecord.id, Person.id)).all()
    linked: dict[int, int] = {}
    for rid, pid in pairs:
        linked.setdefault(rid, pid)
    for rid, pid in linked.items():
        rec = session.get(FranceTravailRecord, rid)
        rec.person_id, rec.outcome = pid, None
    session.flush()
    return len(linked)


def apply_pending(session: Session, as_of: dt.date) -> dict:
    """Apply every record not handled yet, oldest first (orientations before contracts of the same
    day, so that a contract signed with France Travail finds the orientation). Idempotent."""
    matched = match_records(session)
    counts = Counter()
    records = session.scalars(select(FranceTravailRecord)
                              .where(FranceTravailRecord.handled_on.is_(None),
                                     FranceTravailRecord.person_id.is_not(None),
                                     FranceTravailRecord.effective_on <= as_of)
                              .order_by(FranceTravailRecord.effective_on,
                                        (FranceTravailRecord.kind == "contract"), FranceTravailRecord.id)).all()
    for rec in records:
        if rec.kind == "orientation":
            outcome = _apply_orientation(session, rec, as_of)
        elif rec.kind == "contract":
            outcome = _apply_contract(session, rec, as_of)
        else:
            outcome = FACT
            rec.handled_on = as_of
        rec.outcome = outcome
        counts[outcome] += 1
    session.flush()
    return {"as_of": as_of.isoformat(), "matched": matched, "considered": len(records),
            "orientations_recorded": counts[APPLIED_ORIENTATION], "contracts_recorded": counts[APPLIED_CONTRACT],
            "preconisations": counts[FACT], "waiting": sum(n for o, n in counts.items() if o.startswith(
                (WAIT_UNKNOWN, WAIT_NO_PATH, WAIT_LEGAL_DELAY, WAIT_NOT_FT, WAIT_NOT_ORIENTED))),
            "outcomes": dict(sorted(counts.items()))}


def _open_path(session: Session, person_id: int) -> CasePath | None:
    return session.scalars(select(CasePath).where(CasePath.person_id == person_id, CasePath.closed_on.is_(None))
                           .order_by(CasePath.clock_start.desc(), CasePath.id.desc()).limit(1)).first()


def _apply_orientation(session: Session, rec: FranceTravailRecord, as_of: dt.date) -> str:
    if rec.state == "CLOTURE":
        rec.handled_on = as_of
        return "écartée: orientation clôturée par France Travail"
    if rec.organisme is None:
        rec.handled_on = as_of
        return "écartée: organisme indéterminé"
    path = _open_path(session, rec.person_id)
    if path is None:
        return WAIT_NO_PATH
    if rec.effective_on < path.clock_start:
        rec.handled_on = as_of
        return "écartée: décision antérieure au parcours"
    ours = session.scalar(select(Orientation.id).where(Orientation.path_id == path.id,
                                                       Orientation.validated_on.is_not(None)).limit(1))
    if ours is not None:
        rec.handled_on = as_of
        return "écartée: parcours déjà orienté"
    legal_on = path.clock_start + dt.timedelta(days=LEGAL_DAYS)
    if as_of < legal_on:
        return f"{WAIT_LEGAL_DELAY} (jusqu'au {legal_on:%d/%m/%Y})"
    record_ft_orientation(session, rec, path, as_of)
    rec.handled_on = as_of
    return APPLIED_ORIENTATION


def record_ft_orientation(session: Session, rec: FranceTravailRecord, path: CasePath, as_of: dt.date) -> Orientation:
    """The orientation France Travail decided, recorded on the path as such (origin france_travail,
    dated by France Travail's decision). No notice is sent by the Département: France Travail notifies
    its own decision."""
    person_id = rec.person_id
    referent_type = REFERENT_TYPE_OF_ORGANISME[rec.organisme]
    household = session.scalar(select(Household).join(Person, Person.household_id == Household.id)
                               .where(Person.id == person_id))
    structure_id, _why = Assigner(session).structure_for(referent_type, household.commune_insee if household else None,
                                                         household.postal_code if household else None)
    pending = session.scalars(select(Orientation).where(Orientation.person_id == person_id,
                                                        Orientation.status.in_(PENDING))
                              .order_by(Orientation.id)).all()
    for p in pending:
        p.status = "superseded"
    on = rec.effective_on
    parcours_label = Parcours.label_of(rec.parcours, "non précisé") if rec.parcours else "non précisé"
    text = (f"Orientation décidée par France Travail le {on:%d/%m/%Y}: parcours {parcours_label} "
            f"(code {rec.parcours_code}), organisme référent {Organisme.label_of(rec.organisme)} "
            f"(code {rec.organisme_code})" + (f", {rec.structure}" if rec.structure else "") + ". "
            f"Le Département n'avait pas décidé dans le délai légal de six semaines (42 jours) depuis le "
            f"{path.clock_start:%d/%m/%Y}: France Travail oriente à sa place (articles L262-35 et D262-65-2 du "
            "code de l'action sociale et des familles). Cette décision n'a pas été prise par un algorithme du "
            "Département.")
    o = Orientation(person_id=person_id, path_id=path.id, referent_type=referent_type, parcours=rec.parcours,
                    organisme=rec.organisme, structure_id=structure_id, mode="auto", origin=FT_ORIGIN,
                    status="validated", facts={"france_travail_record": rec.id, "parcours_code": rec.parcours_code,
                                               "organisme_code": rec.organisme_code},
                    explanation=text, algorithmic=False, decided_on=on, validated_on=on, notified_on=None,
                    supersedes_id=pending[-1].id if pending else None)
    session.add(o)
    session.flush()
    data = {"orientation_id": o.id, "referent_type": referent_type, "parcours": rec.parcours,
            "organisme": rec.organisme, "france_travail_record": rec.id, "origin": FT_ORIGIN}
    add_event(session, person_id, "orientation.validated", on, "france_travail",
              f"Orienté(e) par France Travail: {ReferentType.label_of(referent_type)}"
              f" (parcours {parcours_label}), faute de décision du Département sous 42 jours", data, path_id=path.id)
    cancelled = cancel_kiosque(session, person_id, as_of)
    if cancelled:
        add_event(session, person_id, "kiosque.cancelled", as_of, "france_travail",
                  f"Invitation au Kiosque Insertion annulée: orienté(e) par France Travail ({cancelled})",
                  {"invitations": cancelled, "orientation_id": o.id}, path_id=path.id)
    session.execute(update(Alert).where(Alert.person_id == person_id, Alert.resolved_on.is_(None),
                                        Alert.key.in_([f"{k}:{path.id}" for k in (
                                            "orientation.d21", "orientation.d35", "orientation.past_limit",
                                            "orientation.unsectorised", "orientation.awaiting_capacity")]))
                    .values(resolved_on=as_of), execution_options={"synchronize_session": False})
    session.flush()
    mark_path_oriented(session, [path.id])
    return o


def cancel_kiosque(session: Session, person_id: int, as_of: dt.date) -> int:
    """Cancel the person's pending kiosque invitations and their messages not sent yet."""
    invitations = session.scalars(select(Invitation).where(Invitation.person_id == person_id,
                                                           Invitation.status == "pending")).all()
    for inv in invitations:
        inv.status = "cancelled"
    if invitations:
        session.execute(update(Message).where(Message.invitation_id.in_([i.id for i in invitations]),
                                              Message.status == "queued")
                        .values(status="cancelled", last_error="orienté(e) par France Travail"),
                        execution_options={"synchronize_session": False})
    return len(invitations)


def _apply_contract(session: Session, rec: FranceTravailRecord, as_of: dt.date) -> str:
    path = _open_path(session, rec.person_id)
    if path is None:
        return WAIT_NO_PATH
    if rec.effective_on < path.clock_start:
        rec.handled_on = as_of
        return "écarté: contrat antérieur au parcours"
    current = session.scalars(select(Orientation).where(Orientation.person_id == rec.person_id,
                                                        Orientation.status == "validated")
                              .order_by(Orientation.validated_on.desc(), Orientation.id.desc()).limit(1)).first()
    if current is None:
        return WAIT_NOT_ORIENTED
    if current.referent_type != ReferentType.POLE_EMPLOI.value:
        return WAIT_NOT_FT
    same = session.scalar(select(Contract.id).where(Contract.person_id == rec.person_id, Contract.path_id == path.id,
                                                    Contract.status == "signed",
                                                    Contract.signed_on == rec.effective_on).limit(1))
    rec.handled_on = as_of
    if same is not None:
        return "écarté: contrat déjà enregistré"
    record_contract(session, rec.person_id, rec.effective_on, kind="engagement", source="france_travail")
    return APPLIED_CONTRACT


def person_summary(session: Session, person_id: int) -> dict:
    """What France Travail said of the person: latest préconisation, orientation decided, contract."""
    out = {"preconisation": None, "preconisation_on": None, "orientation_organisme": None,
           "oriented_on": None, "contract_signed_on": None}
    for rec in session.scalars(select(FranceTravailRecord).where(FranceTravailRecord.person_id == person_id)
                               .order_by(FranceTravailRecord.effective_on, FranceTravailRecord.id)):
        if rec.kind == "preconisation":
            out["preconisation"], out["preconisation_on"] = rec.parcours, rec.effective_on
        elif rec.kind == "orientation" and rec.state != "CLOTURE":
            out["orientation_organisme"], out["oriented_on"] = rec.organisme, rec.effective_on
        elif rec.kind == "contract":
            out["contract_signed_on"] = rec.effective_on
    return out


# --------------------------------------------------------------------------- entry points

def import_file(runtime, path, *, as_of: dt.date | None = None, created_by: int | None = None) -> dict:
    """Import a France Travail orientation file (CSV or JSON, docs/imports.md) in one transaction,
    then apply what can be applied at as_of. A re-sent file is recognised (status duplicate)."""
    from imports.france_travail_partner import read_file
    from imports.tabular import reject_row, run_batch

    as_of = as_of or clock.today()

    def body(session: Session, batch):
        parsed = read_file(path)
        rejects = [reject_row(session, batch, line, column, reason, {k: v for k, v in values.items()
                                                                     if k != "nir"} | {"nir": "•••"})
                   for line, column, reason, values in parsed.rejects]
        counts = dict(store_records(session, runtime.vault, [r for _, r in parsed.records], source="file",
                                    batch_id=batch.id))
        counts["rows"] = len(parsed.records) + len(parsed.rejects)
        applied = apply_pending(session, as_of)
        counts.update(orientations_recorded=applied["orientations_recorded"],
                      contracts_recorded=applied["contracts_recorded"], waiting=applied["waiting"])
        warnings = [] if parsed.encoding.startswith("utf-8") else [f"encodage détecté: {parsed.encoding}"]
        return counts, rejects, warnings

    return run_batch(runtime, "france_travail:orientations", path, body, header={"list": "orientations"},
                     created_by=created_by)


def persons_to_read(session: Session, vault, as_of: dt.date, limit: int | None = None):
    """Whom to ask the partner API about: persons on an open path who are not oriented yet, or are
    oriented to France Travail without a contract signed on the path (the facts France Travail may
    have decided since). Yields PersonToRead (NIR decrypted here, kept in memory only)."""
    from imports.france_travail_partner import PersonToRead

    validated = select(Orientation.id).where(Orientation.path_id == CasePath.id, Orientation.status == "validated")
    ft_without_contract = (select(Orientation.id).where(
        Orientation.path_id == CasePath.id, Orientation.status == "validated",
        Orientation.referent_type == ReferentType.POLE_EMPLOI.value)
        .where(~select(Contract.id).where(Contract.path_id == CasePath.id, Contract.status == "signed").exists()))
    q = (select(Person.id, Person.nir_encrypted, Person.birth_date)
         .join(CasePath, and_(CasePath.person_id == Person.id, CasePath.closed_on.is_(None)))
         .where(Person.nir_encrypted.is_not(None), Person.birth_date.is_not(None), Person.sdd.is_(True),
                CasePath.clock_start <= as_of, (~validated.exists()) | ft_without_contract.exists())
         .order_by(Person.id).distinct())
    if limit:
        q = q.limit(limit)
    for pid, token, birth in session.execute(q).all():
        yield PersonToRead(pid, vault.decrypt(token), birth)


def read_api(runtime, as_of: dt.date, *, limit: int | None = None, client=None) -> dict:
    """The daily reading in API mode: ask France Travail about the persons to read, store what it says,
    apply it. One transaction for what was read (errors per person are reported, not fatal)."""
    from imports.france_travail_partner import ApiSource, FranceTravailClient, make_record
    from imports.tabular import RowError

    source = ApiSource(client or FranceTravailClient(runtime.settings))
    with runtime.session() as session:
        persons = list(persons_to_read(session, runtime.vault, as_of, limit))
        records, invalid = [], []
        for pid, values in source.records(persons):
            try:
                records.append(make_record(values))
            except RowError as exc:
                invalid.append({"person_id": pid, "column": exc.column, "reason": exc.message})
        counts = dict(store_records(session, runtime.vault, records, source="api"))
        applied = apply_pending(session, as_of)
    return {"as_of": as_of.isoformat(), "persons_read": len(persons), "unknown_to_france_travail": source.unknown,
            "records": len(records), **counts, "orientations_recorded": applied["orientations_recorded"],
            "contracts_recorded": applied["contracts_recorded"], "waiting": applied["waiting"],
            "errors": source.errors[:100], "error_count": len(source.errors), "invalid": invalid[:100],
            "api_calls": source.client.calls}
