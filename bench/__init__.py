"""Benchmarks: `make bench` (python -m bench) runs every module of BENCHES and prints one table.

Each module exposes run(ctx: BenchContext) -> list[Row]. Tests check correctness; speed lives here.
"""
