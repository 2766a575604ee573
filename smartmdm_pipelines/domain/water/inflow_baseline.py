"""Night flow and a robust baseline of zone inflow that follows seasonality and weekday/weekend.

* **Night flow** of a local day: the mean inflow rate (volume/h) over the night window (default
  02:00-04:00 local, the hours of least legitimate use). The mean over the window, not the
  minimum of its hours, so that tank-level quantisation telescopes (see ``inflow.tank_storage_change``).
  A night with a missing hour is NaN (its completeness says how much was there).
* **Night baseline**: the rolling median of the previous nights (default 14), after dividing
  each weekend night by the zone's weekend/weekday ratio (weekend nights differ). The median
  follows a seasonal drift within days yet ignores a few odd nights.
* **Hourly profile**: the median inflow per (day type, local hour) over the weeks before an
  instant: the expected shape of a day, which ``inflow_events`` rescales day by day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WEEKDAY, WEEKEND = 0, 1


def local_hour_start(index: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    """Local start instant of each hour identified by its UTC end."""
    return (index - pd.Timedelta(hours=1)).tz_convert(tz)


def day_type(days: pd.DatetimeIndex | pd.Index) -> np.ndarray:
    """0 = weekday, 1 = weekend (Saturday, Sunday) for dates or timestamps."""
    weekday = pd.DatetimeIndex(days).dayofweek
    return np.where(weekday >= 5, WEEKEND, WEEKDAY)


def night_flow(inflow: pd.Series, tz: str, night_start: int = 2, night_end: int = 4) -> pd.DataFrame:
    """Per local day: ``night_flow`` (mean rate, volume/h, NaN unless complete) and ``completeness``.

    The window is the hours starting at ``night_start`` up to (excluding) ``night_end`` local,
    e.g. 2-4 covers the hours 02:00-03:00 and 03:00-04:00. On a DST day the window holds the
    hours that exist (a skipped hour is not missing data).
    """
    starts = local_hour_start(inflow.index, tz)
    hour = starts.hour
    if night_start < night_end:
        inside = (hour >= night_start) & (hour < night_end)
    else:  # a window across midnight belongs to the day it ends in
        inside = (hour >= night_start) | (hour < night_end)
    day = starts.normalize().tz_localize(None)
    if night_start >= night_end:
        day = day + pd.to_timedelta(np.where(hour >= night_start, 1, 0), unit="D")
    frame = pd.DataFrame({"day": day[inside], "value": inflow.to_numpy()[inside]})
    grouped = frame.groupby("day")["value"]
    expected = grouped.size()
    present = grouped.count()
    mean = grouped.mean().where(present == expected)
    out = pd.DataFrame({"night_flow": mean, "completeness": present / expected})
    out.index = pd.DatetimeIndex(out.index, name="day")
    return out


def day_type_factors(night: pd.Series) -> pd.Series:
    """Per day: 1.0 on weekday nights, the zone's weekend ratio on weekend nights.

    The ratio is the median over the series of each weekend night divided by the median of the
    weekday nights within four days of it: a local comparison, so a leak (which lifts both) or the
    season does not bias it. Clipped to [0.7, 1.4]; 1.0 when there are too few weekends.
    """
    types = day_type(night.index)
    weekday = night.where(types == WEEKDAY).rolling(9, center=True, min_periods=3).median()
    ratio = (night / weekday).where(types == WEEKEND)
    ratio = ratio.replace([np.inf, -np.inf], np.nan).dropna()
    weekend = float(np.clip(ratio.median(), 0.7, 1.4)) if len(ratio) >= 4 else 1.0
    return pd.Series(np.where(types == WEEKEND, weekend, 1.0), index=night.index)


def night_baseline(normalised: pd.Series, nights: int = 14, min_nights: int = 7) -> pd.Series:
    """Rolling median of the previous ``nights`` valid values (the current one excluded)."""
    return normalised.shift(1).rolling(nights, min_periods=min_nights).median()


def robust_sigma(values: np.ndarray, floor: float = 0.0) -> float:
    """1.4826 x median absolute deviation (NaN ignored), at least ``floor``."""
    values = values[~np.isnan(values)]
    if len(values) < 3:
        return floor
    mad = np.median(np.abs(values - np.median(values)))
    return float(max(1.4826 * mad, floor))


def hourly_profile(inflow: pd.Series, tz: str, before: pd.Timestamp, days: int = 21) -> pd.DataFrame:
    """Median inflow per (day type, local hour) over the ``days`` before ``before``: 2 x 24 table
    (rows day type, columns hour). A cell without data takes the other day type's value."""
    window = inflow[(inflow.index <= before) & (inflow.index > before - pd.Timedelta(days=days))].dropna()
    starts = local_hour_start(window.index, tz)
    frame = pd.DataFrame(
        {"type": day_type(starts.tz_localize(None)), "hour": starts.hour, "value": window.to_numpy()}
    )
    table = frame.groupby(["type", "hour"])["value"].median().unstack("hour")
    table = table.reindex(index=[WEEKDAY, WEEKEND], columns=range(24))
    return table.bfill().ffill().T.interpolate(limit_direction="both").T


def profile_values(profile: pd.DataFrame, index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """The profile evaluated at hour ends ``index``."""
    starts = local_hour_start(index, tz)
    types = day_type(starts.tz_localize(None))
    return profile.to_numpy()[types, starts.hour]
