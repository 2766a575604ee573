"""Register estimation for manual and AMR meters (docs/vee_rules.md E10, V2 Register Gap Check).

A scheduled read (the billing cycle's read date) with no actual register read on or near it
is estimated as

    previous actual register + ADU × days elapsed          (dial units, rollover modulo 10**dials)

where the average daily usage (ADU, dial units per day) comes from the first available source
in ``RuleSet.register_adu_sources``:

- ``recent``: the meter's own actual reads, Itron's Average Recent Load Projection: (latest good −
  earliest good) ÷ days, over the ``register_adu_days`` before the previous actual read;
- ``previous_year``: the actual reads nearest the same span a year earlier (AEMO type 51);
- ``class``: the average ADU × multiplier of the meters of the same commodity, channel and
  customer class (the coarser commodity and channel when the class has none), ÷ this meter's
  multiplier (AEMO type 57, last resort).

The advance is truncated to ``register_estimate_decimals`` (the CPUC proposal truncates ADU ×
days to whole dial units). Every estimate also carries the consumption since the read before it
(actual or estimated), × multiplier, which is what is stored as an interval version: the estimated
register reads and the actual ones then form non-overlapping spans per meter-channel.

All of it is vectorised over every scheduled read of every meter (``merge_asof`` per series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.config import RuleSet

SERIES = ["meter_id", "channel"]
DAY = pd.Timedelta(days=1)
YEAR = pd.Timedelta(days=365)
# method -> (ESPI QualityOfReading, IEC 61968-9): estimated from historical data; MDM estimated generic
REGISTER_METHOD_CODES: dict[str, tuple[int, str]] = {
    "register_recent": (8, "2.8.0"),
    "register_previous_year": (8, "2.8.0"),
    "register_class": (8, "2.8.0"),
}
OUTPUT_COLUMNS = [
    "meter_id",
    "channel",
    "read_date",
    "scheduled_at",
    "actual",
    "actual_at",
    "actual_value",
    "prev_at",
    "prev_value",
    "adu",
    "adu_source",
    "register_value",
    "span_start",
    "interval_seconds",
    "value",
    "method",
    "reason",
]


def estimate_registers(
    schedule: pd.DataFrame,
    reads: pd.DataFrame,
    rules: RuleSet | None = None,
    population: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Estimate the register at every scheduled read that has no actual read near it.

    ``schedule``: meter_id, channel, read_date, scheduled_at (UTC instant the scheduled read
    stands for), commodity, customer_class, dials, multiplier.
    ``reads``: actual register reads, meter_id, channel, read_at (UTC), value (dial units); an
    installation's start register may be passed as a read at its installation instant.
    ``population`` (same columns; default ``schedule``): the meters whose reads make the class
    averages, e.g. every manual and AMR meter when ``schedule`` is one rule-set class of them.
    Returns one row per scheduled read (``OUTPUT_COLUMNS``): ``actual`` tells whether a read
    was found within ``register_read_window_days``; otherwise ``register_value`` is the estimate
    (NaN, with the reason, when no previous actual read or no ADU source exists).
    """
    rules = rules or RuleSet()
    if schedule.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    s = schedule.copy()
    s["scheduled_at"] = pd.to_datetime(s["scheduled_at"], utc=True)
    s["_row"] = np.arange(len(s))
    r = reads.dropna(subset=["value"]).copy()
    r["read_at"] = pd.to_datetime(r["read_at"], utc=True)
    r = r[[*SERIES, "read_at", "value"]].astype({"value": "float64"})
    r = r.sort_values("read_at").reset_index(drop=True)
    dials = s["dials"].fillna(0).astype("int64").to_numpy()
    span = np.where(dials > 0, np.power(10.0, dials), np.nan)
    multiplier = s["multiplier"].fillna(1.0).to_numpy(dtype="float64")

    # an actual read near the read date (on it, or within the window either side)
    window = pd.Timedelta(days=rules.register_read_window_days)
    near_at, near_v = _asof(s, "scheduled_at", r, "nearest", window + DAY)
    near = ~np.isnan(near_v) & (near_at <= s["scheduled_at"] + window).to_numpy()
    s["actual"] = near
    s["actual_at"] = near_at.where(near)
    s["actual_value"] = np.where(near, near_v, np.nan)

    # previous actual read
    prev_at, prev_v = _asof(s, "scheduled_at", r, "backward")
    s["prev_at"], s["prev_value"] = prev_at, prev_v
    days = ((s["scheduled_at"] - prev_at) / DAY).to_numpy(dtype="float64")

    # ADU sources, dial units per day
    adu_days, min_days = pd.Timedelta(days=rules.register_adu_days), rules.register_adu_min_days
    s["_from"] = prev_at - adu_days
    early_at, early_v = _asof(s, "_from", r, "forward")
    recent_days = ((prev_at - early_at) / DAY).to_numpy(dtype="float64")
    recent = _rate(prev_v, early_v, recent_days, span, min_days)

    tol = pd.Timedelta(days=rules.register_previous_year_tolerance_days)
    s["_ly_a"], s["_ly_b"] = prev_at - YEAR, s["scheduled_at"] - YEAR
    a_at, a_v = _asof(s, "_ly_a", r, "nearest", tol)
    b_at, b_v = _asof(s, "_ly_b", r, "nearest", tol)
    previous_year = _rate(b_v, a_v, ((b_at - a_at) / DAY).to_numpy(dtype="float64"), span, min_days)

    per_day = _class_usage(
        s, r, rules, schedule if population is None else population
    )  # consumption per day (× multiplier) of the meter's class
    by_class = per_day / multiplier

    candidates = {"recent": recent, "previous_year": previous_year, "class": by_class}
    adu = np.full(len(s), np.nan)
    source = np.full(len(s), None, dtype=object)
    for name in rules.register_adu_sources:
        if name not in candidates:
            raise ValueError(f"unknown register ADU source {name!r}; known: {sorted(candidates)}")
        take = np.isnan(adu) & ~np.isnan(candidates[name])
        adu[take], source[take] = candidates[name][take], name
    s["adu"], s["adu_source"] = adu, source

    todo = ~near & ~np.isnan(prev_v) & ~np.isnan(adu)
    scale = 10.0**rules.register_estimate_decimals
    advance = np.floor(adu * np.maximum(days, 0) * scale) / scale
    estimate = prev_v + advance
    estimate = np.where(np.isnan(span), estimate, np.mod(estimate, np.where(np.isnan(span), 1.0, span)))
    s["register_value"] = np.where(todo, estimate, np.nan)
    s["method"] = np.where(todo, "register_" + pd.Series(source, dtype=object).fillna("").to_numpy(), None)

    # the read before each estimate: the previous actual, or an earlier estimate after it
    est = s[todo].sort_values([*SERIES, "scheduled_at"])
    before_at = est.groupby(SERIES, sort=False)["scheduled_at"].shift(1)
    before_v = est.groupby(SERIES, sort=False)["register_value"].shift(1)
    use_est = before_at.notna() & (before_at > est["prev_at"])
    s["span_start"] = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    s.loc[est.index, "span_start"] = before_at.where(use_est, est["prev_at"])
    chain_v = np.full(len(s), np.nan)
    chain_v[est["_row"].to_numpy()] = np.where(use_est, before_v, est["prev_value"])
    delta = s["register_value"].to_numpy(dtype="float64") - chain_v
    delta = np.where(
        np.isnan(span), np.maximum(delta, 0.0), np.mod(delta, np.where(np.isnan(span), 1.0, span))
    )
    s["value"] = np.where(todo, delta * multiplier, np.nan)
    s["interval_seconds"] = ((s["scheduled_at"] - s["span_start"]) / pd.Timedelta(seconds=1)).round()
    s["reason"] = _reasons(s, todo, near, days, rules)
    return s[OUTPUT_COLUMNS].reset_index(drop=True)


