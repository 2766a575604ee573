"""End to end: one day of N meters, from files in landing to current validated + estimated intervals.

    .venv/bin/python benchmarks/bench_e2e.py --meters 100000 --backend duckdb|postgresql [--json]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--keep DIR]
        [--chunk-meters N] [--processes P]

1. Generates one operating day of ``--meters`` meters in the format mix (``formats="mix"``: CMEP,
   NEM12, BEACON-style CSV, Green Button and generic CSV head-ends) and its CIS master data.
   Generation is not timed.
2. In a fresh child process (so the peak RSS is the production path's, not the generator's): loads
   the CIS master data (not timed: it is not per-day work), then times the production path —
   ``services.ingestion.ingest_path`` on every file in landing (parse, load, archive) and
   ``services.vee.run_day`` for the day — and reads its own peak RSS. With ``--chunk-meters N``
   the day's VEE is ``services.vee_chunks.run_day_chunked`` (chunks of N meters) on
   ``--processes P`` processes (the workers' peak RSS is reported too: ``worker_peak_rss_bytes``).
3. In the same child, after the path: a bare bulk load of the same interval reads (the rows
   ``raw_reads`` now holds) into an indexed table of a fresh database of the same backend: PostgreSQL
   ``COPY … FROM STDIN`` (CSV), DuckDB an insert of the Arrow table. That rate is the floor a
   store that writes each read at least once can be measured against.

Prints ``{"reads": R, "seconds": S, "reads_per_s": R/S, "peak_rss_bytes": M, "copy_rows_per_s": C,
"ratio_to_copy": (R/S)/C}`` plus the parts (ingest and VEE seconds, files, intervals, load
average, ``vee_cpu_s``: the VEE part's CPU seconds, ``vee_peak_rss_bytes``: the peak of the VEE part alone, Linux ``VmHWM`` reset after ingest;
``output_digest``: a digest of the stored versions, exceptions and daily usage, to check that two
versions of the code store the same day). Reads R are the interval reads loaded from the day's files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from pg import Postgres

DAY = dt.date(2024, 3, 12)  # an ordinary Tuesday (no DST change)
# raw_reads' columns, with its identity as the primary key: the bare load writes what ingestion writes
COLUMNS = (
    "file_id, line, meter_id, channel, interval_end, interval_seconds, value, unit, source_unit,"
    " source_quality, read_day"
)
COPY_DDL = (
    "CREATE TABLE copy_target (file_id BIGINT NOT NULL, line BIGINT NOT NULL, meter_id TEXT NOT NULL,"
    " channel TEXT NOT NULL, interval_end TIMESTAMPTZ NOT NULL, interval_seconds INTEGER NOT NULL,"
    " value DOUBLE PRECISION, unit TEXT NOT NULL, source_unit TEXT NOT NULL, source_quality TEXT,"
    " read_day DATE NOT NULL, PRIMARY KEY (file_id, line, channel, interval_end))"
)


def generate_day(meters: int, root: Path) -> float:
    from smartmdm_pipelines.simulate import SimulationSpec, generate

    t0 = time.perf_counter()
    generate(
        root / "sim",
        SimulationSpec(meters=meters, start=DAY, days=1, seed=7, formats="mix", truth_values=False),
    )
    return time.perf_counter() - t0


def _reset_peak_rss() -> None:
    """Linux: restart this process's peak RSS (VmHWM) from its current RSS."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_since_reset() -> int | None:
    """VmHWM (bytes) of this process: its peak RSS since the last reset (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished children: on a shared
    machine a steadier figure than the wall clock (DuckDB's threads count in it)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_path(url: str, root: Path, chunk_meters: int = 0, processes: int = 1) -> dict:
    """The measured production path (in this process): ingest every landed file, VEE the day."""
    from smartmdm_pipelines.config import load_config
    from smartmdm_pipelines.services.cis_sync import sync_master_data
    from smartmdm_pipelines.services.ingestion import ingest_path
    from smartmdm_pipelines.services.vee import run_day
    from smartmdm_pipelines.store.intervals import current_intervals_sql
    from smartmdm_pipelines.store.store import Store

    cfg = load_config(data_dir=root / "data")
    store = Store(url)
    sync_master_data(store, root / "sim" / "cis")
    landing = cfg.landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    for path in (root / "sim" / "headend").iterdir():
        path.rename(landing / path.name)
    files = sorted(landing.iterdir())
    t0 = time.perf_counter()
    statuses: dict[str, int] = {}
    for path in files:
        for summary in ingest_path(store, path, cfg):
            statuses[summary.status] = statuses.get(summary.status, 0) + 1
    t1 = time.perf_counter()
    _reset_peak_rss()  # from here the peak is VEE's (vee_peak_rss_bytes)
    c1 = _cpu_seconds()
    if chunk_meters:
        from smartmdm_pipelines.services.vee_chunks import run_day_chunked

        run = run_day_chunked(store, DAY, cfg, chunk_meters=chunk_meters, processes=processes)
    else:
        run = run_day(store, DAY, cfg)
    t2 = time.perf_counter()
    c2 = _cpu_seconds()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    vee_rss = _peak_rss_since_reset()
    reads = store.count("raw_reads")
    current = int(store.read_frame(f"SELECT count(*) AS n FROM ({current_intervals_sql()}) c")["n"].iloc[0])
    digest = output_digest(store)
    rows = pa.Table.from_pandas(
        store.read_frame(f"SELECT {COLUMNS} FROM raw_reads", via_arrow=True), preserve_index=False
    )
    store.dispose()
    return {
        "reads": reads,
        "seconds": round(t2 - t0, 3),
        "reads_per_s": round(reads / (t2 - t0)),
        "peak_rss_bytes": rss,
        "worker_peak_rss_bytes": workers_rss,
        "vee_peak_rss_bytes": vee_rss,
        "ingest_s": round(t1 - t0, 3),
        "vee_s": round(t2 - t1, 3),
        "vee_cpu_s": round(c2 - c1, 3),
        "files": len(files),
        "statuses": statuses,
        "current_intervals": current,
        "versions_written": run.validation_versions + run.estimation_versions,
        "output_digest": digest,
        "_rows": rows,
    }


def output_digest(store) -> str:
    """A digest of what VEE stored, for a same-output check between two versions of the code: every
    interval version (values, status, flags, methods, qualities, sources, actor; not its creation
    instant) and every exception (id, rule, detail, period, status). Floats rounded to 9 decimals
    (a class-profile estimate may differ in its last bits between chunked and unchunked runs)."""
    import hashlib

    import pandas as pd

    sha = hashlib.sha256()
    for sql in (
        "SELECT meter_id, channel, interval_end, version, value, status, failed_rules, "
        "estimation_method, espi_quality, iec_quality, source_file_id, source_line, created_by, unit "
        "FROM intervals ORDER BY meter_id, channel, interval_end, version",
        "SELECT exception_id, meter_id, channel, rule, severity, intervals, detail, period_start, period_end, "
        "status FROM vee_exceptions ORDER BY exception_id",
        "SELECT meter_id, channel, read_day, total, intervals, valid_intervals, "
        "estimated_intervals FROM daily_usage ORDER BY meter_id, channel, read_day",
    ):
        frame = store.read_frame(sql, via_arrow=True)
        for column in ("value", "total"):  # rounded here: PostgreSQL has no round(double, digits)
            if column in frame:
                frame[column] = frame[column].astype("float64").round(9)
        sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()[:16]


def copy_rate(backend: str, rows, root: Path, postgres_admin: str) -> float:
    """Rows/s of a bare bulk load of ``rows`` into an indexed table of a fresh database."""
    if backend == "duckdb":
        con = duckdb.connect(str(root / "copy.duckdb"))
        con.execute(COPY_DDL)
        t0 = time.perf_counter()
        con.execute("INSERT INTO copy_target SELECT * FROM rows")
        seconds = time.perf_counter() - t0
        con.close()
        return rows.num_rows / seconds
    postgres = Postgres(postgres_admin)
    name, url = postgres.database()
    try:
        import psycopg2

        conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
        with conn, conn.cursor() as cur:
            cur.execute(COPY_DDL)
        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        t0 = time.perf_counter()
        with conn, conn.cursor() as cur:
            buffer.seek(0)
            cur.copy_expert("COPY copy_target FROM STDIN WITH (FORMAT csv)", buffer)
        seconds = time.perf_counter() - t0
        conn.close()
    finally:
        postgres.drop(name)
        postgres.close()
    return rows.num_rows / seconds


def child(args: argparse.Namespace) -> None:
    root = Path(args.root)
    url = args.url
    result = run_path(url, root, args.chunk_meters, args.processes)
    rows = result.pop("_rows")
    copy = copy_rate(args.backend, rows, root, args.postgres)
    result["copy_rows_per_s"] = round(copy)
    result["ratio_to_copy"] = round(result["reads_per_s"] / copy, 3)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--backend", choices=["duckdb", "postgresql"], default="duckdb")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument(
        "--chunk-meters", type=int, default=0, help="VEE the day in chunks of this many meters (0: one frame)"
    )
    parser.add_argument("--processes", type=int, default=1, help="processes of a chunked VEE day")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        gen_s = generate_day(args.meters, root)
        postgres = None
        if args.backend == "duckdb":
            url = f"duckdb:///{root / 'store.duckdb'}"
        else:
            postgres = Postgres(args.postgres)
            if postgres.problem:
                sys.exit(f"error: {postgres.problem}")
            name, url = postgres.database()
        try:
            load = [round(x, 2) for x in os.getloadavg()]
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--backend",
                    args.backend,
                    "--root",
                    str(root),
                    "--url",
                    url,
                    "--postgres",
                    args.postgres,
                    "--chunk-meters",
                    str(args.chunk_meters),
                    "--processes",
                    str(args.processes),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as exc:
            sys.exit(f"error: the measured child failed:\n{exc.stderr[-4000:]}")
        finally:
            if postgres is not None:
                postgres.drop(name)
                postgres.close()
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(
            {
                "meters": args.meters,
                "chunk_meters": args.chunk_meters,
                "processes": args.processes,
                "backend": args.backend,
                "generate_s": round(gen_s, 1),
                "load_average_at_start": load,
                "cpus": os.cpu_count(),
            }
        )
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
