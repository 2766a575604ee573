"""Validation rules, each a vectorised function over one operating day of all meters.

Interval rules add a boolean column ``r_<rule>`` to the day frame (sorted by meter, channel,
interval end). Rules listed in ``SUSPECT_RULES`` make an interval suspect (it is then
estimated); the others only inform. Meter-day rules (sum check, high/low usage …) return
exception rows directly. Every exception says which rule, which intervals, how severe and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.readings import DERIVED_QUALITY, SPREAD_QUALITY
from smartmdm_pipelines.domain.vee.config import MAX_PER_HOUR, RuleSet
from smartmdm_pipelines.domain.vee.keys import group_bounds, lookup
from smartmdm_pipelines.domain.vee.quality import is_power_fail_code, per_category
from smartmdm_pipelines.domain.vee.runs import equal_value_runs, group_starts, run_lengths

SERIES = ["meter_id", "channel"]

# rule id -> (severity, makes the interval suspect, what it means for an operator)
RULES: dict[str, tuple[str, bool, str]] = {
    "missing_interval": ("warning", True, "expected interval(s) not received"),
    "no_read": ("warning", True, "head-end sent a no-read placeholder"),
    "headend_estimated": ("info", True, "head-end sent an estimate; re-estimated by the MDM"),
    "time_tolerance": (
        "info",
        False,
        "interval timestamp off the grid within tolerance; snapped to its slot",
    ),
    "negative": ("error", True, "negative consumption on a channel that cannot run backwards"),
    "spike": ("warning", True, "highest interval far above the day's third-highest"),
    "spike_history": ("warning", True, "interval far above the meter's highest value in the reference weeks"),
    "above_max": ("error", True, "interval above the physical maximum for its unit and length"),
    "below_min": ("error", True, "interval below the configured minimum"),
    "zero_run": ("warning", True, "consecutive zero intervals on an active service point without an outage"),
    "flat_line": ("warning", True, "identical non-zero values for many consecutive intervals (stuck meter?)"),
    "power_outage": ("info", False, "zero/low intervals during a power outage: valid, excluded as reference"),
    "awaiting_data": (
        "info",
        False,
        "not received yet, within the re-collection window: neither missing nor estimated",
    ),
}
# meter-day rules (exceptions only)
DAY_RULES: dict[str, tuple[str, str]] = {
    "unregistered_meter": (
        "warning",
        "reads of a meter the master data does not know yet: held until the CIS sync brings it",
    ),
    "clock_drift": ("warning", "reads timestamped off the interval grid beyond the time tolerance"),
    "usage_on_inactive": ("warning", "reads for a meter/channel not installed or not active at that time"),
    "sum_check": ("error", "sum of intervals disagrees with the register advance × multiplier"),
    "multiplier_mismatch": ("error", "intervals match the register advance only with another multiplier"),
    "high_usage": ("warning", "day total far above the like-day average"),
    "low_usage": ("warning", "day total far below the like-day average"),
    "continuous_flow": ("warning", "water flow never reached zero for a whole day (leak?)"),
    "reverse_flow": ("warning", "energy received on a service point without generation"),
    "tamper": ("error", "tamper event reported by the meter"),
    "replaced_value": ("info", "a later delivery replaced an actual read with a different value"),
    "conflicting_duplicates": ("warning", "one delivery holds the same interval twice with different values"),
    "missing_channel": ("warning", "a configured channel sent nothing while its siblings did"),
    "prolonged_estimation": ("warning", "the channel has been estimated for several days in a row"),
    "register_decrease": (
        "warning",
        "a cumulative register went down: a bad read (ignored) or a reset that is neither a rollover nor a "
        "recorded meter exchange (no consumption derived across it)",
    ),
}
SUSPECT_RULES = [r for r, (_, suspect, _) in RULES.items() if suspect]
CAN_RUN_BACKWARDS = {"kwh_net"}


def apply_interval_rules(day: pd.DataFrame, rules: RuleSet, hist_max: tuple | None = None) -> pd.DataFrame:
    """Add r_<rule> columns. ``day`` must be sorted by meter, channel, interval_end and hold
    value, received, rank, drift_s, source_quality, unit, interval_seconds, outage."""
    value = day["value"].to_numpy(dtype="float64")
    has_value = ~np.isnan(value)
    new_series = group_starts(day, ["sid"])

    day["r_missing_interval"] = ~day["received"].to_numpy() | (
        np.isnan(value) & (day["rank"].to_numpy() != 2)
    )
    day["r_no_read"] = day["received"].to_numpy() & (day["rank"].fillna(0).to_numpy() == 2)
    day["r_headend_estimated"] = day["rank"].fillna(0).to_numpy() == 1
    day["r_time_tolerance"] = day["drift_s"].fillna(0).to_numpy() != 0

    outage = day["outage"].to_numpy() | _power_fail(day["source_quality"])
    day["outage"] = outage
    negative = has_value & (value < 0) & ~day["channel"].isin(CAN_RUN_BACKWARDS).to_numpy()
    day["r_negative"] = negative

    hours = day["interval_seconds"].to_numpy() / 3600.0
    per_hour = day["unit"].map(MAX_PER_HOUR).fillna(1000.0).to_numpy()
    upper = np.full(len(day), rules.max_interval_value) if rules.max_interval_value else per_hour * hours
    day["r_above_max"] = has_value & (value > upper)
    day["r_below_min"] = (
        has_value
        & ~negative
        & (value < rules.min_interval_value)
        & ~day["channel"].isin(CAN_RUN_BACKWARDS).to_numpy()
    )

    day["r_spike"] = _spike(day, value, rules)
    if hist_max is not None and len(hist_max[0]):
        ref = lookup(day["sid"].to_numpy(), hist_max[0], hist_max[1])
        day["r_spike_history"] = (
            has_value & ~np.isnan(ref) & (ref > 0) & (value > rules.spike_history_factor * ref)
        )
    else:
        day["r_spike_history"] = False

    zero = has_value & (value == 0)
    day["r_power_outage"] = outage & (zero | ~has_value)
    if rules.consecutive_zero_intervals:
        zero_len = run_lengths(zero, new_series)
        checked = day["channel"].eq("kwh_delivered").to_numpy() & ~day["has_solar"].to_numpy(dtype=bool)
        day["r_zero_run"] = zero & (zero_len >= rules.consecutive_zero_intervals) & ~outage & checked
    else:
        day["r_zero_run"] = False

    flat_values = np.where(has_value & (value != 0), value, np.nan)
    run_count = equal_value_runs(flat_values, new_series)
    flat_len = run_count * day["interval_seconds"].to_numpy() / 3600.0
    flat = has_value & (value != 0) & (run_count >= 2) & (flat_len >= rules.flat_line_hours)
    if flat.any():  # register reads apportioned across a gap are flat by construction, not stuck
        flat &= ~day["source_quality"].isin([DERIVED_QUALITY, SPREAD_QUALITY]).to_numpy()
    day["r_flat_line"] = flat & ~day["channel"].isin(["kwh_received"]).to_numpy()
    return day


def _power_fail(quality: pd.Series) -> np.ndarray:
    """``is_power_fail_code`` per interval; tested once per distinct code of a categorical."""
    return per_category(quality, is_power_fail_code).astype(bool)


def _spike(day: pd.DataFrame, value: np.ndarray, rules: RuleSet) -> np.ndarray:
    """Oracle form (T5): (max − third highest) / third highest > tolerance flags the day's maximum."""
    sid = day["sid"].to_numpy()
    has = ~np.isnan(value)
    if not has.any():
        return np.zeros(len(day), dtype=bool)
    s, v = sid[has], value[has]
    if len(s) > 1 and (s[1:] < s[:-1]).any():  # not grouped by series: group it
        order = np.argsort(s, kind="stable")
        s, v = s[order], v[order]
    uniq, starts = group_bounds(s)
    sizes = np.diff(np.r_[starts, len(s)])
    enough = sizes >= 3
    # highest and third highest per series (ties count): drop the first maximum twice
    top = np.maximum.reduceat(v, starts)
    w = v.copy()
    group = np.repeat(np.arange(len(starts)), sizes)
    rows = np.arange(len(w))
    for _ in range(2):
        peak = np.maximum.reduceat(w, starts)
        first = np.minimum.reduceat(np.where(w == peak[group], rows, len(w)), starts)
        w[first[first < len(w)]] = -np.inf
    third = np.maximum.reduceat(w, starts)[enough]
    top = top[enough]
    ids = uniq[enough]
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = (top - third) / third * 100.0
    spiky = (third >= rules.spike_min_value) & (pct > rules.spike_tolerance_pct)
    if not spiky.any():
        return np.zeros(len(day), dtype=bool)
    threshold = lookup(sid, ids[spiky], third[spiky] * (1 + rules.spike_tolerance_pct / 100.0))
    return ~np.isnan(threshold) & (value > threshold)