def _asof(
    left: pd.DataFrame, on: str, reads: pd.DataFrame, direction: str, tolerance: pd.Timedelta | None = None
) -> tuple[pd.Series, np.ndarray]:
    """(read_at, value) of the read of the same series nearest ``left[on]`` in ``direction``."""
    key = left[[*SERIES, on]].copy()
    key["_i"] = np.arange(len(key))
    valid = key[on].notna()
    out_at = pd.Series(pd.NaT, index=left.index, dtype="datetime64[ns, UTC]")
    out_v = np.full(len(left), np.nan)
    if reads.empty or not valid.any():
        return out_at, out_v
    k = key[valid].sort_values(on)
    k[on] = k[on].astype("datetime64[ns, UTC]")
    right = reads.rename(columns={"value": "_v"}).assign(_at=reads["read_at"])
    right["read_at"] = right["read_at"].astype("datetime64[ns, UTC]")
    for col in SERIES:  # merge_asof wants identical key dtypes (the store returns str or object)
        k[col] = k[col].astype(object)
        right[col] = right[col].astype(object)
    merged = pd.merge_asof(
        k,
        right,
        left_on=on,
        right_on="read_at",
        by=SERIES,
        direction=direction,
        tolerance=tolerance,
    )
    rows = merged["_i"].to_numpy()
    out_v[rows] = merged["_v"].to_numpy(dtype="float64")
    at = pd.to_datetime(merged["_at"], utc=True).astype("datetime64[ns, UTC]")
    out_at.iloc[rows] = at.to_numpy()
    return out_at, out_v


