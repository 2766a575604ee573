"""VEE against the simulator's ground truth: recall per injected fault type and false alarms per rule.

    .venv/bin/smartmdm --data-dir /tmp/gt demo --meters 2000 --days 14      # or any demo store
    .venv/bin/python benchmarks/vee_ground_truth.py --data-dir /tmp/gt [--json]

A fault counts as caught when VEE did what it should with it (the table below says what);
a false alarm is an exception or a suspect interval on a meter that carries no injected fault.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

# fault type -> (how it is caught, exception rules or first-pass statuses that count)
EXPECTED = {
    "gap_short": ("intervals first-pass missing", {"missing_interval"}),
    "gap_long": ("intervals first-pass missing", {"missing_interval"}),
    "no_read": ("no-read placeholder flagged", {"no_read"}),
    "spike": ("spike rule on the interval", {"spike", "spike_history"}),
    "zero_run_no_outage": ("zero-run rule", {"zero_run"}),
    "zero_run_outage": ("zeros valid under an outage", {"power_outage"}),
    "negative": ("negative rule", {"negative"}),
    "duplicate_row": ("one current version per interval", set()),
    "late_redelivery": ("the late actual is the current value (the head-end estimate superseded)", set()),
    "clock_drift": ("clock drift reported or snapped", {"clock_drift", "time_tolerance"}),
    "multiplier_change": ("sum check / multiplier mismatch", {"sum_check", "multiplier_mismatch"}),
    "tamper_drop": ("tamper event reported", {"tamper"}),
    "reverse_flow": ("reverse flow reported", {"reverse_flow"}),
    "usage_after_move_out": ("usage on an inactive account", {"usage_on_inactive"}),
    "water_leak": ("continuous flow reported", {"continuous_flow"}),
    "meter_exchange": ("no false sum check / negative at the exchange", set()),
    "register_rollover": ("no false sum check at the rollover", set()),
}


def evaluate(store: Store, faults: pd.DataFrame) -> dict:
    exc = store.read_frame("SELECT meter_id, channel, rule, period_start, period_end FROM vee_exceptions")
    first_pass = store.read_frame(
        "SELECT meter_id, channel, interval_end, status, failed_rules FROM intervals WHERE created_by = 'vee:validation'"
    )
    flags = first_pass.assign(rule=first_pass["failed_rules"].fillna("").str.split(";")).explode("rule")
    flags = flags[flags["rule"] != ""]
    results = {}
    for fault_type, group in faults.groupby("fault_type"):
        if fault_type not in EXPECTED:
            continue
        meaning, _ = EXPECTED[fault_type]
        caught = sum(is_caught(store, fault_type, f, exc, first_pass, flags) for f in group.itertuples())
        results[fault_type] = {
            "injected": int(len(group)),
            "caught": int(caught),
            "recall": round(caught / len(group), 3),
            "how": meaning,
        }
    faulty = set(faults["meter_id"].dropna())
    alarms = exc[~exc["meter_id"].isin(faulty)]
    suspects = first_pass[(first_pass["status"] == "suspect") & ~first_pass["meter_id"].isin(faulty)]
    meters = store.scalar("SELECT count(*) FROM meters")
    days = store.scalar("SELECT count(DISTINCT read_day) FROM intervals")
    return {
        "recall": results,
        "false_alarms": {
            "meters": int(meters),
            "operating_days": int(days),
            "exceptions_on_fault_free_meters_by_rule": alarms.groupby("rule").size().astype(int).to_dict(),
            "suspect_intervals_on_fault_free_meters": int(len(suspects)),
            "first_pass_intervals": int(len(first_pass)),
        },
    }


def is_caught(store: Store, fault_type: str, f, exc: pd.DataFrame, first_pass: pd.DataFrame, flags) -> bool:
    start, end = pd.Timestamp(f.start), pd.Timestamp(f.end)
    if fault_type in ("gap_short", "gap_long"):
        iv = first_pass[
            (first_pass["meter_id"] == f.meter_id)
            & (first_pass["channel"] == f.channel)
            & first_pass["interval_end"].between(start, end)
        ]
        return len(iv) > 0 and bool((iv["status"] == "missing").all())
    if fault_type == "late_redelivery":
        cur = store.read_frame(
            "SELECT c.interval_end, c.value, r.value AS late "
            f"FROM ({current_intervals_sql('meter_id = :m AND channel = :c')}) c "
            "JOIN raw_reads r ON r.meter_id = c.meter_id "
            "AND r.channel = c.channel AND r.interval_end = c.interval_end JOIN headend_files h "
            "ON h.file_id = r.file_id WHERE h.name = :f AND c.interval_end BETWEEN :a AND :b",
            {"m": f.meter_id, "c": f.channel, "f": Path(str(f.file)).name, "a": start, "b": end},
        )
        return len(cur) > 0 and bool(((cur["value"] - cur["late"]).abs() < 1e-9).all())
    if fault_type == "duplicate_row":
        cur = store.read_frame(
            f"SELECT interval_end, count(*) AS n FROM ({current_intervals_sql('meter_id = :m')}) c "
            "WHERE interval_end BETWEEN :a AND :b GROUP BY 1",
            {"m": f.meter_id, "a": start, "b": end},
        )
        return len(cur) > 0 and bool((cur["n"] == 1).all())
    if fault_type in ("meter_exchange", "register_rollover"):
        bad = exc[
            (exc["meter_id"] == f.meter_id)
            & exc["rule"].isin(["sum_check", "negative", "multiplier_mismatch"])
        ]
        return bad.empty
    rules = EXPECTED[fault_type][1]
    margin = pd.Timedelta(days=1)
    hit_exc = exc[(exc["meter_id"] == f.meter_id) & exc["period_start"].between(start - margin, end + margin)]
    hit_flag = flags[
        (flags["meter_id"] == f.meter_id) & flags["interval_end"].between(start - margin, end + margin)
    ]
    return bool(set(hit_exc["rule"]) & rules or set(hit_flag["rule"]) & rules)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data-dir", required=True, help="a demo data directory (store + simulation/ground_truth)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = Path(args.data_dir).resolve()
    os.environ.setdefault("SMARTMDM_DATA_DIR", str(data))
    faults = pd.read_csv(data / "simulation" / "ground_truth" / "faults.csv")
    store = Store()
    report = evaluate(store, faults)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'fault type':<22}{'injected':>9}{'caught':>8}{'recall':>8}  how")
    for name, r in sorted(report["recall"].items()):
        print(f"{name:<22}{r['injected']:>9}{r['caught']:>8}{r['recall']:>8.3f}  {r['how']}")
    fa = report["false_alarms"]
    print(f"\nfalse alarms on fault-free meters ({fa['meters']} meters, {fa['operating_days']} days):")
    for rule, n in sorted(fa["exceptions_on_fault_free_meters_by_rule"].items(), key=lambda kv: -kv[1]):
        print(f"  {rule:<24}{n:>6} exceptions")
    print(
        f"  suspect intervals: {fa['suspect_intervals_on_fault_free_meters']} of {fa['first_pass_intervals']:,}"
    )


if __name__ == "__main__":
    main()
