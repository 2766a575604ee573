"""Inflow-only loss detection (issue 16) against the simulator's ground truth.

    .venv/bin/python benchmarks/inflow_ground_truth.py --zones 24 --days 365 --seeds 7 8 9
    .venv/bin/python benchmarks/inflow_ground_truth.py --zones 8 --json    # machine-readable figures

For each seed it simulates ``--zones`` inlet-only DMAs for a year (``simulate/inflow_zones.py``:
5-15 minute inlet reads, seasonality, weekday/weekend, noise, inlet gaps; every 4th zone fed through
a tank with a 1 cm level meter) and runs the same domain code ``services/inflow_detection.py`` runs
(hourly volumes -> zone inflow with tank storage -> ``detect_zone_events`` with the utility YAML's
zone-class parameters) over the whole year. It does not go through the store: ingestion and VEE
are measured by their own benchmarks, and the detector's input is the same frame either way.

Matching (per zone):
* an **abrupt** leak is *found* when an abrupt event starts within 3 days of it; *timed* when within
  6 h. The start error is |detected start - true start| of found leaks; a repaired leak's end error
  likewise for found events that were ended.
* a **gradual** leak is *found* when any event starts between 14 days before its onset and the end
  of its ramp (+7 days); *found within 21 days* when that event's detection night is at most 21 days
  after the onset.
* **precision**: the share of events that match a leak of their own kind as above; "any kind" also
  accepts an event starting within 3 days of a leak of the other kind (a small step seen as a rise).
  An event matching no leak at all is **false**; false events are reported per zone-quarter (the
  first 35 days, before any leak, count as warm-up).
Size bands are shares of the zone's mean inflow.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.water.inflow import (
    hour_index,
    hourly_volumes,
    tank_storage_change,
    zone_inflow,
)
from smartmdm_pipelines.domain.water.inflow_events import detect_zone_events, tank_noise_floor
from smartmdm_pipelines.simulate.inflow_zones import InflowZoneSpec, simulate_inflow_zones

ABRUPT_BANDS = [(0.02, 0.05), (0.05, 0.10), (0.10, 0.20), (0.20, 0.30)]
GRADUAL_BANDS = [(0.05, 0.10), (0.10, 0.20)]
DAY = pd.Timedelta(days=1)


def detect_all(spec: InflowZoneSpec) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(events, truth, zone-days evaluated) of one simulated set of zones."""
    sim = simulate_inflow_zones(spec)
    cfg = load_config().water_detection
    t0 = pd.Timestamp(spec.start, tz=spec.timezone).tz_convert("UTC")
    hours = hour_index(t0, t0 + pd.Timedelta(days=spec.days))
    volumes = hourly_volumes(sim.reads, hours)
    storage, floors, params = {}, {}, {}
    for z in sim.zones.itertuples():
        params[z.zone_id] = cfg.params_for(z.zone_class)
        if z.tank_level_meter_id:
            levels = sim.levels[sim.levels["meter_id"] == z.tank_level_meter_id]
            storage[z.zone_id] = tank_storage_change(levels, hours, z.tank_area_m2, "m3")
            floors[z.zone_id] = tank_noise_floor(z.tank_area_m2, params[z.zone_id], 1.0)
    inflow = zone_inflow(volumes, sim.zones, storage)
    found = []
    for z in sim.zones["zone_id"]:
        events, _ = detect_zone_events(inflow[z], spec.timezone, params[z], z, "m3", floors.get(z, 0.0))
        found.append(events.assign(seed=spec.seed, tank_fed=z in storage))
    truth = sim.truth.assign(seed=spec.seed)
    return pd.concat(found, ignore_index=True), truth, len(sim.zones) * spec.days


