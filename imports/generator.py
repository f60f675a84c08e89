"""Synthetic CAF/MSA flows (VRSB0801, windows-1252) for tests, benchmarks and the demo.

Deterministic: household i of seed S is drawn from its own random stream, so the same seed always
gives the same people. Distributions follow what the orientation rules look at: roles, ~97% of
DEM/CJT SDD, right states mostly open, activity codes (job seekers, self-employed, students,
health, employees whose job ended, no activity at all), no fixed address, communes weighted by
population, accented names, NIR of 15 characters (with key) in MSA files.

`derive_flux` writes the next flow from earlier ones: a daily flow (`TYPEFLUX=I`) with only the
changed and new households, or the next monthly snapshot with a share of households changed.
"""

from __future__ import annotations

import bisect
import calendar
import csv
import datetime as dt
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from imports.flux import FluxError, FluxReader

DATA = Path(__file__).resolve().parent / "data"
XSD = DATA / "vrsb0801.xsd"
COMMUNES_CSV = Path(__file__).resolve().parent.parent / "referents" / "data" / "communes_31.csv"

LAST_NAMES = (
    "MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU",
    "SIMON", "LAURENT", "LEFÈVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX", "VINCENT", "FOURNIER",
    "MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET", "FRANÇOIS", "MARTINEZ", "LEGRAND",
    "GARNIER", "FAURE", "ROUSSEAU", "BLANC", "GUÉRIN", "MULLER", "HENRY", "ROUSSEL", "NICOLAS", "PERRIN",
    "MORIN", "MATHIEU", "CLÉMENT", "GAUTHIER", "DUMONT", "LOPEZ", "FONTAINE", "CHEVALIER", "ROBIN", "MASSON",
    "SANCHEZ", "GÉRARD", "NGUYEN", "BOYER", "DENIS", "LEMAIRE", "DUVAL", "JOLY", "GAUTIER", "ROGER",
    "ROCHE", "ROY", "NOËL", "MEYER", "LUCAS", "MEUNIER", "JEAN", "PÉREZ", "MARCHAND", "DUFOUR",
    "BLANCHARD", "MARIE", "BARBIER", "BRUN", "DUMAS", "BRUNET", "SCHMITT", "LEROUX", "COLIN", "FERNANDEZ",
    "PIERRE", "RENARD", "ARNAUD", "ROLLAND", "CARON", "AUBERT", "GIRAUD", "LECLERC", "VIDAL", "BOURGEOIS",
    "RENAUD", "LEMOINE", "PICARD", "GAILLARD", "PHILIPPE", "LECLERCQ", "LACROIX", "FABRE", "DUPUIS", "OLIVIER",
    "BENOÎT", "CASTÉRA", "ESCUDÉ", "SAINT-MARTIN", "D'ARTIGUES", "BÉNÉZECH", "ABADIE", "DARRIGADE",
    "BOUSQUET", "CAZAUX", "LAFFONT", "SÉGUIER", "BENSAÏD", "HADDAD", "DIALLO", "TRAORÉ", "ÖZTÜRK", "KOWALSKI",
)
FIRST_NAMES_F = ("MARIE", "NATHALIE", "ISABELLE", "SYLVIE", "CATHERINE", "SANDRINE", "CÉLINE", "AURÉLIE",
                 "STÉPHANIE", "ÉMILIE", "CHLOÉ", "LÉA", "MANON", "INÈS", "ZOÉ", "MAËLLE", "HÉLÈNE", "AÏCHA",
                 "FATIMA", "JOËLLE", "LAETITIA", "SÉVERINE", "NOÉMIE", "ANAÏS", "CAMILLE", "JULIE")
FIRST_NAMES_M = ("JEAN", "PHILIPPE", "MICHEL", "ALAIN", "PATRICK", "NICOLAS", "CHRISTOPHE", "PIERRE",
                 "FRÉDÉRIC", "SÉBASTIEN", "JÉRÔME", "THÉO", "LÉO", "RAPHAËL", "NOÉ", "ANTOINE", "JOËL",
                 "FRANÇOIS", "HERVÉ", "RENÉ", "MOHAMED", "KARIM", "YANNICK", "GAËTAN", "CÉDRIC", "BENOÎT")
STREET_TYPES = ("RUE", "AVENUE", "ALLÉE", "CHEMIN", "PLACE", "IMPASSE", "BOULEVARD", "ROUTE")
STREET_NAMES = ("DES ÉCOLES", "JEAN JAURÈS", "DU CANAL", "DE LA GARONNE", "DES PYRÉNÉES", "VICTOR HUGO",
                "DU MIDI", "DE L'ÉGLISE", "DES LILAS", "DU CHÂTEAU", "PASTEUR", "DE LA RÉPUBLIQUE",
                "DES ÉTANGS", "SAINT-EXUPÉRY", "DU FORUM", "DES CÔTEAUX")
