"""The estimation chain: each step fills what it can and passes the rest on (vee.md §3).

Order (configurable per rule set): zero fill under an outage → linear interpolation for short
gaps (flat hold when one side is missing) → like-day average of the nearest reference days →
multi-week average → class load profile → scaling to the register advance → average daily load.
Every estimated interval records its method and the inputs it used.

Frames are one operating day, sorted by meter, channel, interval_end, with columns value,
status (valid | suspect | missing), outage, interval_seconds, slot (local time of day), and
``context`` rows (neighbouring days' intervals, used as end points only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import epoch_seconds
from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.runs import group_starts, run_lengths

SERIES = ["meter_id", "channel"]


def needs_estimate(frame: pd.DataFrame) -> np.ndarray:
    todo = frame["status"].isin(["suspect", "missing"]).to_numpy() & ~frame["context"].to_numpy()
    if "r_awaiting_data" in frame:
        todo &= ~frame["r_awaiting_data"].fillna(False).to_numpy(dtype=bool)
    return todo


def _fill(
    frame: pd.DataFrame, mask: np.ndarray, values: np.ndarray, method: str, inputs: np.ndarray | str
) -> None:
    mask = mask & ~np.isnan(values) & frame["est_method"].isna().to_numpy()
    if not mask.any():
        return
    frame.loc[mask, "est_value"] = values[mask]
    frame.loc[mask, "est_method"] = method
    frame.loc[mask, "est_inputs"] = inputs[mask] if isinstance(inputs, np.ndarray) else inputs


def zero_fill_outages(frame: pd.DataFrame) -> None:
    """E9: an interval without a value while the service was de-energised consumed nothing."""
    todo = (
        needs_estimate(frame)
        & frame["outage"].to_numpy()
        & np.isnan(frame["value"].to_numpy(dtype="float64"))
    )
    _fill(frame, todo, np.zeros(len(frame)), "zero_fill", "power outage")


def linear(frame: pd.DataFrame, rules: RuleSet) -> None:
    """E1 (T1–T4): point-to-point between valid end points when the gap is short; flat hold
    (T3) when only one side exists. Outage intervals are not end points (CA) unless configured."""
    todo = needs_estimate(frame) & frame["est_method"].isna().to_numpy()
    if not todo.any():
        return
    value = frame["value"].to_numpy(dtype="float64")
    t = epoch_seconds(frame["interval_end"]).astype("float64")
    endpoint = frame["status"].eq("valid").to_numpy() & ~np.isnan(value)
    if not rules.outage_is_endpoint:
        endpoint &= ~frame["outage"].to_numpy()
    series = (frame["meter_id"] + "\x1f" + frame["channel"]).to_numpy()
    ends = pd.DataFrame(
        {"s": series, "pt": np.where(endpoint, t, np.nan), "pv": np.where(endpoint, value, np.nan)}
    )
    prev = ends.groupby("s", sort=False)[["pt", "pv"]].ffill()
    nxt = ends.groupby("s", sort=False)[["pt", "pv"]].bfill()
    prev_t, prev_v = prev["pt"].to_numpy(), prev["pv"].to_numpy()
    next_t, next_v = nxt["pt"].to_numpy(), nxt["pv"].to_numpy()
    step = frame["interval_seconds"].to_numpy(dtype="float64")
    max_gap = rules.linear_max_gap_minutes * 60.0
    two_sided = todo & ~np.isnan(prev_t) & ~np.isnan(next_t) & ((next_t - prev_t - step) <= max_gap)
    with np.errstate(invalid="ignore", divide="ignore"):
        interp = prev_v + (next_v - prev_v) * (t - prev_t) / (next_t - prev_t)
    _fill(frame, two_sided, interp, "linear", _inputs(prev_t, prev_v, next_t, next_v))

    # one-sided: the run of intervals to estimate reaches the edge of the data
    new_series = group_starts(frame, SERIES)
    run_len = run_lengths(todo, new_series)
    short_run = run_len * step <= max_gap
    only_prev = todo & short_run & ~np.isnan(prev_t) & np.isnan(next_t)
    only_next = todo & short_run & np.isnan(prev_t) & ~np.isnan(next_t)
    _fill(frame, only_prev, prev_v, "flat_hold", "held from the previous valid interval")
    _fill(frame, only_next, next_v, "flat_hold", "held from the next valid interval")


def _inputs(prev_t, prev_v, next_t, next_v) -> np.ndarray:
    text = pd.Series(
        "between " + pd.Series(prev_v).round(4).astype(str) + " and " + pd.Series(next_v).round(4).astype(str)
    )
    return text.to_numpy(dtype=object)


def like_day(frame: pd.DataFrame, history: pd.DataFrame, rules: RuleSet, day_type: str, weekday: int) -> None:
    """E2 (T11): interval-by-interval average of the nearest like days that are complete and
    free of outages, estimates and edits. Falls back to a multi-week average (E3) of the same
    weekday, estimates allowed, when fewer like days exist."""
    todo = needs_estimate(frame) & frame["est_method"].isna().to_numpy()
    if not todo.any() or history is None or history.empty:
        return
    days = history.groupby([*SERIES, "local_date"], sort=False).agg(
        clean=("clean", "all"),
        no_outage=("outage", "any"),
        day_type=("day_type", "first"),
        weekday=("weekday", "first"),
    )
    days["no_outage"] = ~days["no_outage"]
    days = days.reset_index()
    strict = days[days["clean"] & days["no_outage"]]
    if rules.like_day_mode == "same_weekday":
        strict = strict[strict["weekday"] == weekday]
    else:
        strict = strict[strict["day_type"] == day_type]
    chosen = _nearest(strict, rules.like_days)
    chosen = chosen[chosen.groupby(SERIES)["local_date"].transform("size") >= rules.like_days]
    _fill_from_days(frame, todo, history, chosen, "like_day")

    todo = needs_estimate(frame) & frame["est_method"].isna().to_numpy()
    if todo.any():
        relaxed = days[days["no_outage"] & (days["weekday"] == weekday)]
        _fill_from_days(frame, todo, history, _nearest(relaxed, rules.reference_weeks), "multi_week")


def _nearest(days: pd.DataFrame, n: int) -> pd.DataFrame:
    ordered = days.sort_values([*SERIES, "local_date"], ascending=[True, True, False])
    return ordered[ordered.groupby(SERIES, sort=False).cumcount() < n][[*SERIES, "local_date"]]


def _fill_from_days(frame, todo, history, chosen, method) -> None:
    if chosen.empty:
        return
    ref = history.merge(chosen, on=[*SERIES, "local_date"])
    ref = ref[ref["usable"]]
    means = ref.groupby([*SERIES, "slot"], sort=False)["value"].agg(["mean", "count"])
    dates = chosen.groupby(SERIES)["local_date"].agg(lambda d: ",".join(sorted(str(x) for x in d)))
    key = pd.MultiIndex.from_arrays([frame["meter_id"], frame["channel"], frame["slot"]])
    values = key.map(means["mean"]).to_numpy(dtype="float64")
    series_key = pd.MultiIndex.from_arrays([frame["meter_id"], frame["channel"]])
    inputs = ("reference days " + pd.Series(series_key.map(dates), dtype="str")).to_numpy(dtype=object)
    _fill(frame, todo, values, method, inputs)


def class_profile(frame: pd.DataFrame) -> None:
    """E5: no usable history: the class's average shape today (same commodity, channel, interval
    length and customer class; the coarser class without customer class when that one is empty),
    scaled to the meter's own valid intervals when it has enough of them."""
    for cls in (
        ["commodity", "channel", "interval_seconds", "customer_class"],
        ["commodity", "channel", "interval_seconds"],
    ):
        todo = needs_estimate(frame) & frame["est_method"].isna().to_numpy()
        if not todo.any():
            return
        _class_profile(frame, todo, cls)


