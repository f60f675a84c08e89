"""What every benchmark module shares: the context (backends, scale), rows, timing, the table."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    bench: str
    backend: str  # sqlite | postgresql | -
    metric: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    # The floor or reference the figure is read against (issue 21): "raw parse 4.7 s + bulk write 9 s",
    # "parse alone", "p95 of the same endpoint alone"… Empty when the line is itself the reference.
    reference: str = ""


@dataclass
class BenchContext:
    backends: list[str]  # "sqlite" and, when a server is reachable, "postgresql"
    pg_server_url: str | None
    large: bool = False
    quick: bool = False
    repeat: int = 3
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rsa-bench-")))

    def fresh_database(self, backend: str) -> tuple[str, Callable[[], None]]:
        """A new empty database URL and its cleanup."""
        if backend == "sqlite":
            path = self.workdir / f"{uuid.uuid4().hex[:8]}.sqlite3"
            return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in path.parent.glob(path.name + "*")]
        base = make_url(self.pg_server_url).set(drivername="postgresql+psycopg")
        name = f"rsa_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def cleanup():
            import time

            for attempt in range(10):  # a background worker may still hold the database a moment
                try:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    break
                except Exception:  # noqa: BLE001 - retried, then raised
                    if attempt == 9:
                        raise
                    time.sleep(3)
            admin.dispose()

        return base.set(database=name).render_as_string(hide_password=False), cleanup


def median_time(func: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def postgres_url() -> str | None:
    try:
        out = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True,
                             timeout=600, check=True)
        return out.stdout.strip().splitlines()[-1]
    except (subprocess.SubprocessError, OSError, IndexError):
        return None


def print_table(rows: list[Row]) -> None:
    headers = ("bench", "backend", "metric", "value", "unit", "target", "ok", "floor / reference")
    cells = [[r.bench, r.backend, r.metric, f"{r.value:,.2f}", r.unit, r.target,
              "" if r.ok is None else ("yes" if r.ok else "NO"), r.reference] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.rjust(w) if i == 3 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True))))


def write_json(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")
