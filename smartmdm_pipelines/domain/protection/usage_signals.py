"""Indicators read from the daily usage series: a drop against the service point's own history
and its peers, zero use on an occupied premise, a stopped meter while its zone's losses rose,
and use on a vacant premise.

Each function takes the usage matrix (``series.UsageMatrix``) and the occupancy matrix (an
account covers the day) and returns signals (``signals.SIGNAL_COLUMNS``); all per-day work is
array arithmetic over the whole matrix.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.protection.params import ProtectionParams
from smartmdm_pipelines.domain.protection.series import UsageMatrix, downward_steps, excerpt
from smartmdm_pipelines.domain.protection.signals import empty_signals, rounded, signal_frame

_GALLONS = {
    "gal": 1.0,
    "kgal": 1000.0,
    "m3": 264.1720523581484,
    "l": 0.26417205235814845,
    "ccf": 748.0519480519481,
}


def occupancy(
    accounts: pd.DataFrame, service_points: pd.DataFrame, sp_ids: pd.Index, days: list[dt.date]
) -> tuple[np.ndarray, np.ndarray]:
    """(occupied, known): an account covers the day (move-in ≤ day ≤ move-out, the move-out being the
    last day of service); ``known`` rows have accounts at all. A service point without accounts is
    occupied unless the CIS says it is inactive or vacant."""
    day_arr = np.array(days, dtype="datetime64[D]")
    occupied = np.zeros((len(sp_ids), len(days)), dtype=bool)
    acc = accounts[accounts["service_point_id"].isin(sp_ids)]
    if len(acc):
        move_in = pd.to_datetime(acc["move_in"]).to_numpy().astype("datetime64[D]")
        move_out = pd.to_datetime(acc["move_out"]).to_numpy().astype("datetime64[D]")
        far = np.datetime64("9999-12-31", "D")
        move_out = np.where(np.isnat(move_out), far, move_out)
        covers = (day_arr[None, :] >= move_in[:, None]) & (day_arr[None, :] <= move_out[:, None])
        rows = sp_ids.get_indexer(acc["service_point_id"])
        np.logical_or.at(occupied, rows, covers)
    known = sp_ids.isin(acc["service_point_id"])
    status = service_points.set_index("service_point_id")["status"].reindex(sp_ids).fillna("active")
    default = ~status.isin(["inactive", "vacant"]).to_numpy()
    occupied[~known] = default[~known][:, None]
    return occupied, known


def _floors(m: UsageMatrix, commodity: pd.Series, table: dict[str, float]) -> np.ndarray:
    return commodity.reindex(m.sp_ids).map(table).fillna(0.0).to_numpy(dtype="float64")


def _at(starts: pd.DatetimeIndex, cols: np.ndarray) -> pd.DatetimeIndex:
    return starts[np.clip(cols, 0, len(starts) - 1)]


def _day_end(starts: pd.DatetimeIndex, day_end_last: pd.Timestamp, cols: np.ndarray) -> list:
    """End instant of the days at ``cols`` (the next day's start, or the window's end)."""
    ends = list(starts[1:]) + [day_end_last]
    return [ends[int(c)] for c in cols]


def consumption_drop(
    m: UsageMatrix,
    adjusted: np.ndarray,
    peer_median: np.ndarray,
    occupied: np.ndarray,
    move_ins: np.ndarray,
    starts: pd.DatetimeIndex,
    window_end: pd.Timestamp,
    commodity: pd.Series,
    params: ProtectionParams,
) -> pd.DataFrame:
    """A sustained step down of the peer-adjusted (seasonally adjusted) series: the largest L2
    change point, after / before below ``drop_ratio`` and ``drop_t`` standard errors deep.
    Only occupied days count (a move-out explains a drop) and a step at a new occupant's move-in
    (``move_ins``: a True cell is a move-in day) is explained too. The unbilled volume is what the
    service point would have used at its old share of the peers' median, less what it used."""
    y = np.where(occupied, adjusted, np.nan)
    cp = downward_steps(y, params.min_segment_days)
    ratio = cp.ratio
    strength = np.clip(1.0 - ratio, 0.0, params.max_drop_strength)
    floor = _floors(m, commodity, params.zero_floor)
    raw_before = _masked_mean(m.values, np.arange(m.values.shape[1])[None, :] < cp.k[:, None])
    near_move_in = np.zeros(len(cp.k), dtype=bool)
    for shift in (-1, 0, 1):
        col = np.clip(cp.k + shift, 0, m.values.shape[1] - 1)
        near_move_in |= move_ins[np.arange(len(col)), col]
    hit = (
        (cp.k > 0)
        & (ratio < params.drop_ratio)
        & (cp.t >= params.drop_t)
        & (strength >= params.min_drop_strength)
        & (raw_before > floor)
        & ~near_move_in
    )
    rows = np.nonzero(hit)[0]
    if len(rows) == 0:
        return empty_signals()
    cols = np.arange(m.values.shape[1])[None, :]
    after = (cols >= cp.k[rows, None]) & occupied[rows]
    expected = cp.before[rows, None] * peer_median[rows]
    gap = np.where(after & np.isfinite(m.values[rows]), np.maximum(expected - m.values[rows], 0.0), 0.0)
    volume = np.nansum(gap, axis=1)
    evidence = [
        {
            "own_ratio": rounded(ratio[i]),
            "peer_level_before": rounded(cp.before[i]),
            "peer_level_after": rounded(cp.after[i]),
            "raw_mean_before": rounded(raw_before[i]),
            "raw_mean_after": rounded(_masked_mean(m.values[i : i + 1], after[j : j + 1])[0]),
            "days_before": int(cp.n_before[i]),
            "days_after": int(cp.n_after[i]),
            "t": rounded(cp.t[i], 1),
            "series": excerpt(m.values[i], m.days, params.excerpt_days),
        }
        for j, i in enumerate(rows)
    ]
    return signal_frame(
        "consumption_drop",
        m.sp_ids[rows],
        m.meters.iloc[rows],
        _at(starts, cp.k[rows]),
        [window_end] * len(rows),
        strength[rows],
        volume,
        m.unit.iloc[rows],
        evidence,
    )


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    use = mask & np.isfinite(values)
    with np.errstate(all="ignore"):
        return np.where(use.sum(axis=1) > 0, np.where(use, values, 0.0).sum(axis=1) / use.sum(axis=1), np.nan)


