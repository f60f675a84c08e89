"""`rsa demo`: the whole pipeline on a fresh embedded database with the bundled sample data.

Each package provides its step in `<package>/demo.py`: a function `demo(ctx: DemoContext) -> dict`
that prints its own lines through ctx.echo, and `ORDER`, its place in a working day (files in,
decisions, invitations, follow-up, figures). Steps are found through config.modules.PACKAGES, the
one list of packages. Until every package has moved its step out of its service module, a step is
also found as `<package>.service.demo` (placed by LEGACY_ORDER).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config import clock
from config.bootstrap import init_database
from config.modules import PACKAGES, optional_module
from config.runtime import Runtime, build_runtime
from config.settings import VAR, Settings

# The weeks replayed (below) come after the files are in and before the first decisions.
REPLAY_ORDER = 20


@dataclass
class DemoContext:
    runtime: Runtime
    as_of: dt.date
    workdir: Path
    echo: Callable[[str], None]
    results: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    key: str
    order: int
    run: Callable[[DemoContext], dict]


def demo_steps() -> list[DemoStep]:
    """Every package's demo step (`<package>/demo.py`: `demo(ctx)` and its `ORDER`), plus the replay
    of the past weeks, in pipeline order."""
    steps = [DemoStep("replay", REPLAY_ORDER, _replay_weeks)]
    for package in PACKAGES:
        module = optional_module(f"{package}.demo")
        step = getattr(module, "demo", None) if module else None
        if step is not None:
            steps.append(DemoStep(package, module.ORDER, step))
    return sorted(steps, key=lambda st: st.order)


def run_demo(demo_url: str | None = None, keep: bool = False, as_of: dt.date | None = None,
             echo: Callable[[str], None] | None = None, workdir: Path | None = None) -> dict:
    echo = echo or (lambda _line: None)
    workdir = workdir or (VAR / "demo")
    workdir.mkdir(parents=True, exist_ok=True)
    if demo_url is None:
        db_path = workdir / "demo.sqlite3"
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        demo_url = f"sqlite:///{db_path}"
    settings = Settings.from_env().with_(
        database_url=demo_url,
        inbox=str(workdir / "inbox"),
        archive=str(workdir / "archive"),
        quarantine=str(workdir / "quarantine"),
        reports_dir=str(workdir / "reports"),
        outbox_dir=str(workdir / "outbox"),
    )
    runtime = build_runtime(settings)
    try:
        ctx = DemoContext(runtime=runtime, as_of=as_of or clock.today(), workdir=workdir, echo=echo)
        echo(f"== Démo RSA Haute-Garonne — base {demo_url}, date de référence {ctx.as_of}")
        init = init_database(runtime)
        ctx.results["init"] = init
        echo(f"[init] base migrée et données de référence chargées: {init['loaded']}")
        for step in demo_steps():
            ctx.results[step.key] = step.run(ctx)
        echo("== Démo terminée.")
        return {"as_of": ctx.as_of.isoformat(), "database": demo_url, "steps": ctx.results}
    finally:
        runtime.dispose()


def _replay_weeks(ctx: DemoContext, validation_delay_days: int = 4, months: int = 6) -> dict:
    """Replay the weeks the flows cover as if the product had been running (clearly a simulation):
    every Monday, attendance of last week's kiosques is recorded (about half of the invited come and
    choose their referent, the others are absent or excused), the orientation job runs, an MDS agent
    validates the proposals older than a few days, and the kiosque planner invites. Without it, the
    demo would orient months of entrants on a single day and show a backlog, not the product."""
    from sqlalchemy import func, select

    from cases.models import Path
    from kiosque import service as kiosque
    from kiosque.models import Invitation, KiosqueSession
    from orientation import service as orientation

    horizon = ctx.as_of - dt.timedelta(days=months * 30)
    with ctx.runtime.session() as s:
        first = s.scalar(select(func.min(Path.clock_start)).where(Path.clock_start >= horizon))
    if first is None:
        return {"weeks": 0}
    day = first + dt.timedelta(days=(7 - first.weekday()) % 7 or 7)
    with ctx.runtime.session() as s:
        kiosque.ensure_default_templates(s)
        kiosque.generate_sessions(s, day, ctx.as_of + dt.timedelta(weeks=6))
    stats = {"weeks": 0, "auto_validated": 0, "agent_validated": 0, "invited": 0, "present": 0,
             "absent": 0, "excused": 0, "first_appointments": 0, "contracts": 0}
    choices = ("actipro", "pole_emploi", "mds", "actipro", "ati")
    while day < ctx.as_of - dt.timedelta(days=7):
        with ctx.runtime.session() as s:
            held = s.scalars(select(Invitation).join(KiosqueSession, KiosqueSession.id == Invitation.session_id)
                             .where(Invitation.status == "pending",
                                    KiosqueSession.starts_at < dt.datetime.combine(day, dt.time()))
                             .order_by(Invitation.id)).all()
            for inv in held:
                roll = inv.id % 10
                if roll < 5:
                    kiosque.record_attendance(s, inv.id, "present", referent_type=choices[inv.id % len(choices)])
                    stats["present"] += 1
                elif roll < 8:
                    kiosque.record_attendance(s, inv.id, "absent")
                    stats["absent"] += 1
                else:
                    kiosque.record_attendance(s, inv.id, "excused")
                    stats["excused"] += 1
            stats["auto_validated"] += orientation.run(s, day)["validated"]
            due = day - dt.timedelta(days=validation_delay_days)
            ids = [o["id"] for o in orientation.queue(s, limit=100000)["items"] if o["decided_on"] <= due]
            if ids:
                stats["agent_validated"] += len(orientation.validate(s, ids, None, day)["validated"])
            stats["invited"] += kiosque.plan(s, day).invited
            _referents_at_work(s, day, stats)
        stats["weeks"] += 1
        day += dt.timedelta(days=7)
    ctx.echo(f"[rejeu] simulation de {stats['weeks']} semaines depuis le {first}: chaque lundi, orientation "
             f"({stats['auto_validated']} validées d'office), validation par un agent MDS "
             f"({stats['agent_validated']}), kiosques ({stats['invited']} invitations; {stats['present']} présents, "
             f"{stats['absent']} absents, {stats['excused']} excusés), référents: "
             f"{stats['first_appointments']} premiers rendez-vous, {stats['contracts']} contrats signés")
    return stats


def _referents_at_work(s, day: dt.date, stats: dict) -> None:
    """The referents' side of the simulation, from the orientations validated two and four weeks
    earlier: most people are seen within 15 days and sign their contract within the month; one in
    seven is seen late and one in five has not signed yet (they show up in the follow-up lists)."""
    from sqlalchemy import select

    from cases.models import Appointment, Contract
    from cases.service import record_appointment, record_contract
    from orientation.models import Orientation

    week = dt.timedelta(days=7)
    seen = select(Appointment.person_id)
    for o in s.scalars(select(Orientation).where(Orientation.status == "validated",
                                                 Orientation.validated_on >= day - 2 * week,
                                                 Orientation.validated_on < day - week,
                                                 Orientation.person_id.not_in(seen))).all():
        delay = 20 if o.id % 7 == 0 else 5 + o.id % 9
        # an appointment is honoured only once its time has come (write integrity): none after `day`
        at = min(dt.datetime.combine(o.validated_on + dt.timedelta(days=delay), dt.time(10, 0)),
                 dt.datetime.combine(day, dt.time(9, 0)))
        record_appointment(s, o.person_id, at, "honoured", kind="first", structure_id=o.structure_id,
                           source="agent", as_of=day)
        stats["first_appointments"] += 1
    signed = select(Contract.person_id).where(Contract.status == "signed")
    for o in s.scalars(select(Orientation).where(Orientation.status == "validated",
                                                 Orientation.validated_on >= day - 4 * week,
                                                 Orientation.validated_on < day - 3 * week,
                                                 Orientation.person_id.not_in(signed))).all():
        if o.id % 5:
            record_contract(s, o.person_id, min(o.validated_on + dt.timedelta(days=14 + o.id % 10), day),
                            source="agent", as_of=day)
            stats["contracts"] += 1