def _class_profile(frame: pd.DataFrame, todo: np.ndarray, cls: list[str]) -> None:
    day = frame[~frame["context"]]
    valid = day[day["status"].eq("valid") & day["value"].notna() & ~day["outage"]]
    profile = valid.groupby([*cls, "slot"], sort=False)["value"].mean()
    if profile.empty:
        return
    key = pd.MultiIndex.from_arrays([frame[c] for c in [*cls, "slot"]])
    base = key.map(profile).to_numpy(dtype="float64")
    # scale: the meter's valid sum over the class profile at the same slots
    vkey = pd.MultiIndex.from_arrays([valid[c] for c in [*cls, "slot"]])
    own = valid.assign(prof=vkey.map(profile).to_numpy(dtype="float64"))
    sums = own.groupby(SERIES).agg(own_sum=("value", "sum"), prof_sum=("prof", "sum"), n=("value", "size"))
    expected = day.groupby(SERIES).size()
    enough = sums["n"] >= 0.25 * expected.reindex(sums.index)
    sums["factor"] = np.where(enough & (sums["prof_sum"] > 0), sums["own_sum"] / sums["prof_sum"], 1.0)
    skey = pd.MultiIndex.from_arrays([frame["meter_id"], frame["channel"]])
    factor = pd.Series(skey.map(sums["factor"]), dtype="float64").fillna(1.0).to_numpy()
    _fill(frame, todo, base * factor, "class_profile", "class average shape of today")


