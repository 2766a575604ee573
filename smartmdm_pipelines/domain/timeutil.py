"""Interval arithmetic on UTC instants, local operating days and DST.

An interval is identified by its end instant in UTC. It belongs to the local day in
which it *starts*, so the interval ending at local midnight closes the previous day.
Expected interval counts come from the UTC length of the local day, so a 15-minute
meter has 92 intervals on a spring-forward day and 100 on a fall-back day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd


def local_day_bounds(day: dt.date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC instants of local midnight starting ``day`` and of the next local midnight."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def expected_intervals(day: dt.date, tz: str, interval_seconds: int) -> int:
    """How many intervals of ``interval_seconds`` a meter records in local ``day`` (DST-aware)."""
    start, end = local_day_bounds(day, tz)
    seconds = int((end - start).total_seconds())
    if interval_seconds >= 86400:
        return 1
    return seconds // interval_seconds


def interval_ends(day: dt.date, tz: str, interval_seconds: int) -> pd.DatetimeIndex:
    """The UTC end instants of every interval of local ``day``."""
    start, end = local_day_bounds(day, tz)
    if interval_seconds >= 86400:
        return pd.DatetimeIndex([end], tz="UTC")
    return pd.date_range(start + pd.Timedelta(seconds=interval_seconds), end, freq=f"{interval_seconds}s")


def operating_day(interval_end: pd.Series, interval_seconds: pd.Series | int, tz: str) -> pd.Series:
    """Local operating day of each interval, vectorised (naive midnight timestamps, see ``local_date``).

    Daily intervals are nominally 86,400 s but last 23 or 25 hours on DST days: they belong to
    the local day that ends at their end instant.
    """
    seconds = (
        pd.Series(interval_seconds, index=interval_end.index)
        if np.isscalar(interval_seconds)
        else interval_seconds
    )
    offset = seconds.where(seconds < 86400, 1)  # daily: the local date just before its end
    start = interval_end - pd.to_timedelta(offset, unit="s")
    return local_date(start, tz)


def local_date(instants: pd.Series, tz: str) -> pd.Series:
    """Local calendar date of UTC instants, vectorised.

    Returned as naive ``datetime64`` midnights (cheap, columnar); the store casts them
    to ``DATE``. Use ``.dt.date`` where Python dates are wanted.
    """
    if len(instants) > _FEW_DISTINCT_FROM:
        # A file's reads share few distinct instants (a day of intervals has 96): convert those.
        codes, uniques = pd.factorize(instants, use_na_sentinel=False)
        if len(uniques) * 8 <= len(instants):
            dates = _local_date(pd.Series(uniques), tz).to_numpy()
            return pd.Series(dates[codes], index=instants.index, name=instants.name)
    return _local_date(instants, tz)


_FEW_DISTINCT_FROM = 10_000


def _local_date(instants: pd.Series, tz: str) -> pd.Series:
    return instants.dt.tz_convert(tz).dt.tz_localize(None).dt.floor("D")


def register_day(read_at: pd.Series, tz: str) -> pd.Series:
    """The operating day a register read belongs to: a read at local midnight closes the day
    before (it is that day's end reading), any other read belongs to its local date."""
    return local_date(read_at - pd.Timedelta(microseconds=1), tz)


def day_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


_EPOCH = pd.Timestamp(0, tz="UTC")


def epoch_seconds(instants: pd.Series) -> np.ndarray:
    """Whole seconds since 1970 of UTC instants, whatever their resolution."""
    return ((instants - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")
