"""Loss events from the hourly zone balance (input - customer consumption): CUSUM change points.

The hourly loss series is de-seasonalised (the median deviation of each local hour from a
centred 24-hour median: background leakage rises at night with pressure), its noise measured
robustly (MAD of first differences). A one-sided CUSUM against the median of the previous quiet
hours raises an event; its start is the hour the CUSUM last left zero (the change point), its
rate the median excess over that frozen baseline. A second CUSUM watches for the drop back
(repair, or the end of a burst): the event ends at the hour that one left zero. Losses on top of
an open loss stack (their baseline is the level of the one below). Incomplete hours (a data gap
on either side) are skipped, never read as a step. An event whose rate the estimated customer
volume could explain is dropped. Steps (a burst, a new leak) and slow rises are told apart by the
excess of the event's first quarter against its last.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.water.params import ZoneParams

EVENT_COLUMNS = [
    "event_id",
    "zone_id",
    "meter_id",
    "kind",
    "start_at",
    "end_at",
    "rate",
    "unit",
    "detail",
    "volume",
    "confidence",
    "source",
    "evidence",
    "status",
]
SOURCE = "balance"
KIND = "balance"
EXCERPT_HOURS = 6
REFINE_HOURS = 6
ABORT_HOURS = 3  # an alarm whose excess has not held for this long is dropped  # the change point is refined within this many hours of the CUSUM's estimate


def event_id(source: str, zone_id: str, start_at: pd.Timestamp) -> str:
    """Deterministic id: the same leak found again gets the same id."""
    tag = {"balance": "B", "inflow": "I"}.get(source, source[:1].upper())
    return f"LE-{tag}-{zone_id}-{pd.Timestamp(start_at).tz_convert('UTC'):%Y%m%dT%H%MZ}"


def deseasonalise(loss: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
    """Loss minus its hour-of-day profile (median deviation from a centred 24-hour median)."""
    s = pd.Series(loss, dtype="float64")
    level = s.rolling(24, center=True, min_periods=12).median()
    profile = (s - level).groupby(local_hour).median().reindex(range(24)).fillna(0.0)
    return loss - profile.to_numpy()[local_hour]


def robust_sigma(values: np.ndarray) -> float:
    diffs = np.diff(values)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 10:
        return float("nan")
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2.0))


@dataclass
class _Event:
    start: int
    alarm: int
    baseline: float
    prior: deque
    index: list[int] = field(default_factory=list)
    excess: list[float] = field(default_factory=list)
    end: int | None = None  # first hour back at the level below
    down: float = 0.0
    down_start: int | None = None
    up: float = 0.0
    up_start: int | None = None

    def rate(self, last: int | None = None) -> float:
        x = self.excess if last is None else self.excess[-last:]
        return float(np.median(x)) if x else 0.0


def _scan(d: np.ndarray, k: float, h: float, params: ZoneParams) -> list[_Event]:
    """The CUSUM state machine over the de-seasonalised series (NaN hours skipped)."""
    quiet: deque = deque(maxlen=params.baseline_hours)
    pending: list[float] = []
    stack: list[_Event] = []
    done: list[_Event] = []
    s, s_start = 0.0, None
    for i, v in enumerate(d):
        if not math.isfinite(v):
            continue
        if not stack:
            if len(quiet) < params.min_history_hours:
                quiet.append(v)
                continue
            b = float(np.median(quiet))
            s_new = s + (v - b) - k
            if s_new <= 0:
                quiet.extend(pending)
                quiet.append(v)
                pending, s, s_start = [], 0.0, None
                continue
            s_start = i if s_start is None else s_start
            s = s_new
            pending.append(v)
            if s > h:
                ev = _Event(s_start, i, b, deque(quiet, maxlen=params.baseline_hours))
                ev.index = list(range(s_start, i + 1))
                ev.excess = [float(d[j] - b) for j in ev.index if math.isfinite(d[j])]
                ev.index = [j for j in ev.index if math.isfinite(d[j])]
                stack.append(ev)
                pending, s, s_start = [], 0.0, None
            continue
        top = stack[-1]
        x = v - top.baseline
        top.index.append(i)
        top.excess.append(float(x))
        # the rate from the hours before a possible drop (the drop's hours would drag it down)
        confirmed = top.excess if top.down_start is None else top.excess[: top.index.index(top.down_start)]
        rate = float(np.median(confirmed)) if confirmed else top.rate()
        if len(top.excess) >= ABORT_HOURS and rate < k:  # a false alarm: the excess did not last
            stack.pop()
            if stack:
                below = stack[-1]
                below.index.extend(top.index)
                below.excess.extend(float(d[j] - below.baseline) for j in top.index)
            else:
                quiet = top.prior
                quiet.extend(float(d[j]) for j in top.index)
                s, s_start, pending = 0.0, None, []
            continue
        # the drop back: increments rate/2 - x, mean -rate/2 during the loss, +rate/2 after it
        t_new = top.down + (rate / 2.0 - x)
        if t_new <= 0:
            top.down, top.down_start = 0.0, None
        else:
            top.down_start = i if top.down_start is None else top.down_start
            top.down = t_new
        if top.down >= max(h, rate / 2.0):
            cut = top.index.index(top.down_start)
            after = top.index[cut:]
            top.end = top.down_start
            top.index, top.excess = top.index[:cut], top.excess[:cut]
            stack.pop()
            done.append(top)
            if stack:  # the loss below goes on: the hours since the drop are its own again
                below = stack[-1]
                below.index.extend(after)
                below.excess.extend(float(d[j] - below.baseline) for j in after)
                below.down, below.down_start, below.up, below.up_start = 0.0, None, 0.0, None
            else:
                quiet = top.prior
                quiet.extend(float(d[j]) for j in after)
                s, s_start, pending = 0.0, None, []
            continue
        # another loss on top of this one (after the rate has settled)
        if len(top.index) >= params.nested_after_hours:
            level = top.rate(params.nested_after_hours)
            u_new = top.up + (x - level) - k
            if u_new <= 0:
                top.up, top.up_start = 0.0, None
            else:
                top.up_start = i if top.up_start is None else top.up_start
                top.up = u_new
            if top.up > h:
                cut = top.index.index(top.up_start)
                moved = top.index[cut:]
                top.index, top.excess = top.index[:cut], top.excess[:cut]
                top.up, top.up_start, top.down, top.down_start = 0.0, None, 0.0, None
                base = top.baseline + level
                ev = _Event(moved[0], i, base, deque())
                ev.index = moved
                ev.excess = [float(d[j] - base) for j in moved]
                stack.append(ev)
    done.extend(stack)  # still open at the last hour
    return done


def _refine_start(ev: _Event, d: np.ndarray, last: int) -> None:
    """Move the start to the maximum-likelihood step position near the CUSUM's estimate: the hour
    from which the excess over the baseline stays above half the event's rate, in the sum."""
    rate = ev.rate()
    lo = max(0, ev.start - REFINE_HOURS)
    hi = min((ev.end - 1) if ev.end is not None else last, ev.start + 2 * REFINE_HOURS)
    if hi <= lo or rate <= 0:
        return
    seg = np.nan_to_num(d[lo : hi + 1] - ev.baseline - rate / 2.0, nan=0.0)
    tail = np.cumsum(seg[::-1])[::-1]  # sum from each hour to hi
    tau = lo + int(np.argmax(tail))
    if tau < ev.start:
        extra = [j for j in range(tau, ev.start) if math.isfinite(d[j])]
        ev.index = extra + ev.index
        ev.excess = [float(d[j] - ev.baseline) for j in extra] + ev.excess
    elif tau > ev.start:
        keep = [n for n, j in enumerate(ev.index) if j >= tau]
        if keep:
            ev.index = [ev.index[n] for n in keep]
            ev.excess = [ev.excess[n] for n in keep]
    ev.start = tau


