"""Our validated orientation decisions sent to France Travail, once (issue 17, part 3).

L5411-5-1 Code du travail and D262-65-2 CASF make France Travail the recipient of the Département's
orientation decisions. Each validated orientation of ours (not the ones France Travail took itself)
becomes one `FranceTravailDispatch` row with an idempotency key; the outbox sends it by the transport
the Département chose (RSA_FT_MODE): a daily file written under RSA_OUTBOX_DIR/france_travail, or the
partner API. A transient failure (timeout, 429, 5xx) is tried again later with a growing delay, with
the same key; after RSA_FT_MAX_ATTEMPTS, or on a refusal, the dispatch fails with an alert. The daily
reconciliation report (`rsa france-travail report`) says what was validated, queued, sent, failed.

The NIR leaves the Département here, and only here: France Travail identifies people by NIR and
birth date, and is the lawful recipient of these decisions. The NIR is not stored in the dispatch;
it is decrypted at the moment of sending, written only into the file for France Travail (mode 0600)
or the request to its API, and never into logs, reports or errors.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import os
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.models import Alert, Person
from config.db import utcnow
from imports.france_travail_partner import FranceTravailClient, PartnerError, nir15
from imports.models import FranceTravailDispatch
from orientation.models import Orientation
from orientation.vocabulary import Origin
from referents.models import Structure
from referents.vocabulary import default_parcours_of, ft_organisme_code, ft_parcours_code, organisme_of

log = logging.getLogger(__name__)

FILE_COLUMNS = ("identifiant_envoi", "nir", "date_naissance", "parcours", "organisme", "date_decision",
                "structure_code", "structure_libelle", "departement")


def _send_from(settings) -> dt.date | None:
    return dt.date.fromisoformat(settings.ft_send_from) if settings.ft_send_from else None


def idempotency_key(departement: str, orientation_id: int, validated_on: dt.date) -> str:
    """Stable for one decision: the same key on every try and in every file."""
    raw = f"rsa:{departement}:orientation:{orientation_id}:{validated_on.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def queue_decisions(session: Session, settings, as_of: dt.date) -> int:
    """One dispatch per validated orientation of ours not queued yet (validated on or before as_of,
    and on or after RSA_FT_SEND_FROM when set). Returns the number queued."""
    done = select(FranceTravailDispatch.orientation_id)
    q = (select(Orientation, Structure.code, Structure.name)
         .outerjoin(Structure, Structure.id == Orientation.structure_id)
         .where(Orientation.validated_on.is_not(None), Orientation.validated_on <= as_of,
                Orientation.origin != Origin.FRANCE_TRAVAIL.value, Orientation.id.not_in(done))
         .order_by(Orientation.validated_on, Orientation.id))
    start = _send_from(settings)
    if start is not None:
        q = q.where(Orientation.validated_on >= start)
    n = 0
    for o, code, name in session.execute(q):
        parcours = o.parcours or default_parcours_of(o.referent_type)
        organisme = o.organisme or organisme_of(o.referent_type)
        key = idempotency_key(settings.departement, o.id, o.validated_on)
        session.add(FranceTravailDispatch(
            orientation_id=o.id, person_id=o.person_id, idempotency_key=key, queued_on=as_of, status="queued",
            payload={"identifiant_envoi": key, "parcours": ft_parcours_code(parcours),
                     "organisme": ft_organisme_code(organisme), "date_decision": o.validated_on.isoformat(),
                     "structure": {"code": code, "libelle": name}, "departement": settings.departement}))
        n += 1
    session.flush()
    return n


def _identity(session: Session, vault, person_id: int) -> tuple[str, dt.date] | None:
    row = session.execute(select(Person.nir_encrypted, Person.birth_date).where(Person.id == person_id)).first()
    if row is None or row.nir_encrypted is None or row.birth_date is None:
        return None
    return vault.decrypt(row.nir_encrypted), row.birth_date


def process(session: Session, runtime, *, now: dt.datetime | None = None, as_of: dt.date | None = None,
            client: FranceTravailClient | None = None, commit: bool = True) -> dict:
    """Send the due dispatches by the configured transport. With commit=True each outcome is committed
    at once (a crash never loses a 'sent' nor sends twice under a new key)."""
    settings = runtime.settings
    now = now or utcnow()
    as_of = as_of or now.date()
    due = session.scalars(select(FranceTravailDispatch).where(
        FranceTravailDispatch.status == "queued",
        (FranceTravailDispatch.next_attempt_at.is_(None)) | (FranceTravailDispatch.next_attempt_at <= now))
        .order_by(FranceTravailDispatch.id)).all()
    counts = Counter(sent=0, retry=0, failed=0)
    if not due:
        return {"transport": settings.ft_mode, **counts, "file": None}
    if settings.ft_mode == "api":
        try:
            client = client or FranceTravailClient(settings)
        except PartnerError as exc:  # a configuration to fix: the dispatches stay queued as they are
            return {"transport": "api", **counts, "file": None, "error": str(exc)}
        for d in due:
            counts[_send_api(session, runtime, client, d, now, as_of)] += 1
            session.flush()
            if commit:
                session.commit()
        return {"transport": "api", **counts, "file": None}
    path = _send_file(session, runtime, due, now, as_of, counts)
    if commit:
        session.commit()
    return {"transport": "file", **counts, "file": str(path) if path else None}


def _send_api(session: Session, runtime, client, d: FranceTravailDispatch, now, as_of) -> str:
    identity = _identity(session, runtime.vault, d.person_id)
    d.transport = "api"
    if identity is None:
        return _failure(session, d, PartnerError("NIR ou date de naissance inconnus: France Travail ne peut pas "
                                                 "identifier la personne", transient=False), runtime.settings, now, as_of)
    d.attempts = (d.attempts or 0) + 1
    try:
        token = client.user_token(*identity)
        if token is None:
            raise PartnerError("personne inconnue de France Travail (NIR et date de naissance)", transient=True)
        client.send_orientation(token, {**d.payload}, d.idempotency_key)
    except PartnerError as exc:
        return _failure(session, d, exc, runtime.settings, now, as_of, counted=True)
    d.status, d.sent_at, d.sent_on, d.next_attempt_at, d.last_error = "sent", now, as_of, None, None
    return "sent"


def _send_file(session: Session, runtime, due: list[FranceTravailDispatch], now, as_of, counts) -> Path | None:
    """All due dispatches in one new file of the day (orientations_<dept>_<AAAAMMJJ>[_n].csv, `;`, UTF-8,
    mode 0600), written to a temporary name then renamed: the file is complete or absent."""
    settings = runtime.settings
    rows = []
    for d in due:
        identity = _identity(session, runtime.vault, d.person_id)
        d.transport = "file"
        if identity is None:
            counts[_failure(session, d, PartnerError("NIR ou date de naissance inconnus: France Travail ne peut "
                                                     "pas identifier la personne", transient=False),
                            settings, now, as_of)] += 1
            continue
        nir13, birth = identity
        p = d.payload
        rows.append((d, [d.idempotency_key, nir15(nir13), birth.isoformat(), p["parcours"], p["organisme"],
                         p["date_decision"], (p.get("structure") or {}).get("code") or "",
                         (p.get("structure") or {}).get("libelle") or "", p.get("departement") or ""]))
    if not rows:
        return None
    folder = Path(settings.outbox_dir) / "france_travail"
    folder.mkdir(parents=True, exist_ok=True)
    base = f"orientations_{settings.departement}_{as_of:%Y%m%d}"
    path, n = folder / f"{base}.csv", 1
    while path.exists():
        n += 1
        path = folder / f"{base}_{n}.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(FILE_COLUMNS)
    for _d, values in rows:
        writer.writerow(values)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.write(fd, buffer.getvalue().encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        for d, _values in rows:
            d.attempts = (d.attempts or 0) + 1
            counts[_failure(session, d, PartnerError(f"fichier non écrit: {exc.strerror}", transient=True),
                            settings, now, as_of, counted=True)] += 1
        return None
    for d, _values in rows:
        d.attempts = (d.attempts or 0) + 1
        d.status, d.sent_at, d.sent_on, d.sent_file, d.next_attempt_at, d.last_error = (
            "sent", now, as_of, path.name, None, None)
        counts["sent"] += 1
    session.flush()
    return path


def _failure(session: Session, d: FranceTravailDispatch, exc: PartnerError, settings, now, as_of,
             counted: bool = False) -> str:
    """Transient: try again later (30 min, 1 h, 2 h… RSA_FT_BACKOFF_MINUTES doubled); after the last
    attempt or on a refusal: failed, with an alert for the managers."""
    if not counted:
        d.attempts = (d.attempts or 0) + 1
    d.last_error = str(exc)[:2000]
    if exc.transient and d.attempts < settings.ft_max_attempts:
        delay = settings.ft_backoff_minutes * 2 ** (d.attempts - 1)
        if exc.retry_after:
            delay = max(delay, exc.retry_after / 60)
        d.next_attempt_at = now + dt.timedelta(minutes=delay)
        log.warning("France Travail dispatch %s: attempt %s failed (%s), next at %s", d.id, d.attempts, exc,
                    d.next_attempt_at)
        return "retry"
    d.status, d.next_attempt_at = "failed", None
    key = f"france_travail.dispatch_failed:{d.id}"
    if session.scalar(select(Alert.id).where(Alert.key == key)) is None:
        session.add(Alert(key=key, kind="france_travail.dispatch_failed", severity="critical", person_id=d.person_id,
                          message=f"Décision d'orientation {d.orientation_id} non transmise à France Travail après "
                                  f"{d.attempts} essai(s): {d.last_error}",
                          data={"orientation_id": d.orientation_id, "dispatch_id": d.id}, raised_on=as_of))
    return "failed"


def retry_failed(session: Session, dispatch_ids: list[int] | None = None) -> int:
    """Put failed dispatches back in the queue (after the cause was fixed), same key."""
    q = select(FranceTravailDispatch).where(FranceTravailDispatch.status == "failed")
    if dispatch_ids:
        q = q.where(FranceTravailDispatch.id.in_(dispatch_ids))
    rows = session.scalars(q).all()
    for d in rows:
        d.status, d.attempts, d.next_attempt_at = "queued", 0, None
    session.flush()
    return len(rows)


def reconciliation(session: Session, settings, day: dt.date) -> dict:
    """The day's reconciliation: decisions validated that day and what became of them, the queue, the
    failures (with their reason, never a NIR), and validated decisions that were never queued."""
    own = Orientation.origin != Origin.FRANCE_TRAVAIL.value
    validated = session.scalar(select(func.count(Orientation.id)).where(Orientation.validated_on == day, own)) or 0
    by_status = dict(session.execute(
        select(FranceTravailDispatch.status, func.count(FranceTravailDispatch.id))
        .join(Orientation, Orientation.id == FranceTravailDispatch.orientation_id)
        .where(Orientation.validated_on == day).group_by(FranceTravailDispatch.status)).all())
    sent_today = session.scalar(select(func.count(FranceTravailDispatch.id))
                                .where(FranceTravailDispatch.sent_on == day)) or 0
    queue = dict(session.execute(select(FranceTravailDispatch.status, func.count(FranceTravailDispatch.id))
                                 .group_by(FranceTravailDispatch.status)).all())
    missing_q = (select(Orientation.id, Orientation.person_id, Orientation.validated_on)
                 .where(Orientation.validated_on.is_not(None), Orientation.validated_on <= day, own,
                        Orientation.id.not_in(select(FranceTravailDispatch.orientation_id))))
    start = _send_from(settings)
    if start is not None:
        missing_q = missing_q.where(Orientation.validated_on >= start)
    missing = [{"orientation_id": oid, "person_id": pid, "validated_on": on.isoformat()}
               for oid, pid, on in session.execute(missing_q.order_by(Orientation.id).limit(100))]
    failed = [{"dispatch_id": d.id, "orientation_id": d.orientation_id, "person_id": d.person_id,
               "attempts": d.attempts, "error": d.last_error}
              for d in session.scalars(select(FranceTravailDispatch).where(FranceTravailDispatch.status == "failed")
                                       .order_by(FranceTravailDispatch.id).limit(100))]
    files = sorted({f for (f,) in session.execute(select(FranceTravailDispatch.sent_file)
                                                   .where(FranceTravailDispatch.sent_on == day,
                                                          FranceTravailDispatch.sent_file.is_not(None)))})
    return {"date": day.isoformat(), "transport": settings.ft_mode, "validated": validated,
            "of_which_sent": by_status.get("sent", 0), "of_which_queued": by_status.get("queued", 0),
            "of_which_failed": by_status.get("failed", 0),
            "of_which_not_queued": validated - sum(by_status.values()), "sent_on_day": sent_today,
            "files": files, "queue": {s: queue.get(s, 0) for s in ("queued", "sent", "failed")},
            "failed": failed, "not_queued": missing, "balanced": not missing and not failed}
