"""Estimation accuracy on real household meters and on the simulator: the chain vs the California baseline.

    .venv/bin/python benchmarks/estimation_real.py --data-dir FOLDER [--households 50] [--half reporting]
        [--resolutions hourly,half-hourly] [--gaps-per-series 20] [--seed 0] [--work-dir DIR]
        [--simulator-meters 200 --simulator-days 35 | --no-simulator] [--ablation] [--json OUT]

FOLDER holds real half-hourly readings, one CSV (optionally gzipped) per household with the header
``LCLid,tstp,energy(kWh/hh)`` (the Low Carbon London smart-meter trial layout: ``tstp`` is the UTC
end of the half hour, values in kWh, space-padded); a ``readings/`` sub-folder is looked into too.

Every household goes through the project's own path, as a utility's data would: a converter
writes each one as a generic CSV interval file (docs/generic_csv.md; hourly files sum the two half
hours of each hour and keep only complete hours) plus a CIS drop (an AMI meter and a residential
service point in Europe/London per household, removed after its last reading if it left early);
``services.ingestion`` loads them and ``services.vee.run_day`` validates and estimates every
operating day, with the bundled utility YAML's ``vee:`` rules in a utility whose zone is
Europe/London and whose holidays are GB's. ``services.vee_backtest.run_backtest`` then hides known-good
1 h, 4 h and 24 h gaps (up to ``--gaps-per-series`` of each per household, one per household-day)
and scores the production chain against the California baseline.

Households are split once, deterministically: ordered by the SHA-256 of their id, the first half
is the tuning half, the rest the reporting half. Tune on ``--half tuning`` only; report the
reporting half. ``--ablation`` re-runs the hourly backtest of the chosen half with each estimation
feature switched off in turn (same gaps), which is how docs/vee_accuracy.md measures what each one
contributes. The simulator part builds a synthetic utility (``smartmdm_pipelines.simulate``)
through the same ingestion and VEE and backtests it the same way.

Stores are built under ``--work-dir`` (a temporary folder by default) and reused when the folder is
given again with the same households and resolution (``--rebuild`` forces a new build).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from smartmdm_pipelines.config import UtilityConfig, load_config
from smartmdm_pipelines.domain.vee.backtest import BacktestOptions, format_table
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.services.vee_backtest import BacktestError, run_backtest
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

HEADER = ["LCLid", "tstp", "energy(kWh/hh)"]
TZ = "Europe/London"
RESOLUTIONS = {"hourly": 3600, "half-hourly": 1800}
INSTALLED = "2012-01-01T00:00:00Z"
LENGTHS = ("1h", "4h", "24h")
AIM = {"1h": 1.0, "4h": 0.85, "24h": 0.85}
AIM_BIAS = 0.02
OLD_CHAIN = "chain before issue 17 (all off)"
# estimation features and the value that switches each off, or on where it is off by default
# (domain/vee/config.py documents them)
ABLATION: dict[str, dict] = {
    "default chain": {},
    "without similarity weights": {"like_day_similarity": 0.0},
    "similarity strength 3 (default 2)": {"like_day_similarity": 3.0},
    "with level anchoring (weight 0.2)": {"anchor_level_weight": 0.2},
    "mean + 10 % weighted median": {"like_day_median_weight": 0.1},
    "mean + 20 % weighted median": {"like_day_median_weight": 0.2},
    "without edge anchoring": {"anchor_edge_half_life_minutes": 0.0},
    "without the linear/profile blend": {"linear_profile_weight": 0.0},
    "without recency weights": {"like_day_half_life_days": 0.0},
    "recency without the self-check": {"like_day_recency_check": False},
    "without other-type days": {"like_day_other_type_weight": 0.0},
    "without the day after": {"like_day_next_day": False},
    OLD_CHAIN: {
        "like_day_similarity": 0.0,
        "anchor_level_weight": 0.0,
        "anchor_edge_half_life_minutes": 0.0,
        "linear_profile_weight": 0.0,
        "like_day_half_life_days": 0.0,
        "like_day_other_type_weight": 0.0,
        "like_day_next_day": False,
        "like_day_median_weight": 0.0,
    },
}


class ReadingsError(ValueError):
    """A readings file that is not in the expected layout: names the file, the line and what was expected."""


# --- the real data: read, split, convert ---------------------------------------------------------


def household_files(folder: Path) -> dict[str, Path]:
    """Household id (file name without .csv/.csv.gz) -> file, from FOLDER or FOLDER/readings."""
    base = folder / "readings" if (folder / "readings").is_dir() else folder
    if not base.is_dir():
        raise ReadingsError(f"{base}: not a folder of readings files")
    files = sorted(p for p in base.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise ReadingsError(f"{base}: no .csv or .csv.gz readings files")
    return {p.name.split(".")[0]: p for p in files}


def split_households(ids: list[str]) -> tuple[list[str], list[str]]:
    """(tuning, reporting): ids ordered by the SHA-256 of the id; the first half tunes."""
    ordered = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]


def read_household(path: Path) -> pd.DataFrame:
    """One household's half-hours: meter_id, interval_end (UTC), value (kWh, 3 decimals)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        raw = pd.read_csv(fh, dtype=str, keep_default_na=False)
    if list(raw.columns) != HEADER:
        raise ReadingsError(f"{path}:1: expected the header {','.join(HEADER)}, got {','.join(raw.columns)}")
    end = pd.to_datetime(raw["tstp"], format="%Y-%m-%d %H:%M:%S", errors="coerce", utc=True)
    value = pd.to_numeric(raw[HEADER[2]].str.strip(), errors="coerce")
    bad = end.isna() | value.isna()
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        row = raw.iloc[line - 2]
        raise ReadingsError(
            f"{path}:{line}: expected 'YYYY-MM-DD HH:MM:SS' and a number of kWh, got "
            f"{row['tstp']!r}, {row[HEADER[2]]!r}"
        )
    return pd.DataFrame({"meter_id": raw["LCLid"], "interval_end": end, "value": value.round(3)})


