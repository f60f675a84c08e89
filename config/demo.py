"""`rsa demo`: the whole pipeline on a fresh embedded database with the bundled sample data.

Each step is a function `demo(ctx: DemoContext) -> dict` in a package's service module, called in
pipeline order when it exists. A step prints its own lines through ctx.echo.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config.runtime import Runtime, build_runtime
from config.settings import VAR, Settings

STEPS = (
    ("imports", "imports.service"),
    ("orientation", "orientation.service"),
    ("kiosque", "kiosque.service"),
    ("cases", "cases.service"),
    ("reports", "reports.service"),
)


@dataclass
class DemoContext:
    runtime: Runtime
    as_of: dt.date
    workdir: Path
    echo: Callable[[str], None]
    results: dict = field(default_factory=dict)


def run_demo(demo_url: str | None = None, keep: bool = False, as_of: dt.date | None = None,
             echo: Callable[[str], None] | None = None, workdir: Path | None = None) -> dict:
    from config.cli import init_database

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
        ctx = DemoContext(runtime=runtime, as_of=as_of or dt.date.today(), workdir=workdir, echo=echo)
        echo(f"== Démo RSA Haute-Garonne — base {demo_url}, date de référence {ctx.as_of}")
        init = init_database(runtime)
        ctx.results["init"] = init
        echo(f"[init] base migrée et données de référence chargées: {init['loaded']}")
        for key, module_name in STEPS:
            module = importlib.import_module(module_name) if _exists(module_name) else None
            step = getattr(module, "demo", None) if module else None
            if step is None:
                continue
            ctx.results[key] = step(ctx)
        echo("== Démo terminée.")
        return {"as_of": ctx.as_of.isoformat(), "database": demo_url, "steps": ctx.results}
    finally:
        runtime.dispose()


def _exists(module_name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False
