"""bench.import_flux's run() on the 100k files only (both backends), from the code tree in the
current directory: the rows of bench/results/reimport-20261206/*.txt (they say "2k": the quick size
mapped to the 100k files)."""

import os
import sys

sys.path.insert(0, os.getcwd())

import bench.import_flux as m  # noqa: E402
from bench.harness import BenchContext, postgres_url  # noqa: E402

orig = m._files
m._files = lambda ctx, n: orig(ctx, 100_000)
ctx = BenchContext(backends=["sqlite", "postgresql"], pg_server_url=postgres_url(), quick=True)
for r in m.run(ctx):
    if "floor" in r.metric and r.backend == "-":
        continue
    print(f"{r.backend:10} | {r.metric:70} | {r.value:9.2f} {r.unit:4} | {r.reference}")
