"""History of a series for VEE: day types, the reference weeks' current intervals
(``prepare_history``), the daily summaries later days compare with (``daily_usage``,
``prepare_daily_history``) and the local slot of an interval."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.keys import Catalog, epoch


def day_type(dates: pd.Series, holidays: frozenset) -> pd.Series:
    """'weekend_holiday' or 'weekday' per date, judged once per distinct date."""
    days = np.asarray(pd.to_datetime(dates).to_numpy(), dtype="datetime64[D]")
    distinct, inverse = np.unique(days, return_inverse=True)
    off = pd.DatetimeIndex(distinct).weekday.to_numpy() >= 5
    if holidays:
        off |= np.isin(distinct, np.array(sorted(holidays), dtype="datetime64[D]"))
    kind = np.where(off, "weekend_holiday", "weekday")
    return pd.Series(kind[inverse.reshape(-1)] if len(days) else kind[:0], index=dates.index)


def prepare_daily_history(daily: pd.DataFrame, day: dt.date, holidays: frozenset) -> pd.DataFrame:
    """daily_usage rows before ``day`` with their day type and whether the day was clean
    (complete, all valid, no outage)."""
    cols = [
        "meter_id",
        "channel",
        "read_day",
        "total",
        "max_value",
        "intervals",
        "valid_intervals",
        "estimated_intervals",
        "has_outage",
        "day_type",
        "clean",
    ]
    if daily is None or daily.empty:
        return pd.DataFrame(columns=cols)
    d = daily.copy()
    d["read_day"] = pd.to_datetime(d["read_day"]).dt.date
    d = d[d["read_day"] < day]
    d["day_type"] = day_type(pd.Series(d["read_day"].to_numpy(), index=d.index), holidays)
    d["clean"] = (d["valid_intervals"] == d["intervals"]) & ~d["has_outage"].astype(bool)
    return d


def daily_usage(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """One row per meter-channel of the day's final intervals: what later days' rules compare with."""
    f = frame.assign(
        _valid=frame["final_status"].eq("valid"),
        _est=frame["final_status"].eq("estimated"),
        _outage=frame["outage"].astype(bool),
    )
    g = (
        f.groupby(["meter_id", "channel"], sort=False)
        .agg(
            total=("final_value", "sum"),
            max_value=("final_value", "max"),
            intervals=("final_value", "size"),
            valid_intervals=("_valid", "sum"),
            estimated_intervals=("_est", "sum"),
            has_outage=("_outage", "any"),
            unit=("unit", "first"),
        )
        .reset_index()
    )
    g["read_day"] = pd.Timestamp(day)
    return g


def slots(instants: pd.Series, seconds: pd.Series | np.ndarray, tz: str) -> tuple[pd.Series, np.ndarray]:
    """Local start of each interval and its minute of the local day. A daily interval (nominally
    86,400 s, 23 or 25 h on DST days) is dated to the local day that ends at its end, slot 0."""
    seconds = np.asarray(seconds, dtype="int64")
    daily = seconds >= 86400
    utc_start = instants - pd.to_timedelta(np.where(daily, 1, seconds), unit="s")
    # a day's millions of intervals start at a few hundred distinct instants: convert each once
    codes, uniques = pd.factorize(utc_start)
    if len(codes) and codes.min() < 0:  # a missing instant: element by element
        start = utc_start.dt.tz_convert(tz)
        slot = np.where(daily, 0, (start.dt.hour * 60 + start.dt.minute).to_numpy(dtype="int64"))
        return start, slot
    local = pd.DatetimeIndex(uniques).tz_convert(tz)
    minute = (local.hour * 60 + local.minute).to_numpy(dtype="int64")
    start = pd.Series(local.take(codes), index=utc_start.index, name=utc_start.name)
    slot = np.where(daily, 0, minute[codes])
    return start, slot


def prepare_history(
    history: pd.DataFrame,
    tz: str,
    holidays: frozenset,
    catalog: Catalog | None = None,
    before: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Current intervals of the reference weeks with series id, local date, slot, day type, usability."""
    cols = [
        "meter_id",
        "channel",
        "interval_end",
        "interval_seconds",
        "value",
        "status",
        "failed_rules",
        "estimation_method",
        "sid",
        "t",
        "local_date",
        "slot",
        "day_type",
        "weekday",
        "outage",
        "clean",
        "usable",
    ]
    if history is None or history.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols}).astype(
            {"sid": "int64", "t": "int64", "slot": "int64", "value": "float64"}
        )
    h = history.copy()
    h["interval_end"] = pd.to_datetime(h["interval_end"], utc=True)
    if before is not None:
        h = h[h["interval_end"] <= before]
    catalog = catalog or Catalog(h["meter_id"])
    h["sid"] = catalog.sid(h["meter_id"], h["channel"])
    h = h[h["sid"] >= 0]
    h["t"] = epoch(h["interval_end"])
    start_local, h["slot"] = slots(h["interval_end"], h["interval_seconds"], tz)
    h["local_date"] = start_local.dt.tz_localize(None).dt.date
    h["weekday"] = start_local.dt.weekday
    h["day_type"] = day_type(pd.Series(h["local_date"].to_numpy(), index=h.index), holidays)
    h["outage"] = h["failed_rules"].fillna("").astype(str).str.contains("power_outage")
    h["clean"] = h["status"].eq("valid") & h["value"].notna()
    h["usable"] = h["status"].isin(["valid", "edited", "verified"]) & h["value"].notna() & ~h["outage"]
    return h
