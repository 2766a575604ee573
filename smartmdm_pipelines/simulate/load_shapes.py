"""Clean consumption of a set of premises on a grid, as (premises x intervals) matrices.

Everything is broadcast from per-premise parameters (column vectors) against per-interval
features of the grid (row vectors), so the work is a few numpy passes over the matrix. The
random parts come from ``noise`` keyed by (service point, interval end), so a premise gets the
same values whichever chunk it is generated in, and an exchanged meter's successor continues
the same consumption.

Shapes: residential electric has a morning and an evening peak (later morning on weekends
and holidays), seasonal heating/cooling from a shared synthetic weather, multiplicative noise
and appliance bumps; commercial follows business hours and has reactive energy; rooftop solar
subtracts a clear-sky PV curve scaled by daily cloudiness (net export goes to
``kwh_received``); water is bursty household use that is zero most night hours; gas is daily
and driven by heating degree days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import catalog as c
from . import noise
from .time_grid import DAY, TimeGrid

SHIFT_CLASSES = np.linspace(-1.0, 1.0, 9)  # premise-specific clock shift of the daily routine (h)
VACANT_FACTOR = {"electric": 0.08, "water": 0.0, "gas": 0.3}


@dataclass(frozen=True)
class Premises:
    """Per-premise load parameters (column vectors of one length) and noise keys."""

    key: np.ndarray  # service point index: the noise entity
    scale: np.ndarray
    shift: np.ndarray
    heat: np.ndarray
    cool: np.ndarray
    extra: np.ndarray
    unit: np.ndarray  # unit code of the main channel


def _gauss(h: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """Circular (24 h) Gaussian bump."""
    d = np.abs(h - mu)
    d = np.minimum(d, 24.0 - d)
    return np.exp(-0.5 * (d / sigma) ** 2)


def weather(grid: TimeGrid, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Heating and cooling degree days (degF, per interval, from the local date): shared by all."""
    seasonal = 55.0 - 22.0 * np.cos(2.0 * np.pi * (grid.day_of_year - 20) / 365.25)
    temp = seasonal + 9.0 * noise.triangular(seed, noise.WEATHER, np.zeros(1, np.int64), grid.day_number)
    return np.maximum(65.0 - temp, 0.0), np.maximum(temp - 65.0, 0.0)


def _shift_index(shift: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((shift + 1.0) * 4.0), 0, len(SHIFT_CLASSES) - 1).astype(np.intp)


def _residential_shape(hour: np.ndarray, off_day: np.ndarray) -> np.ndarray:
    """(shift classes x n) relative residential electric shape with a daily mean ~1."""
    h = (hour[None, :] - SHIFT_CLASSES[:, None]) % 24.0
    off = off_day[None, :].astype(np.float64)
    morning = _gauss(h, 7.0 + 1.5 * off, 1.3)
    evening = _gauss(h, 19.5, 2.2)
    midday = _gauss(h, 13.0, 3.0) * off
    return (0.45 + 0.55 * morning + 1.0 * evening + 0.3 * midday) / 0.755


def _commercial_shape(hour: np.ndarray, off_day: np.ndarray) -> np.ndarray:
    """(shift classes x n) business-hours shape with a daily mean ~1 on working days."""
    h = (hour[None, :] - SHIFT_CLASSES[:, None] * 0.5) % 24.0
    open_ = 1.0 / (1.0 + np.exp(-(h - 7.5) * 3.0)) / (1.0 + np.exp(-(18.5 - h) * 3.0))
    open_ = np.where(off_day[None, :], 0.2 * open_, open_)
    return (0.35 + 0.65 * open_) / 0.648


def _noise_factor(seed: int, stream: int, keys: np.ndarray, grid: TimeGrid, spread: float) -> np.ndarray:
    """Multiplicative noise 1 + spread * triangular, floored at 0.05."""
    f = noise.triangular(seed, stream, keys[:, None], grid.ends[None, :])
    f *= spread
    f += 1.0
    np.maximum(f, 0.05, out=f)
    return f


def electric_residential(grid: TimeGrid, p: Premises, seed: int) -> np.ndarray:
    """kWh delivered per interval (before solar)."""
    hdd, cdd = weather(grid, seed)
    shape = _residential_shape(grid.hour, grid.off_day)[_shift_index(p.shift)]
    season = 1.0 + p.heat[:, None] * (hdd / 40.0)[None, :] + p.cool[:, None] * (cdd / 20.0)[None, :]
    e = shape
    e *= season
    e *= (p.scale * grid.step / DAY)[:, None]
    e *= _noise_factor(seed, noise.LOAD, p.key, grid, 1.1)
    bump = noise.uniform(seed, noise.APPLIANCE, p.key[:, None], grid.ends[None, :])
    e += np.where(bump > 0.95, (bump - 0.95) * 30.0 * grid.step / 3600.0, 0.0)
    return e


def solar_generation(grid: TimeGrid, p: Premises, seed: int) -> np.ndarray:
    """kWh generated per interval by rooftop PV of ``p.extra`` kW peak."""
    daylen = 12.0 + 3.0 * np.sin(2.0 * np.pi * (grid.day_of_year - 80) / 365.25)
    sunrise = 12.5 - daylen / 2.0
    x = np.clip((grid.std_hour - sunrise) / daylen, 0.0, 1.0)
    clear = np.sin(np.pi * x) ** 1.3
    sky = 0.35 + 0.65 * noise.uniform(seed, noise.CLOUD, np.zeros(1, np.int64), grid.day_number)
    site = 0.85 + 0.15 * noise.uniform(seed, noise.CLOUD, p.key[:, None], grid.ends[None, :])
    site *= (clear * sky * grid.step / 3600.0)[None, :]
    site *= p.extra[:, None]
    return site


