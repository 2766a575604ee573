"""YAML-mapped register export benchmark: parse, derivation, and a VEE day with derived intervals.

    .venv/bin/python benchmarks/bench_register_intervals.py [--meters 20000] [--days 7]
        [--backends duckdb,postgresql] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Writes ``--days`` days of about-hourly cumulative water registers (drifting seconds, litres, naive
Madrid time, the shape of a real AMR export: ``user key;datetime;meter reading;diff``) for
``--meters`` meters, then times: ``parse`` (``adapters.registry.parse_file`` through the YAML
mapping), ``derive`` (``domain.register_intervals.derive_intervals`` on every read), and per
backend ``ingest`` (``services.ingestion.ingest_file``) and ``vee_day`` (``services.vee.run_day``
of the middle day: the register window query, the derivation and the whole VEE of that day).
Prints JSON with seconds and reads/s.
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

from smartmdm_pipelines.adapters.registry import parse_file
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.register_intervals import derive_intervals
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store

TZ = "Europe/Madrid"
START = pd.Timestamp("2019-05-06T00:00Z")
CONFIG = """\
utility: {name: bench, timezone: Europe/Madrid, holidays: none}
sources:
  - name: amr
    pattern: "lecturas_*"
    timezone: Europe/Madrid
    csv:
      delimiter: ";"
      columns: {meter: user key, time: datetime, value: meter reading}
      time_format: "%d/%m/%Y %H:%M:%S"
      value_kind: register
      unit: L
      channel: water
"""


def write_export(path: Path, meters: int, days: int, seed: int = 1) -> int:
    """About-hourly register reads of every meter, meter by meter; the number of reads."""
    rng = np.random.default_rng(seed)
    hours = days * 24 + 1
    at = START + pd.to_timedelta(
        np.tile(np.arange(hours) * 3600, meters) + rng.integers(-50, 50, meters * hours), unit="s"
    )
    litres = 400_000 + np.cumsum(rng.integers(0, 40, (meters, hours)), axis=1).ravel()
    keys = np.repeat(np.arange(10_000, 10_000 + meters), hours).astype(str)
    local = pd.Series(at).dt.tz_convert(TZ).dt.strftime("%d/%m/%Y %H:%M:%S")
    body = pd.Series(keys) + ";" + local + ";" + pd.Series(litres).astype(str) + ";0"
    path.write_text("user key;datetime;meter reading;diff\n" + "\n".join(body.tolist()) + "\n")
    return meters * hours


def master_data(store: Store, meters: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "meter_id": np.arange(10_000, 10_000 + meters).astype(str),
            "kind": "ami",
            "commodity": "water",
            "channels": "water",
            "unit": "gal",
            "interval_seconds": 3600,
            "multiplier": 1.0,
            "dials": 7,
        }
    )
    store.bulk_insert("meters", frame)
    return frame


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    report: dict = {"meters": args.meters, "days": args.days}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "utility.yaml").write_text(CONFIG)
        config = load_config(root / "utility.yaml", data_dir=root / "data")
        export = root / "lecturas_bench.csv"
        reads = write_export(export, args.meters, args.days)
        report["reads"] = reads
        parsed, seconds = timed(lambda: parse_file(export, config.source_for(export.name)))
        assert parsed.status == "loaded", parsed.fatal
        report["parse"] = {"seconds": round(seconds, 2), "reads_per_s": round(reads / seconds)}
        regs = parsed.registers.assign(file_id=1)
        meters = pd.DataFrame(
            {"meter_id": regs["meter_id"].unique(), "interval_seconds": 3600, "multiplier": 1.0, "dials": 7}
        )
        derived, seconds = timed(lambda: derive_intervals(regs, meters, None, TZ))
        report["derive"] = {
            "seconds": round(seconds, 2),
            "reads_per_s": round(reads / seconds),
            "intervals": len(derived.intervals),
        }
        day = (START + pd.Timedelta(days=args.days // 2)).tz_convert(TZ).date()
        postgres = None
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            name = None
            if backend == "duckdb":
                url = f"duckdb:///{root / 'bench.duckdb'}"
            else:
                postgres = postgres or Postgres(args.postgres)
                if postgres.problem:
                    report[backend] = postgres.problem
                    continue
                name, url = postgres.database()
            store = Store(url)
            master_data(store, args.meters)
            summary, ingest_s = timed(lambda s=store: ingest_file(s, export, config, archive=False))
            run, vee_s = timed(lambda s=store: run_day(s, day, config))
            report[backend] = {
                "ingest_seconds": round(ingest_s, 2),
                "ingest_reads_per_s": round(reads / ingest_s),
                "vee_days_requested": len(summary.vee_days),
                "vee_day_seconds": round(vee_s, 2),
                "vee_day_valid_share": round(run.validation.stats["first_pass_valid_share"], 4),
                "vee_day_intervals": run.validation.stats["expected_intervals"],
            }
            store.dispose()
            if name:
                postgres.drop(name)
        if postgres is not None and not postgres.problem:
            postgres.close()
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