def detect_balance_events(
    hourly: pd.DataFrame,
    zone_id: str,
    tz: str,
    params: ZoneParams,
    unit: str | None = None,
    replaced: pd.Series | None = None,
) -> pd.DataFrame:
    """Loss events of one zone from its hourly balance rows (zone_balances, 3600 s), sorted by time.

    ``hourly``: interval_end, input_volume, metered_volume, loss_volume, estimated_volume, complete.
    ``replaced``: per hour end, the customer volume VEE set aside by replacing suspect reads with
    estimates (previous value - estimate); with the estimated volume it may explain an event away.
    Returns ``loss_events`` rows (EVENT_COLUMNS) with status open (still going at the last hour)
    or ended.
    """
    empty = pd.DataFrame(columns=EVENT_COLUMNS)
    if hourly.empty:
        return empty
    h = hourly.assign(interval_end=pd.to_datetime(hourly["interval_end"], utc=True)).sort_values(
        "interval_end"
    )
    grid = pd.date_range(h["interval_end"].iloc[0], h["interval_end"].iloc[-1], freq="h")
    h = h.set_index("interval_end").reindex(grid)
    complete = h["complete"].fillna(False).astype(bool).to_numpy()
    loss = np.where(complete, h["loss_volume"].to_numpy(dtype="float64"), np.nan)
    if np.isfinite(loss).sum() < params.min_history_hours + 2:
        return empty
    local_hour = (grid - pd.Timedelta(hours=1)).tz_convert(tz).hour.to_numpy()
    d = deseasonalise(loss, local_hour)
    sigma = robust_sigma(d)
    mean_input = float(np.nanmean(np.where(complete, h["input_volume"].to_numpy(dtype="float64"), np.nan)))
    if not math.isfinite(sigma) or not math.isfinite(mean_input):
        return empty
    sigma = max(sigma, 1e-6 * max(abs(mean_input), 1.0))
    delta = max(params.min_rate_share * abs(mean_input), params.min_rate_sigma * sigma)
    k, hthr = delta / 2.0, max(params.threshold_sigma * sigma, delta)
    estimated = h["estimated_volume"].fillna(0.0).to_numpy(dtype="float64")
    if replaced is not None and len(replaced):
        moved = replaced.copy()
        moved.index = pd.to_datetime(moved.index, utc=True)
        estimated = estimated + np.abs(moved.groupby(level=0).sum().reindex(grid).fillna(0.0).to_numpy())
    rows = []
    last_hour = len(grid) - 1
    unit = unit or (str(h["unit"].dropna().iloc[0]) if h["unit"].notna().any() else None)
    for ev in _scan(d, k, hthr, params):
        if not ev.index:
            continue
        _refine_start(ev, d, last_hour)
        rate = ev.rate()
        if rate < delta / 2.0:  # well below the smallest loss of interest once settled
            continue
        span = range(ev.start, (ev.end if ev.end is not None else last_hour + 1))
        est = float(np.mean(estimated[list(span)])) if len(span) else 0.0
        if est >= params.max_estimated_ratio * rate:
            continue
        excess = np.asarray(ev.excess)
        measured = int(np.isfinite(d[list(span)]).sum())
        volume = float(excess.sum() + rate * (len(span) - len(ev.index)))
        shape = "step"
        if len(excess) >= 12:
            q = max(3, len(excess) // 4)
            first, last = excess[:q].mean(), excess[-q:].mean()
            if last > 0 and first < 0.5 * last:
                shape = "rise"
        z = rate / sigma * math.sqrt(min(measured, 24))
        confidence = (
            (1.0 - math.exp(-z / 8.0)) * (measured / max(len(span), 1)) * (1.0 - min(est / rate, 1.0) / 2)
        )
        start_at = grid[ev.start] - pd.Timedelta(hours=1)
        end_at = None if ev.end is None else grid[ev.end] - pd.Timedelta(hours=1)
        lo = max(0, ev.start - EXCERPT_HOURS)
        hi = min(last_hour, (ev.end if ev.end is not None else ev.start) + EXCERPT_HOURS)
        excerpt = [
            [grid[j].isoformat(), None if not math.isfinite(loss[j]) else round(float(loss[j]), 3)]
            for j in range(lo, hi + 1)
        ][: 4 * EXCERPT_HOURS + 1]
        evidence = {
            "detector": "balance_cusum",
            "shape": shape,
            "baseline_per_hour": round(ev.baseline, 3),
            "sigma_per_hour": round(sigma, 3),
            "min_rate_per_hour": round(delta, 3),
            "mean_input_per_hour": round(mean_input, 3),
            "rate_share_of_input": round(rate / mean_input, 4) if mean_input else None,
            "alarm_at": grid[ev.alarm].isoformat(),
            "measured_hours": measured,
            "hours": len(span),
            "estimated_or_replaced_per_hour": round(est, 3),
            "excerpt_loss_per_hour": excerpt,
            "sources": [SOURCE],
        }
        rows.append(
            {
                "event_id": event_id(SOURCE, zone_id, start_at),
                "zone_id": zone_id,
                "meter_id": None,
                "kind": KIND,
                "start_at": start_at,
                "end_at": end_at,
                "rate": round(rate, 4),
                "unit": unit,
                "detail": (
                    f"{'step' if shape == 'step' else 'slow rise'} of {rate:,.1f} {unit or ''}/h in the zone balance "
                    f"({100 * rate / mean_input:.1f} % of input)"
                    if mean_input
                    else "loss in the zone balance"
                ),
                "volume": round(volume, 3),
                "confidence": round(float(min(max(confidence, 0.0), 1.0)), 3),
                "source": SOURCE,
                "evidence": json.dumps(evidence),
                "status": "open" if ev.end is None else "ended",
            }
        )
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).sort_values("start_at").reset_index(drop=True)
