"""The estimation chain: each step fills what it can and passes the rest on (docs/vee_rules.md §3).

Order (configurable per rule set): zero fill under an outage → linear interpolation for short
gaps (flat hold when one side is missing) → like-day average of the nearest reference days →
multi-week average → class load profile → scaling to the register advance → average daily load.
Every estimated interval records its method and the inputs it used.

Frames hold only the series that need estimates: one operating day, sorted by (sid, t), with
columns value, status (valid | suspect | missing), outage, interval_seconds, slot (local minute
of day), class_key and ``context`` rows (neighbouring days' intervals, end points only). Joins
run on integer keys (keys.py).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.keys import group_bounds, lookup
from smartmdm_pipelines.domain.vee.like_day import SLOTS, Anchored, anchored_profile, endpoints
from smartmdm_pipelines.domain.vee.runs import group_starts, run_lengths


def needs_estimate(frame: pd.DataFrame) -> np.ndarray:
    todo = frame["status"].isin(["suspect", "missing"]).to_numpy() & ~frame["context"].to_numpy(dtype=bool)
    if "r_awaiting_data" in frame:
        todo &= ~frame["r_awaiting_data"].fillna(False).to_numpy(dtype=bool)
    return todo


def _open(frame: pd.DataFrame) -> np.ndarray:
    return needs_estimate(frame) & frame["est_method"].isna().to_numpy()


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
        _open(frame)
        & frame["outage"].to_numpy(dtype=bool)
        & np.isnan(frame["value"].to_numpy(dtype="float64"))
    )
    _fill(frame, todo, np.zeros(len(frame)), "zero_fill", "power outage")


def linear(frame: pd.DataFrame, rules: RuleSet, profile: Anchored | None = None) -> None:
    """E1 (T1–T4): point-to-point between valid end points when the gap is short; flat hold
    (T3) when only one side exists. Outage intervals are not end points (CA) unless configured.

    With a like-day ``profile`` (like_day.py) a two-sided short gap gets (1 − w) × linear + w ×
    profile, w = ``linear_profile_weight`` (method ``linear+profile``): the profile's shape without
    its edge anchoring, as the interpolation already holds the edges."""
    todo = _open(frame)
    if not todo.any():
        return
    value = frame["value"].to_numpy(dtype="float64")
    t = frame["t"].to_numpy().astype("float64")
    endpoint = endpoints(frame, rules)
    ends = pd.DataFrame(
        {
            "s": frame["sid"].to_numpy(),
            "pt": np.where(endpoint, t, np.nan),
            "pv": np.where(endpoint, value, np.nan),
        }
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
    inputs = np.full(len(frame), None, dtype=object)
    rows = np.flatnonzero(two_sided)
    if len(rows):
        inputs[rows] = [
            f"between {a:.4g} and {b:.4g}" for a, b in zip(prev_v[rows], next_v[rows], strict=True)
        ]
    weight = rules.linear_profile_weight
    if profile is not None and weight > 0:
        blend = two_sided & ~np.isnan(profile.base)
        rows = np.flatnonzero(blend)
        if len(rows):
            interp = np.where(blend, (1 - weight) * interp + weight * profile.base, interp)
            inputs[rows] = [
                f"{a} blended {weight:.0%} with the like-day profile ({b})"
                for a, b in zip(inputs[rows], profile.inputs[rows], strict=True)
            ]
            _fill(frame, blend, interp, "linear+profile", inputs)
    _fill(frame, two_sided, interp, "linear", inputs)

    # one-sided: the run of intervals to estimate reaches the edge of the data
    new_series = group_starts(frame, ["sid"])
    run_len = run_lengths(todo, new_series)
    short_run = run_len * step <= max_gap
    only_prev = todo & short_run & ~np.isnan(prev_t) & np.isnan(next_t)
    only_next = todo & short_run & np.isnan(prev_t) & ~np.isnan(next_t)
    _fill(frame, only_prev, prev_v, "flat_hold", "held from the previous valid interval")
    _fill(frame, only_next, next_v, "flat_hold", "held from the next valid interval")


def like_day(
    frame: pd.DataFrame,
    history: pd.DataFrame,
    rules: RuleSet,
    day_type: str,
    weekday: int,
    profile: Anchored | None = None,
    day: dt.date | None = None,
) -> None:
    """E2 (T11): the anchored like-day profile (like_day.py: weighted clean reference days, level
    and edge anchoring). Falls back to a multi-week average (E3) of the same weekday before the
    day, estimates allowed, when fewer like days exist."""
    todo = _open(frame)
    if not todo.any() or history is None or history.empty:
        return
    if profile is not None:
        _fill(frame, todo, profile.value, "like_day", profile.inputs)

    todo = _open(frame)
    if todo.any():
        days = (
            history.groupby(["sid", "local_date"], sort=False)
            .agg(outage=("outage", "any"), weekday=("weekday", "first"))
            .reset_index()
        )
        relaxed = days[~days["outage"] & (days["weekday"] == weekday)]
        if day is not None:
            relaxed = relaxed[pd.to_datetime(relaxed["local_date"]) < pd.Timestamp(day)]
        _fill_from_days(frame, todo, history, _nearest(relaxed, rules.reference_weeks), "multi_week")


def _nearest(days: pd.DataFrame, n: int) -> pd.DataFrame:
    ordered = days.sort_values(["sid", "local_date"], ascending=[True, False])
    return ordered[ordered.groupby("sid", sort=False).cumcount() < n][["sid", "local_date"]]


def _fill_from_days(frame, todo, history, chosen, method) -> None:
    if chosen.empty:
        return
    ref = history.merge(chosen, on=["sid", "local_date"])
    ref = ref[ref["usable"]]
    key = ref["sid"].to_numpy() * SLOTS + ref["slot"].to_numpy()
    means = pd.Series(ref["value"].to_numpy()).groupby(key).mean()
    values = lookup(
        frame["sid"].to_numpy() * SLOTS + frame["slot"].to_numpy(), means.index.to_numpy(), means.to_numpy()
    )
    dates = chosen.groupby("sid")["local_date"].agg(lambda d: ",".join(sorted(str(x) for x in d)))
    text = lookup(frame["sid"].to_numpy(), dates.index.to_numpy(), dates.to_numpy(dtype=object), fill=None)
    inputs = np.array([f"reference days {d}" if d is not None else None for d in text], dtype=object)
    _fill(frame, todo, values, method, inputs)


def class_profiles(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Today's average value per (class, slot) over valid intervals, at two levels of detail:
    'fine' (commodity, channel, interval length, customer class) and 'coarse' (without class)."""
    valid = frame["status"].eq("valid").to_numpy() & ~np.isnan(frame["value"].to_numpy(dtype="float64"))
    valid &= ~frame["outage"].to_numpy(dtype=bool) & ~frame["context"].to_numpy(dtype=bool)
    rows = np.flatnonzero(valid)  # arrays only: the frame is wide
    value = pd.Series(frame["value"].to_numpy()[rows])
    slot = frame["slot"].to_numpy()[rows]
    out = {}
    for level in ("fine", "coarse"):
        key = frame[f"class_{level}"].to_numpy()[rows] * SLOTS + slot
        out[level] = value.groupby(key).mean()
    return out