def _last_runs(flags: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the latest run of True at least ``min_length`` long: (first column, last column);
    -1 where there is none."""
    n = flags.shape[1]
    idx = np.arange(n)
    last_false = np.maximum.accumulate(np.where(~flags, idx, -1), axis=1)
    length = np.where(flags, idx - last_false, 0)
    ends_here = flags & np.concatenate([~flags[:, 1:], np.ones((flags.shape[0], 1), bool)], axis=1)
    candidate = ends_here & (length >= min_length)
    end = np.where(candidate.any(axis=1), n - 1 - np.argmax(candidate[:, ::-1], axis=1), -1)
    first = np.where(end >= 0, end - length[np.arange(len(end)), np.maximum(end, 0)] + 1, -1)
    return first, end


def zero_runs(
    m: UsageMatrix, occupied: np.ndarray, commodity: pd.Series, params: ProtectionParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per service point, the latest run of near-zero occupied days (first, last column; -1 = none)
    and its own baseline (mean of the occupied days with use before the run)."""
    floor = _floors(m, commodity, params.zero_floor)
    values = m.values
    cols = np.arange(values.shape[1])[None, :]
    used = occupied & np.isfinite(values) & (values > floor[:, None])
    overall = _masked_mean(values, used)
    limit = np.maximum(floor, params.zero_share * np.nan_to_num(overall))
    near_zero = occupied & np.isfinite(values) & (values <= limit[:, None])
    first, last = _last_runs(near_zero, params.zero_days)
    baseline = _masked_mean(values, used & (cols < first[:, None]))
    return first, last, baseline


def zero_usage(
    m: UsageMatrix,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray],
    starts: pd.DatetimeIndex,
    window_end: pd.Timestamp,
    params: ProtectionParams,
) -> pd.DataFrame:
    """``zero_days`` or more consecutive near-zero days on an occupied premise that used before."""
    first, last, baseline = runs
    rows = np.nonzero((first >= 0) & np.isfinite(baseline) & (baseline > 0))[0]
    if len(rows) == 0:
        return empty_signals()
    days = last[rows] - first[rows] + 1
    evidence = [
        {
            "zero_days": int(days[j]),
            "baseline_per_day": rounded(baseline[i]),
            "series": excerpt(m.values[i], m.days, params.excerpt_days),
        }
        for j, i in enumerate(rows)
    ]
    return signal_frame(
        "zero_usage",
        m.sp_ids[rows],
        m.meters.iloc[rows],
        _at(starts, first[rows]),
        _day_end(starts, window_end, last[rows]),
        params.strengths["zero_usage"],
        baseline[rows] * days,
        m.unit.iloc[rows],
        evidence,
    )


