"""Retention purge (issue 6): identities go, indicators stay, idempotent, dry run changes nothing."""

from __future__ import annotations

import datetime as dt
import gzip
import json

from click.testing import CliRunner
from sqlalchemy import func, select, text

from cases.models import Appointment, CaseEvent, Contract, Diagnostic, Household, Path, Person
from cases.retention import eligible_persons, purge
from imports.models import ImportBatch, RawRecord, RejectedRecord
from orientation.models import Orientation
from referents.models import AuditLog, Structure
from tests.factories import make_person

AS_OF = dt.date(2026, 11, 20)  # retention 24 months → cutoff 2024-11-20
NIR = "1850531555123"


def _orient(s, person, validated_on, code="ACTIPRO-TLS-EST", referent_type="actipro", status="ended"):
    path = s.scalar(select(Path).where(Path.person_id == person.id))
    sid = s.scalar(select(Structure.id).where(Structure.code == code))
    s.add(Orientation(person_id=person.id, path_id=path.id, referent_type=referent_type, structure_id=sid,
                      status=status, decided_on=validated_on, validated_on=validated_on, mode="auto",
                      origin="auto", facts={"age": 37, "nom": "DUPONT", "commune": "31555"},
                      explanation="règle test"))
    return path


def _world(rt):
    """A: path closed 2024-03 and silent since → purged. B: closed 2024-03 but seen in 2025.
    C: closed 2025-06. D: path still open. All oriented, with notes and NIRs."""
    ids = {}
    with rt.session() as s:
        batch = ImportBatch(kind="flux", file_name="old.xml", sha256="a" * 64, status="imported")
        s.add(batch)
        s.flush()
        for key, closed, nir in (("A", dt.date(2024, 3, 1), NIR), ("B", dt.date(2024, 3, 1), "2900131555002"),
                                 ("C", dt.date(2025, 6, 1), "1780931395003"), ("D", None, "2011231555004")):
            p = make_person(s, last_name=f"DUPONT{key}", first_name="Jeanne", email=f"{key}@example.org",
                            phone="+33612345678", clock_start=dt.date(2022, 1, 10),
                            request_date=dt.date(2021, 12, 20), birth_date=dt.date(1985, 5, 17))
            p.nir_hash, p.nir_encrypted = rt.vault.hash(nir), rt.vault.encrypt(nir)
            p.last_contact_on = dt.date(2024, 2, 1)
            hh = s.get(Household, p.household_id)
            hh.address_line, hh.numdemrsa, hh.last_flow_on = "12 rue des Lilas", "12345678901", dt.date(2024, 2, 1)
            path = _orient(s, p, dt.date(2022, 2, 15) + dt.timedelta(days=len(ids) * 7))
            path.closed_on, path.close_reason = closed, "exit" if closed else None
            s.add(CaseEvent(person_id=p.id, path_id=path.id, occurred_on=dt.date(2022, 2, 15), kind="orientation",
                            source="agent", summary="Mme DUPONT orientée", data={"nom": "DUPONT", "structure": "X"}))
            s.add(Appointment(person_id=p.id, path_id=path.id, scheduled_at=dt.datetime(2022, 3, 1, 9),
                              kind="first", status="honoured", notes="parle de sa santé"))
            s.add(Diagnostic(person_id=p.id, recorded_on=dt.date(2022, 2, 1), constraints={"health": "strong"},
                             notes="situation familiale difficile"))
            s.add(Contract(person_id=p.id, path_id=path.id, kind="engagement", signed_on=dt.date(2022, 3, 10),
                           objectives=[{"theme": "employment", "text": "trouver un emploi de cariste"}]))
            s.add(RawRecord(household_id=hh.id, content_hash="h" * 64, raw_gz=gzip.compress(b"<x>DUPONT</x>"),
                            batch_id=batch.id, updated_at=dt.datetime(2024, 2, 1)))
            ids[key] = p.id
        b = s.get(Person, ids["B"])
        s.add(Appointment(person_id=b.id, scheduled_at=dt.datetime(2025, 1, 10, 9), notes="revenu"))
        s.add(RejectedRecord(batch_id=batch.id, record_key="T123", reason="NIR mal formé", raw=b"<x>1850531555123</x>",
                             created_at=dt.datetime(2024, 1, 5)))
        s.add(RejectedRecord(batch_id=batch.id, record_key="T124", reason="NIR mal formé", raw=b"<x>recent</x>",
                             created_at=dt.datetime(2026, 10, 5)))
    return ids


def _delays_sql(s) -> list[tuple]:
    """Indicator computed independently of reports/: delay per path, first validated orientation."""
    rows = s.execute(text(
        "SELECT p.id, p.clock_start, p.request_date, MIN(o.validated_on), h.territory_id, h.mds_id, pe.sdd "
        "FROM path p JOIN person pe ON pe.id = p.person_id LEFT JOIN household h ON h.id = p.household_id "
        "LEFT JOIN orientation o ON o.path_id = p.id AND o.validated_on IS NOT NULL "
        "GROUP BY p.id, p.clock_start, p.request_date, h.territory_id, h.mds_id, pe.sdd ORDER BY p.id")).all()
    return [tuple(str(v) for v in r) for r in rows]


