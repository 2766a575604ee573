"""Where a real-time VEE pass spends its time: one quarter-hour burst of ``--meters`` reads on a day
in progress (``--preload-slots`` quarter-hours loaded and validated the daily way), ingested
in-process (no HTTP/MQTT), then ``validate_pending`` under cProfile.

    .venv/bin/python benchmarks/profile_realtime_vee.py [--meters 10000] [--backend duckdb|postgres]
        [--preload-slots 40] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from pg import Postgres

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_realtime import DAY_START, deliveries  # noqa: E402

from smartmdm_pipelines.config import load_config  # noqa: E402
from smartmdm_pipelines.domain.calendar import holidays_for  # noqa: E402
from smartmdm_pipelines.services.ingestion import ingest_file  # noqa: E402
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending  # noqa: E402
from smartmdm_pipelines.services.vee import run_day  # noqa: E402
from smartmdm_pipelines.store.store import Store  # noqa: E402
from smartmdm_pipelines_tests.realtime.helpers import master_data  # noqa: E402


def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    meters = [f"E{i:07d}" for i in range(args.meters)]
    store = Store(url)
    master_data(store, meters)
    config = load_config(data_dir=workdir / "data")
    for s in range(0, args.preload_slots, 8):
        for i, (_, _, data) in enumerate(
            deliveries(meters, range(s, min(s + 8, args.preload_slots)), 100_000, 7)
        ):
            path = workdir / f"preload-{s}-{i}.csv"
            path.write_bytes(data)
            ingest_file(store, path, config, archive=False)
    if args.preload_slots:
        t = time.time()
        run_day(store, DAY_START.tz_convert("America/Chicago").date(), config)
        print(f"preload VEE day: {time.time() - t:.1f}s", file=sys.stderr)
    t = time.time()
    for _, _, body in deliveries(meters, args.preload_slots, 1000, 1):
        ingest_body(store, config, "he1", body, "http")
    print(f"ingest burst: {time.time() - t:.1f}s", file=sys.stderr)
    # as the service does when it starts (server/runtime.py): the holiday calendar's country module
    # is imported before the first pass, so the profile holds only the pass's own work
    year = DAY_START.year
    holidays_for(config.utility.holidays, year - 1, year + 1)
    prof = cProfile.Profile()
    t = time.time()
    prof.enable()
    out = validate_pending(store, config)
    prof.disable()
    print(
        f"validate_pending: {time.time() - t:.2f}s, {out.interval_reads} reads, "
        f"{out.validation_versions} validation + {out.estimation_versions} estimation versions",
        file=sys.stderr,
    )
    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(args.top)
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--backend", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--preload-slots", type=int, default=40)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "duckdb":
            run(args, f"duckdb:///{Path(tmp) / 'store.duckdb'}", Path(tmp))
        else:
            pg = Postgres(args.postgres)
            name, url = pg.database()
            try:
                run(args, url, Path(tmp))
            finally:
                pg.drop(name)
                pg.close()


if __name__ == "__main__":
    main()