def to_intervals(halves: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """Half-hours as they are, or hours: the two half hours ending at :30 and :00 of each hour,
    kept only when both were read."""
    if seconds == 1800:
        return halves.assign(interval_seconds=1800)
    hour = halves["interval_end"].dt.ceil("h")
    grouped = halves.groupby([halves["meter_id"], hour], sort=True)["value"].agg(["sum", "size"])
    grouped = grouped[grouped["size"] == 2].reset_index()
    return pd.DataFrame(
        {
            "meter_id": grouped["meter_id"],
            "interval_end": grouped["interval_end"],
            "value": grouped["sum"].round(3),
            "interval_seconds": 3600,
        }
    )


def write_generic_csv(intervals: pd.DataFrame, path: Path) -> None:
    """The project's generic CSV interval format (docs/generic_csv.md)."""
    out = pd.DataFrame(
        {
            "meter_id": intervals["meter_id"],
            "channel": "kwh_delivered",
            "interval_end": intervals["interval_end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_seconds": intervals["interval_seconds"],
            "value": intervals["value"].map("{:.3f}".format),
            "unit": "kWh",
            "quality": "",
        }
    )
    out.to_csv(path, index=False)


def write_cis(folder: Path, spans: pd.DataFrame, seconds: int, data_end: pd.Timestamp) -> None:
    """A CIS drop: per household an AMI meter, a residential service point and the install
    (removed after the last reading when the household left the trial a day or more early)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = spans["meter_id"]
    pd.DataFrame(
        {
            "meter_id": ids,
            "kind": "ami",
            "commodity": "electric",
            "role": "customer",
            "channels": "kwh_delivered",
            "unit": "kWh",
            "interval_seconds": seconds,
            "multiplier": 1.0,
            "dials": 6,
            "headend": "lcl",
        }
    ).to_csv(folder / "meters.csv", index=False)
    pd.DataFrame(
        {
            "service_point_id": "SP-" + ids,
            "commodity": "electric",
            "timezone": TZ,
            "customer_class": "residential",
            "has_solar": "false",
            "status": "active",
        }
    ).to_csv(folder / "service_points.csv", index=False)
    left = spans["last_end"] < data_end - pd.Timedelta(days=1)
    pd.DataFrame(
        {
            "meter_id": ids,
            "service_point_id": "SP-" + ids,
            "installed_at": INSTALLED,
            "removed_at": spans["last_end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(left, ""),
            "multiplier": 1.0,
        }
    ).to_csv(folder / "meter_installs.csv", index=False)


def utility_yaml(path: Path, timezone: str, holidays: str, vee: dict) -> Path:
    """A utility configuration for the benchmark's store: the bundled VEE rules, another zone."""
    raw = {
        "utility": {
            "name": "benchmark",
            "timezone": timezone,
            "partitions_start": "2012-01-01",
            "holidays": holidays,
        },
        "vee": vee,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- stores -------------------------------------------------------------------------------------


def _built(root: Path, marker: dict) -> bool:
    """Whether ``root`` holds a finished store built from the same inputs."""
    done = root / "inputs.json"
    return (root / "smartmdm.duckdb").exists() and done.exists() and json.loads(done.read_text()) == marker


def _vee_all_days(store: Store, cfg: UtilityConfig) -> int:
    days = store.read_frame("SELECT DISTINCT read_day FROM raw_reads ORDER BY read_day")["read_day"]
    for day in days:
        run_day(store, pd.Timestamp(day).date(), cfg)
    return len(days)


def build_real_store(
    root: Path, files: dict[str, Path], seconds: int, rebuild: bool
) -> tuple[Store, UtilityConfig]:
    """Convert, ingest and run VEE on the households in ``files`` (cached by ``root/inputs.json``)."""
    marker = {"households": sorted(files), "seconds": seconds}
    db = root / "smartmdm.duckdb"
    cfg_path = root / "utility.yaml"
    if not rebuild and _built(root, marker):
        return Store(f"duckdb:///{db}"), load_config(cfg_path, data_dir=root)
    if root.exists():
        shutil.rmtree(root)
    (root / "files").mkdir(parents=True)
    started = time.perf_counter()
    spans, reads = [], 0
    for meter_id, path in files.items():
        intervals = to_intervals(read_household(path), seconds)
        write_generic_csv(intervals, root / "files" / f"lcl_{meter_id}_{seconds}.csv")
        spans.append({"meter_id": meter_id, "last_end": intervals["interval_end"].max()})
        reads += len(intervals)
    spans = pd.DataFrame(spans)
    write_cis(root / "cis", spans, seconds, spans["last_end"].max())
    utility_yaml(cfg_path, TZ, "GB", load_config().vee)
    cfg = load_config(cfg_path, data_dir=root)
    store = Store(f"duckdb:///{db}")
    sync_master_data(store, root / "cis")
    for path in sorted((root / "files").iterdir()):
        summary = ingest_file(store, path, cfg, archive=False)
        if summary.status != "loaded":
            raise RuntimeError(f"{path}: {summary.status} {summary}")
    days = _vee_all_days(store, cfg)
    (root / "inputs.json").write_text(json.dumps(marker))
    print(
        f"  built {root.name}: {len(files)} households, {reads:,} reads, VEE on {days} days "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return store, cfg


def build_simulator_store(
    root: Path, meters: int, days: int, seed: int, rebuild: bool
) -> tuple[Store, UtilityConfig]:
    marker = {"meters": meters, "days": days, "seed": seed}
    db = root / "smartmdm.duckdb"
    if not rebuild and _built(root, marker):
        return Store(f"duckdb:///{db}"), load_config(data_dir=root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.perf_counter()
    cfg = load_config(data_dir=root)
    generate(root / "sim", SimulationSpec(meters=meters, start=dt.date(2024, 2, 5), days=days, seed=seed))
    store = Store(f"duckdb:///{db}")
    sync_master_data(store, root / "sim" / "cis")
    for path in sorted((root / "sim" / "headend").iterdir()):
        if path.is_file():
            ingest_file(store, path, cfg, archive=False)
    n = _vee_all_days(store, cfg)
    (root / "inputs.json").write_text(json.dumps(marker))
    print(
        f"  built simulator: {meters} meters, VEE on {n} days in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return store, cfg


# --- backtests and reports ---------------------------------------------------------------------------


def with_rules(cfg: UtilityConfig, overrides: dict) -> UtilityConfig:
    """The configuration with ``overrides`` on the default VEE rule set (classes inherit them)."""
    vee = copy.deepcopy(cfg.vee)
    vee.setdefault("default", {}).update(overrides)
    return cfg.model_copy(update={"vee": vee})


def backtest(store: Store, cfg: UtilityConfig, seed: int, gaps_per_series: int) -> dict:
    return backtest_run(store, cfg, seed, gaps_per_series).report


def backtest_run(store: Store, cfg: UtilityConfig, seed: int, gaps_per_series: int):
    opts = BacktestOptions(seed=seed, max_series=None, gaps_per_series=gaps_per_series)
    return run_backtest(store, cfg, opts)


def known_total_ratio(results: pd.DataFrame) -> dict[str, float]:
    """A bound, not an estimator: the chain's estimates rescaled so that each gap holds its true
    total, NMAE over the baseline's. What the chain's shape would reach if the level were known."""
    out = {}
    for name, rows in results.groupby("gap", sort=False):
        if rows.groupby("gap_id").size().max() < 2:  # one interval per gap: its total is the answer
            continue
        chain = rows["chain"].fillna(0.0)
        scale = rows.groupby("gap_id")["truth"].transform("sum") / chain.groupby(rows["gap_id"]).transform(
            "sum"
        )
        shaped = (chain * scale.replace([np.inf, -np.inf], np.nan)).fillna(0.0)
        base = (rows["baseline"].fillna(0.0) - rows["truth"]).abs().sum()
        out[name] = round(float((shaped - rows["truth"]).abs().sum() / base), 3)
    return out


def summary_rows(report: dict) -> list[dict]:
    rows = []
    for name in LENGTHS:
        e = report["gaps"].get(name)
        if not e or not e["n"]:
            continue
        ratio = e.get("chain_vs_baseline") or {}
        rows.append(
            {
                "gap": name,
                "n_gaps": e["gaps"],
                "series": e["series"],
                "intervals": e["n"],
                "chain_nmae": e["chain"]["nmae"],
                "chain_bias": e["chain"]["bias"],
                "baseline_nmae": e["baseline"]["nmae"],
                "baseline_bias": e["baseline"]["bias"],
                "ratio": ratio.get("nmae_ratio"),
                "ci95": ratio.get("ci95"),
                "chain_bias_ci95": (ratio.get("bias_ci95") or {}).get("chain"),
            }
        )
    return rows


def print_summary(title: str, rows: list[dict], aims: bool = True) -> None:
    print(f"\n{title}")
    head = (
        f"{'gap':>4} {'n gaps':>7} {'series':>6} {'chain NMAE':>10} {'bias':>7} {'(95 % CI)':>15} "
        f"{'baseline NMAE':>13} {'bias':>7} {'ratio':>6} {'95 % CI':>13}" + ("  aim" if aims else "")
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = r["ratio"] is not None and r["ratio"] <= AIM[r["gap"]] and abs(r["chain_bias"]) <= AIM_BIAS
        ci = f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}" if r["ci95"] else "n/a"
        b = r["chain_bias_ci95"]
        bias_ci = f"({100 * b[0]:+.1f}, {100 * b[1]:+.1f})" if b else "n/a"
        line = (
            f"{r['gap']:>4} {r['n_gaps']:>7} {r['series']:>6} {100 * r['chain_nmae']:>9.1f}% "
            f"{100 * r['chain_bias']:>+6.1f}% {bias_ci:>15} {100 * r['baseline_nmae']:>12.1f}% "
            f"{100 * r['baseline_bias']:>+6.1f}% {r['ratio']:>6.3f} {ci:>13}"
        )
        if aims:
            line += f"  {'met' if ok else 'not met'} (ratio <= {AIM[r['gap']]:.2f}, |bias| <= 2 %)"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="folder of real half-hourly readings")
    parser.add_argument(
        "--households", type=int, default=0, help="at most this many households of the half (0: all)"
    )
    parser.add_argument("--half", choices=["reporting", "tuning"], default="reporting")
    parser.add_argument("--resolutions", default="hourly,half-hourly")
    parser.add_argument("--gaps-per-series", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir", type=Path, help="where stores are built and kept (default: a temporary folder)"
    )
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--simulator-meters", type=int, default=200)
    parser.add_argument("--simulator-days", type=int, default=35)
    parser.add_argument("--no-simulator", action="store_true")
    parser.add_argument(
        "--ablation", action="store_true", help="hourly: switch each estimation feature off in turn"
    )
    parser.add_argument(
        "--variants", help="with --ablation: only these variants (comma-separated names of the table)"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()

    try:
        files = household_files(args.data_dir)
    except ReadingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tuning, reporting = split_households(list(files))
    chosen = tuning if args.half == "tuning" else reporting
    if args.households:
        chosen = chosen[: args.households]
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    unknown = set(resolutions) - set(RESOLUTIONS)
    if unknown:
        parser.error(f"--resolutions: expected hourly and/or half-hourly, got {sorted(unknown)}")
    print(
        f"{len(files)} households: {len(tuning)} tuning, {len(reporting)} reporting (split by SHA-256 of the id); "
        f"this run: {len(chosen)} of the {args.half} half, up to {args.gaps_per_series} gaps per length per "
        f"household, seed {args.seed}"
    )
    temp = None
    if args.work_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="estimation_real_")
        args.work_dir = Path(temp.name)
    out: dict = {"half": args.half, "households": chosen, "seed": args.seed, "real": {}, "ablation": {}}
    try:
        for name in resolutions:
            seconds = RESOLUTIONS[name]
            root = args.work_dir / f"real_{args.half}_{len(chosen)}_{seconds}"
            store, cfg = build_real_store(root, {h: files[h] for h in chosen}, seconds, args.rebuild)
            try:
                started = time.perf_counter()
                run = backtest_run(store, cfg, args.seed, args.gaps_per_series)
                rows = summary_rows(run.report)
                out["real"][name] = rows
                print_summary(
                    f"Real households, {name} ({args.half} half, {len(chosen)} households; backtest "
                    f"{time.perf_counter() - started:.0f} s)",
                    rows,
                )
                bound = known_total_ratio(run.results)
                out.setdefault("known_total_ratio", {})[name] = bound
                print(
                    "  with each gap's true total given (a bound, not an estimator), the chain's shape "
                    "would reach " + ", ".join(f"{g} {r:.3f}" for g, r in bound.items())
                )
                if args.ablation and seconds == 3600:
                    names = [v.strip() for v in args.variants.split(",")] if args.variants else None
                    out["ablation"] = ablation(store, cfg, args.seed, args.gaps_per_series, names)
            finally:
                store.dispose()
        if not args.no_simulator:
            root = args.work_dir / f"simulator_{args.simulator_meters}_{args.simulator_days}"
            store, cfg = build_simulator_store(
                root, args.simulator_meters, args.simulator_days, 7, args.rebuild
            )
            try:
                out["simulator"] = simulator(store, cfg, args)
            finally:
                store.dispose()
    except (BacktestError, ReadingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if temp is not None:
            temp.cleanup()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


def simulator(store: Store, cfg: UtilityConfig, args: argparse.Namespace) -> dict:
    """The simulator's backtest with the default chain and with the chain before issue 17, on the
    same gaps: every channel pooled, then per channel."""
    out = {}
    for name, overrides in (("default chain", {}), (OLD_CHAIN, ABLATION[OLD_CHAIN])):
        opts = BacktestOptions(seed=args.seed, max_series=None, gaps_per_series=args.gaps_per_series)
        report = run_backtest(store, with_rules(cfg, overrides), opts).report
        out[name] = {"summary": summary_rows(report), "report": report}
        title = f"Simulator, {name} ({args.simulator_meters} meters x {args.simulator_days} days, channels pooled)"
        print_summary(title, out[name]["summary"], aims=False)
        print(format_table(report))
    return out


def ablation(
    store: Store, cfg: UtilityConfig, seed: int, gaps_per_series: int, names: list[str] | None = None
) -> dict:
    """The hourly backtest with each estimation feature switched off (the same gaps every time);
    ``names``: only those variants."""
    unknown = set(names or ()) - set(ABLATION)
    if unknown:
        raise BacktestError(f"--variants: unknown {sorted(unknown)}; known: {list(ABLATION)}")
    print("\nAblation (hourly, same gaps): chain NMAE / baseline NMAE, chain bias")
    print(f"{'variant':<36}" + "".join(f"{g:>18}" for g in LENGTHS))
    results = {}
    for variant, overrides in ABLATION.items():
        if names and variant not in names:
            continue
        rows = {
            r["gap"]: r
            for r in summary_rows(backtest(store, with_rules(cfg, overrides), seed, gaps_per_series))
        }
        results[variant] = rows
        cells = "".join(
            f"{rows[g]['ratio']:>10.3f} {100 * rows[g]['chain_bias']:>+5.1f}%"
            if g in rows
            else f"{'n/a':>18}"
            for g in LENGTHS
        )
        print(f"{variant:<36}{cells}")
    return results


if __name__ == "__main__":
    sys.exit(main())
