"""Loss events of a zone from its inflow alone: change points in night flow, timed on the hourly residual.

Per zone, over the daily night flow (``inflow_baseline.night_flow``, divided by the day-type factor):

* **abrupt** (burst, new leak): a night above the rolling baseline by more than the threshold
  ``max(min_step_share x baseline, step_z x sigma)`` that stays above it for ``min_duration_hours``
  of nights and jumped there (not a slow rise). Its start is then timed to the hour on the
  hourly inflow between the last normal night and the first raised one: the split point that
  best explains the hours as ``level before + step + day's demand scale x demand profile``
  (least squares over every candidate hour, the day's scale fitted per local day).
* **repair**: a confirmed step *down* of at least half an open event's rate ends that event
  (``end_at`` timed the same way); a step down with no open event only re-baselines.
* **gradual**: in the nights since the last change, a robust (Theil-Sen) trend over
  ``gradual_window_days`` whose rise exceeds ``max(min_gradual_share x baseline, gradual_z x
  its standard error)``; the onset is the break of a flat-then-linear fit.

Steps are tested on the night flow less its share of the day's demand (``demand_adjust``: weather and
season move both, a leak does not move the demand); a rise flat for ``settle_nights`` is settled, so
a later rise is an event of its own. A missing night is skipped, never a value: a gap cannot be a step. Each confirmed change starts a
new regime whose baseline is built from its own nights. Everything here is pure: frames in, frames out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .inflow_baseline import day_type_factors, hourly_profile, night_flow, profile_values, robust_sigma

HOUR = pd.Timedelta(hours=1)
EVENT_COLUMNS = [
    "zone_id",
    "kind",
    "start_at",
    "end_at",
    "rate",
    "unit",
    "volume",
    "confidence",
    "status",
    "detected_day",
    "evidence",
]


@dataclass(frozen=True)
class InflowParams:
    """Detection parameters of one zone class (utility YAML ``water_detection``)."""

    night_start_hour: int = 2
    night_end_hour: int = 4
    min_step_share: float = 0.05  # smallest step, as a share of the baseline night flow
    step_z: float = 4.0  # ... and in robust standard deviations of the nights
    min_duration_hours: int = 48  # a step must hold this long (in nights) to count
    baseline_nights: int = 14
    min_history_nights: int = 7
    gradual_window_days: int = 21
    min_gradual_share: float = 0.04  # smallest sustained rise over the window, share of night flow
    gradual_z: float = 3.0
    profile_days: int = 21  # history for the hourly demand profile
    lookback_days: int = 120  # history the service reads before the first day evaluated
    legitimate_night_use_l_per_property_h: float = 1.7

    level_resolution_m: float = 0.01  # tank level meters: smallest level step they report
    settle_nights: int = 14  # a rise flat for this many nights is settled: a new rise is a new event
    demand_adjust: bool = True  # night flow less its share of the day's demand (weather, season)

    @property
    def confirm_nights(self) -> int:
        return max(1, math.ceil(self.min_duration_hours / 24))

    @property
    def night_hours(self) -> int:
        return (self.night_end_hour - self.night_start_hour) % 24 or 24


def tank_noise_floor(area_m2: float, params: InflowParams, m3_per_unit: float) -> float:
    """Night-flow resolution of a tank-fed zone (unit/h): two level steps over the night window.

    A night's volume carries the rounding of its first and last level reading, each within half a
    step, so two nights (or a night and a baseline) can differ by up to two steps for no reason.
    """
    return 2.0 * area_m2 * params.level_resolution_m / params.night_hours / m3_per_unit


def detect_zone_events(
    inflow: pd.Series,
    tz: str,
    params: InflowParams,
    zone_id: str = "",
    unit: str = "",
    noise_floor: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss events (``EVENT_COLUMNS``) and the night-flow table of one zone's hourly inflow.

    ``inflow``: hourly volumes indexed by hour end (UTC), NaN = gap. The night table has
    ``night_flow, completeness, baseline`` per local day. ``noise_floor`` (unit/h): the smallest
    night-flow change the measurement can resolve (tank zones: see ``tank_noise_floor``); no
    threshold goes below it.
    """
    nights = night_flow(inflow, tz, params.night_start_hour, params.night_end_hour)
    raw = nights["night_flow"]
    factors = day_type_factors(raw)
    demand = _day_mean(inflow, tz).reindex(nights.index) - raw
    norm = raw.to_numpy() / factors.to_numpy()
    share = _demand_share(norm, demand) if params.demand_adjust else np.zeros(len(norm))
    norm = norm - share
    run = _Run(inflow, tz, params, norm, factors.to_numpy(), nights.index)
    run.trend_norm = norm + share  # the trend test fits the demand itself, window by window
    run.demand = demand.to_numpy()
    run.floor = float(noise_floor)
    run.scan()
    nights = nights.assign(baseline=(run.baseline + share) * factors.to_numpy())
    last_hour = inflow.dropna().index.max() if inflow.notna().any() else None
    rows = [ev.row(zone_id, unit, last_hour) for ev in run.events]
    events = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return events, nights


