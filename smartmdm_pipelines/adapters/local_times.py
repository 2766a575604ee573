"""Naive local times -> UTC for sequences of readings in file order, at any spacing.

An export in local prevailing time writes the fall-back hour twice (formats.md §5: duplicate
timestamps at the autumn clock change), told apart only by the order of the rows. CMEP lines are
regular, so their repeated hour is placed from the interval (``cmep.localise_sequences``); the
reads of an AMR register export are not (about hourly, with drifting seconds: ``02:00:47`` then
``02:01:12`` an hour later), so here the order decides:

Within a sequence (one meter and channel, rows in file order), a *run* of consecutive readings
whose local time occurs twice is split in two: its first ``j`` readings take the daylight-time
instant (first pass), the others the standard-time instant (after the clock went back). Of the
splits that keep the sequence in time order (with the unambiguous readings just before and after
the run), the one whose smallest gap between neighbouring readings is largest wins: readings of
the two passes are spread as evenly as the clock allows, which for any regular or near-regular
cadence is the true split. Ties (no neighbours) keep daylight time, as ``cmep`` does. Local times
in the spring-forward gap do not exist and are reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAT = np.iinfo(np.int64).min
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
