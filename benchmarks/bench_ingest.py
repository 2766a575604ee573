"""Head-end ingestion benchmark: parse + load throughput (reads/s) per format and backend.

    .venv/bin/python benchmarks/bench_ingest.py [--meters 100000] [--formats generic_csv,cmep]
        [--backends duckdb,postgresql] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

For each head-end format the simulator writes (``simulate.writers.REGISTRY``) it generates one
day of ``--meters`` meters, then times ``services.ingestion.ingest_file`` on every head-end file
of that day (register, parse, summarise, bulk load in one transaction; no archive move) into a
fresh store per backend: a DuckDB file, and a temporary PostgreSQL database (skipped when the
server is unreachable). ``parse`` times ``adapters.registry.parse_file`` alone on the same files.
Reads are the interval reads, register reads and events loaded. Prints JSON: per format, the
day's totals per backend and for its largest file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

from pg import Postgres

from smartmdm_pipelines.adapters.registry import parse_file
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_file, sha256_of
from smartmdm_pipelines.simulate.generate import generate
from smartmdm_pipelines.simulate.spec import SimulationSpec
from smartmdm_pipelines.simulate.writers import REGISTRY
from smartmdm_pipelines.store.store import Store

DAY = dt.date(2024, 3, 12)  # an ordinary Tuesday (no DST change)
BACKENDS = ("duckdb", "postgresql")


def generate_day(fmt: str, meters: int, out: Path) -> tuple[list[Path], float]:
    """One day of ``meters`` meters in head-end format ``fmt``: the head-end files, largest first.
    NEM12 files hold whole NEM days (UTC+10): one utility day holds none, so NEM12 gets two utility
    days, which hold one whole NEM day (the partial ones are generic CSV)."""
    t0 = time.perf_counter()
    days = 2 if fmt == "nem12" else 1
    summary = generate(
        out, SimulationSpec(meters=meters, days=days, start=DAY, output_format=fmt, truth_values=False)
    )
    seconds = time.perf_counter() - t0
    files = [out / f for f in summary.files]
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True), seconds


def rate(reads: int, seconds: float) -> dict:
    return {
        "reads": reads,
        "seconds": round(seconds, 3),
        "reads_per_s": round(reads / seconds) if seconds else None,
    }


def totals(runs: list[dict]) -> dict:
    """The day's totals, per adapter (a format's day also holds generic CSV files for what the
    format cannot carry), and the largest file (the day's interval file)."""
    by_adapter: dict[str, list[dict]] = {}
    for run in runs:
        by_adapter.setdefault(run["format"], []).append(run)
    return {
        "day": rate(sum(r["reads"] for r in runs), sum(r["seconds"] for r in runs)),
        "by_adapter": {
            name: rate(sum(r["reads"] for r in group), sum(r["seconds"] for r in group))
            for name, group in sorted(by_adapter.items())
        },
        "largest_file": {
            "file": runs[0]["file"],
            "format": runs[0]["format"],
            **rate(runs[0]["reads"], runs[0]["seconds"]),
        }
        if runs
        else None,
    }


def distinct(files: list[Path]) -> list[Path]:
    """The files ingest parses: a re-delivery of identical bytes is a duplicate (not parsed)."""
    seen: set[str] = set()
    out = []
    for path in files:
        sha = sha256_of(path)
        if sha not in seen:
            seen.add(sha)
            out.append(path)
    return out


def bench_parse(files: list[Path], config) -> dict:
    runs = []
    for path in distinct(files):
        t0 = time.perf_counter()
        parsed = parse_file(path, config.source_for(path.name))
        seconds = time.perf_counter() - t0
        reads = len(parsed.intervals) + len(parsed.registers) + len(parsed.events)
        runs.append({"file": path.name, "format": parsed.format, "reads": reads, "seconds": seconds})
        del parsed
    return totals(runs)


def bench_ingest(url: str, files: list[Path], config) -> dict:
    store = Store(url)
    runs, rejected, statuses = [], 0, {}
    try:
        for path in files:
            t0 = time.perf_counter()
            summary = ingest_file(store, path, config, archive=False)
            seconds = time.perf_counter() - t0
            reads = summary.interval_reads + summary.register_reads + summary.events
            runs.append(
                {
                    "file": path.name,
                    "format": summary.format or "duplicate",
                    "reads": reads,
                    "seconds": seconds,
                }
            )
            rejected += summary.rejected_rows
            statuses[summary.status] = statuses.get(summary.status, 0) + 1
        loaded = store.count("raw_reads") + store.count("register_reads") + store.count("meter_events")
        assert loaded == sum(r["reads"] for r in runs), loaded
    finally:
        store.dispose()
    return {**totals(runs), "files": len(files), "statuses": statuses, "rejected_rows": rejected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--meters", type=int, default=100_000, help="meters of the simulated day (default 100000)"
    )
    parser.add_argument(
        "--formats",
        default=",".join(REGISTRY),
        help=f"comma-separated writer formats (default: {','.join(REGISTRY)})",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="duckdb, postgresql or both (default)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--keep", type=Path, help="generate into this folder and keep it (default: a temp dir)"
    )
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(formats) - set(REGISTRY)) + sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(
            f"unknown format(s)/backend(s) {unknown}; formats: {sorted(REGISTRY)}, backends: {BACKENDS}"
        )

    results: dict = {
        "meters": args.meters,
        "day": DAY.isoformat(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "formats": {},
    }
    postgres = Postgres(args.postgres) if "postgresql" in backends else None
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        root = args.keep or Path(tmp)
        for fmt in formats:
            files, gen_s = generate_day(fmt, args.meters, root / fmt)
            config = load_config(data_dir=Path(tmp) / f"data_{fmt}")
            out: dict = {
                "files": len(files),
                "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 1),
                "generate_s": round(gen_s, 1),
                "parse": bench_parse(files, config),
            }
            if "duckdb" in backends:
                out["duckdb"] = bench_ingest(f"duckdb:///{Path(tmp) / f'{fmt}.duckdb'}", files, config)
            if postgres is not None:
                if postgres.problem:
                    out["postgresql"] = postgres.problem
                else:
                    name, url = postgres.database()
                    try:
                        out["postgresql"] = bench_ingest(url, files, config)
                    finally:
                        postgres.drop(name)
            results["formats"][fmt] = out
            print(json.dumps({fmt: out}), flush=True)  # progress, one line per format
    if postgres is not None:
        postgres.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
