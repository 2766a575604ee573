"""Minimum night flow (MNF) per zone and operating day, the legitimate night use allowance, the
excess (the leakage indicator), its baseline and trend.

MNF = the smallest hourly system input among the hours that start inside the night window
(default 02:00-04:00 local), counting only measured hours. Legitimate night use = the customers'
metered consumption in that hour when the customer side is complete, else the allowance per
connection (1.7 L/h by default, UK practice). Baseline = the 20th percentile of the previous
nights' MNF (UKWIR's rolling 7-night 20th percentile); trend = least-squares slope per day.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.water.params import ZoneParams, litres_per

NIGHT_COLUMNS = [
    "zone_id",
    "read_day",
    "min_night_flow",
    "legitimate_night_use",
    "excess_night_flow",
    "baseline",
    "unit",
    "completeness",
]


def night_flow(
    hourly: pd.DataFrame,
    zone_tz: Mapping[str, str],
    params: Mapping[str, ZoneParams],
    connections: Mapping[str, float],
) -> pd.DataFrame:
    """``zone_night_flow`` rows (baseline left empty: see ``with_baseline``) from hourly balances."""
    if hourly.empty:
        return pd.DataFrame(columns=NIGHT_COLUMNS)
    h = hourly.copy()
    h["interval_end"] = pd.to_datetime(h["interval_end"], utc=True)
    starts = h["interval_end"] - pd.Timedelta(hours=1)
    local_hour = pd.Series(np.nan, index=h.index)
    for zone, tz in zone_tz.items():
        rows = h["zone_id"] == zone
        local_hour[rows] = starts[rows].dt.tz_convert(tz).dt.hour
    start_h = h["zone_id"].map({z: p.night_start_hour for z, p in params.items()})
    end_h = h["zone_id"].map({z: p.night_end_hour for z, p in params.items()})
    window = h[(local_hour >= start_h) & (local_hour < end_h)].copy()
    if window.empty:
        return pd.DataFrame(columns=NIGHT_COLUMNS)
    completeness = window.groupby(["zone_id", "read_day"])["input_completeness"].mean()
    measured = window[window["input_completeness"] >= 1.0 - 1e-9]
    out = completeness.rename("completeness").reset_index()
    if not measured.empty:
        at_min = measured.loc[measured.groupby(["zone_id", "read_day"])["input_volume"].idxmin()]
        threshold = at_min["zone_id"].map({z: p.min_completeness for z, p in params.items()}).fillna(0.98)
        conn = at_min["zone_id"].map(dict(connections)).fillna(0.0).astype(float)
        lph = at_min["zone_id"].map({z: p.legitimate_night_use_lph for z, p in params.items()}).fillna(1.7)
        allowance = conn * lph / at_min["unit"].map(litres_per).astype(float)
        lnu = np.where(
            at_min["metered_completeness"] >= threshold - 1e-9, at_min["metered_volume"], allowance
        )
        picked = at_min[["zone_id", "read_day", "unit"]].assign(
            min_night_flow=at_min["input_volume"].to_numpy(), legitimate_night_use=lnu
        )
        out = out.merge(picked, on=["zone_id", "read_day"], how="left")
    else:
        out = out.assign(min_night_flow=np.nan, legitimate_night_use=np.nan, unit=None)
    out["excess_night_flow"] = out["min_night_flow"] - out["legitimate_night_use"]
    out["baseline"] = np.nan
    return out[NIGHT_COLUMNS]


def with_baseline(nights: pd.DataFrame, baseline_nights: int = 7) -> pd.DataFrame:
    """Each night's baseline: the 20th percentile of the zone's previous ``baseline_nights`` MNFs."""
    nights = nights.sort_values(["zone_id", "read_day"]).reset_index(drop=True)
    prev = nights.groupby("zone_id")["min_night_flow"].transform(
        lambda s: s.shift(1).rolling(baseline_nights, min_periods=3).quantile(0.2)
    )
    return nights.assign(baseline=prev)


def trend_per_day(nights: pd.DataFrame) -> float | None:
    """Least-squares slope of the MNF in unit/h per day (None with fewer than 3 measured nights)."""
    n = nights.dropna(subset=["min_night_flow"])
    if len(n) < 3:
        return None
    x = (pd.to_datetime(n["read_day"]) - pd.to_datetime(n["read_day"]).min()).dt.days.to_numpy(dtype=float)
    if np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, n["min_night_flow"].to_numpy(dtype=float), 1)[0])
