"""Interval consumption derived from cumulative register reads (water AMR and AMI meters).

Meters that report a cumulative register at irregular times (about hourly with drifting
seconds, gaps of hours to days) have no interval values; billing and VEE need them on the
meter's interval grid. Pure functions on frames (docs/vee_rules.md E6/E10, T7, T15):

- **Reads**: per meter and channel, in time order; at one instant the latest delivery wins
  (latest file, then latest line). A meter exchange recorded in the CIS with its final and
  initial register (``meter_installs.end_register`` / ``start_register``) adds those two reads.
- **Pairs**: two consecutive reads of the same installation are a pair. Its consumption is the
  register advance × the installation's multiplier (else the meter's), in the canonical unit
  of the reads. Two reads of different installations (an exchange, or a read outside any
  installation) are never a pair: no consumption is derived across an exchange. Two reads more
  than ``max_gap`` apart are not apportioned either (VEE estimates that span).
- **Apportioning**: a pair's consumption is spread linearly in time over the grid intervals it
  overlaps (intervals are identified by their END, UTC; sub-daily grids are aligned to the
  local clock of the utility's zone, daily intervals end at local midnight, so DST days have
  23/25 hourly intervals). An interval is derived only when pairs cover all of it; one
  straddling a read gets its parts from the two pairs around the read. The intervals at the
  ends of a chain wait for the next read; those across a break are left to VEE.
- **Register decreases** are never negative consumption. In order:
  a read below the read before it while the read after it is back at or above that one is a
  *bad read* (a low outlier), and a read above the read after it while that one is at or above
  the read before it is a bad read too (a high outlier): both are ignored and the pair around
  them is apportioned; a decrease from the top ``rollover_share`` of the dials' range to the
  bottom of it is a *rollover* (advance + 10^dials dial units, T7: 99990 -> 00015 at 5 dials is
  25); any other decrease is a *reset* that cannot be explained (an unrecorded meter exchange,
  a reversed register): no consumption is derived across it. Bad reads and resets become the
  ``register_decrease`` VEE exception of the meter-day; rollovers and exchanges need none.
- **Dials** count digits of the register in the unit the source reads it in (``source_unit``):
  a register in litres with 6 dials wraps at 1,000,000 L, whatever the canonical unit.
- **Quality** of a derived read: ``derived``; ``derived:spread`` when a pair covering it spans
  more than two intervals (its values are apportioned across a gap, so VEE neither calls them a
  flat line nor a continuous flow). The closing read of the last pair covering an interval is
  its file and line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.readings import DERIVED_QUALITY, SPREAD_QUALITY, unit_conversion
from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee.rules import DAY_RULES

ROLLOVER_SHARE = 0.1
"""A decrease is a rollover when the earlier read is in the top 10 % of the dials' range and the
later one in the bottom 10 % (our choice; Itron's rollover uses the number of dials, docs/vee_rules.md S43)."""
MAX_GAP_HOURS = 72.0
MAX_PASSES = 5  # bad-read passes: each ignores the isolated outliers it finds
US = 1_000_000
DAY_US = 86_400 * US
RULE = "register_decrease"
INTERVAL_COLUMNS = [
    "meter_id",
    "channel",
    "interval_end",
    "interval_seconds",
    "value",
    "source_quality",
    "file_id",
    "line",
]
DECREASE_COLUMNS = [
    "meter_id",
    "channel",
    "kind",  # bad_read | reset | rollover | exchange
    "prev_at",
    "read_at",
    "prev_value",
    "value",
    "source_unit",
    "file_id",
    "line",
]


@dataclass
class Derivation:
    """Derived interval reads (``INTERVAL_COLUMNS``, canonical unit) and the register decreases
    met on the way (``DECREASE_COLUMNS``, values in the source unit)."""

    intervals: pd.DataFrame
    decreases: pd.DataFrame


def derive_intervals(
    reads: pd.DataFrame,
    meters: pd.DataFrame,
    installs: pd.DataFrame | None,
    tz: str,
    *,
    max_gap_hours: float = MAX_GAP_HOURS,
    rollover_share: float = ROLLOVER_SHARE,
) -> Derivation:
    """Interval reads on each meter's grid from its register reads (module docstring).

    ``reads``: meter_id, channel, read_at (UTC), value (canonical unit), source_unit, file_id,
    line, and optionally max_gap_hours per read (the closing read's applies to a pair).
    ``meters``: meter_id, interval_seconds (the grid; meters without one derive nothing),
    multiplier, dials. ``installs``: meter_id, installed_at, removed_at, multiplier and
    optionally start_register, end_register (dial units)."""
    r = _prepare(reads, meters, installs, max_gap_hours)
    if r.empty:
        return Derivation(_empty(INTERVAL_COLUMNS), _empty(DECREASE_COLUMNS))
    r, bad = _ignore_bad_reads(r)
    pairs, events = _pairs(r, rollover_share)
    return Derivation(_apportion(pairs, r, tz), pd.concat([bad, events], ignore_index=True)[DECREASE_COLUMNS])


# ------------------------------------------------------------------ reads
def _prepare(
    reads: pd.DataFrame, meters: pd.DataFrame, installs: pd.DataFrame | None, max_gap_hours: float
) -> pd.DataFrame:
    """Reads with their series, grid, dials, installation and multiplier; sorted, one per instant."""
    grid = meters.loc[pd.to_numeric(meters["interval_seconds"], errors="coerce") > 0]
    cols = ["meter_id", "channel", "read_at", "value", "source_unit", "file_id", "line"]
    gap = reads.get("max_gap_hours", max_gap_hours)
    r = reads.assign(max_gap_hours=gap).loc[reads["value"].notna(), [*cols, "max_gap_hours"]]
    r = r.merge(grid[["meter_id", "interval_seconds", "multiplier", "dials"]], on="meter_id")
    if r.empty:
        return r
    r["t"] = _us(r["read_at"])
    codes, uniques = pd.factorize(r["source_unit"].astype("str"))
    factor, _ = unit_conversion(codes, uniques, r["channel"].astype("str").eq("gas").to_numpy())
    r["factor"] = factor  # canonical units per source unit (NaN: unknown, no rollover)
    r["sid"] = pd.factorize(r["meter_id"].astype("str") + "\x1f" + r["channel"].astype("str"))[0]
    r["synthetic"] = False
    r["inst"], r["imult"] = _installation_of(r, installs)
    r = pd.concat([r, _boundary_reads(r, installs)], ignore_index=True)
    r["mult"] = r["imult"].fillna(pd.to_numeric(r["multiplier"], errors="coerce")).fillna(1.0)
    file_id = r["file_id"].to_numpy(dtype="float64", na_value=np.nan)
    order = np.lexsort(
        (
            np.nan_to_num(r["line"].to_numpy(dtype="float64", na_value=np.nan), nan=-1.0),
            np.nan_to_num(file_id, nan=-1.0),
            r["inst"].to_numpy(),
            r["t"].to_numpy(),
            r["sid"].to_numpy(),
        )
    )
    r = r.iloc[order].reset_index(drop=True)
    key = r[["sid", "t", "inst"]].to_numpy()
    last = np.r_[(key[1:] != key[:-1]).any(axis=1), True]  # the latest delivery of each instant
    return r[last].reset_index(drop=True)


def _installation_of(r: pd.DataFrame, installs: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Per read: the index of its installation (-2: the meter has no installation history, one
    activation; -1: outside every installation of the meter) and the installation's multiplier."""
    inst = np.full(len(r), -2, dtype=np.int64)
    mult = np.full(len(r), np.nan)
    spans = _installs(installs)
    if spans.empty:
        return inst, mult
    left = pd.DataFrame({"meter_id": r["meter_id"].astype("str").to_numpy(), "t": r["t"].to_numpy()})
    left["row"] = np.arange(len(left))
    hit = pd.merge_asof(
        left.sort_values("t"), spans.sort_values("a"), left_on="t", right_on="a", by="meter_id"
    )
    inside = hit["inst"].notna() & (hit["b"].isna() | (hit["t"] <= hit["b"]))
    rows = hit["row"].to_numpy()
    known = r["meter_id"].astype("str").isin(spans["meter_id"]).to_numpy()
    inst[known] = -1
    inst[rows[inside.to_numpy()]] = hit.loc[inside, "inst"].to_numpy(dtype=np.int64)
    mult[rows] = np.where(inside, hit["mult"].to_numpy(dtype="float64"), np.nan)
    return inst, mult


def _installs(installs: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["meter_id", "a", "b", "inst", "mult", "start_register", "end_register"]
    if installs is None or installs.empty:
        return pd.DataFrame(columns=cols)
    s = installs.dropna(subset=["installed_at"]).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "meter_id": s["meter_id"].astype("str"),
            "a": _us(s["installed_at"]),
            "b": _us(s["removed_at"], missing=np.nan),
            "mult": pd.to_numeric(s.get("multiplier"), errors="coerce"),
            "start_register": pd.to_numeric(s.get("start_register"), errors="coerce"),
            "end_register": pd.to_numeric(s.get("end_register"), errors="coerce"),
        }
    )
    out = out.sort_values(["meter_id", "a"], kind="stable").reset_index(drop=True)
    out["inst"] = np.arange(len(out), dtype=np.int64)  # in installation order per meter
    return out[cols]


def _boundary_reads(r: pd.DataFrame, installs: pd.DataFrame | None) -> pd.DataFrame:
    """The CIS's initial and final register of each installation, as reads of that installation
    (for meters read on one channel: the register the CIS records is that channel's)."""
    spans = _installs(installs)
    if spans.empty:
        return r.head(0)
    series = r.drop_duplicates("sid")
    one_channel = series.groupby("meter_id")["sid"].transform("size").eq(1)
    series = series[one_channel.to_numpy()].drop(columns=["t", "value", "file_id", "line", "inst", "imult"])
    parts = []
    for register, at in (("start_register", "a"), ("end_register", "b")):
        ends = spans.dropna(subset=[register, at])
        part = series.merge(ends[["meter_id", at, register, "inst", "mult"]], on="meter_id")
        parts.append(
            part.assign(
                t=part[at].astype(np.int64),
                read_at=pd.to_datetime(part[at].astype(np.int64), unit="us", utc=True),
                value=part[register] * part["factor"].fillna(1.0),
                file_id=np.nan,
                line=np.nan,
                synthetic=True,
                imult=part["mult"],
            ).drop(columns=[at, register, "mult"])
        )
    return pd.concat(parts, ignore_index=True)[r.columns]


# ------------------------------------------------------------------ decreases
def _ignore_bad_reads(r: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop isolated outliers (a read that breaks an otherwise rising sequence), pass by pass."""
    dropped = []
    for _ in range(MAX_PASSES):
        v, sid, inst = r["value"].to_numpy(dtype="float64"), r["sid"].to_numpy(), r["inst"].to_numpy()
        link = np.r_[False, (sid[1:] == sid[:-1]) & (inst[1:] == inst[:-1]) & (inst[1:] != -1)]
        i = np.flatnonzero(link & (np.r_[np.inf, np.diff(v)] < 0))  # read i is below read i-1
        if len(i) == 0:
            break
        n = len(v)
        nxt = np.minimum(i + 1, n - 1)
        low = (i + 1 < n) & link[nxt] & (v[nxt] >= v[i - 1])  # i dips, i+1 is back: i is bad
        prev2 = np.maximum(i - 2, 0)
        high = ~low & link[i - 1] & (i >= 2) & (v[i] >= v[prev2])  # i-1 sticks out above: i-1 is bad
        bad = np.unique(np.r_[i[low], i[high] - 1])
        bad = bad[~r["synthetic"].to_numpy()[bad]]  # the CIS's registers are not outliers
        if len(bad) == 0:
            break
        dropped.append(_events(r, bad - 1, bad, "bad_read"))
        r = r.drop(index=bad).reset_index(drop=True)
    events = pd.concat(dropped, ignore_index=True) if dropped else _empty(DECREASE_COLUMNS)
    return r, events


def _pairs(r: pd.DataFrame, rollover_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Consecutive reads: the pairs to apportion (with their consumption) and the decreases."""
    v, t = r["value"].to_numpy(dtype="float64"), r["t"].to_numpy()
    sid, inst = r["sid"].to_numpy(), r["inst"].to_numpy()
    a, b = np.arange(len(r) - 1), np.arange(1, len(r))
    series = sid[a] == sid[b]
    same = series & (inst[a] == inst[b]) & (inst[b] != -1)
    advance = v[b] - v[a]
    factor = r["factor"].to_numpy(dtype="float64")[b]
    dials = pd.to_numeric(r["dials"], errors="coerce").to_numpy(dtype="float64")[b]
    with np.errstate(invalid="ignore"):
        wrap = np.power(10.0, dials)  # dial units
        top, bottom = v[a] / factor >= (1 - rollover_share) * wrap, v[b] / factor < rollover_share * wrap
    rollover = same & (advance < 0) & top & bottom
    reset = same & (advance < 0) & ~rollover
    exchange = series & ~same & (inst[a] != -1) & (inst[b] != -1)
    span = t[b] - t[a]
    max_gap = r["max_gap_hours"].to_numpy(dtype="float64")[b] * 3600 * US
    derive = same & ~reset & (span > 0) & (span <= max_gap)
    consumption = (advance + np.where(rollover, wrap * factor, 0.0)) * r["mult"].to_numpy(dtype="float64")[b]
    pairs = pd.DataFrame(
        {
            "sid": sid[b][derive],
            "t0": t[a][derive],
            "t1": t[b][derive],
            "consumption": consumption[derive],
            "step": r["interval_seconds"].to_numpy(dtype="float64")[b][derive].astype(np.int64),
            "closing": b[derive],
        }
    )
    events = pd.concat(
        [
            _events(r, a[kind], b[kind], name)
            for name, kind in (
                ("reset", reset),
                ("rollover", rollover),
                ("exchange", exchange & (advance < 0)),
            )
        ],
        ignore_index=True,
    )
    return pairs, events


def _events(r: pd.DataFrame, before: np.ndarray, at: np.ndarray, kind: str) -> pd.DataFrame:
    factor = np.nan_to_num(r["factor"].to_numpy(dtype="float64"), nan=1.0)
    value = r["value"].to_numpy(dtype="float64")
    if len(at) == 0:
        return _empty(DECREASE_COLUMNS)
    return pd.DataFrame(
        {
            "meter_id": r["meter_id"].to_numpy()[at],
            "channel": r["channel"].to_numpy()[at],
            "kind": kind,
            "prev_at": r["read_at"].array[before],
            "read_at": r["read_at"].array[at],
            "prev_value": value[before] / factor[before],
            "value": value[at] / factor[at],
            "source_unit": r["source_unit"].to_numpy()[at],
            "file_id": r["file_id"].to_numpy()[at],
            "line": r["line"].to_numpy()[at],
        }
    )


# ------------------------------------------------------------------ apportioning
def _apportion(pairs: pd.DataFrame, r: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Each pair's consumption spread over the grid intervals it overlaps; complete intervals only."""
    if pairs.empty:
        return _empty(INTERVAL_COLUMNS)
    t0, t1 = pairs["t0"].to_numpy(), pairs["t1"].to_numpy()
    step = pairs["step"].to_numpy() * US
    daily = step >= DAY_US
    idx, start, end = _grid(t0, t1, step, daily, tz)
    overlap = np.minimum(end, t1[idx]) - np.maximum(start, t0[idx])
    portion = pairs["consumption"].to_numpy()[idx] * overlap / (t1 - t0)[idx]
    sid = pairs["sid"].to_numpy()[idx]
    # pairs come in series and time order, so the intervals mostly do too (sorted: no sort needed)
    if not ((sid[1:] > sid[:-1]) | ((sid[1:] == sid[:-1]) & (end[1:] >= end[:-1]))).all():
        order = np.lexsort((t1[idx], end, sid))
        sid, end, start, overlap, portion, idx = (x[order] for x in (sid, end, start, overlap, portion, idx))
    first = np.flatnonzero(np.r_[True, (sid[1:] != sid[:-1]) | (end[1:] != end[:-1])])
    last = np.r_[first[1:], len(sid)] - 1
    covered = np.add.reduceat(overlap, first)
    length = end[first] - start[first]
    spread = np.maximum.reduceat(((t1 - t0) > 2 * step)[idx].astype(np.int8), first) > 0
    complete = covered == length
    closing = pairs["closing"].to_numpy()[idx[last]]  # the latest pair's closing read
    keep = np.flatnonzero(complete)
    out = pd.DataFrame(
        {
            "meter_id": r["meter_id"].to_numpy()[closing[keep]],
            "channel": r["channel"].to_numpy()[closing[keep]],
            "interval_end": pd.to_datetime(end[first][keep], unit="us", utc=True),
            "interval_seconds": (step[idx[first]][keep] // US).astype(np.int32),
            "value": np.add.reduceat(portion, first)[keep],
            "source_quality": np.where(spread[keep], SPREAD_QUALITY, DERIVED_QUALITY),
            "file_id": r["file_id"].to_numpy(dtype="float64", na_value=np.nan)[closing[keep]],
            "line": r["line"].to_numpy(dtype="float64", na_value=np.nan)[closing[keep]],
        }
    )
    return out[INTERVAL_COLUMNS]


def _grid(
    t0: np.ndarray, t1: np.ndarray, step: np.ndarray, daily: np.ndarray, tz: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair index, interval start, interval end) of every grid interval overlapping a pair."""
    parts = []
    sub = np.flatnonzero(~daily)
    if len(sub):
        s = step[sub]
        off = _utc_offsets(t0[sub], tz) % s  # the local clock's grid, in UTC
        first = ((t0[sub] - off) // s + 1) * s + off  # the first interval end after t0
        last = -((off - t1[sub]) // s) * s + off  # the first interval end at or after t1
        pair, k = _expand(sub, (last - first) // s + 1)
        end = first[k[0]] + k[1] * s[k[0]]
        parts.append((pair, end - s[k[0]], end))
    day = np.flatnonzero(daily)
    if len(day):
        d0 = _local_days(t0[day], tz)  # the local day holding t0 ends at the first midnight after it
        d1 = _local_days(t1[day] - 1, tz)
        pair, k = _expand(day, d1 - d0 + 1)
        dates = d0[k[0]] + k[1]
        parts.append((pair, _midnights(dates, tz), _midnights(dates + 1, tz)))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _expand(rows: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Each of ``rows`` repeated ``counts`` times: (row, (position in ``rows``, 0-based repeat))."""
    counts = np.maximum(counts, 0)
    at = np.repeat(np.arange(len(rows)), counts)
    k = np.arange(len(at)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows[at], (at, k)


def _utc_offsets(t: np.ndarray, tz: str) -> np.ndarray:
    """UTC offset in microseconds of the zone at each instant (per distinct hour: few of them)."""
    hours, inverse = np.unique(t // (3600 * US), return_inverse=True)
    utc = pd.to_datetime(hours * 3600 * US, unit="us", utc=True)
    local = utc.tz_convert(tz).tz_localize(None)
    offsets = (local - utc.tz_localize(None)).to_numpy(dtype="timedelta64[us]").view(np.int64)
    return offsets[inverse]


def _local_days(t: np.ndarray, tz: str) -> np.ndarray:
    """Local calendar day numbers (days since 1970-01-01) of UTC instants."""
    return (t + _utc_offsets(t, tz)) // DAY_US


def _midnights(days: np.ndarray, tz: str) -> np.ndarray:
    """UTC microseconds of the local midnight starting each local day number."""
    distinct, inverse = np.unique(days, return_inverse=True)
    dates = pd.to_datetime(distinct * DAY_US, unit="us")
    utc = dates.tz_localize(tz, ambiguous=np.ones(len(dates), bool), nonexistent="shift_forward")
    utc = utc.tz_convert("UTC")
    return utc.tz_localize(None).to_numpy(dtype="datetime64[us]").view(np.int64)[inverse]


# ------------------------------------------------------------------ VEE exceptions
def decrease_exceptions(decreases: pd.DataFrame, day: dt.date, tz: str) -> pd.DataFrame:
    """The ``register_decrease`` exceptions of one operating day: one per meter and channel whose
    bad reads lie in the day, or whose unexplained reset spans part of it.

    Columns meter_id, channel, rule, severity, detail, intervals, period_start, period_end."""
    cols = ["meter_id", "channel", "rule", "severity", "detail", "intervals", "period_start", "period_end"]
    if decreases.empty:
        return pd.DataFrame(columns=cols)
    start, end = local_day_bounds(day, tz)
    d = decreases[decreases["kind"].isin(["bad_read", "reset"])]
    at, before = pd.to_datetime(d["read_at"], utc=True), pd.to_datetime(d["prev_at"], utc=True)
    in_day = np.where(d["kind"].eq("bad_read"), (at >= start) & (at < end), (before < end) & (at > start))
    d = d[in_day].assign(read_at=at[in_day], prev_at=before[in_day])
    if d.empty:
        return pd.DataFrame(columns=cols)
    unit = " " + d["source_unit"].astype("str")
    where = " (file " + _int_text(d["file_id"]) + ", line " + _int_text(d["line"]) + ")"
    read = _number_text(d["value"]) + unit + " at " + d["read_at"].dt.strftime("%Y-%m-%d %H:%M:%SZ") + where
    previous = _number_text(d["prev_value"]) + unit
    text = np.where(
        d["kind"].eq("bad_read"),
        "read "
        + read
        + " breaks the rising register (previous read "
        + previous
        + "): ignored as a bad read",
        "register went down from "
        + previous
        + " to "
        + read
        + ", not a rollover and no meter exchange recorded: no consumption derived since "
        + d["prev_at"].dt.strftime("%Y-%m-%d %H:%M:%SZ")
        + " (estimated by VEE)",
    )
    d = d.assign(text=text)
    g = (
        d.groupby(["meter_id", "channel"], sort=True)
        .agg(
            detail=("text", "; ".join),
            intervals=("text", "size"),
            period_start=("prev_at", "min"),
            period_end=("read_at", "max"),
        )
        .reset_index()
    )
    g["rule"], g["severity"] = RULE, DAY_RULES[RULE][0]
    g["intervals"] = 0  # a register rule: no interval of its own (the uncovered ones are missing)
    return g[cols]


def _number_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:.10g}")


def _int_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "?" if pd.isna(v) else str(int(v)))


def _us(instants: pd.Series, missing: float | None = None) -> np.ndarray:
    """UTC epoch microseconds of instants (``missing`` where NaT, else int64 only)."""
    times = pd.to_datetime(instants, utc=True)
    values = times.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").view(np.int64)
    if missing is None:
        return values.copy()
    return np.where(times.isna().to_numpy(), missing, values.astype("float64"))


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