def class_profile(frame: pd.DataFrame, profiles: dict[str, pd.Series] | None) -> None:
    """E5: no usable history: the class's average shape today (the coarser class when the
    customer class has none), scaled to the meter's own valid intervals when it has enough."""
    if not profiles:
        return
    for level in ("fine", "coarse"):
        todo = _open(frame)
        if not todo.any():
            return
        profile = profiles[level]
        key = frame[f"class_{level}"].to_numpy() * SLOTS + frame["slot"].to_numpy()
        base = lookup(key, profile.index.to_numpy(), profile.to_numpy())
        # scale: the meter's valid sum over the class profile at the same slots
        own = frame["status"].eq("valid").to_numpy() & ~np.isnan(frame["value"].to_numpy(dtype="float64"))
        own &= ~frame["context"].to_numpy(dtype=bool) & ~np.isnan(base)
        sid = frame["sid"].to_numpy()
        sums = pd.DataFrame(
            {
                "s": sid,
                "own": np.where(own, frame["value"].to_numpy(dtype="float64"), 0.0),
                "prof": np.where(own, base, 0.0),
                "n": own,
                "all": ~frame["context"].to_numpy(dtype=bool),
            }
        )
        g = sums.groupby("s").sum()
        factor = np.where(
            (g["n"] >= 0.25 * g["all"]) & (g["prof"] > 0), g["own"] / g["prof"].where(g["prof"] > 0, 1), 1.0
        )
        scale = lookup(sid, g.index.to_numpy(), factor, fill=1.0)
        _fill(frame, todo, base * scale, "class_profile", "class average shape of today")