def sum_check(day_totals: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """T6/T7/T15: per meter activation, interval sum vs register advance × multiplier (dials aware).

    ``day_totals``: meter_id, channel, interval_sum, complete (bool), reg_start, reg_end, dials, multiplier.
    Returns rows meter_id, channel, rule, detail, advance, interval_sum.
    """
    t = day_totals.dropna(subset=["reg_start", "reg_end"])
    t = t[t["complete"]]
    if t.empty:
        return pd.DataFrame(columns=["meter_id", "channel", "rule", "detail", "expected", "interval_sum"])
    dials = t["dials"].fillna(0).astype("int64")
    raw_advance = t["reg_end"] - t["reg_start"]
    rollover = (raw_advance < 0) & (dials > 0)
    span = np.power(10.0, dials)
    advance = np.where(rollover, raw_advance + span, raw_advance)
    expected = advance * t["multiplier"].fillna(1.0)
    diff_pct = np.abs(t["interval_sum"] - expected) / np.maximum(np.abs(expected), 1e-9) * 100.0
    failed = t.assign(expected=expected, diff_pct=diff_pct, advance=advance)[
        diff_pct > rules.sum_check_tolerance_pct
    ]
    if failed.empty:
        return pd.DataFrame(columns=["meter_id", "channel", "rule", "detail", "expected", "interval_sum"])
    ratio = failed["interval_sum"] / np.maximum(failed["advance"], 1e-9)
    common = np.array([1, 2, 5, 10, 20, 40, 50, 60, 80, 100, 120, 160, 200, 400, 800])
    nearest = common[np.abs(ratio.to_numpy()[:, None] - common[None, :]).argmin(axis=1)]
    is_multiplier = (np.abs(ratio - nearest) / nearest < 0.02) & (nearest != failed["multiplier"].fillna(1.0))
    rule = np.where(is_multiplier, "multiplier_mismatch", "sum_check")
    detail = np.where(
        is_multiplier,
        "intervals sum to "
        + failed["interval_sum"].round(3).astype(str)
        + " = register advance "
        + failed["advance"].round(3).astype(str)
        + " × "
        + pd.Series(nearest, index=failed.index).astype(str)
        + ", but the configured multiplier is "
        + failed["multiplier"].astype(str),
        "intervals sum to "
        + failed["interval_sum"].round(3).astype(str)
        + ", register advance × multiplier = "
        + failed["expected"].round(3).astype(str)
        + " ("
        + failed["diff_pct"].round(2).astype(str)
        + f" % > {rules.sum_check_tolerance_pct} %)",
    )
    return pd.DataFrame(
        {
            "meter_id": failed["meter_id"].to_numpy(),
            "channel": failed["channel"].to_numpy(),
            "rule": rule,
            "detail": detail,
            "expected": failed["expected"].to_numpy(),
            "interval_sum": failed["interval_sum"].to_numpy(),
        }
    )
