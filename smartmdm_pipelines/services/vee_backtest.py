"""Estimation backtest against the store: hide known-good current intervals, run the production
estimation on them, compare with what was hidden (``smartmdm backtest-estimation``).

Only the ``intervals`` table (current versions) is required; master data (meters, installations,
service points) and register reads are used when present, as production VEE would. A meter
without master data is treated as an AMI meter of the commodity its channel implies, in a
customer class of its own (``unknown``).

Per operating day holding gaps (one pass per day, all of its gaps at once), the day's current
intervals of the gap series become the validated frame (the first-pass statuses a clean day
had), the gaps are masked, and the frame goes through ``estimate.estimate_day`` with
``DayInputs`` whose history comes from ``services.vee.load_history`` — the production path.
The class peers of the day are added only for series that reach the class-profile step. The
chain runs twice: with the register reads of the day (production) and without them (what the
interval estimators alone achieve, e.g. when the register reads are lost with the intervals, or
for data without registers such as Green Button). The California baseline uses the same history.
Nothing is written to the store.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.calendar import holidays_for
from smartmdm_pipelines.domain.readings import CHANNELS
from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee import backtest as bt
from smartmdm_pipelines.domain.vee.day import DayInputs, DayResult
from smartmdm_pipelines.domain.vee.estimate import estimate_day
from smartmdm_pipelines.services.vee import load_history
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

METHODS = ("chain", "baseline", "chain_without_registers")


class BacktestError(RuntimeError):
    """The store holds too little data to backtest; the message says which condition failed."""


@dataclass
class BacktestReport:
    report: dict
    results: pd.DataFrame = field(repr=False)
    gaps: pd.DataFrame = field(repr=False)
    seconds: float = 0.0

    def table(self) -> str:
        return bt.format_table(self.report, METHODS)


def day_summary(store: Store, first: dt.date | None, last: dt.date | None) -> pd.DataFrame:
    """Per meter, channel and operating day: interval counts of the current versions."""
    where = "read_day >= :a AND read_day <= :b" if first and last else "TRUE"
    current = current_intervals_sql(
        where, "meter_id, channel, read_day, interval_seconds, value, status, failed_rules"
    )
    return store.read_frame(
        "SELECT meter_id, channel, read_day, min(interval_seconds) AS interval_seconds, "
        "count(DISTINCT interval_seconds) AS lengths, count(*) AS intervals, "
        "sum(CASE WHEN status = 'valid' AND value IS NOT NULL "
        "AND coalesce(failed_rules, '') NOT LIKE '%power_outage%' THEN 1 ELSE 0 END) AS clean_intervals "
        f"FROM ({current}) c GROUP BY meter_id, channel, read_day",
        {"a": first, "b": last},
    )


def _master(store: Store) -> dict[str, pd.DataFrame]:
    q = store.read_frame
    return {
        "meters": q("SELECT meter_id, kind, commodity, multiplier, dials FROM meters ORDER BY meter_id"),
        "installs": q(
            "SELECT meter_id, service_point_id, installed_at, removed_at, multiplier, start_register, "
            "end_register FROM meter_installs ORDER BY meter_id, installed_at, service_point_id"
        ),
        "service_points": q(
            "SELECT service_point_id, customer_class, has_solar FROM service_points ORDER BY service_point_id"
        ),
    }


def _candidates(store: Store, cfg: UtilityConfig, opts: bt.BacktestOptions, holidays) -> pd.DataFrame:
    rules = cfg.vee_config().default
    n_intervals = store.count("intervals")
    if n_intervals == 0:
        raw = store.count("raw_reads")
        raise BacktestError(
            "the store holds no validated intervals (table intervals is empty"
            + (f"; raw_reads holds {raw:,} reads: run VEE on their days first" if raw else "")
            + ")"
        )
    first = last = None
    if opts.days_from or opts.days_to:
        bounds = store.read_frame("SELECT min(read_day) AS a, max(read_day) AS b FROM intervals").iloc[0]
        first = opts.days_from or pd.Timestamp(bounds["a"]).date()
        last = opts.days_to or pd.Timestamp(bounds["b"]).date()
        first = first - dt.timedelta(weeks=rules.reference_weeks)
    daily = day_summary(store, first, last)
    daily = daily[daily["channel"].isin(CHANNELS)]  # the channels the estimation engine knows
    tz = cfg.utility.timezone
    like_days = rules.like_days if opts.min_like_days is None else opts.min_like_days
    cand = bt.eligible_days(
        daily, tz, holidays, like_days, rules.reference_weeks, opts.days_from, opts.days_to
    )
    if cand.empty:
        d = bt.eligible_days(daily, tz, holidays, 0, rules.reference_weeks, opts.days_from, opts.days_to)
        days = pd.to_datetime(daily["read_day"]) if len(daily) else pd.Series(dtype="datetime64[ns]")
        window = (
            f" between {opts.days_from or 'the first'} and {opts.days_to or 'the last'} day"
            if (opts.days_from or opts.days_to)
            else ""
        )
        raise BacktestError(
            "too little data to backtest: no (series, day) has a clean day (all current intervals "
            f"valid, complete){window} preceded by at least {like_days} clean days of the same day "
            f"type in the {rules.reference_weeks} weeks before it. The store holds {len(daily):,} "
            f"series-days over {days.dt.normalize().nunique() if len(days) else 0} operating days, "
            f"{len(d):,} of them clean{window}; load a longer window (e.g. 21 days or more)."
        )
    return cand


def _current_day(store: Store, day: dt.date, column: str, values: list[str], master) -> pd.DataFrame:
    """The day's current valid intervals where ``column`` (meter_id or channel) is in ``values``."""
    current = store.read_frame(
        current_intervals_sql(
            f"read_day = :day AND {column} IN (SELECT unnest(:values))",
            "meter_id, channel, interval_end, interval_seconds, value, unit, status, failed_rules",
        ),
        {"day": day, "values": values},
    )
    return bt.validated_frame(current, master["meters"], master["installs"], master["service_points"])


