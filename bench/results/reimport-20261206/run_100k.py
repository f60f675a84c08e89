"""Run bench.import_flux for 100k only (dev helper): cwd = the code tree to measure."""
import os, sys, json
sys.path.insert(0, os.getcwd())
import bench.import_flux as m
from bench.harness import BenchContext, postgres_url
orig = m._files
m._files = lambda ctx, n: orig(ctx, 100_000)
pg = postgres_url()
ctx = BenchContext(backends=["sqlite", "postgresql"], pg_server_url=pg, quick=True)
rows = m.run(ctx)
for r in rows:
    if "floor" in r.metric and r.backend == "-": continue
    print(f"{r.backend:10} | {r.metric:70} | {r.value:9.2f} {r.unit:4} | {r.reference}")