def flat_meter_zone_rise(
    m: UsageMatrix,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray],
    zone_of: pd.Series,
    zone_daily: pd.DataFrame,
    starts: pd.DatetimeIndex,
    window_end: pd.Timestamp,
    params: ProtectionParams,
) -> pd.DataFrame:
    """A water meter that stopped (near-zero run) while its zone's daily loss (input − metered, from
    the zone balance) rose by at least ``zone_rise_share`` of what the meter used to record: the
    water still flows, only the meter no longer sees it."""
    first, last, baseline = runs
    if zone_daily is None or zone_daily.empty:
        return empty_signals()
    zd = zone_daily.copy()
    zd["read_day"] = pd.to_datetime(zd["read_day"]).dt.date
    factor = zd["unit"].astype(str).str.lower().map(_GALLONS)
    zd = zd[factor.notna()].assign(loss=zd["loss_volume"] * factor[factor.notna()])
    loss = zd.pivot_table(index="zone_id", columns="read_day", values="loss", aggfunc="sum")
    loss = loss.reindex(columns=m.days)
    sp_factor = m.unit.astype(str).str.lower().map(_GALLONS).to_numpy(dtype="float64")
    zones = zone_of.reindex(m.sp_ids)
    rows = np.nonzero(
        (first >= 0)
        & np.isfinite(baseline)
        & (baseline > 0)
        & np.isfinite(sp_factor)
        & zones.isin(loss.index)
    )[0]
    if len(rows) == 0:
        return empty_signals()
    series = loss.reindex(zones.iloc[rows]).to_numpy(dtype="float64")
    cols = np.arange(len(m.days))[None, :]
    during = (cols >= first[rows, None]) & (cols <= last[rows, None])
    before = cols < first[rows, None]
    loss_during = _masked_mean(series, during)
    loss_before = _masked_mean(series, before)
    enough = (np.isfinite(series) & before).sum(axis=1) >= params.min_segment_days
    usual = baseline[rows] * sp_factor[rows]  # gallons per day
    rise = loss_during - loss_before
    hit = enough & np.isfinite(rise) & (rise >= params.zone_rise_share * usual)
    rows, keep = rows[hit], np.nonzero(hit)[0]
    if len(rows) == 0:
        return empty_signals()
    days = last[rows] - first[rows] + 1
    evidence = [
        {
            "zone_id": zones.iloc[i],
            "zone_loss_before_gal_per_day": rounded(loss_before[j]),
            "zone_loss_during_gal_per_day": rounded(loss_during[j]),
            "meter_usual_gal_per_day": rounded(usual[j]),
            "stopped_days": int(days[n]),
        }
        for n, (i, j) in enumerate(zip(rows, keep, strict=True))
    ]
    return signal_frame(
        "flat_meter_zone_rise",
        m.sp_ids[rows],
        m.meters.iloc[rows],
        _at(starts, first[rows]),
        _day_end(starts, window_end, last[rows]),
        params.strengths["flat_meter_zone_rise"],
        baseline[rows] * days,
        m.unit.iloc[rows],
        evidence,
    )


def vacant_usage(
    m: UsageMatrix,
    occupied: np.ndarray,
    known: np.ndarray,
    status: pd.Series,
    commodity: pd.Series,
    starts: pd.DatetimeIndex,
    window_end: pd.Timestamp,
    params: ProtectionParams,
) -> pd.DataFrame:
    """Use on days no account covers (after a move-out, before a move-in) or on a service point the
    CIS calls inactive/vacant: above ``vacant_ratio`` of its occupied use, or, with no occupied days
    to compare, above the standby allowance. Nobody is billed for it: all of it is unbilled."""
    values = m.values
    inactive = status.reindex(m.sp_ids).isin(["inactive", "vacant"]).to_numpy()
    vacant = (~occupied & known[:, None]) | inactive[:, None]
    floor = _floors(m, commodity, params.zero_floor)
    allowance = _floors(m, commodity, params.vacant_daily)
    vacant_mean = _masked_mean(values, vacant)
    occupied_mean = _masked_mean(values, ~vacant)
    with np.errstate(all="ignore"):
        ratio = vacant_mean / occupied_mean
    by_ratio = np.isfinite(ratio) & (ratio >= params.vacant_ratio) & (vacant_mean > floor)
    by_allowance = ~np.isfinite(occupied_mean) & (vacant_mean > allowance)
    rows = np.nonzero(by_ratio | by_allowance)[0]
    if len(rows) == 0:
        return empty_signals()
    used = vacant[rows] & np.isfinite(values[rows]) & (values[rows] > floor[rows, None])
    first = np.argmax(used, axis=1)
    volume = np.nansum(np.where(vacant[rows], values[rows], 0.0), axis=1)
    evidence = [
        {
            "vacant_days": int(np.isfinite(values[i][vacant[i]]).sum()),
            "vacant_mean_per_day": rounded(vacant_mean[i]),
            "occupied_mean_per_day": rounded(occupied_mean[i]),
            "series": excerpt(values[i], m.days, params.excerpt_days),
        }
        for i in rows
    ]
    return signal_frame(
        "vacant_usage",
        m.sp_ids[rows],
        m.meters.iloc[rows],
        _at(starts, first),
        [window_end] * len(rows),
        params.strengths["vacant_usage"]
        * np.clip(np.nan_to_num(ratio[rows], nan=1.0) / params.vacant_ratio, 0.6, 1.0),
        volume,
        m.unit.iloc[rows],
        evidence,
    )