def _registers(store: Store, day: dt.date, tz: str, meters: list[str]) -> pd.DataFrame:
    start, end = local_day_bounds(day, tz)
    return store.read_frame(
        "SELECT meter_id, channel, read_at, value FROM register_reads WHERE read_at >= :a AND read_at <= :b "
        "AND meter_id IN (SELECT unnest(:meters)) ORDER BY meter_id, channel, read_at, value",
        {"a": start - pd.Timedelta(hours=1), "b": end + pd.Timedelta(hours=1), "meters": meters},
    )


def _chain_values(result: DayResult, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    f = result.intervals
    est = f[f["final_status"].eq("estimated")][[*bt.KEY, "final_value", "estimation_method"]]
    m = truth[bt.KEY].merge(est, on=bt.KEY, how="left")
    return m["final_value"].to_numpy(dtype="float64"), m["estimation_method"].to_numpy(dtype=object)


def _estimate(masked: pd.DataFrame, truth: pd.DataFrame, inputs: DayInputs, peers) -> tuple[np.ndarray, ...]:
    """Production estimation of the hidden intervals.

    The frame first holds the gap series only: every step but the class profile reads nothing
    but the series itself and its history. Series that reach the class profile (or later) are
    estimated again with their class peers' valid intervals of the day in the frame (``peers()``
    reads them), as production would see them; this is rare and keeps the common case small.
    """

    def run(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        keyed, inputs.catalog = bt.with_keys(frame)  # estimate_day adds columns: give it a copy
        return _chain_values(estimate_day(DayResult(keyed, pd.DataFrame(), {}), inputs), truth)

    values, methods = run(masked)
    step = pd.Series(methods, dtype="object").fillna("none").str.split("+").str[0]
    again = step.isin(["class_profile", "average_daily_load", "register_spread", "none"]).to_numpy()
    if again.any():
        other = peers()
        other = other[~other.set_index(bt.SERIES).index.isin(masked.set_index(bt.SERIES).index)]
        v2, m2 = run(pd.concat([masked, other], ignore_index=True))
        values, methods = np.where(again, v2, values), np.where(again, m2, methods)
    return values, methods


def _has_registers(inputs: DayInputs, meters: list[str]) -> bool:
    """Whether any register reading (the day's reads, or an install's start/end reading) of the
    gap meters could reach the chain: without one, the chain without registers is the chain."""
    if inputs.registers is not None and len(inputs.registers):
        return True
    installs = inputs.installs
    if installs is None or installs.empty:
        return False
    mine = installs[installs["meter_id"].isin(meters)]
    return bool(mine[["start_register", "end_register"]].notna().to_numpy().any())


def run_backtest(store: Store, cfg: UtilityConfig, opts: bt.BacktestOptions | None = None) -> BacktestReport:
    """Choose the gaps (``opts``), estimate them day by day, and score chain and baseline."""
    started = time.perf_counter()
    opts = opts or bt.BacktestOptions()
    tz = cfg.utility.timezone
    vee = cfg.vee_config()
    weeks = vee.default.reference_weeks
    years = store.read_frame("SELECT min(read_day) AS a, max(read_day) AS b FROM intervals").iloc[0]
    first_year = pd.Timestamp(years["a"]).year if pd.notna(years["a"]) else dt.date.today().year
    last_year = pd.Timestamp(years["b"]).year if pd.notna(years["b"]) else first_year
    holidays = holidays_for(cfg.utility.holidays, first_year - 1, last_year + 1)

    candidates = _candidates(store, cfg, opts, holidays)
    gaps = bt.choose_gaps(candidates, tz, opts.seed, opts.max_series, opts.gap_lengths, opts.gaps_per_series)
    if gaps.empty:
        raise BacktestError(
            f"too little data to backtest: {len(candidates):,} eligible series-days, but none whose interval "
            f"length fits a gap of {', '.join(opts.gap_lengths)}"
        )
    master = _master(store)
    parts = []
    for read_day, day_gaps in gaps.groupby("read_day", sort=True):  # one pass per operating day
        day = pd.Timestamp(read_day).date()
        series = day_gaps[bt.SERIES]
        meters = sorted(series["meter_id"].unique().tolist())
        frame = _current_day(store, day, "meter_id", meters, master).merge(series, on=bt.SERIES)
        masked, truth = bt.mask_day(frame, day_gaps)
        # sorted: the database returns rows in any order, and float sums depend on it
        history = load_history(store, day, series, weeks).sort_values(bt.KEY).reset_index(drop=True)
        inputs = DayInputs(
            day=day,
            tz=tz,
            reads=pd.DataFrame(),
            meters=master["meters"],
            installs=master["installs"],
            service_points=master["service_points"],
            registers=_registers(store, day, tz, meters),
            history=history,
            holidays=holidays,
            config=vee,
        )
        channels = sorted(series["channel"].unique().tolist())
        peers = functools.cache(functools.partial(_current_day, store, day, "channel", channels, master))
        chain, method = _estimate(masked, truth, inputs, peers)
        no_reg = chain
        if _has_registers(inputs, meters):
            # without registers: neither the day's register reads nor the install/removal readings
            inputs.registers = pd.DataFrame()
            inputs.installs = master["installs"].assign(start_register=np.nan, end_register=np.nan)
            no_reg, _ = _estimate(masked, truth, inputs, peers)
        baseline = bt.california_baseline(masked, truth, history, day, tz, holidays, opts.baseline_days)
        parts.append(
            truth.rename(columns={"value": "truth"}).assign(
                chain=chain, chain_method=method, baseline=baseline.to_numpy(), chain_without_registers=no_reg
            )
        )
    results = pd.concat(parts, ignore_index=True)
    report = bt.summarise(results, METHODS, opts.gap_lengths)
    return BacktestReport(report, results, gaps, time.perf_counter() - started)