def _rate(
    later: np.ndarray, earlier: np.ndarray, days: np.ndarray, span: np.ndarray, min_days: float
) -> np.ndarray:
    """Dial units per day between two reads (one rollover allowed when the dials are known)."""
    later, earlier = np.asarray(later, dtype="float64"), np.asarray(earlier, dtype="float64")
    days = np.asarray(days, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = later - earlier
        delta = np.where(np.isnan(span), delta, np.mod(delta, np.where(np.isnan(span), 1.0, span)))
        rate = delta / days
    return np.where((days >= min_days) & (delta >= 0), rate, np.nan)


def _class_usage(
    s: pd.DataFrame, reads: pd.DataFrame, rules: RuleSet, population: pd.DataFrame
) -> np.ndarray:
    """Average consumption per day (dial rate × multiplier) of the schedule's class, from every
    meter's two most distant actual reads within ``register_adu_days`` of its latest one."""
    out = np.full(len(s), np.nan)
    if reads.empty:
        return out
    last = reads.groupby(SERIES, sort=False).tail(1).rename(columns={"read_at": "last_at", "value": "last_v"})
    last["_from"] = last["last_at"] - pd.Timedelta(days=rules.register_adu_days)
    early_at, early_v = _asof(last.reset_index(drop=True), "_from", reads, "forward")
    attrs = population.drop_duplicates(SERIES)[
        [*SERIES, "commodity", "customer_class", "dials", "multiplier"]
    ]
    meters = last.reset_index(drop=True).assign(early_at=early_at.to_numpy(), early_v=early_v)
    meters = meters.merge(attrs, on=SERIES)
    if meters.empty:
        return out
    dials = meters["dials"].fillna(0).astype("int64").to_numpy()
    span = np.where(dials > 0, np.power(10.0, dials), np.nan)
    days = ((meters["last_at"] - pd.to_datetime(meters["early_at"], utc=True)) / DAY).to_numpy(
        dtype="float64"
    )
    rate = _rate(
        meters["last_v"].to_numpy(), meters["early_v"].to_numpy(), days, span, rules.register_adu_min_days
    )
    meters["usage"] = rate * meters["multiplier"].fillna(1.0).to_numpy(dtype="float64")
    meters = meters.dropna(subset=["usage"])
    meters["customer_class"] = meters["customer_class"].fillna("none")
    keyed = s.assign(customer_class=s["customer_class"].fillna("none"))
    for keys in (["commodity", "channel", "customer_class"], ["commodity", "channel"]):
        mean = meters.groupby(keys)["usage"].mean().rename("_mean").reset_index()
        found = keyed[keys].merge(mean, on=keys, how="left")["_mean"].to_numpy(dtype="float64")
        out = np.where(np.isnan(out), found, out)
    return out


def _reasons(
    s: pd.DataFrame, todo: np.ndarray, near: np.ndarray, days: np.ndarray, rules: RuleSet
) -> np.ndarray:
    reason = np.full(len(s), None, dtype=object)
    rows = np.flatnonzero(todo)
    if len(rows):
        f = s.iloc[rows]
        text = (
            "scheduled read "
            + f["read_date"].astype(str)
            + " missing: previous actual "
            + f["prev_value"].round(3).astype(str)
            + " at "
            + f["prev_at"].dt.strftime("%Y-%m-%dT%H:%MZ")
            + " + ADU "
            + f["adu"].round(4).astype(str)
            + " ("
            + f["adu_source"].astype(str)
            + ") × "
            + pd.Series(days[rows], index=f.index).round(2).astype(str)
            + " days = register "
            + f["register_value"].round(rules.register_estimate_decimals + 3).astype(str)
            + np.where(
                f["dials"].notna(), " (mod 10^" + f["dials"].fillna(0).astype("int64").astype(str) + ")", ""
            )
            + ", × multiplier "
            + f["multiplier"].fillna(1.0).astype(str)
        )
        reason[rows] = text.to_numpy()
    blocked = ~todo & ~near
    no_prev = blocked & np.isnan(s["prev_value"].to_numpy(dtype="float64"))
    reason[no_prev] = "scheduled read missing: no previous actual read to estimate from"
    reason[blocked & ~no_prev] = "scheduled read missing: no ADU source (recent, previous year, class)"
    return reason