def match(events: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth rows with found/timed/errors; events with ``true_positive``."""
    truth = truth.copy()
    events = events.copy()
    events["true_positive"] = False  # matches a leak of its own kind
    events["any_leak"] = False  # matches a leak of either kind (e.g. a small step seen as a rise)
    for col in ("found", "timed", "within_21d"):
        truth[col] = False
    truth["start_error_h"] = np.nan
    truth["end_error_h"] = np.nan
    for i, t in truth.iterrows():  # a few hundred leaks: matching per leak is fine
        mine = events[(events["zone_id"] == t["zone_id"]) & (events["seed"] == t["seed"])]
        near = (mine["start_at"] >= t["start"] - 3 * DAY) & (
            mine["start_at"] <= t["start"] + (t["ramp_days"] + 3) * DAY
        )
        events.loc[mine.index[near.to_numpy()], "any_leak"] = True
        if t["kind"] == "abrupt":
            cand = mine[(mine["kind"] == "abrupt") & ((mine["start_at"] - t["start"]).abs() <= 3 * DAY)]
        else:
            lo = t["start"] - 14 * DAY
            hi = t["start"] + (t["ramp_days"] + 7) * DAY
            cand = mine[(mine["start_at"] >= lo) & (mine["start_at"] <= hi)]
            events.loc[cand.index, "any_leak"] = True
        if cand.empty:
            continue
        best = (cand["start_at"] - t["start"]).abs().idxmin()
        ev = events.loc[best]
        events.loc[cand.index, "true_positive"] = True
        error = abs(ev["start_at"] - t["start"]) / pd.Timedelta(hours=1)
        truth.loc[i, ["found", "start_error_h"]] = [True, error]
        truth.loc[i, "timed"] = error <= 6
        detected = pd.Timestamp(ev["detected_day"])
        truth.loc[i, "within_21d"] = detected <= (t["start"].tz_convert(None) + 21 * DAY)
        if pd.notna(t["end"]) and pd.notna(ev["end_at"]):
            truth.loc[i, "end_error_h"] = abs(ev["end_at"] - t["end"]) / pd.Timedelta(hours=1)
    return truth, events


def _band_rows(truth: pd.DataFrame, kind: str, bands) -> list[dict]:
    rows = []
    for lo, hi in [*bands, (0.0, 1.0)]:
        part = truth[
            (truth["kind"] == kind)
            & (truth["share_of_mean_inflow"] >= lo)
            & (truth["share_of_mean_inflow"] < hi)
        ]
        if kind == "abrupt" and (lo, hi) == (0.0, 1.0):
            part = truth[(truth["kind"] == kind) & (truth["share_of_mean_inflow"] >= 0.05)]
            label = ">= 5 %"
        else:
            label = "all" if (lo, hi) == (0.0, 1.0) else f"{lo:.0%}-{hi:.0%}"
        errors = part["start_error_h"].dropna()
        ends = part["end_error_h"].dropna()
        rows.append(
            {
                "kind": kind,
                "band": label,
                "leaks": len(part),
                "found": round(float(part["found"].mean()), 3) if len(part) else None,
                "start_within_6h": round(float(part["timed"].mean()), 3) if len(part) else None,
                "found_within_21d": round(float(part["within_21d"].mean()), 3) if len(part) else None,
                "median_start_error_h": round(float(errors.median()), 1) if len(errors) else None,
                "p90_start_error_h": round(float(errors.quantile(0.9)), 1) if len(errors) else None,
                "median_end_error_h": round(float(ends.median()), 1) if len(ends) else None,
            }
        )
    return rows


def report(truth: pd.DataFrame, events: pd.DataFrame, zone_days: int, warmup_days: int, zones: int) -> dict:
    rows = _band_rows(truth, "abrupt", ABRUPT_BANDS) + _band_rows(truth, "gradual", GRADUAL_BANDS)
    false = events[~events["true_positive"] & ~events["any_leak"]]
    quarters = (zone_days - zones * warmup_days) / 91.3
    return {
        "bands": rows,
        "events": len(events),
        "precision": round(float(events["true_positive"].mean()), 3) if len(events) else None,
        "precision_any_kind": round(float(events["any_leak"].mean()), 3) if len(events) else None,
        "false_events": len(false),
        "false_per_zone_quarter": round(len(false) / quarters, 3),
        "false_by_kind": false["kind"].value_counts().to_dict(),
        "tank_fed": {
            "leaks": int(truth["tank_fed"].sum()),
            "found": round(float(truth.loc[truth["tank_fed"], "found"].mean()), 3)
            if truth["tank_fed"].any()
            else None,
            "false": int(false["tank_fed"].sum()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zones", type=int, default=24)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    began = time.perf_counter()
    all_events, all_truth, zone_days = [], [], 0
    for seed in args.seeds:
        spec = InflowZoneSpec(zones=args.zones, days=args.days, seed=seed)
        events, truth, n = detect_all(spec)
        all_events.append(events)
        all_truth.append(truth)
        zone_days += n
    truth, events = match(pd.concat(all_events, ignore_index=True), pd.concat(all_truth, ignore_index=True))
    zones = args.zones * len(args.seeds)
    result = report(truth, events, zone_days, InflowZoneSpec().warmup_days, zones)
    result["zones"] = zones
    result["days"] = args.days
    result["seconds"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(
        f"{zones} zones x {args.days} days, {len(truth)} leaks, {result['events']} events, {result['seconds']} s"
    )
    print(pd.DataFrame(result["bands"]).to_string(index=False))
    print(
        f"precision {result['precision']} (kind must match; {result['precision_any_kind']} any kind)  "
        f"false events (no leak of any kind) {result['false_events']} "
        f"({result['false_per_zone_quarter']} per zone-quarter; by kind {result['false_by_kind']})"
    )
    print(f"tank-fed zones: {result['tank_fed']}")


if __name__ == "__main__":
    main()
