"""A day where 30 % of the meters send garbage, against a clean day: the valid meters' reads/s
through ingest + VEE, measured in the same run.

    .venv/bin/python benchmarks/bench_garbage_day.py [--meters 10000] [--share 0.3]
        [--meters-per-file 1000] [--backend duckdb|postgresql]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Both days are written by ``simulate.garbage_day.write_day`` with the same seed: on the garbage
day a share of the meters have 30 % of their rows spoiled (too few fields, not a number, bad
timestamp, unknown unit, negative value; half of the files holding garbage are cut off mid-line).
Each day is loaded into a fresh store (master data, ``ingest_file`` per file, ``run_day``);
``valid_reads_per_s`` counts only the reads of the meters that are valid on the garbage day, so
the two days are compared on the same work. Prints JSON with ``slowdown`` = clean ÷ garbage
valid reads/s (the aim of issue 15: ≤ 2).
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
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.simulate.garbage_day import master_data, write_day
from smartmdm_pipelines.store.store import Store

DAY = dt.date(2024, 3, 12)


def one_day(store: Store, day, data_dir: Path, valid_reads: int) -> dict:
    config = load_config(data_dir=data_dir)
    sync_master_data(store, master_data(day.meters), effective_date=dt.date(2024, 1, 1))
    t0 = time.perf_counter()
    rejected = 0
    for path in day.files:
        rejected += ingest_file(store, path, config, archive=False).rejected_rows
    t1 = time.perf_counter()
    run_day(store, DAY, config)
    t2 = time.perf_counter()
    return {
        "ingest_seconds": round(t1 - t0, 3),
        "vee_seconds": round(t2 - t1, 3),
        "seconds": round(t2 - t0, 3),
        "rejected_rows": rejected,
        "valid_reads": valid_reads,
        "valid_reads_per_s": round(valid_reads / (t2 - t0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.3, help="share of meters sending garbage")
    parser.add_argument("--meters-per-file", type=int, default=1000)
    parser.add_argument("--backend", choices=("duckdb", "postgresql"), default="duckdb")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    out: dict = {"meters": args.meters, "garbage_share": args.share, "backend": args.backend}
    with tempfile.TemporaryDirectory(prefix="bench-garbage-") as tmp:
        root = Path(tmp)
        garbage = write_day(
            root / "garbage", args.meters, DAY, garbage_share=args.share, meters_per_file=args.meters_per_file
        )
        clean = write_day(
            root / "clean", args.meters, DAY, garbage_share=0.0, meters_per_file=args.meters_per_file
        )
        valid_reads = len(garbage.valid_meters) * 96
        out["bad_rows_written"] = len(garbage.bad)
        postgres = Postgres(args.postgres) if args.backend == "postgresql" else None
        for name, day in (("clean", clean), ("garbage", garbage)):
            if postgres is not None:
                if postgres.problem:
                    raise SystemExit(postgres.problem)
                db, url = postgres.database()
            else:
                db, url = None, f"duckdb:///{root / f'{name}.duckdb'}"
            store = Store(url)
            try:
                out[name] = one_day(store, day, root / f"data-{name}", valid_reads)
            finally:
                store.dispose()
                if db:
                    postgres.drop(db)
        if postgres is not None:
            postgres.close()
    out["slowdown"] = round(out["clean"]["valid_reads_per_s"] / out["garbage"]["valid_reads_per_s"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