def _demand_share(norm: np.ndarray, demand: pd.Series) -> np.ndarray:
    """The part of each night's flow that follows the day's demand (mean inflow above the night flow),
    relative to the zone's median demand: ``b x (demand - median)``.

    A leak lifts the night and the day alike, so the demand (day mean less night) does not carry it;
    the weather and the season move both the night's use and the day's. ``b`` is the slope of
    night-to-night changes on day-to-day demand changes (least squares, changes beyond 3 robust
    sigmas dropped: a step is one such change), clipped to [0, 1]. A day without a known demand
    takes the last known one. Weekend demand is divided by its own weekend/weekday ratio.
    """
    d = demand / day_type_factors(demand)
    d = d.ffill().bfill().to_numpy()
    if np.isnan(d).all():
        return np.zeros(len(norm))
    dn, dd = np.diff(norm), np.diff(d)
    ok = ~np.isnan(dn) & ~np.isnan(dd) & (dd != 0)
    if ok.sum() < 20:
        return np.zeros(len(norm))
    x, y = dd[ok], dn[ok]
    keep = np.ones(len(x), dtype=bool)
    slope = 0.0
    for _ in range(3):
        if keep.sum() < 10:
            break
        slope = float((x[keep] @ y[keep]) / (x[keep] @ x[keep]))
        resid = y - slope * x
        keep = np.abs(resid) <= 3 * robust_sigma(resid, floor=1e-9)
    slope = float(np.clip(slope, 0.0, 1.0))
    return slope * (d - np.median(d))


def _day_mean(inflow: pd.Series, tz: str) -> pd.Series:
    """Mean hourly inflow per local day, of days with at least 20 hours known."""
    day = (inflow.index - HOUR).tz_convert(tz).normalize().tz_localize(None)
    grouped = inflow.groupby(day)
    return grouped.mean().where(grouped.count() >= 20)


@dataclass
class _Event:
    kind: str
    start: pd.Timestamp
    rate: float
    confidence: float
    detected_day: pd.Timestamp
    evidence: dict
    base: float = 0.0  # gradual: the level before the rise (normalised night flow)
    end: pd.Timestamp | None = None
    volume: float | None = None  # gradual: summed over its nights; abrupt: rate x hours
    regime: int = -1  # gradual: the regime (first night since the last change) it was found in
    found_at: int = -1  # gradual: the night it was found
    settled: bool = False  # gradual: its rise has stopped (rate frozen; a new rise is a new event)

    @property
    def current_rate(self) -> float:
        return self.rate

    def row(self, zone_id: str, unit: str, last_hour: pd.Timestamp | None) -> dict:
        until = self.end if self.end is not None else last_hour
        hours = max((until - self.start) / HOUR, 0.0) if until is not None else 0.0
        volume = self.volume if self.volume is not None else self.rate * hours
        return {
            "zone_id": zone_id,
            "kind": self.kind,
            "start_at": self.start,
            "end_at": self.end,
            "rate": float(self.rate),
            "unit": unit,
            "volume": float(volume),
            "confidence": float(round(self.confidence, 3)),
            "status": "open" if self.end is None else "ended",
            "detected_day": self.detected_day.date(),
            "evidence": self.evidence,
        }