BIRTH_PLACES = ("TOULOUSE", "MURET", "SAINT-GAUDENS", "COLOMIERS", "ALBI", "MONTAUBAN", "TARBES", "PARIS",
                "BÉZIERS", "PÉRIGUEUX", "ALGER", "CASABLANCA")

# (weight, activity history builder name) for DEM/CJT
_ACTIVITY_PROFILES = (
    (36, "job_seeker"), (10, "ended_job"), (5, "self_employed"), (2, "farmer"), (5, "student"),
    (7, "health"), (10, "no_activity"), (3, "unknown"), (22, "none"),
)
_JOB_SEEKER_CODES = ("CHO", "CHO", "CHO", "CHR", "ASS", "ABA", "CNI", "ANP", "AFD")
_HEALTH_CODES = ("MAL", "MAL", "INV", "AAP", "MLD", "HAN")
_STUDENT_CODES = ("ETU", "ETU", "SFP", "APP", "ETS")
_MOTICLO = ("ECH", "ECH", "ECH", "RFD", "RAU", "PCG")


def _communes() -> tuple[list[tuple[str, str, list[str]]], list[int]]:
    rows, cum, total = [], [], 0
    with open(COMMUNES_CSV, encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            total += max(int(row["population"] or 0), 1)
            rows.append((row["code_insee"], row["nom"], row["codes_postaux"].split() or ["31000"]))
            cum.append(total)
    return rows, cum


_COMMUNES: tuple | None = None


def _pick_commune(rng: random.Random) -> tuple[str, str, str]:
    global _COMMUNES
    if _COMMUNES is None:
        _COMMUNES = _communes()
    rows, cum = _COMMUNES
    insee, name, postcodes = rows[bisect.bisect_left(cum, rng.random() * cum[-1])]
    return insee, name.upper(), rng.choice(postcodes)


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    y, m = (int(x) for x in month.split("-"))
    return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _d(d: dt.date) -> str:
    return d.isoformat()


def _nir(sex: int, birth: dt.date, serial: int, msa: bool) -> str:
    body = f"{sex}{birth.year % 100:02d}{birth.month:02d}31{serial // 1000 % 1000:03d}{serial % 1000:03d}"
    if msa:
        body += f"{97 - int(body) % 97:02d}"
    return body


class _Ctx:
    def __init__(self, seed: int, dtref: dt.date, msa: bool):
        self.seed, self.dtref, self.msa = seed, dtref, msa
        self.organism = "MSA" if msa else "CAF"


def _matricule(seed: int, index: int, msa: bool) -> str:
    return f"{(2 if msa else 1)}{seed % 10000:04d}{index:010d}"


def household_xml(seed: int, index: int, dtref: dt.date, msa: bool = False, *, recent: bool | None = None,
                  transfer_in: bool | None = None, state: str | None = None) -> str:
    """One InfosFoyerRSA block (text), drawn from the household's own random stream."""
    rng = random.Random(f"{seed}:{index}")
    organism, numorg = ("MSA", "031") if msa else ("CAF", "311")
    recent = rng.random() < 0.12 if recent is None else recent
    if recent:
        dtdem = dtref - dt.timedelta(days=rng.randint(5, 120))
    else:
        dtdem = dtref - dt.timedelta(days=rng.randint(121, 8 * 365))
    transfer_in = rng.random() < 0.01 if transfer_in is None else transfer_in
    r = rng.random()
    if state is None:
        state = ("2" if r < 0.86 else "4" if r < 0.91 else "3" if r < 0.93 else "0" if r < 0.95
                 else "5" if r < 0.99 else "6")
    comp = rng.random()
    adults = 2 if comp >= 0.70 else 1
    children = rng.choice((1, 1, 2, 3)) if (comp >= 0.45 and comp < 0.70) or comp >= 0.85 else 0
    out = ["<InfosFoyerRSA><IdentificationRSA><Organisme>",
           f"<FONORG>{organism}</FONORG><NUMORG>{numorg}</NUMORG><MATRICULE>{_matricule(seed, index, msa)}</MATRICULE>",
           "</Organisme><Partenaire><TYPEPARTE>CG</TYPEPARTE><IDEPARTE>031</IDEPARTE></Partenaire>",
           f"<DemandeRSA><DTDEMRSA>{_d(dtdem)}</DTDEMRSA><NUMDEMRSA>{index % 10**11:011d}</NUMDEMRSA></DemandeRSA>"]
    if transfer_in:
        arrival = max(dtdem, dtref - dt.timedelta(days=rng.randint(1, 25)))
        dep = rng.choice(("032", "081", "082", "065", "009", "011", "075"))
        out.append(f"<OrganismeCedant><FONORGCEDMUT>{organism}</FONORGCEDMUT><NUMORGCEDMUT>{dep}</NUMORGCEDMUT>"
                   f"<DDARRMUT>{_d(arrival)}</DDARRMUT></OrganismeCedant>")
    out.append("</IdentificationRSA>")
    family = rng.choice(LAST_NAMES)
    serial_base = (seed % 97) * 10**5 + index * 8
    open_right = state in ("2", "3", "4")
    for n in range(adults + children):
        role = "DEM" if n == 0 else "CJT" if n < adults else "ENF"
        adult = role != "ENF"
        if n == 0:
            sex = first_sex = rng.choice((1, 2))
        elif role == "CJT":
            sex = 3 - first_sex
        else:
            sex = rng.choice((1, 2))
        if adult:
            birth = dtref - dt.timedelta(days=rng.randint(18 * 365 + 10, 64 * 365))
        else:
            birth = dtref - dt.timedelta(days=rng.randint(30, 17 * 365))
        last = family if (n == 0 or not adult or rng.random() < 0.4) else rng.choice(LAST_NAMES)
        first = rng.choice(FIRST_NAMES_M if sex == 1 else FIRST_NAMES_F)
        has_nir = adult or rng.random() < 0.5
        nir = _nir(sex, birth, serial_base + n, msa) if has_nir else None
        out.append("<Personne><Identification>")
        out.append(f"<QUAL>{'MR' if sex == 1 else 'MME'}</QUAL>" if adult else "")
        out.append(f"<NOM>{_esc(last)}</NOM><NOMNAI>{_esc(last)}</NOMNAI><PRENOM>{_esc(first)}</PRENOM>"
                   f"<NOMCOMNAI>{_esc(rng.choice(BIRTH_PLACES))}</NOMCOMNAI><DTNAI>{_d(birth)}</DTNAI>"
                   "<TYPEDTNAI>N</TYPEDTNAI>")
        if nir:
            out.append(f"<NIR>{nir}</NIR><TOPVALIEC>1</TOPVALIEC>")
        out.append(f"<SEXE>{sex}</SEXE></Identification>")
        out.append(f"<DossierCAF><TOPRESPDOS>{1 if n == 0 else 0}</TOPRESPDOS>"
                   f"<DDRATDOS>{_d(max(birth, dtdem - dt.timedelta(days=400)))}</DDRATDOS></DossierCAF>")
        out.append(f"<Prestations><NATPREST>PFA</NATPREST><ROLEPERS>{role}</ROLEPERS><TOPCHAPERS>0</TOPCHAPERS></Prestations>"
                   f"<Prestations><NATPREST>RSA</NATPREST><ROLEPERS>{role}</ROLEPERS><TOPCHAPERS>1</TOPCHAPERS></Prestations>")
        if not adult:
            out.append("</Personne>")
            continue
        profile = _weighted(rng, _ACTIVITY_PROFILES)
        if profile in ("job_seeker", "ended_job") and rng.random() < 0.8:
            out.append(f"<DossierPoleEmploi><IDASSEDIC>{rng.randint(10**6, 10**7 - 1)}{rng.choice('ABCDEFGHJK')}</IDASSEDIC></DossierPoleEmploi>")
        q_start = dt.date(dtref.year, dtref.month, 1) - dt.timedelta(days=95)
        q_start = q_start.replace(day=1)
        months = [q_start]
        for _ in range(2):
            nxt = months[-1] + dt.timedelta(days=32)
            months.append(nxt.replace(day=1))
        q_end = (months[-1] + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        out.append(f"<Ressources><GeneraliteRessourcesTrimestre><TOPRESSNUL>{1 if profile != 'ended_job' else 0}</TOPRESSNUL>"
                   f"<DDRESS>{_d(q_start)}</DDRESS><DFRESS>{_d(q_end)}</DFRESS></GeneraliteRessourcesTrimestre>")
        for m in months:
            amount = rng.choice((0, 0, 0, 120, 310, 455)) if profile != "ended_job" else rng.randint(200, 1400)
            out.append(f"<RessourcesMensuelles><GeneraliteRessourcesMensuelles><MOISRESS>{_d(m)}</MOISRESS>"
                       f"<NBHEUMENTRA>000</NBHEUMENTRA></GeneraliteRessourcesMensuelles>"
                       f"<DetailRessourcesMensuelles><NATRESS>001</NATRESS><MTNATRESSMEN>{amount:010.2f}</MTNATRESSMEN>"
                       "</DetailRessourcesMensuelles></RessourcesMensuelles>")
        out.append("</Ressources>")
        sdd = open_right and rng.random() < 0.97 or (not open_right and rng.random() < 0.5)
        out.append(f"<MontantCalculDroitRSAPersonne><TOPPERSDRODEVORSA>{1 if sdd else 0}</TOPPERSDRODEVORSA>"
                   "</MontantCalculDroitRSAPersonne>")
        out.extend(_activities(rng, profile, dtref))
        out.append("</Personne>")
    insee, city, postcode = _pick_commune(rng)
    sitfam = "CEL" if adults == 1 else rng.choice(("MAR", "VIM", "PAC"))
    out.append("<DonneesAdministratives><SituationFamille>"
               f"<SITFAM>{sitfam}</SITFAM><DDSITFAM>{_d(dtdem - dt.timedelta(days=rng.randint(30, 3000)))}</DDSITFAM>"
               "</SituationFamille><Adresse><TroncCommunAdresse><RGADR>01</RGADR>"
               f"<DTEMM>{_d(dtdem - dt.timedelta(days=rng.randint(0, 900)))}</DTEMM><PAYS>FRA</PAYS>"
               "<TYPEADR>D</TYPEADR><ETATADR>CO</ETATADR></TroncCommunAdresse><AdresseDetailleeFrance>"
               "<COMPLIDEADR /><COMPLADR />"
               f"<NUMVOIE>{rng.randint(1, 180)}</NUMVOIE><LIBTYPEVOIE>{rng.choice(STREET_TYPES)}</LIBTYPEVOIE>"
               f"<NOMVOIE>{_esc(rng.choice(STREET_NAMES))}</NOMVOIE><LIEUDIST />"
               f"<NUMCOM>{insee}</NUMCOM><CODEPOS>{postcode}</CODEPOS><NOMCOM>{_esc(city[:32])}</NOMCOM>"
               "</AdresseDetailleeFrance></Adresse></DonneesAdministratives>")
    out.append(f"<PrestationRSA><SituationDossierRSA><EtatDossierRSA><ETATDOSRSA>{state}</ETATDOSRSA></EtatDossierRSA>")
    if state == "3":
        out.append(f"<SuspensionDroit><MOTISUSDRORSA>{rng.choice(('06', '19', '31'))}</MOTISUSDRORSA>"
                   f"<DDSUSDRORSA>{_d(dtref.replace(day=1))}</DDSUSDRORSA></SuspensionDroit>")
    elif state == "4":
        out.append(f"<SuspensionVersement><MOTISUSVERSRSA>{rng.choice(('01', '06', '12'))}</MOTISUSVERSRSA>"
                   f"<DDSUSVERSRSA>{_d(dtref.replace(day=1))}</DDSUSVERSRSA></SuspensionVersement>")
    elif state in ("5", "6"):
        tag = "FinDroit" if state == "5" else "FinDroitMoisAnterieur"
        out.append(f"<{tag}><MOTICLORSA>{rng.choice(_MOTICLO)}</MOTICLORSA>"
                   f"<DTCLORSA>{_d(dtref - dt.timedelta(days=rng.randint(0, 40)))}</DTCLORSA></{tag}>")
    out.append("</SituationDossierRSA><DetailDroitRSA><TroncCommunDroitRSA>"
               f"<TOPSANSDOMFIXE>{1 if rng.random() < 0.03 else 0}</TOPSANSDOMFIXE>"
               f"<NBENFAUTCHA>{children:02d}</NBENFAUTCHA><ORIDEMRSA>{rng.choice(('DEM', 'DEM', 'RMI'))}</ORIDEMRSA>"
               f"<DTORIDEMRSA>{_d(dtdem)}</DTORIDEMRSA></TroncCommunDroitRSA>")
    if open_right:
        amount = round(rng.uniform(150, 1100), 2)
        out.append(f"<MontantsCalculDroitRSA><DDELECAL>{_d(dtref.replace(day=1))}</DDELECAL>"
                   f"<MTREVMINIGARARSA>{amount:.2f}</MTREVMINIGARARSA><MTREVGARARSA>{amount:.2f}</MTREVGARARSA>"
                   f"<MTRESSMENRSA>0.00</MTRESSMENRSA><MTTOTDRORSA>{amount:.2f}</MTTOTDRORSA></MontantsCalculDroitRSA>"
                   f"<DetailCalculDroitRSA><NATPF>{rng.choice(('RSD', 'RSD', 'RSI'))}</NATPF><SOUSNATPF>RSDN1</SOUSNATPF>"
                   f"<DDNATDRO>{_d(dtdem)}</DDNATDRO></DetailCalculDroitRSA>")
    out.append("</DetailDroitRSA></PrestationRSA></InfosFoyerRSA>")
    return "".join(out)


def _weighted(rng: random.Random, table) -> str:
    total = sum(w for w, _ in table)
    x = rng.random() * total
    for w, name in table:
        x -= w
        if x < 0:
            return name
    return table[-1][1]


def _activity(reg: str, code: str, start: dt.date, end: dt.date | None = None) -> str:
    return (f"<Activite><REG>{reg}</REG><ACT>{code}</ACT><DDACT>{_d(start)}</DDACT>"
            + (f"<DFACT>{_d(end)}</DFACT>" if end else "") + "</Activite>")


def _activities(rng: random.Random, profile: str, dtref: dt.date) -> list[str]:
    ago = lambda lo, hi: dtref - dt.timedelta(days=rng.randint(lo, hi))  # noqa: E731
    if profile == "none":
        return []
    if profile == "job_seeker":
        return [_activity("GE", rng.choice(_JOB_SEEKER_CODES), ago(20, 1500))]
    if profile == "ended_job":
        end = ago(10, 700)  # within 24 months
        start = end - dt.timedelta(days=rng.randint(30, 900))
        acts = [_activity("GE", "SAL", start, end)]
        if rng.random() < 0.7:
            acts.append(_activity("GE", "CHO", end + dt.timedelta(days=1)))
        return acts
    if profile == "self_employed":
        return [_activity("GE", rng.choice(("ETI", "ETI", "MAR")), ago(60, 2500))]
    if profile == "farmer":
        return [_activity("AG", "EXP", ago(60, 4000))]
    if profile == "student":
        return [_activity("GE", rng.choice(_STUDENT_CODES), ago(30, 700))]
    if profile == "health":
        return [_activity("GE", rng.choice(_HEALTH_CODES), ago(30, 2000))]
    if profile == "no_activity":
        return [_activity("GE", "SSA", ago(30, 3000))]
    return [_activity("GE", "SIN", ago(30, 3000))]


# --- files ----------------------------------------------------------------------------------------

def _header(msa: bool, typeflux: str, created: dt.date, time: str, dtref: dt.date) -> str:
    return ('<?xml version="1.0" encoding="windows-1252"?>\n'
            '<Racine xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"<IdentificationFlux><APPLIEME>{'AGO' if msa else 'CRI'}</APPLIEME>"
            f"<NUMVERSIONAPPLIEME>6200</NUMVERSIONAPPLIEME><TYPEFLUX>{typeflux}</TYPEFLUX><NATFLUX>D</NATFLUX>"
            f"<DTCREAFLUX>{_d(created)}</DTCREAFLUX><HEUCREAFLUX>{time}</HEUCREAFLUX><DTREF>{_d(dtref)}</DTREF>"
            "</IdentificationFlux>\n")


def _footer(count: int) -> str:
    return (f"<TransmissionFlux><NBTOTDOSRSATRANSM>{count:08d}</NBTOTDOSRSATRANSM>"
            "<NBTOTDOSRSATRANSMANO>00000000</NBTOTDOSRSATRANSMANO></TransmissionFlux>\n</Racine>\n")


def _open_out(out: Path | str):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return open(out, "w", encoding="cp1252", errors="xmlcharrefreplace", newline="\n")


def generate_monthly(out: Path | str, *, households: int, seed: int, month: str, msa: bool = False,
                     start_index: int = 0) -> dict:
    """A monthly flow (TYPEFLUX=M) of `households` households for month YYYY-MM."""
    _first, dtref = month_bounds(month)
    created = dtref + dt.timedelta(days=5)
    with _open_out(out) as f:
        f.write(_header(msa, "M", created, "02:10:00.0000", dtref))
        for i in range(start_index, start_index + households):
            f.write(household_xml(seed, i, dtref, msa))
            f.write("\n")
        f.write(_footer(households))
    return {"path": str(out), "households": households, "typeflux": "M", "dtref": dtref.isoformat()}


_SITUATION_ORDER = ("EtatDossierRSA", "Refus", "SuspensionDroit", "SuspensionVersement", "FinDroit",
                    "FinDroitMoisAnterieur")
_IDENT_ORDER = ("Organisme", "Partenaire", "DemandeRSA", "DemandeRMI", "OrganismeCedant", "OrganismePrenant")
_PERSON_ORDER = ("Identification", "DossierCAF", "Prestations", "Rattachement", "DossierPoleEmploi", "Ressources",
                 "MontantCalculDroitRSAPersonne", "Activite", "PensionAlimentaire", "Grossesse",
                 "InformationsAgricoles", "AvisPCGPersonne", "AvisCGSSDOMPersonne")


def _insert_ordered(parent, child, order: tuple[str, ...]) -> None:
    rank = order.index(child.tag)
    pos = 0
    for i, c in enumerate(parent):
        if c.tag in order and order.index(c.tag) <= rank:
            pos = i + 1
    parent.insert(pos, child)


def _el(tag: str, **children: str):
    e = etree.Element(tag)
    for k, v in children.items():
        etree.SubElement(e, k).text = v
    return e


def _set_state(root, state: str, rng: random.Random, on: dt.date) -> None:
    sit = root.find("PrestationRSA/SituationDossierRSA")
    sit.find("EtatDossierRSA/ETATDOSRSA").text = state
    for tag in _SITUATION_ORDER[1:]:
        for e in sit.findall(tag):
            sit.remove(e)
    if state == "3":
        _insert_ordered(sit, _el("SuspensionDroit", MOTISUSDRORSA="06", DDSUSDRORSA=_d(on)), _SITUATION_ORDER)
    elif state == "4":
        _insert_ordered(sit, _el("SuspensionVersement", MOTISUSVERSRSA="01", DDSUSVERSRSA=_d(on)), _SITUATION_ORDER)


def _adults(root):
    return [p for p in root.iterchildren("Personne")
            if p.find("MontantCalculDroitRSAPersonne") is not None]


def mutate_household(root, rng: random.Random, on: dt.date) -> str:
    """Apply one realistic change to a household element; returns what changed."""
    state = root.findtext("PrestationRSA/SituationDossierRSA/EtatDossierRSA/ETATDOSRSA")
    adults = _adults(root)
    not_sdd = [p for p in adults if p.findtext("MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA") == "0"]
    sdd = [p for p in adults if p.findtext("MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA") == "1"]
    choices = []
    if state in ("2", "3", "4"):
        choices += ["close"] * 3 + ["suspend" if state == "2" else "resume"] * 2 + ["transfer_out"]
        choices += ["activity"] * 3 + ["move"] * 2
        if not_sdd:
            choices += ["sdd_on"] * 4
        if sdd:
            choices += ["sdd_off"]
    elif state in ("5", "6"):
        choices += ["reopen"]
    elif state == "0":
        choices += ["open"]
    else:
        choices += ["move"]
    what = rng.choice(choices)
    if what == "close":
        _set_state(root, "5", rng, on)
        sit = root.find("PrestationRSA/SituationDossierRSA")
        _insert_ordered(sit, _el("FinDroit", MOTICLORSA=rng.choice(_MOTICLO), DTCLORSA=_d(on)), _SITUATION_ORDER)
    elif what == "transfer_out":
        _set_state(root, "5", rng, on)
        sit = root.find("PrestationRSA/SituationDossierRSA")
        _insert_ordered(sit, _el("FinDroit", MOTICLORSA="MUT", DTCLORSA=_d(on)), _SITUATION_ORDER)
        ident = root.find("IdentificationRSA")
        _insert_ordered(ident, _el("OrganismePrenant", FONORGPRENMUT="CAF", NUMORGPRENMUT=rng.choice(("321", "811")),
                                   DDDEPAMUT=_d(on)), _IDENT_ORDER)
    elif what == "suspend":
        _set_state(root, rng.choice(("3", "4")), rng, on)
    elif what in ("resume", "reopen", "open"):
        _set_state(root, "2", rng, on)
        if what == "reopen":
            for p in adults:
                p.find("MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA").text = "1"
    elif what == "sdd_on":
        rng.choice(not_sdd).find("MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA").text = "1"
    elif what == "sdd_off":
        p = rng.choice(sdd)
        p.find("MontantCalculDroitRSAPersonne/TOPPERSDRODEVORSA").text = "0"
        _insert_ordered(p, _el("Activite", REG="GE", ACT="SAL", DDACT=_d(on)), _PERSON_ORDER)
    elif what == "activity" and adults:
        p = rng.choice(adults)
        code = rng.choice(("CHO", "SAL", "ETU", "MAL", "ETI", "SFP"))
        _insert_ordered(p, _el("Activite", REG="GE", ACT=code, DDACT=_d(on)), _PERSON_ORDER)
    else:  # move
        insee, city, postcode = _pick_commune(rng)
        adr = root.find("DonneesAdministratives/Adresse/AdresseDetailleeFrance")
        if adr is not None:
            adr.find("NUMCOM").text, adr.find("CODEPOS").text, adr.find("NOMCOM").text = insee, postcode, city[:32]
            adr.find("NUMVOIE").text = str(rng.randint(1, 180))
        what = "move"
    return what


def _iter_base(path: Path) -> Iterator[tuple[tuple, str]]:
    """Each household of a flow, as written in it (an unchanged household keeps its exact bytes in
    the next flow, as the CNAF's files do: re-imports recognise it from them)."""
    reader = FluxReader(path, keep_raw=True)
    for rec in reader:
        if rec.key is None:
            continue
        if rec.raw is not None:
            yield rec.key, rec.raw.decode(reader._declared)
        else:
            yield rec.key, rec.fragment.decode("utf-8")


def derive_flux(bases: list[Path | str], out: Path | str, *, seed: int, daily: bool,
                change_rate: float = 0.05, new_households: int = 0, month: str | None = None,
                day: int | None = None, msa: bool | None = None) -> dict:
    """The next flow after `bases` (earliest first; later ones override households by key).

    daily: TYPEFLUX=I dated within the month after the last base, with only the changed and the
    new households. Otherwise the monthly snapshot of `month` (default: the month after the last
    base) with every household, a share `change_rate` of them changed, closed-and-struck-off
    ones left out.
    """
    bases = [Path(b) for b in bases]
    headers = []
    for b in bases:
        r = FluxReader(b)
        for _ in r:
            pass
        headers.append(r.header)
    last = headers[-1]
    msa = (last.organism == "MSA") if msa is None else msa
    base_ref = last.dtref or last.created_on
    rng = random.Random(f"derive:{seed}:{base_ref}:{daily}")
    if daily:
        dtref = base_ref + dt.timedelta(days=day or rng.randint(3, 25))
        created, typeflux = dtref, "I"
        time = f"{rng.randint(18, 23):02d}:{rng.randint(0, 59):02d}:00.0000"
    else:
        if month is None:
            nxt = base_ref.replace(day=1) + dt.timedelta(days=32)
            month = f"{nxt.year}-{nxt.month:02d}"
        _first, dtref = month_bounds(month)
        created, typeflux, time = dtref + dt.timedelta(days=5), "M", "02:10:00.0000"
    overrides: dict[tuple, str] = {}
    for b in bases[1:]:
        for key, frag in _iter_base(b):
            overrides[key] = frag
    seen: set[tuple] = set()
    count = changed = 0
    max_index = 0
    counts: dict[str, int] = {}
    change_on = dtref - dt.timedelta(days=rng.randint(0, 3)) if daily else dtref - dt.timedelta(days=rng.randint(0, 20))
    with _open_out(out) as f:
        f.write(_header(msa, typeflux, created, time, dtref))

        def emit(frag: str) -> None:
            nonlocal count
            f.write(frag)
            f.write("\n")
            count += 1

        for key, frag in itertools.chain(_iter_base(bases[0]), ((k, v) for k, v in overrides.items())):
            if key in seen:
                continue
            seen.add(key)
            frag = overrides.get(key, frag)
            try:
                max_index = max(max_index, int(key[1][-10:]) + 1)
            except ValueError:
                pass
            if rng.random() < change_rate:
                root = etree.fromstring(frag.encode("utf-8"))
                what = mutate_household(root, rng, change_on)
                counts[what] = counts.get(what, 0) + 1
                changed += 1
                emit(etree.tostring(root, encoding="unicode"))
            elif not daily:
                if _struck_off(frag):
                    continue
                emit(frag)
        for i in range(max_index, max_index + new_households):
            emit(household_xml(seed, i, dtref, msa, recent=True, state="2"))
        f.write(_footer(count))
    return {"path": str(out), "households": count, "changed": changed, "new": new_households,
            "typeflux": typeflux, "dtref": dtref.isoformat(), "changes": counts}


def _struck_off(frag: str) -> bool:
    return "<ETATDOSRSA>5</ETATDOSRSA>" in frag and ("<MOTICLORSA>RFD" in frag or "<MOTICLORSA>RAU" in frag)


def validate(path: Path | str) -> list[str]:
    """Errors of a file against the VRSB0801 schema (empty list: valid)."""
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    doc = etree.parse(str(path), parser)
    if schema.validate(doc):
        return []
    return [f"ligne {e.line}: {e.message}" for e in schema.error_log]


__all__ = ["generate_monthly", "derive_flux", "household_xml", "mutate_household", "validate", "FluxError"]


# --- VRSD0301 samples (issue 16) ------------------------------------------------------------------
# The new CNAF bénéficiaire flow, laid out from the field paths WebRSA's Fluxcnaf plugin documents:
# IdentificationFlux/VERSIONFLUX; per person FonctionPersonneRSA/ROLEPERS (BEN for both adults),
# DossierCafMsa/TOPRESPDOS, CalculDroitRSAPersonne (TOPPERSDRODEVORSA, DDSOUDRODEV, DFSOUDRODEV),
# CaracteristiquesEmployabilite (REG, STATUEMPL, DDSTATUEMPL, DFSTATUEMPL); PrestationRSA under
# DonneesAdministratives, SituationDossierRSA/DroitOuvert/DTODRSA, simplified closure motives.

_VRSD_CLOSURE = {"PCG": "CCG", "ECH": "CMD", "MUT": "CMU", "RFD": "CFD", "RAU": "CFD", "RGD": "CAU"}


def to_vrsd_household(root, dtref: dt.date | None = None):
    """Rewrite a generated VRSB0801 household (lxml element, edited in place) in the VRSD0301 layout."""
    for p in root.iterchildren("Personne"):
        role = None
        for prest in list(p.iterchildren("Prestations")):
            nat = (prest.findtext("NATPREST") or "").strip().upper()
            r = (prest.findtext("ROLEPERS") or "").strip().upper()
            if nat == "RSA":
                role = r
            block = etree.SubElement(p, "FonctionPersonneRSA" if nat == "RSA" else "FonctionPersonnePFA")
            etree.SubElement(block, "ROLEPERS").text = "BEN" if r in ("DEM", "CJT") else r
            p.replace(prest, block)
        dossier = p.find("DossierCAF")
        if dossier is not None:
            dossier.tag = "DossierCafMsa"
            top = dossier.find("TOPRESPDOS")
            if top is not None:
                top.text = "1" if role == "DEM" else "0"
        calc = p.find("MontantCalculDroitRSAPersonne")
        if calc is not None:
            calc.tag = "CalculDroitRSAPersonne"
            sdd = (calc.findtext("TOPPERSDRODEVORSA") or "").strip() == "1"
            if sdd and calc.find("DDSOUDRODEV") is None:
                start = (dtref or dt.date(2025, 1, 31)) - dt.timedelta(days=900)
                etree.SubElement(calc, "DDSOUDRODEV").text = _d(start)
        elif role in ("DEM", "CJT"):
            calc = etree.SubElement(p, "CalculDroitRSAPersonne")
            etree.SubElement(calc, "TOPPERSDRODEVORSA").text = "0"
        for a in list(p.iterchildren("Activite")):
            emp = etree.Element("CaracteristiquesEmployabilite")
            for old, new in (("REG", "REG"), ("ACT", "STATUEMPL"), ("DDACT", "DDSTATUEMPL"),
                             ("DFACT", "DFSTATUEMPL")):
                v = a.findtext(old)
                if v is not None:
                    etree.SubElement(emp, new).text = v
            p.replace(a, emp)
    prest = root.find("PrestationRSA")
    admin = root.find("DonneesAdministratives")
    if prest is not None and admin is not None:
        root.remove(prest)
        admin.append(prest)
        situation = prest.find("SituationDossierRSA")
        if situation is not None:
            for old in list(situation.iterchildren("FinDroitMoisAnterieur")):
                old.tag = "FinDroit"
            for fin in situation.iterchildren("FinDroit"):
                motive = fin.find("MOTICLORSA")
                if motive is not None and motive.text:
                    motive.text = _VRSD_CLOSURE.get(motive.text.strip().upper(), "CAU")
            for susp in list(situation.iterchildren("SuspensionVersement")):
                susp.tag = "RessourcesTropElevees"
            state = (situation.findtext("EtatDossierRSA/ETATDOSRSA") or "").strip()
            if state in ("2", "3", "4") and situation.find("DroitOuvert") is None:
                opened = etree.SubElement(situation, "DroitOuvert")
                dtdem = root.findtext("IdentificationRSA/DemandeRSA/DTDEMRSA")
                etree.SubElement(opened, "DTODRSA").text = dtdem or _d(dtref or dt.date(2025, 1, 1))
    return root


def vrsd_header(header: str) -> str:
    """A generated header with the version of the exchange (IdentificationFlux/VERSIONFLUX)."""
    return header.replace("</IdentificationFlux>", "<VERSIONFLUX>VRSD0301</VERSIONFLUX></IdentificationFlux>")


def convert_to_vrsd(src: Path | str, out: Path | str) -> dict:
    """A VRSD0301 sample from a generated (or any VRSB0801) flow file: same households, new layout."""
    from imports.flux import FluxReader

    reader = FluxReader(Path(src))
    records = list(reader)
    h = reader.header
    count = 0
    with _open_out(out) as f:
        f.write(vrsd_header(_header(h.organism == "MSA", h.typeflux or "M", h.created_on or h.dtref,
                                    h.created_time or "02:10:00.0000", h.dtref or h.created_on)))
        for rec in records:
            root = etree.fromstring(rec.fragment)
            f.write(etree.tostring(to_vrsd_household(root, h.dtref), encoding="unicode"))
            f.write("\n")
            count += 1
        f.write(_footer(count))
    return {"path": str(out), "households": count, "version": "VRSD0301"}
