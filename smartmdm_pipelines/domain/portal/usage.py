"""Usage in a service point's local time: intervals summed into local hours, days and months
(23- and 25-hour days on DST changes), each bucket with the status its intervals add up to.

Input frames have ``interval_end`` (UTC, tz-aware), ``interval_seconds``, ``value`` and
``status`` (the store's: valid | estimated | edited | suspect | missing). Times are interval
ending: an interval belongs to the bucket its start falls in.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

RESOLUTIONS = ("interval", "hour", "day", "month")
PORTAL_STATUS = {"valid": "actual", "suspect": "actual", "estimated": "estimated", "edited": "edited"}
# a bucket's status: the "least actual" of its intervals
_RANK = {"actual": 0, "edited": 1, "estimated": 2, "missing": 3}
_NAMES = {v: k for k, v in _RANK.items()}


@lru_cache(maxsize=4096)  # a pure function of its arguments, asked for on every portal request
def local_range(first: dt.date, last: dt.date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC instants of local midnight at ``first`` and after ``last`` (``last`` inclusive)."""
    days = pd.DatetimeIndex([pd.Timestamp(first), pd.Timestamp(last) + pd.Timedelta(days=1)])
    bounds = days.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").tz_convert("UTC")
    return bounds[0], bounds[1]


def portal_status(status: pd.Series, value: pd.Series) -> pd.Series:
    out = status.map(PORTAL_STATUS).fillna("actual")
    return out.where(value.notna(), "missing")


def _month_start(local_dates: pd.Series) -> pd.Series:
    d = pd.to_datetime(local_dates)
    return (d - pd.to_timedelta(d.dt.day - 1, unit="D")).dt.normalize()


def _localize_midnights(days: pd.Series, tz: str) -> pd.Series:
    return (
        pd.to_datetime(days)
        .dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        .dt.tz_convert("UTC")
    )


def bucket(frame: pd.DataFrame, resolution: str, tz: str) -> pd.DataFrame:
    """Sum ``frame`` per bucket: columns ``start``, ``end`` (UTC), ``value``, ``status``,
    ``intervals`` (the intervals summed, missing ones included), sorted by ``start``."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
    if frame.empty:
        return _empty()
    end = pd.to_datetime(frame["interval_end"], utc=True)
    seconds = frame["interval_seconds"].astype("int64").to_numpy()
    start = end - pd.to_timedelta(seconds, unit="s")
    rank = portal_status(frame["status"], frame["value"]).map(_RANK).to_numpy()
    if resolution == "interval":
        b_start, b_end = start, end
    else:
        b_start, b_end = _bounds(start, resolution, tz)
    values = frame["value"].to_numpy(dtype="float64")
    present = ~np.isnan(values)
    return _reduce(
        _epoch(pd.Series(b_start)),
        _epoch(pd.Series(b_end)),
        np.where(present, values, 0.0),
        present.astype("float64"),
        np.ones(len(frame), dtype="int64"),
        np.where(present, rank, -1).astype("int64"),
    )


def bucket_hours(hours: pd.DataFrame, resolution: str, tz: str) -> pd.DataFrame:
    """:func:`bucket` from hourly sums (the store's ``usage_hourly`` rows, several meters
    possibly): columns ``hour_start`` (epoch seconds of the UTC hour the intervals start in),
    ``value_sum``, ``value_count``, ``interval_count``, ``status_rank`` (worst rank of the
    present values: 0 actual, 1 edited, 2 estimated). Equal to :func:`bucket` of the intervals
    when ``tz``'s offsets are whole hours (every UTC hour is a local hour)."""
    if resolution not in RESOLUTIONS[1:]:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS[1:])}, not {resolution!r}")
    if hours.empty:
        return _empty()
    h = hours["hour_start"].to_numpy(dtype="int64")
    if resolution == "hour":
        b0, b1 = h, h + 3600
    else:
        b_start, b_end = _bounds(pd.Series(pd.to_datetime(h, unit="s", utc=True)), resolution, tz)
        b0, b1 = _epoch(b_start), _epoch(pd.Series(b_end))
    valued = hours["value_count"].to_numpy(dtype="float64")
    sums = hours["value_sum"].to_numpy(dtype="float64")
    rank = hours["status_rank"].to_numpy(dtype="float64")
    return _reduce(
        b0,
        b1,
        np.where(valued > 0, np.nan_to_num(sums), 0.0),
        valued,
        hours["interval_count"].to_numpy(dtype="int64"),
        np.where((valued > 0) & ~np.isnan(rank), np.nan_to_num(rank), -1).astype("int64"),
    )


_COLS = ["start", "end", "value", "status", "intervals"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in _COLS})


def _bounds(start: pd.Series, resolution: str, tz: str) -> tuple[pd.Series, pd.Series]:
    """The local hour, day or month (UTC bounds) each UTC instant ``start`` falls in."""
    if resolution == "hour":
        local = start.dt.tz_convert(tz)
        offset = local.dt.minute * 60 + local.dt.second
        b_start = start - pd.to_timedelta(offset, unit="s")
        return b_start, b_start + pd.Timedelta(hours=1)
    local_day = start.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    if resolution == "day":
        first = local_day
        after = local_day + pd.Timedelta(days=1)
    else:
        first = _month_start(local_day)
        after = first + pd.offsets.MonthBegin(1)
    return _localize_midnights(first, tz), _localize_midnights(pd.Series(after), tz)


def _reduce(
    b0: np.ndarray, b1: np.ndarray, total: np.ndarray, valued: np.ndarray, size: np.ndarray, rank: np.ndarray
) -> pd.DataFrame:
    """Per bucket (start epoch ``b0``) with numpy: sums, counts of values, intervals and the worst
    status rank of the present values (``rank`` -1 where none is present)."""
    keys, first, inverse = np.unique(b0, return_index=True, return_inverse=True)
    n = len(keys)
    sums = np.bincount(inverse, weights=total, minlength=n)
    values = np.bincount(inverse, weights=valued, minlength=n)
    count = np.bincount(inverse, weights=size, minlength=n).astype("int64")
    worst = np.full(n, -1, dtype="int64")
    np.maximum.at(worst, inverse, rank)
    worst[worst < 0] = _RANK["missing"]
    return pd.DataFrame(
        {
            "start": pd.to_datetime(keys, unit="s", utc=True),
            "end": pd.to_datetime(b1[first], unit="s", utc=True),
            "value": np.where(values > 0, sums, np.nan),
            "status": np.array([_NAMES[int(r)] for r in range(4)], dtype=object)[worst],
            "intervals": count,
        }
    )[_COLS]


def _epoch(instants: pd.Series) -> np.ndarray:
    t = pd.to_datetime(instants, utc=True)
    return ((t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")


def iso_local(instants: pd.Series, tz: str) -> list[str]:
    """ISO 8601 local times with their UTC offsets (``2024-11-03T01:00:00-05:00``), vectorised."""
    utc = pd.to_datetime(pd.Series(instants), utc=True)
    if utc.empty:
        return []
    local = utc.dt.tz_convert(tz).dt.tz_localize(None)
    offset = ((local - utc.dt.tz_localize(None)) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")
    naive = np.datetime_as_string(local.to_numpy().astype("datetime64[s]"), unit="s")
    codes, uniques = pd.factorize(offset)
    suffix = np.array([_offset_text(int(o)) for o in uniques], dtype=object)[codes]
    return (naive.astype(object) + suffix).tolist()


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    h, m = divmod(abs(seconds) // 60, 60)
    return f"{sign}{h:02d}:{m:02d}"
