"""Interval grids: UTC interval-end instants for the local days of one time zone.

A local day runs from local midnight to the next local midnight; both are converted to UTC and
the grid is the UTC range between them. So a spring-forward day has 92 quarter hours, a
fall-back day 100, and a daily (86400 s) interval ends at the next local midnight even when the
day is 23 or 25 hours long. All instants are int64 seconds since the Unix epoch (UTC).

The grid also carries the local-time features the load shapes need (hour of day, weekday,
day of year, holiday), computed once per grid rather than per meter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import holidays
import numpy as np
import pandas as pd

DAY = 86400


def local_midnights_utc(tz: str, start: dt.date, days: int) -> np.ndarray:
    """UTC epoch seconds of local midnight for ``start`` .. ``start + days`` (``days + 1`` values)."""
    naive = pd.date_range(pd.Timestamp(start), periods=days + 1, freq="D")
    local = naive.tz_localize(tz, ambiguous=np.zeros(days + 1, dtype=bool), nonexistent="shift_forward")
    return local.tz_convert("UTC").tz_localize(None).values.astype("datetime64[s]").astype(np.int64)


def to_local(epochs: np.ndarray, tz: str) -> pd.DatetimeIndex:
    """Epoch seconds -> tz-aware local DatetimeIndex."""
    return pd.DatetimeIndex(np.asarray(epochs).astype("datetime64[s]")).tz_localize("UTC").tz_convert(tz)


def iso_utc(epoch: int | float) -> str:
    """One epoch second as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """The interval grid of one (time zone, interval length) over the simulation window."""

    tz: str
    step: int
    start: dt.date
    days: int
    day_starts: np.ndarray  # (days + 1,) UTC epoch of local midnights
    ends: np.ndarray  # (n,) UTC epoch of interval ends
    day_of_col: np.ndarray  # (n,) local day index (0..days-1) of each interval
    day_cols: np.ndarray  # (days + 1,) first column of each local day (+ n at the end)
    hour: np.ndarray  # (n,) local clock hour of the interval midpoint, fractional
    std_hour: np.ndarray  # (n,) local standard-time hour of the midpoint (no DST shift), for the sun
    weekday: np.ndarray  # (n,) 0 = Monday
    day_of_year: np.ndarray  # (n,) 1..366
    day_number: np.ndarray  # (n,) days since 1970-01-01 of the local date (a weather key)
    off_day: np.ndarray  # (n,) bool: weekend or public holiday

    @property
    def n(self) -> int:
        return len(self.ends)

    @property
    def per_day(self) -> int:
        """Intervals in a regular (24 h) day."""
        return max(1, DAY // self.step)

    def day_label(self, day: int) -> str:
        return (self.start + dt.timedelta(days=day)).strftime("%Y%m%d")

    def day_of_instant(self, epoch: np.ndarray | int) -> np.ndarray:
        """Local day index of instants (-1 before the window, ``days`` after it)."""
        return np.searchsorted(self.day_starts, epoch, side="right") - 1


def _std_offset_seconds(tz: str, year: int) -> int:
    """Standard (non-DST) UTC offset: the smaller of the January and July offsets."""
    probes = pd.DatetimeIndex([f"{year}-01-15", f"{year}-07-15"]).tz_localize(tz)
    return int(min(p.utcoffset().total_seconds() for p in probes))


@lru_cache(maxsize=64)
def build_grid(tz: str, step: int, start: dt.date, days: int, country: str = "US") -> TimeGrid:
    """Build (and cache) the grid of ``step``-second intervals for ``days`` local days from ``start``."""
    day_starts = local_midnights_utc(tz, start, days)
    if step >= DAY:
        ends = day_starts[1:].copy()
        mids = (day_starts[:-1] + day_starts[1:]) // 2
        day_of_col = np.arange(days, dtype=np.int32)
    else:
        ends = np.arange(day_starts[0] + step, day_starts[-1] + 1, step, dtype=np.int64)
        mids = ends - step // 2
        day_of_col = (np.searchsorted(day_starts, ends - step, side="right") - 1).astype(np.int32)
    day_cols = np.searchsorted(day_of_col, np.arange(days + 1)).astype(np.int64)

    local = to_local(mids, tz)
    naive = local.tz_localize(None)
    offset = (naive.values.astype("datetime64[s]").astype(np.int64) - mids).astype(np.int64)
    hour = (local.hour.to_numpy() + local.minute.to_numpy() / 60.0 + local.second.to_numpy() / 3600.0).astype(
        np.float64
    )
    std = _std_offset_seconds(tz, start.year)
    std_hour = hour - (offset - std) / 3600.0
    weekday = local.dayofweek.to_numpy().astype(np.int8)
    doy = local.dayofyear.to_numpy().astype(np.int16)
    day_number = naive.normalize().values.astype("datetime64[D]").astype(np.int64)
    years = range(start.year, (start + dt.timedelta(days=days)).year + 1)
    hol = holidays.country_holidays(country, years=years)
    hol_days = np.array([np.datetime64(d, "D").astype(np.int64) for d in sorted(hol.keys())], dtype=np.int64)
    off_day = (weekday >= 5) | np.isin(day_number, hol_days)
    return TimeGrid(
        tz=tz,
        step=step,
        start=start,
        days=days,
        day_starts=day_starts,
        ends=ends,
        day_of_col=day_of_col,
        day_cols=day_cols,
        hour=hour,
        std_hour=std_hour,
        weekday=weekday,
        day_of_year=doy,
        day_number=day_number,
        off_day=off_day,
    )


def zone_day_cuts(grid: TimeGrid, zone: str) -> tuple[list[str], np.ndarray]:
    """The grid's intervals cut on the days of another ``zone`` (by interval start, like the local
    days): the labels (YYYYMMDD) of those days and the first column of each (+ ``n`` at the end)."""
    if grid.n == 0:
        return [], np.zeros(1, dtype=np.int64)
    day = _zone_days(grid.ends - grid.step, zone)
    starts = np.flatnonzero(np.concatenate([[True], day[1:] != day[:-1]]))
    labels = [str(d).replace("-", "") for d in day[starts].astype("datetime64[D]")]
    return labels, np.append(starts, grid.n).astype(np.int64)


def zone_day_label(grid: TimeGrid, col: int, zone: str) -> str:
    """The label (YYYYMMDD) of the ``zone`` day in which interval ``col`` of the grid starts."""
    day = _zone_days(grid.ends[col : col + 1] - grid.step, zone)[0]
    return str(day.astype("datetime64[D]")).replace("-", "")


def _zone_days(epochs: np.ndarray, zone: str) -> np.ndarray:
    """Local dates (days since the epoch) of UTC epoch seconds in ``zone``."""
    return (
        to_local(epochs, zone).tz_localize(None).normalize().values.astype("datetime64[D]").astype(np.int64)
    )


def dst_days(tz: str, start: dt.date, days: int) -> list[tuple[int, int]]:
    """(day index, day length in seconds) of the local days in the window that are not 24 h long."""
    bounds = local_midnights_utc(tz, start, days)
    lengths = np.diff(bounds)
    return [(int(d), int(lengths[d])) for d in np.nonzero(lengths != DAY)[0]]
