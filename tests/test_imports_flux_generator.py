"""The synthetic flow generator (issue 3): schema-valid windows-1252 files, realistic distributions."""

from __future__ import annotations

import collections
import datetime as dt

from lxml import etree

from cases.nir import key_check, normalise
from imports.flux import FluxReader
from imports.generator import XSD, derive_flux, generate_monthly, validate


def test_monthly_daily_and_next_monthly_are_schema_valid(tmp_path):
    m1 = tmp_path / "RSABEM_1.xml"
    generate_monthly(m1, households=150, seed=21, month="2026-06")
    d = tmp_path / "RSABEI_1.xml"
    daily = derive_flux([m1], d, seed=21, daily=True, change_rate=0.4, new_households=4)
    m2 = tmp_path / "RSABEM_2.xml"
    derive_flux([m1, d], m2, seed=21, daily=False, change_rate=0.2, new_households=5)
    msa = tmp_path / "RSABEM_msa.xml"
    generate_monthly(msa, households=60, seed=22, month="2026-06", msa=True)
    for f in (m1, d, m2, msa):
        assert validate(f) == [], f
        head = f.read_bytes()[:60]
        assert head.startswith(b'<?xml version="1.0" encoding="windows-1252"?>')
    # the schema check is real: a household without persons is refused
    broken = tmp_path / "broken.xml"
    raw = m1.read_text(encoding="cp1252")
    start, end = raw.index("<Personne>"), raw.index("<DonneesAdministratives>")
    broken.write_text(raw[:start] + raw[end:], encoding="cp1252")
    assert validate(broken)
    reader = FluxReader(d)
    records = list(reader)
    assert reader.header.typeflux == "I" and len(records) == daily["households"] >= 4
    assert reader.header.dtref == dt.date.fromisoformat(daily["dtref"]) > dt.date(2026, 6, 30)
    assert sum(daily["changes"].values()) == daily["changed"] > 0
    assert FluxReader(msa).__iter__().__next__().key[0] == "MSA"
    assert XSD.exists()


def test_generation_is_deterministic(tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    generate_monthly(a, households=40, seed=5, month="2026-01")
    generate_monthly(b, households=40, seed=5, month="2026-01")
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.xml"
    generate_monthly(c, households=40, seed=6, month="2026-01")
    assert c.read_bytes() != a.read_bytes()


def test_distributions_follow_the_orientation_facts(tmp_path):
    path = tmp_path / "m.xml"
    generate_monthly(path, households=1000, seed=23, month="2026-05")
    roles, states = collections.Counter(), collections.Counter()
    sdd = adults = open_adults = no_activity = sans_dom = accented = transfer = 0
    codes = collections.Counter()
    communes = collections.Counter()
    ended_sal = 0
    for rec in FluxReader(path):
        d = rec.data
        assert rec.error is None
        states[d["right_state"]] += 1
        communes[d["commune_insee"]] += 1
        sans_dom += d["no_fixed_address"]
        transfer += d["transfer_in"] is not None
        for p in d["persons"]:
            roles[p["role"]] += 1
            accented += any(ord(ch) > 127 for ch in p["last_name"] + p["first_name"])
            if p["role"] in ("DEM", "CJT"):
                adults += 1
                if d["right_state"] in ("2", "3", "4"):
                    open_adults += 1
                    sdd += p["sdd"]
                no_activity += not p["activities"]
                for a in p["activities"]:
                    codes[a["code"]] += 1
                    if a["code"] == "SAL" and a["end_on"] and (dt.date(2026, 5, 31) - a["end_on"]).days <= 730:
                        ended_sal += 1
    assert roles["DEM"] == 1000 and roles["CJT"] > 150 and roles["ENF"] > 300
    assert states["2"] > 800 and states["5"] + states["6"] > 10 and states["3"] + states["4"] > 20
    assert 0.94 < sdd / open_adults < 0.995  # ~97% of DEM/CJT with an open right are SDD
    assert 0.1 < no_activity / adults < 0.35
    for code in ("CHO", "ETI", "EXP", "ETU", "MAL", "SSA", "SAL"):
        assert codes[code] > 0, code
    assert ended_sal > 30 and sans_dom > 5 and accented > 200 and transfer > 0
    assert communes["31555"] > 250  # Toulouse weighs by its population
    assert len(communes) > 100


def test_msa_nir_has_its_key_and_normalises_to_13(tmp_path):
    path = tmp_path / "msa.xml"
    generate_monthly(path, households=30, seed=24, month="2026-05", msa=True)
    doc = etree.parse(str(path))
    assert doc.findtext("IdentificationFlux/APPLIEME") == "AGO"
    assert doc.findtext("InfosFoyerRSA/IdentificationRSA/Organisme/FONORG") == "MSA"
    nirs = [e.text for e in doc.iter("NIR")]
    assert nirs and all(len(n) == 15 and key_check(n) and len(normalise(n)) == 13 for n in nirs)
