"""Store bulk-path benchmark: bulk insert and atomic partition replace, DuckDB and PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py [--rows 10000000] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Prints rows/s per backend and operation as JSON. PostgreSQL is skipped when unreachable.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pg import Postgres

from smartmdm_pipelines.store.store import Store


def frame(rows: int, meters: int = 100_000) -> pd.DataFrame:
    per_meter = max(rows // meters, 1)
    meter = np.repeat(np.arange(meters), per_meter)[:rows]
    ends = pd.Timestamp("2024-03-10T06:15:00Z") + pd.to_timedelta(
        np.tile(np.arange(per_meter), meters)[:rows] * 900, "s"
    )
    return pd.DataFrame(
        {
            "file_id": 1,
            "line": np.arange(rows, dtype=np.int64) + 2,
            "meter_id": pd.Series(np.char.add("E", meter.astype(str))),
            "channel": "kwh_delivered",
            "interval_end": ends,
            "interval_seconds": np.int32(900),
            "value": np.random.default_rng(1).gamma(2.0, 0.2, rows).round(3),
            "unit": "kWh",
            "source_unit": "kWh",
            "source_quality": "",
            "read_day": pd.Timestamp("2024-03-10"),
        }
    )


def bench(url: str, data: pd.DataFrame) -> dict:
    store = Store(url)
    t0 = time.perf_counter()
    store.bulk_insert("raw_reads", data)
    insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.replace_partition("raw_reads", {"read_day": pd.Timestamp("2024-03-10").date()}, data)
    replace = time.perf_counter() - t0
    assert store.count("raw_reads") == len(data)
    store.dispose()
    return {
        "rows": len(data),
        "bulk_insert_rows_per_s": round(len(data) / insert),
        "replace_partition_rows_per_s": round(len(data) / replace),
        "bulk_insert_s": round(insert, 2),
        "replace_partition_s": round(replace, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=9_600_000, help="default: a 100,000-meter 15-minute day")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    data = frame(args.rows)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["duckdb"] = bench(f"duckdb:///{Path(tmp) / 'bench.duckdb'}", data)
    postgres = Postgres(args.postgres)
    if postgres.problem:
        results["postgresql"] = postgres.problem
    else:
        name, url = postgres.database()
        try:
            results["postgresql"] = bench(url, data)
        finally:
            postgres.drop(name)
            postgres.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
