"""Before the rules: which intervals are expected, which received read wins, and alignment.

The expected grid comes from the meter master and installation history: every channel of
every AMI interval meter installed during the local day, one row per interval end (DST-aware:
92/96/100 quarter-hours). A meter exchanged mid-day contributes the intervals before its
removal; its successor those after its installation (per meter activation, docs/vee_rules.md T15).

All joins run on integer keys (``sid`` series id, ``t`` epoch seconds; see keys.py).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends
from smartmdm_pipelines.domain.vee.keys import CHANNEL_ORDER, N_CHANNELS, Catalog, epoch, lookup
from smartmdm_pipelines.domain.vee.quality import per_category, source_quality_rank

KEY = ["meter_id", "channel", "interval_end"]
IKEY = ["sid", "t"]


def expected_grid(
    meters: pd.DataFrame,
    installs: pd.DataFrame,
    day: dt.date,
    tz: str,
    meter_tz: pd.Series | None = None,
    catalog: Catalog | None = None,
    until: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """meter_id, channel, interval_end, interval_seconds (+ sid, t) for every expected interval of ``day``.

    ``until`` (series ids, epoch seconds): only those series, each up to that interval end (the
    real-time path's grid ends at each series' latest read: the rest is cut right after
    alignment anyway, so it is never built).

    ``meters``: meter_id, kind, commodity, channels (';'-joined), interval_seconds, unit.
    ``installs``: meter_id, installed_at, removed_at (UTC; NaT = still installed). Meters with no
    install row (e.g. zone bulk meters) are expected all day. Daily (and longer) intervals end at
    local midnight of the meter's own time zone (``meter_tz``: meter_id -> IANA zone), shorter ones
    are on the grid of the utility's operating day.
    """
    catalog = catalog or Catalog(meters["meter_id"])
    interval = meters[(meters["kind"] == "ami") & meters["interval_seconds"].notna()]
    if interval.empty:  # typed like a full grid, so every later step works on zero rows
        empty = {
            "sid": np.zeros(0, "int64"),
            "t": np.zeros(0, "int64"),
            "interval_seconds": np.zeros(0, "int32"),
        }
        return _with_text_keys(pd.DataFrame(empty), catalog)
    channels = _one_row_per_channel(interval)
    channels["zone"] = tz
    if meter_tz is not None and len(meter_tz):
        daily = channels["interval_seconds"] >= 86400
        channels.loc[daily, "zone"] = channels.loc[daily, "meter_id"].map(meter_tz).fillna(tz)
    channels["sid"] = catalog.sid(channels["meter_id"], channels["channel"])
    parts = []
    for (seconds, zone), group in channels.groupby(["interval_seconds", "zone"], sort=True):
        ends = epoch(pd.Series(interval_ends(day, zone, int(seconds))))
        sids = group["sid"].to_numpy()
        counts = np.full(len(sids), len(ends), dtype="int64")
        if until is not None:  # each series' ends up to its limit (none for a series without one)
            limit = lookup(sids, until[0], until[1].astype("float64"))
            counts = np.where(np.isnan(limit), 0, np.searchsorted(ends, np.nan_to_num(limit), side="right"))
        first = np.repeat(np.cumsum(counts) - counts, counts)  # each row's offset in its series
        parts.append(
            pd.DataFrame(
                {
                    "sid": np.repeat(sids, counts),
                    "t": ends[np.arange(int(counts.sum())) - first],
                    "interval_seconds": np.int32(seconds),
                }
            )
        )
    grid = pd.concat(parts, ignore_index=True)
    grid = _within_installations(grid, installs, catalog)
    sid, t = grid["sid"].to_numpy(), grid["t"].to_numpy()
    if len(grid) > 1 and ((sid[1:] < sid[:-1]) | ((sid[1:] == sid[:-1]) & (t[1:] < t[:-1]))).any():
        grid = grid.iloc[np.lexsort((t, sid))].reset_index(drop=True)
    return _with_text_keys(grid, catalog)


def _one_row_per_channel(meters: pd.DataFrame) -> pd.DataFrame:
    """One row per meter and configured channel (``channels``: ';'-joined, in that order; empty
    names dropped). A day has a handful of distinct channel lists for many meters: each is split
    once."""
    codes, lists = pd.factorize(meters["channels"])
    names = [[c for c in str(text).split(";") if len(c) > 0] for text in lists]
    sizes = np.array([len(n) for n in names] + [0], dtype=np.int64)  # code -1 (no list): no row
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    flat = np.asarray([c for n in names for c in n] + [""], dtype=object)
    codes = np.where(codes < 0, len(names), codes)
    counts = sizes[codes]
    rows = np.repeat(np.arange(len(meters)), counts)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = meters.iloc[rows].copy()
    out["channel"] = flat[np.repeat(offsets[codes], counts) + within]
    return out


def _with_text_keys(frame: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    sid = frame["sid"].to_numpy()
    frame["meter_id"] = pd.Categorical.from_codes(sid // N_CHANNELS, categories=catalog.meters.to_pylist())
    frame["channel"] = pd.Categorical.from_codes(sid % N_CHANNELS, categories=CHANNEL_ORDER)
    frame["interval_end"] = pd.to_datetime(frame["t"].to_numpy(), unit="s", utc=True).as_unit("us")
    return frame


def _within_installations(grid: pd.DataFrame, installs: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    if installs is None or installs.empty:
        return grid
    spans = installs[["meter_id", "installed_at", "removed_at"]].copy()
    spans["m"] = catalog.meter_codes(spans["meter_id"])
    spans = spans[~np.isnan(spans["m"])]
    spans["m"] = spans["m"].astype("int64")
    spans["a"] = epoch(spans["installed_at"])
    spans["b"] = np.where(
        spans["removed_at"].isna(),
        np.iinfo("int64").max,
        epoch(spans["removed_at"].fillna(pd.Timestamp(0, tz="UTC"))),
    )
    grid_m = grid["sid"].to_numpy() // N_CHANNELS
    span_m = spans["m"].to_numpy()
    n_meters = int(max(grid_m.max(initial=-1), span_m.max(initial=-1))) + 1
    count = np.bincount(span_m, minlength=n_meters)
    keep = count[grid_m] == 0  # meters without an install row are expected all day
    end = grid["t"].to_numpy()
    start = end - grid["interval_seconds"].to_numpy(dtype="int64")
    # meters installed once (nearly all): compare with their one span directly
    one = count == 1
    a = np.zeros(n_meters, dtype="int64")
    b = np.zeros(n_meters, dtype="int64")
    single = one[span_m]
    a[span_m[single]] = spans["a"].to_numpy()[single]
    b[span_m[single]] = spans["b"].to_numpy()[single]
    rows = np.flatnonzero(one[grid_m])
    keep[rows] = (start[rows] >= a[grid_m[rows]]) & (end[rows] <= b[grid_m[rows]])
    # meters with several installations: inside any of them
    rows = np.flatnonzero(count[grid_m] > 1)
    if len(rows):
        joined = pd.DataFrame({"row": rows, "m": grid_m[rows]}).merge(
            spans.loc[~single, ["m", "a", "b"]], on="m"
        )
        r = joined["row"].to_numpy()
        inside = (start[r] >= joined["a"].to_numpy()) & (end[r] <= joined["b"].to_numpy())
        keep[r[inside]] = True
    return grid[keep].reset_index(drop=True)


def resolve_reads(
    reads: pd.DataFrame,
    tolerance_seconds: int,
    tz: str = "UTC",
    meter_tz: pd.Series | None = None,
    catalog: Catalog | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One winning read per (meter, channel, interval end) and the conflicts worth reporting.

    Reads are first snapped to their grid slot when their clock is off by at most the time
    tolerance (``drift_s`` keeps the offset; larger drifts are kept unsnapped and reported by
    the clock rule). Ranking (docs/vee_rules.md V19, T13/T14): actual > head-end estimated > no read; among
    equals the latest file, then the latest line. Returns (winners, conflicts) where conflicts
    are keys whose competing reads of the best rank disagree in value.
    """
    catalog = catalog or Catalog(reads["meter_id"])
    if reads.empty:
        out = reads.assign(
            drift_s=pd.Series(dtype="int64"),
            rank=pd.Series(dtype="int64"),
            sid=pd.Series(dtype="int64"),
            t=pd.Series(dtype="int64"),
        )
        return out, out.head(0)
    reads = reads.reset_index(drop=True)
    t = epoch(reads["interval_end"])
    seconds = reads["interval_seconds"].to_numpy(dtype="int64")
    # the grid is aligned in local clock time (daily intervals end at the meter's local midnight)
    local = t + _utc_offsets(reads, tz, meter_tz)
    offset = local % seconds
    drift = np.where(offset > seconds // 2, offset - seconds, offset)
    snap = np.abs(drift) <= tolerance_seconds
    t = np.where(snap, t - drift, t)
    reads["t"] = t
    reads["drift_s"] = drift
    reads["sid"] = catalog.sid(reads["meter_id"], reads["channel"])
    reads["rank"] = _quality_rank(reads["source_quality"], reads["value"])
    sid = reads["sid"].to_numpy()
    rank = reads["rank"].to_numpy()
    file_id, line = reads["file_id"].to_numpy(), reads["line"].to_numpy()
    # order by (sid, t, rank, latest file, latest line); one integer key for (sid, t) when it fits
    t_low = int(t.min())
    if sid.min() >= -1 and int(sid.max()) < (1 << 28) and int(t.max()) - t_low < (1 << 34):
        key = ((sid + 1) << 34) + (t - t_low)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        tied = sorted_key[1:] == sorted_key[:-1]
        if tied.any():  # several reads of one interval: rank those (contiguous runs of equal keys)
            pos = np.flatnonzero(np.r_[tied, False] | np.r_[False, tied])
            sub = order[pos]
            order[pos] = sub[np.lexsort((-line[sub], -file_id[sub], rank[sub], key[sub]))]
    else:
        order = np.lexsort((-line, -file_id, rank, t, sid))
    sid, tt, rank = sid[order], t[order], rank[order]
    first = np.r_[True, (sid[1:] != sid[:-1]) | (tt[1:] != tt[:-1])]
    cols = ["sid", "t", "interval_seconds", "value", "source_quality", "file_id", "line", "drift_s", "rank"]
    winner_rows = order[first]
    winners = pd.DataFrame({c: _take(reads[c], winner_rows) for c in cols}, copy=False)
    winners["source_quality"] = winners["source_quality"].astype("category")
    conflicts = winners.head(0).assign(files=pd.Series(dtype="int64"))
    dup = ~first
    if dup.any():
        group = np.cumsum(first) - 1
        best = rank == rank[first][group]
        dup &= best  # a competing read of the same rank
    if dup.any():
        contested = np.zeros(int(group[-1]) + 1, dtype=bool)
        contested[group[dup]] = True
        rows = np.flatnonzero(best & contested[group])  # the best-ranked reads of contested intervals
        src = order[rows]
        frame = pd.DataFrame(
            {"g": group[rows], "v": reads["value"].to_numpy(dtype="float64")[src], "f": file_id[src]}
        )
        agg = frame.groupby("g").agg(
            min=("v", "min"), max=("v", "max"), count=("v", "size"), files=("f", "nunique")
        )
        agg = agg[(agg["count"] > 1) & (agg["max"] - agg["min"] > 1e-9)]
        conflicts = winners.iloc[agg.index.to_numpy()].assign(files=agg["files"].to_numpy())
    winners = _with_text_keys(winners, catalog)
    conflicts = _with_text_keys(conflicts.reset_index(drop=True), catalog)
    return winners, conflicts


def _quality_rank(quality: pd.Series, value: pd.Series) -> np.ndarray:
    """``source_quality_rank`` per read, evaluated once per distinct code when ``quality`` is a
    categorical (a day holds a handful of codes for millions of reads)."""
    if not isinstance(quality.dtype, pd.CategoricalDtype):
        return source_quality_rank(quality, value)
    rank = per_category(quality, lambda codes: source_quality_rank(codes, pd.Series(np.zeros(len(codes)))))
    return np.where(value.isna().to_numpy(), 2, rank)


def _utc_offsets(reads: pd.DataFrame, tz: str, meter_tz: pd.Series | None) -> np.ndarray:
    """UTC offset in seconds at each read's instant, in the zone whose clock its grid follows."""
    # a day holds a few hundred distinct instants: convert each once per zone
    codes, instants = pd.factorize(epoch(reads["interval_end"]))
    utc = pd.to_datetime(instants, unit="s", utc=True)

    def offsets(zone: str) -> np.ndarray:
        local = utc.tz_convert(zone).tz_localize(None)
        return ((local - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy() - instants

    out = offsets(tz)[codes]
    if meter_tz is not None and len(meter_tz):
        daily = np.flatnonzero((reads["interval_seconds"] >= 86400).to_numpy())
        if len(daily):
            zone = reads["meter_id"].iloc[daily].map(meter_tz).fillna(tz).to_numpy(dtype=object)
            for name in pd.unique(zone):
                if name != tz:
                    rows = daily[zone == name]
                    out[rows] = offsets(name)[codes[rows]]
    return out


def _take(column: pd.Series, rows: np.ndarray):
    """``column``'s values at positions ``rows`` (dtype kept, no index)."""
    return column.array.take(rows)


def align(grid: pd.DataFrame, winners: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grid rows with their winning read (NaN where none) and the reads outside the grid."""
    gk = grid["sid"].to_numpy() * (1 << 34) + grid["t"].to_numpy()
    wk = winners["sid"].to_numpy() * (1 << 34) + winners["t"].to_numpy()
    order = np.argsort(wk, kind="stable")
    sorted_wk = wk[order]
    pos = np.clip(np.searchsorted(sorted_wk, gk), 0, max(len(sorted_wk) - 1, 0))
    hit = (sorted_wk[pos] == gk) if len(sorted_wk) else np.zeros(len(gk), dtype=bool)
    src = order[pos] if len(order) else np.zeros(len(gk), dtype=np.int64)  # no read at all: nothing hit
    merged = grid.copy(deep=False)  # copy-on-write: the grid is not changed, only extended
    for col, fill in (
        ("value", np.nan),
        ("file_id", np.nan),
        ("line", np.nan),
        ("drift_s", np.nan),
        ("rank", np.nan),
    ):
        values = winners[col].to_numpy(dtype="float64") if len(winners) else np.zeros(0)
        merged[col] = np.where(hit, values[src] if len(values) else fill, fill)
    merged["source_quality"] = _aligned_quality(winners["source_quality"], hit, src)
    merged["received"] = hit
    in_grid = np.zeros(len(winners), dtype=bool)
    in_grid[src[hit]] = True
    outside = winners[~in_grid]
    return merged, outside


def _aligned_quality(quality: pd.Series, hit: np.ndarray, src: np.ndarray) -> pd.Categorical:
    """The winning reads' source quality on the grid rows ('' where nothing was received), as a
    categorical: the rules test each distinct code once."""
    quality = quality if isinstance(quality.dtype, pd.CategoricalDtype) else quality.astype("category")
    cats = pd.Index(quality.cat.categories)
    if "" not in cats:
        cats = cats.append(pd.Index([""], dtype=cats.dtype))
    empty = cats.get_loc("")
    codes = quality.cat.codes.to_numpy()
    if len(codes):
        taken = codes[src]
        codes = np.where(hit & (taken >= 0), taken, empty)
    else:
        codes = np.full(len(hit), empty)
    return pd.Categorical.from_codes(codes, categories=cats)
