"""Revenue protection against the simulator's ground truth: precision@10, precision@50 and recall of
the injected theft, tamper and bypass faults.

    .venv/bin/python benchmarks/protection_ground_truth.py --data-dir /tmp/pgt --meters 2000 --days 42
    .venv/bin/python benchmarks/protection_ground_truth.py --data-dir /tmp/gt --evaluate-only   # a demo's store

Without ``--evaluate-only`` it builds the store itself through the same services Dagster calls:
generate (with ``--theft-rate``: bypassed electric meters and stopped water meters besides the
default tamper_drop, reverse_flow and usage_after_move_out), CIS sync, ingestion of every file,
VEE day by day, tariffs, then one revenue-protection evaluation of the last day. A case is a hit
when its service point carries one of the theft faults; recall counts the theft faults whose
service point has a case (and one in the top 50). The start error compares the case's first signal
with the fault's start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.billing_reference import load_billing_reference
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_path
from smartmdm_pipelines.services.protection import evaluate_day, list_cases
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

THEFT = ("tamper_drop", "reverse_flow", "usage_after_move_out", "meter_bypass", "meter_stopped")


def build(data_dir: Path, args: argparse.Namespace) -> tuple[Store, dt.date, dict]:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    cfg = load_config(data_dir=data_dir)
    timings = {}
    started = time.perf_counter()
    spec = SimulationSpec(
        meters=args.meters,
        start=args.start,
        days=args.days,
        seed=args.seed,
        theft_rate=args.theft_rate,
        truth_values=False,
    )
    generate(data_dir / "simulation", spec)
    timings["generate_s"] = round(time.perf_counter() - started, 1)
    store = Store(f"duckdb:///{data_dir / 'smartmdm.duckdb'}")
    sync_master_data(store, data_dir / "simulation" / "cis")
    started = time.perf_counter()
    for path in sorted((data_dir / "simulation" / "headend").iterdir()):
        ingest_path(store, path, cfg, archive=False)
    timings["ingest_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    for offset in range(args.days):
        run_day(store, args.start + dt.timedelta(days=offset), cfg)
    timings["vee_s"] = round(time.perf_counter() - started, 1)
    load_billing_reference(store, cfg)
    last = args.start + dt.timedelta(days=args.days - 1)
    started = time.perf_counter()
    evaluate_day(store, cfg, last)
    timings["protection_s"] = round(time.perf_counter() - started, 1)
    return store, last, timings


def evaluate(store: Store, faults: pd.DataFrame) -> dict:
    installs = store.read_frame("SELECT meter_id, service_point_id FROM meter_installs")
    sp_of = installs.drop_duplicates("meter_id").set_index("meter_id")["service_point_id"]
    faults = faults.assign(service_point_id=faults["meter_id"].map(sp_of))
    theft = faults[faults["fault_type"].isin(THEFT)].drop_duplicates("service_point_id")
    other = faults[~faults["fault_type"].isin(THEFT) & faults["service_point_id"].notna()]
    cases = list_cases(store, status="all")
    hit = cases["service_point_id"].isin(set(theft["service_point_id"]))
    report: dict = {"cases": int(len(cases)), "theft_faults": int(len(theft))}
    for k in (10, 50):
        top = hit.head(k)
        report[f"precision@{k}"] = round(float(top.mean()), 3) if len(top) else None
    ranked = cases.set_index("service_point_id")
    found = theft["service_point_id"].isin(ranked.index)
    in_top50 = theft["service_point_id"].isin(cases.head(50)["service_point_id"])
    report["recall"] = round(float(found.mean()), 3) if len(theft) else None
    report["recall_top50"] = round(float(in_top50.mean()), 3) if len(theft) else None
    per_kind = {}
    for kind, group in theft.groupby("fault_type"):
        got = group["service_point_id"].isin(ranked.index)
        per_kind[kind] = {"injected": int(len(group)), "found": int(got.sum())}
    report["by_fault_type"] = per_kind
    matched = theft[found]
    if len(matched):
        start = pd.to_datetime(matched["start"], utc=True)
        first = pd.to_datetime(ranked.loc[matched["service_point_id"], "first_signal_at"], utc=True)
        error = np.abs((first.to_numpy() - start.to_numpy()) / np.timedelta64(1, "h"))
        report["start_error_hours"] = {
            "median": round(float(np.median(error)), 1),
            "p90": round(float(np.percentile(error, 90)), 1),
        }
    false = cases[~hit].head(50)
    explained = other.drop_duplicates("service_point_id").set_index("service_point_id")["fault_type"]
    report["false_positives_top50"] = {
        "count": int(len(false)),
        "by_other_injected_fault": {
            k: int(v)
            for k, v in false["service_point_id"].map(explained).fillna("none").value_counts().items()
        },
        "by_indicators": {k: int(v) for k, v in false["indicators"].value_counts().head(8).items()},
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--evaluate-only", action="store_true", help="score the cases already in the store")
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 2, 5))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--theft-rate", type=float, default=0.005)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    os.environ.setdefault("SMARTMDM_DATA_DIR", str(data_dir))
    if args.evaluate_only:
        store, timings = Store(f"duckdb:///{data_dir / 'smartmdm.duckdb'}"), {}
    else:
        store, _, timings = build(data_dir, args)
    faults = pd.read_csv(data_dir / "simulation" / "ground_truth" / "faults.csv", dtype=str)
    report = {**evaluate(store, faults), "timings": timings}
    store.dispose()
    if args.json:
        print(json.dumps(report))
        return
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