def average_daily_load(frame: pd.DataFrame, history: pd.DataFrame | None) -> None:
    """E8, last resort: the meter's average interval value over its valid history."""
    todo = needs_estimate(frame) & frame["est_method"].isna().to_numpy()
    if not todo.any() or history is None or history.empty:
        return
    usable = history[history["usable"]]
    mean = usable.groupby(SERIES)["value"].mean()
    key = pd.MultiIndex.from_arrays([frame["meter_id"], frame["channel"]])
    _fill(frame, todo, key.map(mean).to_numpy(dtype="float64"), "average_daily_load", "mean of valid history")


def scale_to_register(frame: pd.DataFrame, expected_totals: pd.Series) -> None:
    """E6 (T12): when register reads bracket the day, make the day total equal the register
    advance × multiplier: scale the estimates, or spread the remainder equally over intervals
    no earlier method could fill."""
    if expected_totals is None or expected_totals.empty:
        return
    day = ~frame["context"].to_numpy()
    est = needs_estimate(frame) & day
    key = pd.MultiIndex.from_arrays([frame["meter_id"], frame["channel"]])
    target = key.map(expected_totals).to_numpy(dtype="float64")
    known = np.where(day & ~est, frame["value"].fillna(0).to_numpy(dtype="float64"), 0.0)
    estv = np.where(est, frame["est_value"].to_numpy(dtype="float64"), np.nan)
    series = (frame["meter_id"] + "\x1f" + frame["channel"]).to_numpy()
    agg = pd.DataFrame(
        {
            "s": series,
            "known": known,
            "est": np.nan_to_num(estv),
            "n_est": est,
            "n_empty": est & np.isnan(estv),
        }
    )
    sums = agg.groupby("s", sort=False)[["known", "est", "n_est", "n_empty"]].transform("sum")
    remainder = target - sums["known"].to_numpy()
    eligible = est & ~np.isnan(target) & (remainder >= 0)
    spread = eligible & (sums["n_empty"].to_numpy() == sums["n_est"].to_numpy())
    scale = eligible & ~spread & (sums["n_empty"].to_numpy() == 0) & (sums["est"].to_numpy() > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread_value = remainder / sums["n_est"].to_numpy()
        scaled = estv * remainder / sums["est"].to_numpy()
    frame.loc[spread, "est_value"] = spread_value[spread]
    frame.loc[spread, "est_method"] = "register_spread"
    frame.loc[spread, "est_inputs"] = "register advance remainder spread equally"
    frame.loc[scale, "est_value"] = scaled[scale]
    frame.loc[scale, "est_method"] = frame.loc[scale, "est_method"] + "+scaled"
    frame.loc[scale, "est_inputs"] = (
        frame.loc[scale, "est_inputs"].astype(str) + "; scaled to the register advance"
    )


CHAIN = ("zero_fill", "linear", "like_day", "class_profile", "register_scaling", "average_daily_load")


def run_chain(
    frame,
    history,
    rules: RuleSet,
    day_type: str,
    weekday: int,
    expected_totals,
    methods: tuple[str, ...] = CHAIN,
) -> pd.DataFrame:
    """Run the chain's steps in order (``methods`` selects a subset, e.g. an operator's request)."""
    frame["est_value"] = np.nan
    frame["est_method"] = pd.Series(pd.NA, index=frame.index, dtype="object")
    frame["est_inputs"] = pd.Series(pd.NA, index=frame.index, dtype="object")
    steps = {
        "zero_fill": lambda: zero_fill_outages(frame),
        "linear": lambda: linear(frame, rules),
        "like_day": lambda: like_day(frame, history, rules, day_type, weekday),
        "class_profile": lambda: class_profile(frame),
        "register_scaling": lambda: (
            scale_to_register(frame, expected_totals) if rules.scale_to_register else None
        ),
        "average_daily_load": lambda: average_daily_load(frame, history),
    }
    for name in methods:
        steps[name]()
    return frame