class _Run:
    """One scan of a zone's nights (state: the current regime's nights, the open events)."""

    def __init__(
        self,
        inflow: pd.Series,
        tz: str,
        params: InflowParams,
        norm: np.ndarray,
        factors: np.ndarray,
        days: pd.DatetimeIndex,
    ) -> None:
        self.inflow, self.tz, self.p = inflow, tz, params
        self.norm, self.factors, self.days = norm, factors, days
        self.trend_norm = norm  # the nights the trend test reads
        self.valid = np.flatnonzero(~np.isnan(norm))
        self.baseline = np.full(len(norm), np.nan)
        self.events: list[_Event] = []
        self.regime: list[int] = []  # valid night positions since the last change (baseline material)
        self.regime_start = 0
        self.trend_start = (
            0  # first night of the trend test: the regime's, or the last settled rise's plateau
        )
        self.floor = 0.0
        self.demand = np.full(len(norm), np.nan)  # day mean inflow - night flow: the demand level

    # --- the scan ------------------------------------------------------------------------------
    def scan(self) -> None:
        self.scan_nights()
        for ev in self.events:  # a gradual leak's volume: its excess nights, each worth a day
            if ev.kind != "gradual":
                continue
            last = (
                len(self.norm) - 1
                if ev.end is None
                else int(self.days.searchsorted(ev.end.tz_convert(self.tz).tz_localize(None).normalize()))
            )
            first = int(self.days.searchsorted(ev.start.tz_convert(self.tz).tz_localize(None).normalize()))
            nights = self.valid_between(first, min(last, len(self.norm) - 1))
            excess = np.clip(self.trend_norm[nights] - ev.base, 0, None) * self.factors[nights]
            ev.volume = float(excess.sum() * 24.0)

    def scan_nights(self) -> None:
        p, v = self.p, self.norm
        k = 0
        while k < len(self.valid):
            i = int(self.valid[k])
            if len(self.regime) < p.min_history_nights:
                self.regime.append(i)
                k += 1
                continue
            hist = v[self.regime[-p.baseline_nights :]]
            ref = float(np.median(hist))
            sigma = robust_sigma(hist, floor=0.01 * abs(ref))
            threshold = max(p.min_step_share * abs(ref), p.step_z * sigma, self.floor)
            self.baseline[i] = ref
            excess = v[i] - ref
            if abs(excess) > threshold:
                ahead = self.valid[k : k + p.confirm_nights]
                if len(ahead) < p.confirm_nights:
                    break  # not confirmable yet: the next run, with more nights, decides
                sign = 1.0 if excess > 0 else -1.0
                if np.all(sign * (v[ahead] - ref) > threshold):
                    after = self.valid[k : k + max(p.confirm_nights, 5)]
                    after = after[sign * (v[after] - ref) > threshold / 2]
                    step = float(np.median(v[after]) - ref)
                    last = v[self.regime[-3:]]
                    # during an open rise the jump must clear the highest recent night, not their median
                    rising = any(
                        ev.kind == "gradual"
                        and ev.end is None
                        and ev.regime == self.regime_start
                        and not ev.settled
                        for ev in self.events
                    )
                    near = np.max(last) if rising and sign > 0 else np.median(last)
                    jump = v[i] - float(near)
                    if sign * jump >= 0.6 * abs(step):
                        self.change(k, ref, sigma, threshold, step, ahead)
                        k += len(ahead)
                        continue
                else:
                    k += 1  # an odd night: neither baseline material nor a step
                    continue
            self.regime.append(i)
            self.gradual(i, ref)
            k += 1

    def change(
        self, k: int, ref: float, sigma: float, threshold: float, step: float, ahead: np.ndarray
    ) -> None:
        """A confirmed step at valid night ``k``: open an abrupt event, or end the open one it repairs."""
        i = int(self.valid[k])
        prev = int(self.valid[k - 1])
        factor = float(self.factors[prev])
        lo = self.night_end(prev)
        hi = self.night_end(i)
        at, located = self.locate(lo, hi, step * factor)
        evidence = {
            "detector": "inflow",
            "signal": "night_flow",
            "reference": round(ref * factor, 4),
            "sigma": round(sigma * factor, 4),
            "threshold": round(threshold * factor, 4),
            "step": round(step * factor, 4),
            "nights": self.excerpt(prev, int(ahead[-1])),
            "timed_on": located,
        }
        z = abs(step) / max(sigma, 1e-9)
        confidence = 1.0 - math.exp(-z / 4.0)
        if step > 0:
            self.events.append(
                _Event("abrupt", at - HOUR, step * factor, confidence, self.days[int(ahead[-1])], evidence)
            )
        else:
            target = self.repaired(-step * factor)
            if target is not None:
                target.end = at - HOUR
                target.evidence["repair"] = evidence
        self.regime = [int(a) for a in ahead]
        self.regime_start = self.trend_start = i

    def repaired(self, drop: float) -> _Event | None:
        """The open event a drop of ``drop`` (unit/h) ends: the one whose rate is closest, if the drop
        is at least half of it."""
        candidates = [ev for ev in self.events if ev.end is None and drop >= 0.5 * ev.current_rate]
        if not candidates:
            return None
        return min(candidates, key=lambda ev: abs(ev.current_rate - drop))

    def gradual(self, i: int, ref: float) -> None:
        """Test the regime's last ``gradual_window_days`` for a sustained rise at night ``i``."""
        p, v = self.p, self.trend_norm
        open_gradual = [
            ev
            for ev in self.events
            if ev.kind == "gradual" and ev.end is None and ev.regime == self.regime_start and not ev.settled
        ]
        window = self.valid_between(max(self.trend_start, i - p.gradual_window_days + 1), i)
        window = [j for j in window if not np.isnan(self.demand[j])]
        if len(window) < 0.6 * p.gradual_window_days:
            return
        y = v[window]
        if open_gradual:
            ev = open_gradual[-1]
            level = float(np.median(y[-7:]))
            ev.evidence["last_level"] = round(level * float(self.factors[i]), 4)
            ev.rate = max(ev.rate, (level - ev.base) * float(self.factors[i]))
            self.settle(ev, i, window, y)
            return
        x = np.asarray(window, dtype="float64")
        slope, se_slope = _trend_beside_demand(x, y, self.demand[window])
        span = x[-1] - x[0]
        rise = slope * span
        head, tail = float(np.median(y[:7])), float(np.median(y[-7:]))
        needed = max(p.min_gradual_share * abs(head), p.gradual_z * se_slope * span, 1.5 * self.floor)
        if slope <= 0 or rise < needed or tail - head < 0.8 * needed:
            return
        lo = max(self.trend_start, i - p.gradual_window_days - 7)
        onset, base = _hinge_onset(np.asarray(self.valid_between(lo, i), dtype="float64"), v)
        factor = float(self.factors[i])
        start_day = self.days[int(onset)]
        start = pd.Timestamp(start_day.date(), tz=self.tz).tz_convert("UTC")
        evidence = {
            "detector": "inflow",
            "signal": "night_flow_trend",
            "reference": round(base * factor, 4),
            "slope_per_day": round(slope * factor, 5),
            "rise": round(rise * factor, 4),
            "threshold": round(needed * factor, 4),
            "nights": self.excerpt(int(onset), i),
        }
        z = rise / max(needed, 1e-9)
        confidence = min(0.95, 1.0 - math.exp(-1.5 * z))
        ev = _Event(
            "gradual",
            start,
            (tail - base) * factor,
            confidence,
            self.days[i],
            evidence,
            base,
            regime=self.regime_start,
            found_at=i,
        )
        self.events.append(ev)

    def settle(self, ev: _Event, i: int, window: list[int], y: np.ndarray) -> None:
        """Freeze an open rise that has stopped rising: over its last ``settle_nights`` (at least that
        many nights after it was found) the night flow is flat (its trend below one standard error,
        or below half the smallest rise). Its plateau
        becomes the reference of the next trend test, so a second leak in the same regime is an
        event of its own rather than more of the first one's rate."""
        p = self.p
        n = p.settle_nights
        if n <= 0 or i - ev.found_at < n:
            return
        recent = [j for j in window if j > i - n]
        if len(recent) < 0.6 * n:
            return
        x = np.asarray(recent, dtype="float64")
        slope, se = _trend_beside_demand(x, self.trend_norm[recent], self.demand[recent])
        span = x[-1] - x[0]
        if slope * span < max(se * span, 0.5 * p.min_gradual_share * abs(ev.base)):  # flat within 1 se
            ev.settled = True
            self.trend_start = int(recent[0])

    # --- helpers ---------------------------------------------------------------------------------
    def valid_between(self, lo: int, hi: int) -> list[int]:
        a, b = np.searchsorted(self.valid, [lo, hi + 1])
        return [int(j) for j in self.valid[a:b]]

    def night_end(self, i: int) -> pd.Timestamp:
        day = self.days[i].date()
        local = (
            pd.Timestamp(day)
            .replace(hour=self.p.night_end_hour % 24)
            .tz_localize(self.tz, nonexistent="shift_forward")
        )
        return local.tz_convert("UTC")

    def excerpt(self, first: int, last: int) -> dict[str, float]:
        lo, hi = max(0, first - 3), min(len(self.norm) - 1, last + 3)
        raw = self.trend_norm * self.factors  # the night flows as measured (no demand share taken off)
        return {
            self.days[j].date().isoformat(): round(float(raw[j]), 4)
            for j in range(lo, hi + 1)
            if not np.isnan(raw[j])
        }

    def locate(self, lo: pd.Timestamp, hi: pd.Timestamp, step: float) -> tuple[pd.Timestamp, str]:
        """The hour end in (lo, hi] from which the inflow carries ``step``: least squares of
        ``level + step x [t >= tau] + c_day x demand profile`` over every candidate tau (level and
        the per-day demand scales fitted, the step known from the nights)."""
        q = self.inflow[(self.inflow.index > lo - 12 * HOUR) & (self.inflow.index <= hi + 18 * HOUR)].dropna()
        candidates = pd.date_range(lo + HOUR, hi, freq="h", tz="UTC")
        history = self.inflow[self.inflow.index <= lo].dropna()
        if len(q) < 6 or len(candidates) == 0 or len(history) < 24 * 7:
            return hi, "night"
        profile = hourly_profile(self.inflow, self.tz, lo, self.p.profile_days)
        shape = profile_values(profile, q.index, self.tz)
        night_level = np.nanmin(profile.to_numpy(), axis=1).mean()
        demand = np.clip(shape - night_level, 0.0, None)
        y = q.to_numpy()
        after = (q.index.to_numpy()[None, :] >= candidates.to_numpy()[:, None]).astype("float64")
        targets = y[None, :] - step * after  # (candidates, hours): what is left for level + demand
        local_day = (q.index - HOUR).tz_convert(self.tz).normalize()
        groups = pd.factorize(local_day)[0]
        design = np.zeros((len(q), groups.max() + 2))
        design[:, 0] = 1.0  # the level before the step (free: the night reference is only a guide)
        design[np.arange(len(q)), groups + 1] = demand  # each local day's demand scale
        coef = np.linalg.pinv(design) @ targets.T  # one projection serves every candidate
        sse = ((targets.T - design @ coef) ** 2).sum(axis=0)
        return candidates[int(np.argmin(sse))], "hourly_residual"


