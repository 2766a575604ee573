"""VEE throughput: validation + estimation of one operating day of 15-minute data.

    .venv/bin/python benchmarks/bench_vee.py [--meters 100000] [--backends duckdb,postgresql]

Generates a synthetic utility day (``smartmdm_pipelines.simulate``), loads it through the real
ingestion path, then measures per backend:
- domain: ``validate_day`` + ``estimate_day`` on frames already in memory (reads/s);
- end to end: ``services.vee.run_day`` from raw reads in the store to current intervals written
  (first run: every interval gets a version) and a re-run with unchanged data (no new versions).
Prints JSON. PostgreSQL is skipped when 127.0.0.1:5432 is unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from pg import Postgres

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.vee.estimate import estimate_day
from smartmdm_pipelines.domain.vee.validation import validate_day
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import load_history, load_inputs, run_day
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

DAY = dt.date(2024, 3, 12)


def bench(url: str, sim: Path, data: Path) -> dict:
    cfg = load_config(data_dir=data)
    store = Store(url)
    sync_master_data(store, sim / "cis")
    for path in sorted((sim / "headend").iterdir()):
        ingest_file(store, path, cfg, archive=False)
    inputs = load_inputs(store, DAY, cfg)
    t0 = time.perf_counter()
    validated = validate_day(inputs)
    todo = validated.intervals.loc[
        validated.intervals["status"].isin(["suspect", "missing"]), ["meter_id", "channel"]
    ]
    inputs.history = load_history(store, DAY, todo.drop_duplicates(), 5)
    t1 = time.perf_counter()
    estimated = estimate_day(validated, inputs)
    domain = (time.perf_counter() - t1) + (t1 - t0)
    n = estimated.stats["expected_intervals"]
    t0 = time.perf_counter()
    first = run_day(store, DAY, cfg)
    e2e = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = run_day(store, DAY, cfg)
    rerun = time.perf_counter() - t0
    store.dispose()
    return {
        "intervals": n,
        "domain_reads_per_s": round(n / domain),
        "end_to_end_reads_per_s": round(n / e2e),
        "end_to_end_s": round(e2e, 1),
        "rerun_reads_per_s": round(n / rerun),
        "versions_first_run": first.validation_versions + first.estimation_versions,
        "versions_rerun": again.validation_versions + again.estimation_versions,
        "estimated": estimated.stats["estimated_intervals"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results: dict = {"meters": args.meters}
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp) / "sim"
        generate(sim, SimulationSpec(meters=args.meters, start=DAY, days=1, seed=7))
        if "duckdb" in args.backends:
            results["duckdb"] = bench(f"duckdb:///{Path(tmp) / 'vee.duckdb'}", sim, Path(tmp) / "d")
        if "postgresql" in args.backends:
            postgres = Postgres(args.postgres)
            if postgres.problem:
                results["postgresql"] = postgres.problem
            else:
                name, url = postgres.database()
                try:
                    results["postgresql"] = bench(url, sim, Path(tmp) / "p")
                finally:
                    postgres.drop(name)
                    postgres.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