def _reports(s) -> list:
    from reports.indicators import ReportFilter
    from reports.service import full_report

    out = []
    for as_of in (dt.date(2022, 12, 31), AS_OF):
        r = full_report(s, ReportFilter(as_of=as_of, start=dt.date(2021, 1, 1)))
        r.pop("generated_at", None)
        out.append(json.dumps(r, sort_keys=True, default=str))
    return out


def test_purge_wipes_identity_keeps_indicators_and_is_idempotent(rt, tmp_path):
    ids = _world(rt)
    with rt.session() as s:
        before_sql, before_reports = _delays_sql(s), _reports(s)
        assert json.loads(before_reports[0])["clocks"]["legal"]["cohort_size"] == 4  # the test has teeth
        assert eligible_persons(s, AS_OF, 24) == [ids["A"]]

    # a dry run lists and changes nothing
    with rt.session() as s:
        dry = purge(s, AS_OF, 24, dry_run=True)
        assert dry.persons == [ids["A"]] and dry.rejected_records == 1 and dry.raw_records == 4
        s.rollback()
    with rt.session() as s:
        assert s.get(Person, ids["A"]).last_name == "DUPONTA"

    with rt.session() as s:
        result = purge(s, AS_OF, 24, files_root=tmp_path)
        assert result.persons == [ids["A"]] and result.households == 1
        assert result.rejected_records == 1 and result.raw_records == 4
    with rt.session() as s:
        a = s.get(Person, ids["A"])
        assert a.pseudonymised and a.last_name is None and a.first_name is None
        assert a.birth_date == dt.date(1985, 1, 1)
        assert a.nir_hash is None and a.nir_encrypted is None and a.email is None and a.phone is None
        hh = s.get(Household, a.household_id)
        assert hh.address_line is None and hh.numdemrsa is None and hh.matricule.startswith("X")
        assert hh.mds_id is not None and hh.territory_id is not None  # kept for the indicators
        ev = s.scalar(select(CaseEvent).where(CaseEvent.person_id == a.id))
        assert ev.summary == "" and ev.data == {"structure": "X"} and ev.kind == "orientation"
        assert s.scalar(select(Appointment.notes).where(Appointment.person_id == a.id)) is None
        assert s.scalar(select(Diagnostic.notes).where(Diagnostic.person_id == a.id)) is None
        assert s.scalar(select(Contract.objectives).where(Contract.person_id == a.id)) == [{"theme": "employment"}]
        o = s.scalar(select(Orientation).where(Orientation.person_id == a.id))
        assert o.facts == {"age": 37, "commune": "31555"} and o.validated_on == dt.date(2022, 2, 15)
        # nobody else touched
        for key in "BCD":
            p = s.get(Person, ids[key])
            assert not p.pseudonymised and p.last_name == f"DUPONT{key}" and p.nir_hash is not None
        assert s.scalar(select(func.count()).select_from(RawRecord)) == 0  # all older than retention
        rejected = s.scalars(select(RejectedRecord).order_by(RejectedRecord.id)).all()
        assert [(r.status, r.raw, r.record_key) for r in rejected] == [
            ("purged", None, None), ("pending", b"<x>recent</x>", "T124")]
        # the NIR can no longer be found by its hash
        assert s.scalar(select(func.count()).select_from(Person).where(Person.nir_hash == rt.vault.hash(NIR))) == 0
        # past indicators did not change
        assert _delays_sql(s) == before_sql
        assert _reports(s) == before_reports

    # idempotent
    with rt.session() as s:
        again = purge(s, AS_OF, 24, files_root=tmp_path)
        assert again.persons == [] and again.households == 0 and again.rejected_records == 0
        assert again.raw_records == 0


def test_purge_cli_dry_run_then_run_and_audit(rt):
    from config.cli import main

    ids = _world(rt)
    runner = CliRunner()
    r = runner.invoke(main, ["rgpd", "purge", "--as-of", "2026-11-20", "--dry-run", "--json"], obj={"runtime": rt})
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["dry_run"] is True and data["persons"] == [ids["A"]] and data["months"] == 24
    with rt.session() as s:
        assert s.get(Person, ids["A"]).pseudonymised is False
    r = runner.invoke(main, ["rgpd", "purge", "--as-of", "2026-11-20"], obj={"runtime": rt})
    assert r.exit_code == 0 and "1 personne(s) ont été anonymisée(s)" in r.output, r.output
    assert "DUPONT" not in r.output
    with rt.session() as s:
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "purge"))
        assert entry.details["persons"] == 1 and entry.person_id is None
    # with 12 months (cutoff 2025-11-20) B (last seen 2025-01) and C (closed 2025-06) go too
    r = runner.invoke(main, ["rgpd", "purge", "--as-of", "2026-11-20", "--months", "12", "--json"],
                      obj={"runtime": rt})
    assert json.loads(r.output)["persons"] == [ids["B"], ids["C"]]


def test_monthly_job_is_registered(rt):
    from config.scheduler import collect_jobs, run_job

    jobs = {j.id: j for j in collect_jobs()}
    assert jobs["rgpd_purge"].cron == {"day": 1, "hour": 3, "minute": 30}
    ids = _world(rt)
    summary = run_job(rt, jobs["rgpd_purge"], AS_OF)
    assert summary["person_count"] == 1 and "persons" not in summary
    with rt.session() as s:
        assert s.get(Person, ids["A"]).pseudonymised