def average_daily_load(frame: pd.DataFrame, history: pd.DataFrame | None) -> None:
    """E8, last resort: the meter's average interval value over its valid history."""
    todo = _open(frame)
    if not todo.any() or history is None or history.empty:
        return
    usable = history[history["usable"]]
    mean = usable.groupby("sid")["value"].mean()
    _fill(
        frame,
        todo,
        lookup(frame["sid"].to_numpy(), mean.index.to_numpy(), mean.to_numpy()),
        "average_daily_load",
        "mean of valid history",
    )


def scale_to_register(
    frame: pd.DataFrame,
    expected_totals: tuple[np.ndarray, np.ndarray] | None,
    suspect_registers: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """E6 (T12): when register reads bracket the day, make the day total equal the register
    advance × multiplier: scale the estimates, or spread the remainder equally over intervals
    no earlier method could fill.

    ``suspect_registers`` (series ids, failed rule per id): series whose register advance failed
    the sum check or the multiplier check that day. Scaling to a wrong advance spreads its error
    over the estimates, so those series are left unscaled and their estimates say why."""
    if expected_totals is None or len(expected_totals[0]) == 0:
        return
    day = ~frame["context"].to_numpy(dtype=bool)
    est = needs_estimate(frame) & day
    sid = frame["sid"].to_numpy()
    target = lookup(sid, expected_totals[0], expected_totals[1])
    if suspect_registers is not None and len(suspect_registers[0]):
        rule = lookup(sid, suspect_registers[0], np.asarray(suspect_registers[1], dtype=object), fill=None)
        bad = est & pd.notna(rule) & ~np.isnan(target)
        if bad.any():
            target = np.where(bad, np.nan, target)
            noted = bad & frame["est_method"].notna().to_numpy()
            if noted.any():
                frame.loc[noted, "est_inputs"] = (
                    frame.loc[noted, "est_inputs"].astype(str)
                    + "; not scaled: the register advance failed "
                    + pd.Series(rule[noted], index=frame.index[noted]).astype(str)
                )
    known = np.where(day & ~est, np.nan_to_num(frame["value"].to_numpy(dtype="float64")), 0.0)
    estv = np.where(est, frame["est_value"].to_numpy(dtype="float64"), np.nan)
    agg = pd.DataFrame(
        {"s": sid, "known": known, "est": np.nan_to_num(estv), "n_est": est, "n_empty": est & np.isnan(estv)}
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
    profiles: dict | None = None,
    suspect_registers: tuple[np.ndarray, np.ndarray] | None = None,
    day: dt.date | None = None,
) -> pd.DataFrame:
    """Run the chain's steps in order (``methods`` selects a subset, e.g. an operator's request).

    ``history``: the series' current intervals of the reference weeks (prepared by
    ``history.prepare_history``); it may hold the day after ``day`` (a like day) but never ``day``.
    ``suspect_registers``: (series ids, rule) whose register advance is not trusted today
    (sum_check / multiplier_mismatch): register scaling skips them (see ``scale_to_register``)."""
    frame["est_value"] = np.nan
    frame["est_method"] = pd.Series(None, index=frame.index, dtype="object")
    frame["est_inputs"] = pd.Series(None, index=frame.index, dtype="object")
    before = history
    if day is not None and history is not None and len(history):
        before = history[pd.to_datetime(history["local_date"]).to_numpy() < np.datetime64(day, "D")]
    profile = None
    if "like_day" in methods and day is not None:
        profile = anchored_profile(frame, needs_estimate(frame), history, rules, day, day_type, weekday)
    steps = {
        "zero_fill": lambda: zero_fill_outages(frame),
        "linear": lambda: linear(frame, rules, profile),
        "like_day": lambda: like_day(frame, history, rules, day_type, weekday, profile, day),
        "class_profile": lambda: class_profile(frame, profiles),
        "register_scaling": lambda: (
            scale_to_register(
                frame,
                expected_totals,
                suspect_registers if rules.skip_scaling_on_failed_sum_check else None,
            )
            if rules.scale_to_register
            else None
        ),
        "average_daily_load": lambda: average_daily_load(frame, before),
    }
    for name in methods:
        steps[name]()
    return frame


__all__ = ["CHAIN", "class_profiles", "group_bounds", "needs_estimate", "run_chain"]
