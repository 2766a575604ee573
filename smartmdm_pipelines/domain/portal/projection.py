"""Project the rest of a billing period from like days: each remaining interval gets the mean
of the to-date intervals of the same day type (weekday | weekend) and local time of day; a slot
with no like day falls back to the mean of the same local time of day, then to the overall mean."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _keys(ends: pd.Series, seconds: int, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Day type (weekend) and slot of the local day of each interval's local start, in integer
    arithmetic on the local wall-clock seconds (one vectorised zone conversion)."""
    start = pd.DatetimeIndex(pd.to_datetime(ends, utc=True)) - pd.Timedelta(seconds=seconds)
    wall = start.tz_convert(tz).tz_localize(None).as_unit("s").asi8
    days = wall // 86400
    weekend = (days + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)
    minute = (wall - days * 86400) // 60  # the minute of the local day
    return weekend, minute * 60 // seconds


def project(to_date: pd.DataFrame, until: pd.Timestamp, seconds: int, tz: str) -> pd.DataFrame:
    """Intervals after the last to-date one up to ``until`` (UTC, an interval end), with values
    from like days. ``to_date``: ``interval_end``, ``kwh`` (NaN for missing)."""
    known = to_date.dropna(subset=["kwh"])
    if known.empty:
        return pd.DataFrame({"interval_end": pd.Series(dtype="datetime64[ns, UTC]"), "kwh": []})
    last = pd.to_datetime(to_date["interval_end"], utc=True).max()
    ends = pd.Series(pd.date_range(last, until, freq=pd.Timedelta(seconds=seconds), inclusive="right"))
    if ends.empty:
        return pd.DataFrame({"interval_end": ends, "kwh": pd.Series(dtype="float64")})
    k_weekend, k_slot = _keys(known["interval_end"], seconds, tz)
    values = known["kwh"].to_numpy(dtype="float64")
    like = pd.Series(values).groupby([k_weekend, k_slot]).mean()
    by_slot = pd.Series(values).groupby(k_slot).mean()
    weekend, slot = _keys(ends, seconds, tz)
    out = like.reindex(pd.MultiIndex.from_arrays([weekend, slot])).to_numpy()
    fallback = by_slot.reindex(slot).to_numpy()
    out = np.where(np.isnan(out), fallback, out)
    out = np.where(np.isnan(out), float(values.mean()), out)
    return pd.DataFrame({"interval_end": ends, "kwh": out})
