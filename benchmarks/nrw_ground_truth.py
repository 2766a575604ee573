"""NRW loss detection against the simulator's ground truth: recall and precision of the zone-level
losses it injects (unmetered leaks, bursts, unauthorized use), start-time error and rate error.

    .venv/bin/python benchmarks/nrw_ground_truth.py --data-dir /tmp/nrwgt --meters 1500 --days 56 --seeds 1 2 3 4
    .venv/bin/python benchmarks/nrw_ground_truth.py --data-dir /tmp/nrwgt --seeds 1 --evaluate-only

Per seed it builds a store through the services Dagster calls: generate (water zones: one inlet
meter per DMA, ~100 hourly customer meters per zone at 1,500 meters), CIS sync of the water master
data, ingestion of the water head-end's files (with their injected data faults: gaps, spikes,
duplicates, late files), VEE day by day, then ``nrw.run_days`` over the window (balances, night flow,
balance loss events). Truth = the ``water_leak`` faults on a zone's inlet (``metered: false``),
``water_burst`` and ``unauthorized_use`` (metered customer leaks register on the customer meter:
the balance cannot and should not see them). A detection matches a truth in the same zone when its
start lies between 6 h before the truth's start and 6 h after its end; the start error is
|detected start - true start| (the true start is the start of the first faulty hour). Recall counts
the truths that start after the detector's warm-up (its first 72 hours of history) and before the
last 6 hours; sizes are shares of the zone's mean hourly inflow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import nrw
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_path
from smartmdm_pipelines.services.loss_events import list_events
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

TRUTH = ("water_leak", "water_burst", "unauthorized_use")
SLACK = pd.Timedelta(hours=6)
WARMUP = pd.Timedelta(hours=72)


def _water_only(cis: Path) -> None:
    """Keep the water master data: the benchmark validates water meters only."""
    meters = pd.read_csv(cis / "meters.csv", dtype=str)
    meters = meters[meters["commodity"] == "water"]
    meters.to_csv(cis / "meters.csv", index=False)
    installs = pd.read_csv(cis / "meter_installs.csv", dtype=str)
    installs[installs["meter_id"].isin(meters["meter_id"])].to_csv(cis / "meter_installs.csv", index=False)
    sps = pd.read_csv(cis / "service_points.csv", dtype=str)
    sps = sps[sps["commodity"] == "water"]
    sps.to_csv(cis / "service_points.csv", index=False)
    accounts = pd.read_csv(cis / "accounts.csv", dtype=str)
    accounts[accounts["service_point_id"].isin(sps["service_point_id"])].to_csv(
        cis / "accounts.csv", index=False
    )


def build(data_dir: Path, args: argparse.Namespace, seed: int) -> tuple[Store, dict]:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    cfg = load_config(data_dir=data_dir)
    timings = {}
    t = time.perf_counter()
    spec = SimulationSpec(meters=args.meters, start=args.start, days=args.days, seed=seed, truth_values=False)
    generate(data_dir / "simulation", spec)
    timings["generate_s"] = round(time.perf_counter() - t, 1)
    _water_only(data_dir / "simulation" / "cis")
    store = Store(f"duckdb:///{data_dir / 'smartmdm.duckdb'}")
    sync_master_data(store, data_dir / "simulation" / "cis")
    t = time.perf_counter()
    for path in sorted((data_dir / "simulation" / "headend").glob("ami-water_*")):
        ingest_path(store, path, cfg, archive=False)
    timings["ingest_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    for offset in range(args.days):
        run_day(store, args.start + dt.timedelta(days=offset), cfg)
    timings["vee_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    last = args.start + dt.timedelta(days=args.days - 1)
    if args.daily:
        for offset in range(args.days):
            day = args.start + dt.timedelta(days=offset)
            nrw.run_days(store, cfg, day, day)
    else:
        nrw.run_days(store, cfg, args.start, last)
    timings["nrw_s"] = round(time.perf_counter() - t, 2)
    return store, timings


def truths(data_dir: Path, store: Store) -> pd.DataFrame:
    faults = pd.read_csv(data_dir / "simulation" / "ground_truth" / "faults.csv", dtype=str)
    faults = faults[faults["fault_type"].isin(TRUTH)].copy()
    detail = faults["detail"].map(json.loads)
    faults["zone_id"] = detail.map(lambda d: d.get("zone_id"))
    faults["rate"] = detail.map(lambda d: float(d["rate_gph"]))
    faults["metered"] = detail.map(lambda d: bool(d.get("metered", False)))
    faults = faults[~faults["metered"]]
    faults["start"] = pd.to_datetime(faults["start"], utc=True) - pd.Timedelta(hours=1)
    faults["end"] = pd.to_datetime(faults["end"], utc=True)
    inflow = store.read_frame(
        "SELECT zone_id, avg(input_volume) AS inflow FROM zone_balances WHERE interval_seconds = 3600 "
        "AND complete GROUP BY zone_id"
    ).set_index("zone_id")["inflow"]
    faults["share"] = faults["rate"] / faults["zone_id"].map(inflow)
    return faults.reset_index(drop=True)


def evaluate(store: Store, faults: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> dict:
    events = list_events(store)
    matched_truth: dict[int, dict] = {}
    event_hits = np.zeros(len(events), dtype=bool)
    for i, ev in events.iterrows():
        cands = faults[
            (faults["zone_id"] == ev["zone_id"])
            & (ev["start_at"] >= faults["start"] - SLACK)
            & (ev["start_at"] <= faults["end"] + SLACK)
        ]
        if cands.empty:
            continue
        event_hits[i] = True
        j = (cands["start"] - ev["start_at"]).abs().idxmin()
        err = abs((ev["start_at"] - faults.at[j, "start"]).total_seconds()) / 3600
        if j not in matched_truth or err < matched_truth[j]["start_error_h"]:
            matched_truth[j] = {
                "start_error_h": err,
                "rate_error": abs(ev["rate"] - faults.at[j, "rate"]) / faults.at[j, "rate"],
            }
    # a truth inside an event that started earlier (two bursts back to back: one event) is found too
    for j, truth in faults.iterrows():
        if j in matched_truth:
            continue
        cover = events[
            (events["zone_id"] == truth["zone_id"])
            & (events["start_at"] <= truth["start"])
            & (events["end_at"].fillna(last) >= truth["start"])
        ]
        if not cover.empty:
            ev = cover.iloc[-1]
            matched_truth[j] = {
                "start_error_h": abs((ev["start_at"] - truth["start"]).total_seconds()) / 3600,
                "rate_error": abs(ev["rate"] - truth["rate"]) / truth["rate"],
                "covered": True,
            }
    scorable = faults[(faults["start"] >= first + WARMUP) & (faults["start"] <= last - SLACK)]
    out: dict = {
        "detections": int(len(events)),
        "true_detections": int(event_hits.sum()),
        "false_detections": int((~event_hits).sum()),
        "precision": round(float(event_hits.mean()), 3) if len(events) else None,
        "false_events": events.loc[~event_hits, ["zone_id", "start_at", "rate", "confidence"]]
        .astype(str)
        .to_dict(orient="records"),
    }
    for label, subset in (
        (
            "leaks_and_bursts_ge_2pct",
            scorable[
                scorable["fault_type"].isin(("water_leak", "water_burst")) & (scorable["share"] >= 0.02)
            ],
        ),
        ("leaks_and_bursts_all", scorable[scorable["fault_type"].isin(("water_leak", "water_burst"))]),
        ("water_leak", scorable[scorable["fault_type"] == "water_leak"]),
        ("water_burst", scorable[scorable["fault_type"] == "water_burst"]),
        ("unauthorized_use", scorable[scorable["fault_type"] == "unauthorized_use"]),
    ):
        found = [matched_truth[j] for j in subset.index if j in matched_truth]
        errors = np.array([f["start_error_h"] for f in found])
        rates = np.array([f["rate_error"] for f in found])
        out[label] = {
            "truths": int(len(subset)),
            "found": len(found),
            "recall": round(len(found) / len(subset), 3) if len(subset) else None,
            "start_error_h_median": round(float(np.median(errors)), 2) if len(errors) else None,
            "start_error_h_p90": round(float(np.percentile(errors, 90)), 2) if len(errors) else None,
            "rate_error_median": round(float(np.median(rates)), 3) if len(rates) else None,
            "share_min": round(float(subset["share"].min()), 4) if len(subset) else None,
            "missed": subset.loc[
                [j for j in subset.index if j not in matched_truth],
                ["fault_id", "zone_id", "start", "rate", "share"],
            ]
            .astype(str)
            .to_dict(orient="records"),
        }
    out["_matched"] = matched_truth
    return out


SIZES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.10)


def sensitivity(store: Store, trials: int, seed: int) -> dict:
    """Leak-size sensitivity on the seed's real hourly balances (their noise, gaps and VEE
    estimates): a step of each size (share of the zone's mean inflow) added at a random hour after
    the warm-up and at least three days before the end; found = an event starting within 12 h."""
    from smartmdm_pipelines.config import load_config as _cfg
    from smartmdm_pipelines.domain.water.balance_events import detect_balance_events

    cfg = _cfg()
    rng = np.random.default_rng(seed)
    zones = nrw.load_zones(store, cfg)
    out: dict = {}
    for size in SIZES:
        errors, rate_errors, found, total = [], [], 0, 0
        for zone in zones.itertuples():
            hourly = store.read_frame(
                "SELECT interval_end, input_volume, metered_volume, loss_volume, estimated_volume, complete, unit "
                "FROM zone_balances WHERE zone_id = :z AND interval_seconds = 3600 ORDER BY interval_end",
                {"z": zone.zone_id},
            )
            hourly["interval_end"] = pd.to_datetime(hourly["interval_end"], utc=True)
            base = detect_balance_events(hourly, zone.zone_id, cfg.utility.timezone, zone.params)
            inflow = float(hourly.loc[hourly["complete"].astype(bool), "input_volume"].mean())
            for _ in range(trials):
                at = int(rng.integers(96, len(hourly) - 72))
                rate = size * inflow
                trial = hourly.copy()
                trial.loc[at:, ["input_volume", "loss_volume"]] += rate
                start = trial.at[at, "interval_end"] - pd.Timedelta(hours=1)
                events = detect_balance_events(trial, zone.zone_id, cfg.utility.timezone, zone.params)
                new = events[~events["event_id"].isin(base["event_id"])] if not base.empty else events
                near = new[(new["start_at"] - start).abs() <= pd.Timedelta(hours=12)]
                total += 1
                if not near.empty:
                    found += 1
                    e = near.iloc[0]
                    errors.append(abs((e["start_at"] - start).total_seconds()) / 3600)
                    rate_errors.append(abs(e["rate"] - rate) / rate)
        out[f"{100 * size:g}%"] = {
            "trials": total,
            "recall": round(found / total, 3) if total else None,
            "start_error_h_median": round(float(np.median(errors)), 2) if errors else None,
            "start_error_h_p90": round(float(np.percentile(errors, 90)), 2) if errors else None,
            "rate_error_median": round(float(np.median(rate_errors)), 3) if rate_errors else None,
        }
    return out


def combine(results: list[dict]) -> dict:
    """Pool the seeds: counts add up, errors are recomputed from every matched truth."""
    total = {
        "detections": sum(r["detections"] for r in results),
        "true_detections": sum(r["true_detections"] for r in results),
        "false_detections": sum(r["false_detections"] for r in results),
    }
    total["precision"] = (
        round(total["true_detections"] / total["detections"], 3) if total["detections"] else None
    )
    for label in (
        "leaks_and_bursts_ge_2pct",
        "leaks_and_bursts_all",
        "water_leak",
        "water_burst",
        "unauthorized_use",
    ):
        truths_n = sum(r[label]["truths"] for r in results)
        found = sum(r[label]["found"] for r in results)
        total[label] = {
            "truths": truths_n,
            "found": found,
            "recall": round(found / truths_n, 3) if truths_n else None,
        }
        errs = [e for r in results for e in r[label].get("_errors", [])]
        rates = [e for r in results for e in r[label].get("_rates", [])]
        if errs:
            total[label] |= {
                "start_error_h_median": round(float(np.median(errs)), 2),
                "start_error_h_p90": round(float(np.percentile(errs, 90)), 2),
                "rate_error_median": round(float(np.median(rates)), 3),
            }
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nrw_ground_truth"))
    parser.add_argument("--meters", type=int, default=1500)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 1, 1))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--daily", action="store_true", help="run NRW day by day (as the daily partitions do)"
    )
    parser.add_argument("--evaluate-only", action="store_true", help="re-score stores already built")
    parser.add_argument(
        "--rerun-nrw",
        action="store_true",
        help="with --evaluate-only: recompute the NRW outputs first (tuning)",
    )
    parser.add_argument(
        "--sensitivity",
        type=int,
        default=0,
        help="trials per zone and leak size on the real balances (0: none)",
    )
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    tz = load_config().utility.timezone
    first = pd.Timestamp(args.start).tz_localize(tz).tz_convert("UTC")
    last = (pd.Timestamp(args.start) + pd.Timedelta(days=args.days)).tz_localize(tz).tz_convert("UTC")
    results = []
    for seed in args.seeds:
        folder = args.data_dir / f"seed{seed}"
        if args.evaluate_only:
            store, timings = Store(f"duckdb:///{folder / 'smartmdm.duckdb'}"), {}
            if args.rerun_nrw:
                store.execute("DELETE FROM loss_events")
                t = time.perf_counter()
                cfg = load_config(data_dir=folder)
                if args.daily:
                    for offset in range(args.days):
                        day = args.start + dt.timedelta(days=offset)
                        nrw.run_days(store, cfg, day, day)
                else:
                    nrw.run_days(store, cfg, args.start, args.start + dt.timedelta(days=args.days - 1))
                timings["nrw_s"] = round(time.perf_counter() - t, 2)
        else:
            store, timings = build(folder, args, seed)
        faults = truths(folder, store)
        result = evaluate(store, faults, first, last)
        matched = result.pop("_matched")
        by_type = matched
        for label, mask in (
            (
                "leaks_and_bursts_ge_2pct",
                faults["fault_type"].isin(("water_leak", "water_burst")) & (faults["share"] >= 0.02),
            ),
            ("leaks_and_bursts_all", faults["fault_type"].isin(("water_leak", "water_burst"))),
            ("water_leak", faults["fault_type"] == "water_leak"),
            ("water_burst", faults["fault_type"] == "water_burst"),
            ("unauthorized_use", faults["fault_type"] == "unauthorized_use"),
        ):
            scorable = mask & (faults["start"] >= first + WARMUP) & (faults["start"] <= last - SLACK)
            rows = [by_type[j] for j in faults.index[scorable] if j in by_type]
            result[label]["_errors"] = [r["start_error_h"] for r in rows]
            result[label]["_rates"] = [r["rate_error"] for r in rows]
        result["seed"], result["timings"] = seed, timings
        if args.sensitivity:
            result["sensitivity"] = sensitivity(store, args.sensitivity, seed)
        results.append(result)
        printable = {
            k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
            for k, v in result.items()
        }
        print(json.dumps(printable, indent=2, default=str), flush=True)
        store.dispose()
    report = {"meters": args.meters, "days": args.days, "seeds": args.seeds, "pooled": combine(results)}
    if args.sensitivity:
        pooled = {}
        for size in SIZES:
            key = f"{100 * size:g}%"
            parts = [r["sensitivity"][key] for r in results]
            trials = sum(p["trials"] for p in parts)
            pooled[key] = {
                "trials": trials,
                "recall": round(sum(p["recall"] * p["trials"] for p in parts) / trials, 3),
                "start_error_h_median_by_seed": [p["start_error_h_median"] for p in parts],
                "start_error_h_p90_by_seed": [p["start_error_h_p90"] for p in parts],
                "rate_error_median_by_seed": [p["rate_error_median"] for p in parts],
            }
        report["sensitivity"] = pooled
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
