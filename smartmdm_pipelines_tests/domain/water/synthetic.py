"""Small synthetic zone inflow series for the inflow-only detector's tests (seeded, hourly)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TZ = "America/Chicago"


def hours(days: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    t0 = pd.Timestamp(start, tz=TZ).tz_convert("UTC")
    return pd.date_range(t0 + pd.Timedelta(hours=1), periods=days * 24, freq="h")


def demand(index: pd.DatetimeIndex, mean: float = 40.0, seed: int = 7, noise: float = 0.03) -> np.ndarray:
    """Hourly volumes: a weekday/weekend diurnal shape around ``mean`` with 12 % night demand,
    a background of 8/h and multiplicative noise."""
    rng = np.random.default_rng(seed)
    local = (index - pd.Timedelta(hours=1)).tz_convert(TZ)
    h = local.hour.to_numpy() + 0.5
    weekend = local.dayofweek.to_numpy() >= 5
    peak = np.where(weekend, 10.0, 7.5)
    shape = 0.3 + 1.6 * np.exp(-0.5 * ((h - peak) / 1.5) ** 2) + 1.0 * np.exp(-0.5 * ((h - 19) / 2.0) ** 2)
    day = ((index - index[0]) // pd.Timedelta(days=1)).to_numpy()
    daily = np.exp(rng.normal(0, 0.03, day.max() + 1))[day]
    return 8.0 + mean * shape / shape.mean() * daily * (1 + rng.normal(0, noise, len(index)))


def step(
    index: pd.DatetimeIndex, at: pd.Timestamp, rate: float, until: pd.Timestamp | None = None
) -> np.ndarray:
    """A leak of ``rate`` per hour from ``at`` (hour-aligned) to ``until``."""
    on = (index > at) & ((index <= until) if until is not None else True)
    return np.where(on, rate, 0.0)


def tank_zone(use: np.ndarray, area: float) -> tuple[np.ndarray, np.ndarray]:
    """A tank feeding a zone: pump volumes per hour (on below 2 m, off above 4 m, at twice the peak
    use) and the level at each hour end rounded to 1 cm."""
    level, pumping, pumped, levels = 3.0, False, [], []
    rate = 2.0 * use.max()
    for u in use:  # hysteresis is sequential
        pumping = True if level < 2.0 else False if level > 4.0 else pumping
        q = rate if pumping else 0.0
        level += (q - u) / area
        pumped.append(q)
        levels.append(level)
    return np.array(pumped), np.round(levels, 2)
