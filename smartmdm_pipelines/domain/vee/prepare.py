"""Before the rules: which intervals are expected, which received read wins, and alignment.

The expected grid comes from the meter master and installation history: every channel of
every AMI interval meter installed during the local day, one row per interval end (DST-aware:
92/96/100 quarter-hours). A meter exchanged mid-day contributes the intervals before its
removal; its successor those after its installation (per meter activation, vee.md T15).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import epoch_seconds, interval_ends
from smartmdm_pipelines.domain.vee.quality import source_quality_rank

KEY = ["meter_id", "channel", "interval_end"]


def expected_grid(
    meters: pd.DataFrame, installs: pd.DataFrame, day: dt.date, tz: str, meter_tz: pd.Series | None = None
) -> pd.DataFrame:
    """meter_id, channel, interval_end, interval_seconds, unit for every expected interval of ``day``.

    ``meters``: meter_id, kind, commodity, channels (';'-joined), interval_seconds, unit.
    ``installs``: meter_id, installed_at, removed_at (UTC; NaT = still installed). Meters with no
    install row (e.g. zone bulk meters) are expected all day. Daily (and longer) intervals end at
    local midnight of the meter's own time zone (``meter_tz``: meter_id -> IANA zone), shorter ones
    are on the grid of the utility's operating day.
    """
    interval = meters[(meters["kind"] == "ami") & meters["interval_seconds"].notna()]
    if interval.empty:
        return pd.DataFrame(columns=[*KEY, "interval_seconds"])
    channels = interval.assign(channel=interval["channels"].str.split(";")).explode("channel")
    channels = channels[channels["channel"].str.len() > 0]
    channels = channels.assign(zone=tz)
    if meter_tz is not None and len(meter_tz):
        daily = channels["interval_seconds"] >= 86400
        channels.loc[daily, "zone"] = channels.loc[daily, "meter_id"].map(meter_tz).fillna(tz)
    parts = []
    for (seconds, zone), group in channels.groupby(["interval_seconds", "zone"], sort=True):
        ends = interval_ends(day, zone, int(seconds))
        n, m = len(group), len(ends)
        parts.append(
            pd.DataFrame(
                {
                    "meter_id": np.repeat(group["meter_id"].to_numpy(), m),
                    "channel": np.repeat(group["channel"].to_numpy(), m),
                    "interval_end": np.tile(ends.to_numpy(), n),
                    "interval_seconds": np.int32(seconds),
                }
            )
        )
    grid = pd.concat(parts, ignore_index=True)
    grid["interval_end"] = pd.to_datetime(grid["interval_end"], utc=True)
    return _within_installations(grid, installs)


def _within_installations(grid: pd.DataFrame, installs: pd.DataFrame) -> pd.DataFrame:
    if installs is None or installs.empty:
        return grid
    spans = installs[["meter_id", "installed_at", "removed_at"]]
    installed = grid["meter_id"].isin(spans["meter_id"])
    free = grid[~installed]
    joined = grid[installed].reset_index().merge(spans, on="meter_id", how="inner")
    end = joined["interval_end"]
    start = end - pd.to_timedelta(joined["interval_seconds"], unit="s")
    inside = (start >= joined["installed_at"]) & (joined["removed_at"].isna() | (end <= joined["removed_at"]))
    kept = joined[inside].drop_duplicates("index").set_index("index")[grid.columns]
    return pd.concat([free, kept]).sort_index(kind="stable").reset_index(drop=True)


def resolve_reads(
    reads: pd.DataFrame, tolerance_seconds: int, tz: str = "UTC", meter_tz: pd.Series | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One winning read per (meter, channel, interval end) and the conflicts worth reporting.

    Reads are first snapped to their grid slot when their clock is off by at most the time
    tolerance (``drift_s`` keeps the offset; larger drifts are kept unsnapped and reported by
    the clock rule). Ranking (vee.md V19, T13/T14): actual > head-end estimated > no read; among
    equals the latest file, then the latest line. Returns (winners, conflicts) where conflicts
    are keys whose competing reads of the best rank disagree in value.
    """
    if reads.empty:
        return reads.assign(drift_s=pd.Series(dtype="int64"), rank=pd.Series(dtype="int64")), reads.head(0)
    reads = reads.reset_index(drop=True)
    # the grid is aligned in local clock time (daily intervals end at the meter's local midnight)
    zone = pd.Series(tz, index=reads.index)
    if meter_tz is not None and len(meter_tz):
        daily = reads["interval_seconds"] >= 86400
        zone[daily] = reads.loc[daily, "meter_id"].map(meter_tz).fillna(tz)
    epoch = np.zeros(len(reads), dtype="int64")
    zones = zone.to_numpy()
    for name in pd.unique(zones):
        rows = np.flatnonzero(zones == name)
        local = (
            reads["interval_end"].iloc[rows].dt.tz_convert(name).dt.tz_localize(None).dt.tz_localize("UTC")
        )
        epoch[rows] = epoch_seconds(local)
    seconds = reads["interval_seconds"].to_numpy(dtype="int64")
    offset = epoch % seconds
    drift = np.where(offset > seconds // 2, offset - seconds, offset)
    snap = np.abs(drift) <= tolerance_seconds
    reads["drift_s"] = drift
    reads.loc[snap, "interval_end"] = reads.loc[snap, "interval_end"] - pd.to_timedelta(drift[snap], unit="s")
    reads["rank"] = source_quality_rank(reads["source_quality"], reads["value"])
    ordered = reads.sort_values(
        [*KEY, "rank", "file_id", "line"], ascending=[True, True, True, True, False, False]
    )
    winners = ordered.drop_duplicates(KEY, keep="first")
    best = ordered.merge(winners[[*KEY, "rank"]], on=[*KEY, "rank"])
    spread = (
        best.groupby(KEY, sort=False)
        .agg(
            min=("value", "min"), max=("value", "max"), count=("value", "size"), files=("file_id", "nunique")
        )
        .reset_index()
    )
    conflicts = spread[(spread["count"] > 1) & (spread["max"] - spread["min"] > 1e-9)]
    return winners.reset_index(drop=True), conflicts


def align(grid: pd.DataFrame, winners: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grid rows with their winning read (NaN where none) and the reads outside the grid."""
    cols = [*KEY, "value", "source_quality", "file_id", "line", "drift_s", "rank"]
    merged = grid.merge(winners[cols], on=KEY, how="left", indicator=True)
    merged["received"] = merged["_merge"].eq("both")
    merged = merged.drop(columns="_merge")
    outside = winners.merge(grid[KEY], on=KEY, how="left", indicator=True)
    outside = outside[outside["_merge"].eq("left_only")].drop(columns="_merge")
    return merged, outside
