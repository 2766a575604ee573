"""Interval arithmetic on UTC instants, local operating days and DST.

An interval is identified by its end instant in UTC. It belongs to the local day in
which it *starts*, so the interval ending at local midnight closes the previous day.
Expected interval counts come from the UTC length of the local day, so a 15-minute
meter has 92 intervals on a spring-forward day and 100 on a fall-back day. Naive local times
of head-end files become UTC instants here too (``localise_sequences``, ``localise_in_order``).
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


# --------------------------------------------------------------------------- naive local times -> UTC
# Head-end files write naive local prevailing time. The helpers below turn naive local epochs
# into UTC epochs for sequences of readings, resolving the fall-back hour (written twice) from
# the sequence and reporting spring-forward times, which do not exist.
#
# Naive local times -> UTC for sequences of readings in file order, at any spacing.
#
# An export in local prevailing time writes the fall-back hour twice (docs/formats.md §5: duplicate
# timestamps at the autumn clock change), told apart only by the order of the rows. CMEP lines are
# regular, so their repeated hour is placed from the interval (``localise_sequences``); the
# reads of an AMR register export are not (about hourly, with drifting seconds: ``02:00:47`` then
# ``02:01:12`` an hour later), so ``localise_in_order`` lets the order decide:
#
# Within a sequence (one meter and channel, rows in file order), a *run* of consecutive readings
# whose local time occurs twice is split in two: its first ``j`` readings take the daylight-time
# instant (first pass), the others the standard-time instant (after the clock went back). Of the
# splits that keep the sequence in time order (with the unambiguous readings just before and after
# the run), the one whose smallest gap between neighbouring readings is largest wins: readings of
# the two passes are spread as evenly as the clock allows, which for any regular or near-regular
# cadence is the true split. Ties (no neighbours) keep daylight time, as ``localise_sequences``
# does. Local times in the spring-forward gap do not exist and are reported.

NAT = np.iinfo(np.int64).min  # "no time" in int64 epoch arrays
DAY = 86400
_INF = np.inf


def localise_in_order(naive_us: np.ndarray, group: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """UTC epoch microseconds of naive local epoch microseconds (``NAT`` = none) and the mask of
    local times that do not exist (spring-forward gap; they stay ``NAT``).

    ``group`` (int) labels the sequences; the rows of a sequence must be contiguous and in file
    order (sort by group, stably, first)."""
    utc, gap, amb, early, late = local_instants(naive_us, tz, "us")
    if len(amb):
        utc[amb] = _split_runs(amb, early, late, utc, group)
    return utc, gap


def local_instants(
    naive: np.ndarray, tz: str, unit: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Naive local epochs in ``unit`` (``NAT`` = none) -> (UTC epochs, ``NAT`` where none or not
    unique; the mask of local times in the spring-forward gap; the rows whose local time occurs
    twice, with their daylight-time and their standard-time instants)."""
    # readings share few distinct local times: each is converted once
    code, distinct = pd.factorize(naive)
    local = pd.Series(distinct.view(f"datetime64[{unit}]"))
    utc = _epochs(local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT"), unit)[code]
    gap = np.zeros(len(naive), dtype=bool)
    problem = np.flatnonzero((naive != NAT) & (utc == NAT))
    if len(problem) == 0:
        return utc, gap, problem, problem, problem
    sub = pd.Series(naive[problem].view(f"datetime64[{unit}]"))
    early = _epochs(sub.dt.tz_localize(tz, ambiguous=np.ones(len(sub), bool), nonexistent="NaT"), unit)
    late = _epochs(sub.dt.tz_localize(tz, ambiguous=np.zeros(len(sub), bool), nonexistent="NaT"), unit)
    missing = early == NAT
    gap[problem[missing]] = True
    return utc, gap, problem[~missing], early[~missing], late[~missing]


def _split_runs(
    amb: np.ndarray, early: np.ndarray, late: np.ndarray, utc: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """The instants of the ambiguous rows ``amb`` (ascending positions), run by run."""
    n = len(utc)
    # a run: consecutive positions of one group
    starts_run = np.r_[True, (np.diff(amb) != 1) | (group[amb[1:]] != group[amb[:-1]])]
    run = np.cumsum(starts_run) - 1
    first = np.flatnonzero(starts_run)
    size = np.diff(np.r_[first, len(amb)])
    q = np.arange(len(amb)) - first[run]  # position in the run
    # the unambiguous neighbours just before and after each run (same group), else none
    before, after = amb[first] - 1, amb[first + size - 1] + 1
    prev_t = np.full(len(first), -_INF)
    ok = (before >= 0) & (group[np.maximum(before, 0)] == group[amb[first]])
    ok &= utc[np.maximum(before, 0)] != NAT
    prev_t[ok] = utc[before[ok]]
    next_t = np.full(len(first), _INF)
    ok = (after < n) & (group[np.minimum(after, n - 1)] == group[amb[first]])
    ok &= utc[np.minimum(after, n - 1)] != NAT
    next_t[ok] = utc[after[ok]]

    e, lt = early.astype(np.float64), late.astype(np.float64)
    # gaps inside the early pass (prefix minimum) and inside the late pass (suffix minimum)
    d_early = np.where(q[1:] > 0, e[1:] - e[:-1], _INF) if len(amb) > 1 else np.zeros(0)
    d_late = np.where(q[1:] > 0, lt[1:] - lt[:-1], _INF) if len(amb) > 1 else np.zeros(0)
    gap_early = np.r_[_INF, d_early]  # gap_early[i]: e[i] - e[i-1] within the run
    gap_late = np.r_[d_late, _INF]  # gap_late[i]: l[i+1] - l[i] within the run
    pre_min = pd.Series(gap_early).groupby(run).cummin().to_numpy()
    suf_min = pd.Series(gap_late[::-1]).groupby(run[::-1]).cummin().to_numpy()[::-1]

    # candidates (run, j): j = 0 … size readings take daylight time
    cand_run = np.repeat(np.arange(len(first)), size + 1)
    j = np.arange(len(cand_run)) - np.repeat(np.cumsum(size + 1) - (size + 1), size + 1)
    k = size[cand_run]
    base = first[cand_run]
    inside_early = np.where(j >= 2, pre_min[base + np.maximum(j - 1, 0)], _INF)
    inside_late = np.where(j <= k - 2, suf_min[base + np.minimum(j, k - 1)], _INF)
    head = np.where(j >= 1, e[base], lt[base]) - prev_t[cand_run]
    last = base + k - 1
    tail = next_t[cand_run] - np.where(j < k, lt[last], e[last])
    middle = np.where(
        (j >= 1) & (j < k), lt[base + np.minimum(j, k - 1)] - e[base + np.maximum(j - 1, 0)], _INF
    )
    gaps = np.column_stack([inside_early, inside_late, head, tail, middle])
    score = np.where((gaps >= 0).all(axis=1), gaps.min(axis=1), -_INF)
    # best split per run: highest score, then the most daylight-time readings
    order = np.lexsort((-j, -score, cand_run))
    best = order[np.r_[True, cand_run[order][1:] != cand_run[order][:-1]]]
    split = np.empty(len(first), dtype=np.int64)
    split[cand_run[best]] = j[best]
    take_early = q < split[run]
    return np.where(take_early, early, late)


def _epochs(local: pd.Series, unit: str) -> np.ndarray:
    """tz-aware Series -> int64 UTC epochs in ``unit`` (NaT -> NAT)."""
    values = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype=f"datetime64[{unit}]")
    return values.view(np.int64).copy()


def localise_sequences(
    naive: np.ndarray, group: np.ndarray, pos: np.ndarray, step: np.ndarray, tz: str
) -> tuple[np.ndarray, np.ndarray]:
    """Naive local epoch seconds (``NAT`` = none) of readings in sequences -> (UTC epoch seconds,
    mask of local times in the spring-forward gap, which stay ``NAT``).

    Rows of a sequence (``group``) are contiguous and in order, ``pos`` is the rank in the
    sequence and ``step`` the regular spacing in seconds (0 = none known). A local time that
    occurs twice (fall-back) takes the instant that keeps it ``step`` apart from the nearest
    unambiguous reading before it, else after it (``pos`` difference x ``step``); without such
    evidence it takes the standard-time instant when the clock visibly went back (an earlier
    repeated-hour time of the sequence is not earlier: a repeat, or 01:59 then 01:14), else the
    daylight-time one. A sequence holding only one pass of the repeated hour with nothing
    around it cannot be placed and reads as daylight time.
    """
    utc, gap, amb, early, late = local_instants(naive, tz, "s")
    if len(amb) == 0:
        return utc, gap
    n = len(naive)
    idx = np.arange(n)
    known = utc != NAT
    prev = np.maximum.accumulate(np.where(known, idx, -1))[amb]
    nxt = np.minimum.accumulate(np.where(known, idx, n)[::-1])[::-1][amb]
    s = step[amb]
    has_prev = (prev >= 0) & (s > 0)
    has_prev[has_prev] &= group[prev[has_prev]] == group[amb[has_prev]]
    has_next = (nxt < n) & (s > 0)
    has_next[has_next] &= group[nxt[has_next]] == group[amb[has_next]]
    prev_c, nxt_c = np.maximum(prev, 0), np.minimum(nxt, n - 1)
    exp_prev = np.where(has_prev, utc[prev_c] + (pos[amb] - pos[prev_c]) * s, NAT)
    exp_next = np.where(has_next, utc[nxt_c] - (pos[nxt_c] - pos[amb]) * s, NAT)
    # no evidence: the clock went back if an earlier repeated-hour time of the sequence is not
    # earlier than this one (a repeat, or 01:59 followed by 01:14)
    window = pd.DataFrame({"group": group[amb], "naive": naive[amb]})
    seen = window.groupby("group")["naive"].cummax().groupby(window["group"]).shift(1)
    went_back = (seen >= window["naive"]).to_numpy(dtype=bool)
    utc[amb] = np.select(
        [exp_prev == late, exp_prev == early, exp_next == late, exp_next == early],
        [late, early, late, early],
        default=np.where(went_back, late, early),
    )
    return utc, gap


def add_calendar(naive: np.ndarray, months: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Naive epoch seconds + whole months (day clamped to the month's end) + whole days."""
    stamps = naive.view("datetime64[s]")
    month = stamps.astype("datetime64[M]")
    into = naive - month.astype("datetime64[s]").view(np.int64)
    target = month + months.astype("timedelta64[M]")
    length = (
        (target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")
    ).view(np.int64)
    into = np.minimum(into, (length - 1) * DAY + into % DAY)
    return target.astype("datetime64[s]").view(np.int64) + into + days * DAY
