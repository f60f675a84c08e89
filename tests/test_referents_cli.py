"""`rsa referents …`: sectorisation replacement re-sectorises households; capacities."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from cases.models import Household, Path
from config.cli import main
from referents.models import Structure
from referents.service import DATA
from tests.factories import make_person


def _invoke(rt, *args):
    runner = CliRunner()
    result = runner.invoke(main, ["--database-url", rt.settings.database_url, *args])
    return result


def test_load_sectorisation_moves_households_to_their_new_mds(rt, session, tmp_path):
    p = make_person(session, commune="31069", postal_code="31700")  # Blagnac
    session.commit()
    blagnac = session.scalar(select(Structure).where(Structure.code == "MDS-BLAGNAC"))
    assert session.get(Household, p.household_id).mds_id == blagnac.id
    text = (DATA / "sectorisation.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("31069,"):
            lines[i] = line.replace("MDS-BLAGNAC", "MDS-COLOMIERS")
    f = tmp_path / "sect.csv"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _invoke(rt, "referents", "load-sectorisation", str(f), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["updated"] == 1 and out["households_resectorised"] == 1 and out["removed"] == 0
    session.expire_all()
    colomiers = session.scalar(select(Structure).where(Structure.code == "MDS-COLOMIERS"))
    assert session.get(Household, p.household_id).mds_id == colomiers.id
    # The path's copy of the sector, which the reports read, follows.
    path = session.scalar(select(Path).where(Path.person_id == p.id))
    assert (path.mds_id, path.territory_id) == (colomiers.id, colomiers.territory_id)


def test_load_sectorisation_with_a_bad_row_changes_nothing(rt, session, tmp_path):
    lines = (DATA / "sectorisation.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("ATI-", "ATI-INCONNUE-", 1)
    f = tmp_path / "bad.csv"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _invoke(rt, "referents", "load-sectorisation", str(f))
    assert result.exit_code != 0 and "ligne 4" in result.output


def test_set_capacity_and_list_structures(rt):
    result = _invoke(rt, "referents", "set-capacity", "ACTIPRO-SUD", "3", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(_invoke(rt, "referents", "structures", "--kind", "actipro", "--json").output)
    sud = next(r for r in rows if r["code"] == "ACTIPRO-SUD")
    assert sud["capacity"] == 3 and sud["load"] == 0
    assert _invoke(rt, "referents", "set-capacity", "ACTIPRO-SUD", "-2").exit_code != 0
    assert _invoke(rt, "referents", "set-capacity", "NOPE", "2").exit_code != 0