def _trend_beside_demand(x: np.ndarray, y: np.ndarray, demand: np.ndarray) -> tuple[float, float]:
    """Slope of night flow over days and its standard error, with the day's demand (mean inflow above
    the night flow) as a second regressor: a seasonal rise in demand lifts the night's share of use
    along with the day, a leak lifts the night alone. Nights beyond 3 sigma of a first fit are dropped."""
    design = np.column_stack([np.ones_like(x), x - x.mean(), demand - demand.mean()])
    keep = np.ones(len(x), dtype=bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], y[keep], rcond=None)
        resid = y - design @ coef
        s = robust_sigma(resid[keep], floor=1e-9)
        keep = np.abs(resid) <= 3 * s
    dof = max(int(keep.sum()) - 3, 1)
    sigma2 = float((resid[keep] ** 2).sum()) / dof
    cov = np.linalg.pinv(design[keep].T @ design[keep]) * sigma2
    return float(coef[1]), float(np.sqrt(max(cov[1, 1], 0.0)))


def _hinge_onset(x: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Onset and base level of a flat-then-linear fit to ``values[x]`` (least squares over every
    candidate onset)."""
    y = values[x.astype(int)]
    taus = x[:-3] if len(x) > 4 else x[:1]
    best = (np.inf, x[0], float(np.median(y)))
    for tau in taus:  # at most two windows of nights: a short loop over candidates, not reads
        ramp = np.clip(x - tau, 0, None)
        design = np.column_stack([np.ones_like(x), ramp])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        if coef[1] <= 0:
            continue
        sse = float(((design @ coef - y) ** 2).sum())
        if sse < best[0]:
            best = (sse, tau, float(coef[0]))
    return best[1], best[2]
