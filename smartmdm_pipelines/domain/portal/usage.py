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
    g = pd.DataFrame(
        {
            "start": b_start.to_numpy(),
            "end": pd.Series(b_end).to_numpy(),
            "value": frame["value"].astype("float64").to_numpy(),
            "rank": rank,
        }
    )
    out = (
        g.groupby(["start", "end"], sort=True)
        .agg(
            value=("value", "sum"),
            n_valued=("value", "count"),
            rank=("rank", "max"),
            intervals=("rank", "size"),
        )
        .reset_index()
    )
    # a bucket with some values is as good as its worst *present* interval; all missing: missing
    present = g[g["value"].notna()].groupby(["start", "end"])["rank"].max()
    out = out.set_index(["start", "end"])
    out["rank"] = present.reindex(out.index).fillna(_RANK["missing"]).astype(int)
    out = out.reset_index()
    out.loc[out["n_valued"] == 0, "value"] = np.nan
    out["status"] = out["rank"].map(_NAMES)
    out["start"] = pd.to_datetime(out["start"], utc=True)
    out["end"] = pd.to_datetime(out["end"], utc=True)
    return out[cols]


def iso_local(instants: pd.Series, tz: str) -> list[str]:
    """ISO 8601 local times with their UTC offsets (``2024-11-03T01:00:00-05:00``)."""
    return [t.isoformat() for t in pd.to_datetime(instants, utc=True).dt.tz_convert(tz)]
