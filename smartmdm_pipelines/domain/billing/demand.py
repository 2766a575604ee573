"""Demand determinants from interval energy: block and rolling windows, coincident peaks, ratchets.

Demand values are average kW over a window. Series are indexed by the UTC **end** of each
interval (or window).

* Block demand: clock-aligned, non-overlapping windows (a 30-min window ending :00/:30 holds
  the two 15-min intervals ending :15/:30 and :45/:00). The window's demand is its energy over
  its length, so a missing interval counts as zero.
* Rolling (sliding) demand: a window of n = window/interval consecutive intervals, stepped by
  one interval; only complete windows are reported.

A window can only be emulated when it is a whole multiple of the stored interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

BLOCK, ROLLING = "block", "rolling"


def kw_from_kwh(kwh, interval_minutes: float):
    """Average kW of an interval: kWh × 60 / interval minutes (15-min: ×4)."""
    return (
        np.asarray(kwh, dtype="float64") * 60.0 / interval_minutes
        if np.ndim(kwh)
        else (float(kwh) * 60.0 / interval_minutes)
    )


def _window_count(interval_seconds: int, window_minutes: int) -> int:
    window = int(window_minutes) * 60
    if window < interval_seconds or window % interval_seconds:
        raise ValueError(
            f"a {window_minutes}-minute demand window cannot be built from {interval_seconds // 60}-minute "
            "intervals (it must be a whole multiple of the interval length)"
        )
    return window // interval_seconds


def block_demand(kw: pd.Series, interval_seconds: int, window_minutes: int) -> pd.Series:
    """Average kW per clock-aligned block window, indexed by the window end."""
    n = _window_count(interval_seconds, window_minutes)
    if n == 1:
        return kw.astype("float64")
    window_end = pd.DatetimeIndex(kw.index).ceil(f"{int(window_minutes)}min")
    out = kw.groupby(window_end).sum() / n
    out.index.name = kw.index.name
    return out.astype("float64")


def rolling_demand(kw: pd.Series, interval_seconds: int, window_minutes: int) -> pd.Series:
    """Average kW over every run of window/interval consecutive intervals, indexed by the window end."""
    n = _window_count(interval_seconds, window_minutes)
    s = kw.astype("float64").sort_index()
    if n == 1:
        return s
    window = f"{int(window_minutes)}min"
    total = s.rolling(window).sum()
    count = s.rolling(window).count()
    return (total / n)[count == n]


def demand_series(kw: pd.Series, interval_seconds: int, window_minutes: int | None, method: str) -> pd.Series:
    """Block or rolling demand for the tariff's window (``None`` = the interval itself)."""
    if window_minutes is None or int(window_minutes) * 60 == interval_seconds:
        return kw.astype("float64")
    if method == BLOCK:
        return block_demand(kw, interval_seconds, window_minutes)
    if method == ROLLING:
        return rolling_demand(kw, interval_seconds, window_minutes)
    raise ValueError(f"demand_method must be 'block' or 'rolling', not {method!r}")


def coincident_demand(kw: pd.Series, peak_ends: Iterable[pd.Timestamp], interval_seconds: int) -> pd.Series:
    """The customer's kW in the interval holding each system-peak instant (NaN where absent)."""
    peaks = pd.DatetimeIndex(list(peak_ends))
    if peaks.tz is None:
        raise ValueError("system peak instants must be timezone-aware")
    customer_end = peaks.tz_convert("UTC").ceil(f"{int(interval_seconds)}s")
    values = kw.reindex(customer_end).to_numpy()
    return pd.Series(values, index=peaks, dtype="float64")


def four_cp_tag(peak_kw: Sequence[float]) -> float:
    """ERCOT 4CP transmission tag: 25 % of the sum of the four summer CP demands (their mean)."""
    return float(np.mean(np.asarray(peak_kw, dtype="float64")))


# ------------------------------------------------------------------------------------ ratchets


def _previous_max(values: np.ndarray, n_history: int, lookback: int) -> np.ndarray:
    """For each position after the history, the max of the ``lookback`` values before it (NaN-safe)."""
    padded = np.concatenate([np.full(lookback, np.nan), values])
    windows = sliding_window_view(padded, lookback)[n_history : n_history + len(values) - n_history]
    finite = np.isfinite(windows)
    return np.where(finite.any(axis=1), np.where(finite, windows, -np.inf).max(axis=1), np.nan)


def ratchet_common(
    peaks: Sequence[float],
    pct: float | Sequence[float],
    lookback_months: int = 11,
    minimum: float = 0.0,
    history: Sequence[float] | None = None,
    eligible: Sequence[bool] | None = None,
) -> np.ndarray:
    """The common tariff form: ``BD_m = max(actual_m, pct_m × max(previous L months), minimum)``.

    ``peaks`` are consecutive monthly actual peaks (NaN = no data); ``pct`` a fraction, or one per
    month of ``peaks``; ``history`` the peaks of the months before ``peaks[0]`` (chronological);
    ``eligible`` (one flag per history + peaks month) limits the look-back to some months (e.g.
    summer only, URDB ``lookbackmonths``).
    """
    actual = np.asarray(peaks, dtype="float64")
    hist = np.asarray(history if history is not None else [], dtype="float64")
    values = np.concatenate([hist, actual])
    if eligible is not None:
        values = np.where(np.asarray(eligible, dtype=bool), values, np.nan)
    if lookback_months <= 0:
        prev = np.full(len(actual), np.nan)
    else:
        prev = _previous_max(values, len(hist), int(lookback_months))
    ratchet = np.asarray(pct, dtype="float64") * prev
    out = np.fmax(np.fmax(actual, ratchet), minimum)
    return out


def ratchet_sam(
    peaks: Sequence[float],
    first_month: int,
    pct: Sequence[float],
    use_current: Sequence[bool],
    lookback_months: int,
    minimum: float = 0.0,
    history: Sequence[float] | None = None,
) -> np.ndarray:
    """SAM's billing demand (ssc ``rate_data::get_billing_demand``).

    ``BD_m = max(minimum, max_{j in previous L months} pct[month_j] × peak_j,
    peak_m if use_current[month_m])`` — the percentage belongs to the month looked back at, and
    the month's own peak counts only where ``use_current`` is set. ``pct`` and ``use_current`` are
    12 values indexed by calendar month (Jan first); ``first_month`` (1..12) is the month of
    ``peaks[0]``.
    """
    actual = np.asarray(peaks, dtype="float64")
    hist = np.asarray(history if history is not None else [], dtype="float64")
    values = np.concatenate([hist, actual])
    months = (np.arange(len(values)) - len(hist) + (first_month - 1)) % 12
    weighted = np.asarray(pct, dtype="float64")[months] * values
    prev = _previous_max(weighted, len(hist), int(lookback_months))
    current = np.where(np.asarray(use_current, dtype=bool)[months[len(hist) :]], actual, np.nan)
    return np.fmax(np.fmax(prev, current), minimum)
