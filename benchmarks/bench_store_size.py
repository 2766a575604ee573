"""PostgreSQL store size per read: the measured basis of the database sizing in docs/scaling.md.

    .venv/bin/python benchmarks/bench_store_size.py [--meters 2000] [--days 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--reads-per-day 110000000]
        [--retention-years 3] [--json]

Generates ``--days`` operating days of ``--meters`` meters in the format mix, loads them into a
fresh PostgreSQL database through the production path (CIS sync, ``ingest_path`` on every file,
``run_day`` per day in order), runs ``VACUUM ANALYZE``, then reads the on-disk size of every
store table with its indexes and TOAST (summed over partitions when a table is partitioned) and
divides the large ones by their rows. From bytes per read it extrapolates a utility of
``--reads-per-day`` reads a day kept ``--retention-years``: daily growth and the total.

The figures are the simulator's: the same fault mix (gaps, estimates, re-deliveries) as the other
benchmarks, so a day writes somewhat more than one interval version per read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from pg import Postgres

START = dt.date(2024, 3, 11)  # Monday 11 .. the days after (no DST change in the default 3 days)
PER_READ = (
    "raw_reads",
    "intervals",
    "usage_hourly",
    "daily_usage",
    "outbox",
    "headend_files",
    "rejected_rows",
)


def table_sizes(store) -> dict[str, dict]:
    """Bytes (heap + indexes + TOAST, all partitions) and rows of every table of the store."""
    # pg_partition_tree lists a partitioned table's tree and nothing for an ordinary table
    frame = store.read_frame(
        "SELECT c.relname AS name, CASE WHEN c.relkind = 'p' THEN "
        "(SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p) "
        "ELSE pg_total_relation_size(c.oid) END AS bytes, CASE WHEN c.relkind = 'p' THEN "
        "(SELECT coalesce(sum(pg_indexes_size(p.relid)), 0) FROM pg_partition_tree(c.oid) p) "
        "ELSE pg_indexes_size(c.oid) END AS index_bytes "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    )
    sizes = {}
    for row in frame.itertuples(index=False):
        rows = int(store.read_frame(f'SELECT count(*) AS n FROM "{row.name}"')["n"].iloc[0])
        sizes[row.name] = {"bytes": int(row.bytes), "index_bytes": int(row.index_bytes), "rows": rows}
    return sizes


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from smartmdm_pipelines.config import load_config
    from smartmdm_pipelines.services.cis_sync import sync_master_data
    from smartmdm_pipelines.services.ingestion import ingest_path
    from smartmdm_pipelines.services.vee import run_day
    from smartmdm_pipelines.simulate import SimulationSpec, generate
    from smartmdm_pipelines.store.store import Store

    generate(
        workdir / "sim",
        SimulationSpec(
            meters=args.meters, start=START, days=args.days, seed=7, formats="mix", truth_values=False
        ),
    )
    postgres = Postgres(args.postgres)
    if postgres.problem:
        raise SystemExit(postgres.problem)
    name, url = postgres.database()
    try:
        cfg = load_config(data_dir=workdir / "data")
        store = Store(url)
        sync_master_data(store, workdir / "sim" / "cis")
        cfg.landing_dir.mkdir(parents=True, exist_ok=True)
        for path in (workdir / "sim" / "headend").iterdir():
            path.rename(cfg.landing_dir / path.name)
        t0 = time.perf_counter()
        for path in sorted(cfg.landing_dir.iterdir()):
            ingest_path(store, path, cfg)
        for offset in range(args.days):
            run_day(store, START + dt.timedelta(days=offset), cfg)
        seconds = time.perf_counter() - t0
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        sizes = table_sizes(store)
        store.dispose()
    finally:
        postgres.drop(name)
        postgres.close()
    reads = sizes["raw_reads"]["rows"]
    per_read = {t: round(sizes[t]["bytes"] / reads, 1) for t in PER_READ if t in sizes}
    total = sum(s["bytes"] for s in sizes.values())
    per_day_bytes = total / reads * args.reads_per_day
    return {
        "meters": args.meters,
        "days": args.days,
        "reads": reads,
        "interval_versions": sizes["intervals"]["rows"],
        "load_seconds": round(seconds, 1),
        "store_bytes": total,
        "bytes_per_read": round(total / reads, 1),
        "bytes_per_read_by_table": per_read,
        "index_share": round(sum(s["index_bytes"] for s in sizes.values()) / total, 3),
        "tables": sizes,
        "extrapolated": {
            "reads_per_day": args.reads_per_day,
            "gb_per_day": round(per_day_bytes / 1e9, 1),
            "retention_years": args.retention_years,
            "tb_total": round(per_day_bytes * 365 * args.retention_years / 1e12, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reads-per-day", type=int, default=110_000_000)
    parser.add_argument("--retention-years", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smartmdm_size_") as tmp:
        result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['reads']:,} reads, {result['interval_versions']:,} interval versions, {result['days']} days"
    )
    print(f"store: {result['store_bytes'] / 1e6:,.1f} MB = {result['bytes_per_read']} bytes per read")
    for table, value in result["bytes_per_read_by_table"].items():
        print(f"  {table:<14} {value:>7} bytes per read")
    print(f"indexes: {result['index_share']:.0%} of the store")
    ext = result["extrapolated"]
    print(
        f"{ext['reads_per_day']:,} reads a day: {ext['gb_per_day']} GB a day, "
        f"{ext['tb_total']} TB over {ext['retention_years']} years"
    )


if __name__ == "__main__":
    main()