def electric_commercial(grid: TimeGrid, p: Premises, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kWh, kVARh) per interval."""
    hdd, cdd = weather(grid, seed)
    shape = _commercial_shape(grid.hour, grid.off_day)[_shift_index(p.shift)]
    season = (
        1.0 + 0.5 * p.cool[:, None] * (cdd / 20.0)[None, :] + 0.2 * p.heat[:, None] * (hdd / 40.0)[None, :]
    )
    e = shape
    e *= season
    e *= (p.scale * grid.step / DAY)[:, None]
    e *= _noise_factor(seed, noise.LOAD, p.key, grid, 0.35)
    q = e * p.extra[:, None]
    q *= _noise_factor(seed, noise.REACTIVE, p.key, grid, 0.25)
    return e, q


def _water_weights(hour: np.ndarray, off_day: np.ndarray, commercial: bool) -> np.ndarray:
    """(shift classes x n) share of a day's water use falling in each hour (sums to ~1 per day)."""
    h = (hour[None, :] - SHIFT_CLASSES[:, None]) % 24.0
    if commercial:
        open_ = 1.0 / (1.0 + np.exp(-(h - 7.0) * 3.0)) / (1.0 + np.exp(-(19.0 - h) * 3.0))
        w = 0.01 + np.where(off_day[None, :], 0.3, 1.0) * open_
        return w / 12.24
    off = off_day[None, :].astype(np.float64)
    w = 0.01 + _gauss(h, 7.0 + 1.5 * off, 1.2) + 0.5 * _gauss(h, 12.5, 2.0) + 0.9 * _gauss(h, 19.5, 1.8)
    return w / 9.82


def water(grid: TimeGrid, p: Premises, seed: int, commercial: bool) -> np.ndarray:
    """Volume per hour in each meter's unit: random uses, so most night hours are exactly zero."""
    _, cdd = weather(grid, seed)
    weights = _water_weights(grid.hour, grid.off_day, commercial)[_shift_index(p.shift)]
    p_use = np.clip(weights * (24.0 * (0.95 if commercial else 0.6)), 0.03, 0.97)
    u_use, u_amount = noise.uniform_pair(seed, noise.WATER_USE, p.key[:, None], grid.ends[None, :])
    expected = weights
    expected *= (p.scale * grid.step / 3600.0)[:, None]
    expected *= 1.0 + 0.6 * p.cool[:, None] * (cdd / 20.0)[None, :]  # summer irrigation
    np.negative(u_amount, out=u_amount)
    np.log1p(u_amount, out=u_amount)  # ln(1 - u) <= 0: exponential amounts with mean 1
    expected *= u_amount
    expected /= p_use
    np.negative(expected, out=expected)
    expected[u_use >= p_use] = 0.0
    expected /= c.GALLONS_LUT[p.unit][:, None]
    return expected


def gas(grid: TimeGrid, p: Premises, seed: int) -> np.ndarray:
    """Gas per interval (daily grid) in each meter's unit: base load plus heating degree days."""
    hdd, _ = weather(grid, seed)
    therm = p.extra[:, None] * (grid.step / DAY) + p.scale[:, None] * (hdd * grid.step / DAY)[None, :]
    therm *= _noise_factor(seed, noise.LOAD, p.key, grid, 0.25)
    therm /= c.THERM_LUT[p.unit][:, None]
    return therm


def background_losses(grid: TimeGrid, rate_gph: np.ndarray, keys: np.ndarray, seed: int) -> np.ndarray:
    """Real losses of a water zone in gal per interval: higher at night, when pressure is higher."""
    night = 1.0 + 0.35 * _gauss(grid.hour, 3.5, 2.5)
    f = _noise_factor(seed, noise.LOSSES, keys, grid, 0.1)
    f *= (night * grid.step / 3600.0)[None, :]
    f *= rate_gph[:, None]
    return f


def occupied_load(profile: str, grid: TimeGrid, p: Premises, seed: int) -> dict[int, np.ndarray]:
    """Channel code -> (premises x intervals) clean values of a segment's profile, unrounded."""
    if profile == "elec_res":
        return {c.CH_DELIVERED: electric_residential(grid, p, seed)}
    if profile == "elec_res_solar":
        load = electric_residential(grid, p, seed)
        pv = solar_generation(grid, p, seed)
        net = load - pv
        return {c.CH_DELIVERED: np.maximum(net, 0.0), c.CH_RECEIVED: np.maximum(-net, 0.0)}
    if profile == "elec_com":
        kwh, kvarh = electric_commercial(grid, p, seed)
        return {c.CH_DELIVERED: kwh, c.CH_KVARH: kvarh}
    if profile in ("water_res", "water_com"):
        return {c.CH_WATER: water(grid, p, seed, commercial=profile == "water_com")}
    if profile in ("gas_res", "gas_com"):
        return {c.CH_GAS: gas(grid, p, seed)}
    raise ValueError(f"no load profile {profile!r}")
