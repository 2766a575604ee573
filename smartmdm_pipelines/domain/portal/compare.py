"""Compare a period's usage with a baseline period (the previous period of the same length, or
the same dates a year earlier): totals, the difference, the percentage, and the local hours of
the day that drove the change (weather-free: no normalisation, the raw metered quantities)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

BASELINES = ("previous_period", "last_year")


def baseline_range(first: dt.date, last: dt.date, against: str) -> tuple[dt.date, dt.date]:
    if against == "previous_period":
        days = (last - first).days + 1
        return first - dt.timedelta(days=days), first - dt.timedelta(days=1)
    if against == "last_year":
        shift = pd.DateOffset(years=1)
        return (pd.Timestamp(first) - shift).date(), (pd.Timestamp(last) - shift).date()
    raise ValueError(f"against must be one of {', '.join(BASELINES)}, not {against!r}")


def _pct(diff: float, base: float) -> float | None:
    return None if base == 0 else round(100.0 * diff / base, 2)


def compare(current: pd.DataFrame, baseline: pd.DataFrame, tz: str, top: int = 5) -> dict:
    """``current``/``baseline``: hourly buckets (``start`` UTC, ``value``). The drivers are the
    local hours of the day whose total changed most, with their share of the change."""
    cur_total = float(np.nansum(current["value"].to_numpy(dtype="float64"))) if len(current) else 0.0
    base_total = float(np.nansum(baseline["value"].to_numpy(dtype="float64"))) if len(baseline) else 0.0
    diff = cur_total - base_total

    def by_hour(frame: pd.DataFrame) -> pd.Series:
        if frame.empty:
            return pd.Series(0.0, index=range(24))
        hours = pd.to_datetime(frame["start"], utc=True).dt.tz_convert(tz).dt.hour
        return (
            frame["value"]
            .astype("float64")
            .groupby(hours.to_numpy())
            .sum()
            .reindex(range(24), fill_value=0.0)
        )

    c, b = by_hour(current), by_hour(baseline)
    d = (c - b).sort_values(key=lambda s: -s.abs())
    drivers = [
        {
            "hour_of_day": int(h),
            "current": round(float(c[h]), 6),
            "baseline": round(float(b[h]), 6),
            "difference": round(float(v), 6),
            "share_of_change_percent": _pct(float(v), diff) if diff else None,
        }
        for h, v in d.head(top).items()
        if v != 0
    ]
    return {
        "current_total": round(cur_total, 6),
        "baseline_total": round(base_total, 6),
        "difference": round(diff, 6),
        "percent_change": _pct(diff, base_total),
        "drivers": drivers,
    }
