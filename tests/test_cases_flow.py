"""Acceptance (issue 8) on a generated CAF flow: a person enters through the flow importer, is walked
through orientation, first appointment and contract, exits through its provider, and the flow
closure that follows creates no second exit."""

from __future__ import annotations

import datetime as dt

from lxml import etree
from sqlalchemy import func, select

from cases import service as cs
from cases.models import Exit, Household, Path, Person
from imports.generator import generate_monthly
from imports.service import import_file
from tests.test_cases import orient

D = dt.date


def _closure_flow(src, out, matricules: set[str], closed_on: dt.date) -> None:
    """The next monthly flow: the same households, some of them closed (state 5, MOTICLORSA PCG)."""
    tree = etree.parse(str(src), etree.XMLParser(resolve_entities=False, no_network=True))
    root = tree.getroot()
    root.find("IdentificationFlux/DTREF").text = "2026-07-31"
    root.find("IdentificationFlux/DTCREAFLUX").text = "2026-08-05"
    for household in root.iter("InfosFoyerRSA"):
        if household.findtext("IdentificationRSA/Organisme/MATRICULE") not in matricules:
            continue
        situation = household.find("PrestationRSA/SituationDossierRSA")
        situation.find("EtatDossierRSA/ETATDOSRSA").text = "5"
        for tag in ("Refus", "SuspensionDroit", "SuspensionVersement", "FinDroit", "FinDroitMoisAnterieur"):
            for e in situation.findall(tag):
                situation.remove(e)
        end = etree.SubElement(situation, "FinDroit")
        etree.SubElement(end, "MOTICLORSA").text = "PCG"
        etree.SubElement(end, "DTCLORSA").text = closed_on.isoformat()
    tree.write(str(out), encoding="windows-1252", xml_declaration=True)


def test_generated_flow_entry_to_provider_exit_then_flow_closure(rt, tmp_path):
    first = tmp_path / "RSABEM_202603.xml"
    generate_monthly(first, households=12, seed=31, month="2026-03")
    assert import_file(rt, first)["status"] == "imported"
    with rt.session() as s:
        paths = s.scalars(select(Path).where(Path.opening_reason == "entry", Path.closed_on.is_(None))
                          .join(Person, Person.id == Path.person_id)
                          .join(Household, Household.id == Person.household_id)
                          .where(Household.right_state == "2", Person.role == "DEM").order_by(Path.id).limit(2)).all()
        assert len(paths) == 2, "the generated flow should open paths"
        path, other_path = paths
        person, other = s.get(Person, path.person_id), s.get(Person, other_path.person_id)
        pid, matricule = person.id, person.household.matricule
        other_id, other_matricule = other.id, other.household.matricule
        orient(s, other, "ACTIPRO-TLS-EST", "actipro", D(2026, 4, 6))
        orient(s, person, "ACTIPRO-TLS-EST", "actipro", D(2026, 4, 6), notified_on=D(2026, 4, 8))
        cs.record_appointment(s, pid, dt.datetime(2026, 4, 15, 9, 30), "honoured", source="provider")
        cs.record_contract(s, pid, D(2026, 5, 4), objectives=[{"theme": "employment", "text": "Recherche"}],
                           source="provider")
        cs.record_exit(s, pid, D(2026, 6, 30), "employment_fixed_term", source="provider")

    second = tmp_path / "RSABEM_202607.xml"
    _closure_flow(first, second, {matricule, other_matricule}, D(2026, 7, 15))
    assert import_file(rt, second)["status"] == "imported"
    with rt.session() as s:
        assert s.scalar(select(func.count(Exit.id)).where(Exit.person_id == pid)) == 1
        assert s.scalar(select(Household.right_state).where(Household.matricule == matricule)) == "5"
        events = cs.timeline(s, pid)
        kinds = [e["kind"] for e in events]
        assert kinds[0] == "flow.right_opened" and events[0]["source"] == "flow"
        assert kinds[1:] == ["orientation.validated", "orientation.notified", "appointment.planned",
                             "appointment.honoured", "contract.signed", "exit.recorded"]
        dates = [e["occurred_on"] for e in events]
        assert dates == sorted(dates)
        exit_event = events[-1]
        assert (exit_event["source"], exit_event["data"]["reason"], exit_event["data"]["positive"]) == \
            ("provider", "employment_fixed_term", True)
        assert s.scalar(select(Path.close_reason).where(Path.id == path.id)) == "exit:employment_fixed_term"
        # The other person's exit comes from the flow alone: it counts for the structure of the path.
        flow_exit = s.scalar(select(Exit).where(Exit.person_id == other_id))
        assert flow_exit.source == "flow" and flow_exit.exit_on == D(2026, 7, 15)
        rates = cs.positive_exit_rate(s, D(2026, 6, 1), D(2026, 7, 31))
        est = next(r for r in rates if r["structure_code"] == "ACTIPRO-TLS-EST")
        assert (est["exits"], est["positive"]) == (2, 1 + int(cs.is_positive_exit(flow_exit.reason)))
