"""Zone inflow from inlet (bulk) meters: hourly volumes, child-zone outflow, tank storage.

A zone's inflow is what its inlet/bulk meters deliver minus what flows on to its child zones
(their own inlet meters); a zone fed through a tank whose level is metered consumes
``feed - tank area x level change``. Every series is hourly, indexed by the hour's **end**
instant (UTC). An hour is known only when the intervals that cover it are all present: a gap
stays a gap (NaN), never a zero, so no later stage can mistake it for a step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)
M3_PER = {"gal": 1 / 264.1720523581484, "m3": 1.0, "l": 0.001}  # unit -> m3 per unit


def hour_index(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Hour ends (UTC) of the hours inside [start, end)."""
    return pd.date_range(start.ceil("h") + HOUR, end.floor("h"), freq="h", tz="UTC")


def hourly_volumes(reads: pd.DataFrame, hours: pd.DatetimeIndex) -> pd.DataFrame:
    """Hourly volume per meter (columns), NaN where an hour is not fully covered by reads.

    ``reads``: ``meter_id, interval_end (UTC), interval_seconds, value``; intervals of at most an
    hour that divide it (5, 10, 15, 30, 60 min). A NaN value counts as missing.
    """
    meters = sorted(reads["meter_id"].unique()) if len(reads) else []
    if not meters:
        return pd.DataFrame(index=hours, dtype="float64")
    ok = reads["value"].notna() & (reads["interval_seconds"] <= 3600)
    frame = reads.loc[ok, ["meter_id", "interval_end", "interval_seconds", "value"]]
    hour_end = frame["interval_end"].dt.ceil("h")
    grouped = frame.assign(hour=hour_end).groupby(["meter_id", "hour"], sort=False)
    sums = grouped.agg(volume=("value", "sum"), seconds=("interval_seconds", "sum"))
    volume = sums["volume"].where(sums["seconds"] >= 3600)
    table = volume.unstack("meter_id").reindex(index=hours, columns=meters)
    table.columns.name = None
    return table.astype("float64")


def level_at_hours(levels: pd.DataFrame, hours: pd.DatetimeIndex) -> pd.Series:
    """The level reading taken at each hour end (``interval_end`` on the hour), NaN if none."""
    if levels.empty:
        return pd.Series(np.nan, index=hours, dtype="float64")
    frame = levels.loc[levels["value"].notna(), ["interval_end", "value"]]
    on_hour = frame[frame["interval_end"] == frame["interval_end"].dt.floor("h")]
    series = on_hour.groupby("interval_end")["value"].last()
    return series.reindex(hours).astype("float64")


def tank_storage_change(
    levels: pd.DataFrame, hours: pd.DatetimeIndex, area_m2: float, unit: str
) -> pd.Series:
    """Volume (``unit``) added to the tank in each hour: area x (level at end - level at start).

    The first hour of ``hours`` has no level at its start and is NaN. A level quantised to 1 cm
    makes each hour's value uncertain by ``area x 1 cm``, but the errors telescope: the sum over
    any run of hours carries the error of its two end readings only.
    """
    level = level_at_hours(levels, hours)
    change_m3 = level.diff() * float(area_m2)
    return change_m3 / M3_PER[unit]


def zone_inflow(
    volumes: pd.DataFrame,
    zones: pd.DataFrame,
    storage: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """Hourly inflow per zone (columns) = own inlet meters - child zones' inlet meters - storage.

    ``volumes``: output of ``hourly_volumes``; ``zones``: ``zone_id, bulk_meter_ids`` (';'-joined),
    ``parent_zone_id``. An hour is NaN when any meter it needs is missing there (or the zone has
    no inlet meter at all).
    """
    storage = storage or {}
    own = {z: _meter_list(ids) for z, ids in zip(zones["zone_id"], zones["bulk_meter_ids"], strict=True)}
    parents = dict(zip(zones["zone_id"], zones["parent_zone_id"], strict=True))
    out = {}
    for zone, meters in own.items():
        children = [z for z, p in parents.items() if p == zone and z != zone]
        outflow = [m for child in children for m in own.get(child, [])]
        if not meters:
            out[zone] = pd.Series(np.nan, index=volumes.index)
            continue
        feed = _sum_strict(volumes, meters)
        if outflow:
            feed = feed - _sum_strict(volumes, outflow)
        if zone in storage:
            feed = feed - storage[zone].reindex(volumes.index)
        out[zone] = feed
    return pd.DataFrame(out, index=volumes.index, dtype="float64")


def _meter_list(ids: object) -> list[str]:
    if ids is None or (isinstance(ids, float) and np.isnan(ids)):
        return []
    return [m.strip() for m in str(ids).split(";") if m.strip()]


def _sum_strict(volumes: pd.DataFrame, meters: list[str]) -> pd.Series:
    present = volumes.reindex(columns=meters)
    return present.sum(axis=1, min_count=len(meters)).where(present.notna().all(axis=1))
