"""Usage in a service point's local time: intervals summed into local hours, days and months
(23- and 25-hour days on DST changes), each bucket with the status its intervals add up to.

Input frames have ``interval_end`` (UTC, tz-aware), ``interval_seconds``, ``value`` and
``status`` (the store's: valid | estimated | edited | suspect | missing). Times are interval
ending: an interval belongs to the bucket its start falls in.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

RESOLUTIONS = ("interval", "hour", "day", "month")
PORTAL_STATUS = {"valid": "actual", "suspect": "actual", "estimated": "estimated", "edited": "edited"}
# a bucket's status: the "least actual" of its intervals
_RANK = {"actual": 0, "edited": 1, "estimated": 2, "missing": 3}
_NAMES = {v: k for k, v in _RANK.items()}


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
    cols = ["start", "end", "value", "status", "intervals"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    end = pd.to_datetime(frame["interval_end"], utc=True)
    seconds = frame["interval_seconds"].astype("int64").to_numpy()
    start = end - pd.to_timedelta(seconds, unit="s")
    rank = portal_status(frame["status"], frame["value"]).map(_RANK).to_numpy()
    if resolution == "interval":
        b_start, b_end = start, end
    elif resolution == "hour":
        local = start.dt.tz_convert(tz)
        offset = local.dt.minute * 60 + local.dt.second
        b_start = start - pd.to_timedelta(offset, unit="s")
        b_end = b_start + pd.Timedelta(hours=1)
    else:
        local_day = start.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        if resolution == "day":
            first = local_day
            after = local_day + pd.Timedelta(days=1)
        else:
            first = _month_start(local_day)
            after = first + pd.offsets.MonthBegin(1)
        b_start = _localize_midnights(first, tz)
        b_end = _localize_midnights(pd.Series(after), tz)
    # per bucket with numpy: sums, counts of values, the worst status of the present values
    b0 = _epoch(pd.Series(b_start))
    b1 = _epoch(pd.Series(b_end))
    keys, first, inverse = np.unique(b0, return_index=True, return_inverse=True)
    values = frame["value"].to_numpy(dtype="float64")
    present = ~np.isnan(values)
    n = len(keys)
    total = np.bincount(inverse, weights=np.where(present, values, 0.0), minlength=n)
    valued = np.bincount(inverse, weights=present.astype("float64"), minlength=n)
    size = np.bincount(inverse, minlength=n)
    worst = np.full(n, -1, dtype="int64")
    np.maximum.at(worst, inverse[present], rank[present].astype("int64"))
    worst[worst < 0] = _RANK["missing"]
    return pd.DataFrame(
        {
            "start": pd.to_datetime(keys, unit="s", utc=True),
            "end": pd.to_datetime(b1[first], unit="s", utc=True),
            "value": np.where(valued > 0, total, np.nan),
            "status": np.array([_NAMES[int(r)] for r in range(4)], dtype=object)[worst],
            "intervals": size,
        }
    )[cols]


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
