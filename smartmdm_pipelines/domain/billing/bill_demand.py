"""The demand section of a shadow bill: billing demand (the month's peak kW that ``kWh/kW``
tiers scale with), flat demand with its ratchet, TOU demand, coincident demand and the
reactive charge, each written as lines on the month's bill (see docs/billing.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing import demand as dm
from smartmdm_pipelines.domain.billing.bill import ChargeLine, MonthBill, month_key, tiered_lines
from smartmdm_pipelines.domain.billing.tariff import Tariff, tier_bounds
from smartmdm_pipelines.domain.billing.tou import (
    HolidaySpec,
    is_weekend_or_holiday,
    local_start,
    local_start_date,
    schedule_lookup,
)

KW_PER_HP = 0.745699872


@dataclass
class DemandSeries:
    """The delivered series as demand (kW, and kVAR when a kvarh channel came) and how to measure
    it: over the tariff's window (block or rolling), by local time for the TOU calendar."""

    ends: pd.DatetimeIndex  # interval ends, UTC
    seconds: int
    tz: str
    holidays: HolidaySpec
    kw: np.ndarray
    kvar: np.ndarray | None
    window: int | None
    method: str
    notes: list[str]  # the run's notes, shared with the rest of the bill

    def measured(self, values: np.ndarray, notes: list[str] | None = None) -> pd.Series:
        """Demand over the window; per interval (with a note) when the window does not fit."""
        series = pd.Series(values, index=self.ends)
        try:
            return dm.demand_series(series, self.seconds, self.window, self.method)
        except ValueError as exc:
            (self.notes if notes is None else notes).append(f"{exc}; demand taken per interval")
            return series.astype("float64")

    def frame(self, unit: str) -> pd.DataFrame | None:
        """Demand in ``unit`` with its bill month, TOU calendar keys and local date (None, with a
        note, for kVA without a kvarh channel)."""
        values = _unit_values(unit, self.kw, self.kvar)
        if values is None:
            self.notes.append(f"{unit} demand needs a kvarh channel; not billed")
            return None
        d = self.measured(values)
        d_start = local_start(d.index, self.seconds, self.tz)
        return pd.DataFrame(
            {
                "value": d.to_numpy(),
                "mkey": month_key(d_start),
                "month": np.asarray(d_start.month),
                "hour": np.asarray(d_start.hour),
                "weekend": is_weekend_or_holiday(d_start, self.holidays),
                "date": local_start_date(d_start),
            }
        )


def _unit_values(unit: str, kw: np.ndarray, kvar: np.ndarray | None) -> np.ndarray | None:
    base = unit.replace(" daily", "")
    if base == "kW":
        return kw
    if base == "hp":
        return kw / KW_PER_HP
    if base == "kVA":
        return None if kvar is None else np.hypot(kw, kvar)
    return kw


def demand_charges(
    tariff: Tariff,
    demand: DemandSeries,
    bills: dict[int, MonthBill],
    system_peaks: Iterable[pd.Timestamp] | None,
    prior_peaks: Mapping[str, float] | None,
) -> dict[int, float]:
    """Write the demand lines of every bill month; return the billing demand (kW) per month key."""
    billing_kw: dict[int, float] = {}
    has_demand = bool(tariff.demand_periods or tariff.flat_demand_periods or tariff.coincident_periods)
    if has_demand or any(
        t.unit in ("kWh/kW", "kWh/kW daily") for tiers in tariff.energy_periods for t in tiers
    ):
        base = demand.frame("kW")
        monthly_max = base.groupby("mkey")["value"].max() if base is not None else pd.Series(dtype=float)
        billing_kw = {int(k): float(v) for k, v in monthly_max.items()}
    if tariff.flat_demand_periods:
        billing_kw.update(flat_demand(tariff, demand, bills, prior_peaks))
    if tariff.demand_periods:
        tou_demand(tariff, demand, bills)
    if tariff.coincident_periods:
        coincident_demand(tariff, demand, bills, system_peaks)
    if tariff.reactive_charge:
        reactive_demand(tariff, demand, bills)
    return billing_kw


def _record(bill: MonthBill, kind: str, period: int | None, actual: float, billing: float, unit: str) -> None:
    bill.demand.append(
        {"kind": kind, "period": period, "actual": float(actual), "billing": float(billing), "unit": unit}
    )


def flat_demand(
    tariff: Tariff, demand: DemandSeries, bills: dict[int, MonthBill], prior_peaks: Mapping[str, float] | None
) -> dict[int, float]:
    """Flat demand, ratcheted; returns the billed demand per month key (the billing demand)."""
    fd = demand.frame(tariff.flat_demand_unit)
    if fd is None:
        return {}
    actual = fd.groupby("mkey")["value"].max()
    keys = np.arange(actual.index.min(), actual.index.max() + 1)
    actual = actual.reindex(keys)
    billed = actual.to_numpy()
    if tariff.has_ratchet:
        billed = _ratchet(tariff, keys, actual.to_numpy(), prior_peaks)
    billing_kw: dict[int, float] = {}
    for key, act, bd in zip(keys, actual.to_numpy(), billed, strict=True):
        if key not in bills or not np.isfinite(act):
            continue
        billing_kw[int(key)] = float(bd)
        period = tariff.flat_demand_months[key % 12] if tariff.flat_demand_months else 0
        tiers = tariff.flat_demand_periods[period]
        bill = bills[int(key)]
        _record(bill, "flat", period, act, bd, tariff.flat_demand_unit)
        daily_unit = tariff.flat_demand_unit.endswith("daily")
        bill.lines += tiered_lines(
            "flat_demand",
            "Demand (daily peaks)" if daily_unit else "Demand",
            fd[fd["mkey"] == key].groupby("date")["value"].max().to_numpy() if daily_unit else bd,
            tariff.flat_demand_unit,
            tiers,
            tier_bounds(tiers),
            period,
        )
    return billing_kw


def tou_demand(tariff: Tariff, demand: DemandSeries, bills: dict[int, MonthBill]) -> None:
    """TOU demand: the peak of each demand period (or its daily peaks for a ``… daily`` unit)."""
    td = demand.frame(tariff.demand_unit)
    if td is None:
        return
    td["period"] = schedule_lookup(
        td["month"], td["hour"], td["weekend"], tariff.demand_weekday, tariff.demand_weekend
    )
    peaks = td.groupby(["mkey", "period"])["value"].max()
    daily = (
        td.groupby(["mkey", "period", "date"])["value"].max()
        if tariff.demand_unit.endswith("daily")
        else None
    )
    for (key, period), peak in peaks.items():
        if key not in bills:
            continue
        bill = bills[int(key)]
        tiers = tariff.demand_periods[int(period)]
        _record(bill, "tou", int(period), peak, peak, tariff.demand_unit)
        bill.lines += tiered_lines(
            "demand",
            f"TOU demand period {int(period)}" + (" (daily peaks)" if daily is not None else ""),
            daily.loc[(key, period)].to_numpy() if daily is not None else peak,
            tariff.demand_unit,
            tiers,
            tier_bounds(tiers),
            int(period),
        )


def coincident_demand(
    tariff: Tariff,
    demand: DemandSeries,
    bills: dict[int, MonthBill],
    system_peaks: Iterable[pd.Timestamp] | None,
) -> None:
    """Coincident demand: the mean customer demand at the system-peak instants of each period."""
    peaks_list = list(system_peaks or [])
    if not peaks_list:
        demand.notes.append("coincident demand not billed: no system-peak instants given")
        return
    cp = dm.coincident_demand(pd.Series(demand.kw, index=demand.ends), peaks_list, demand.seconds).dropna()
    if not len(cp):
        return
    c_start = local_start(cp.index, demand.seconds, demand.tz)
    sched = tariff.coincident_schedule
    cf = pd.DataFrame(
        {
            "value": cp.to_numpy(),
            "mkey": month_key(c_start),
            "period": sched[np.asarray(c_start.month) - 1, np.asarray(c_start.hour)],
        }
    )
    for (key, period), value in cf.groupby(["mkey", "period"])["value"].mean().items():
        if key not in bills:
            continue
        tiers = tariff.coincident_periods[int(period)]
        _record(bills[int(key)], "coincident", int(period), value, value, tariff.coincident_unit)
        bills[int(key)].lines += tiered_lines(
            "coincident",
            f"Coincident demand period {int(period)}",
            float(value),
            tariff.coincident_unit,
            tiers,
            tier_bounds(tiers),
            int(period),
        )


def reactive_demand(tariff: Tariff, demand: DemandSeries, bills: dict[int, MonthBill]) -> None:
    """The reactive charge ($/kVAR) on the month's peak kVAR."""
    if demand.kvar is None:
        demand.notes.append("reactive charge not billed: no kvarh channel")
        return
    rd = demand.measured(demand.kvar, notes=[])
    r_key = month_key(local_start(rd.index, demand.seconds, demand.tz))
    for key, peak in pd.Series(rd.to_numpy()).groupby(r_key).max().items():
        if key in bills and not np.isfinite(peak):
            bills[int(key)].notes.append("reactive charge not billed: no kvarh values this month")
        elif key in bills:
            _record(bills[int(key)], "reactive", None, peak, peak, "kVAR")
            bills[int(key)].lines.append(
                ChargeLine.of("reactive", "Reactive demand", peak, "kVAR", tariff.reactive_charge)
            )


def _ratchet(
    tariff: Tariff, keys: np.ndarray, actual: np.ndarray, prior_peaks: Mapping[str, float] | None
) -> np.ndarray:
    """Common-form ratchet on the flat demand determinant (see docs/billing.md)."""
    lookback = tariff.lookback_range or 11
    if tariff.lookback_months and any(tariff.lookback_months) and not tariff.lookback_range:
        lookback = 12
    history_keys = np.arange(keys[0] - lookback, keys[0])
    prior = {}
    for label, value in (prior_peaks or {}).items():
        y, m = (int(x) for x in str(label)[:7].split("-"))
        prior[y * 12 + m - 1] = float(value)
    history = np.array([prior.get(int(k), np.nan) for k in history_keys], dtype="float64")
    all_keys = np.concatenate([history_keys, keys])
    eligible = None
    if tariff.lookback_months and any(tariff.lookback_months):
        eligible = np.asarray(tariff.lookback_months, dtype=bool)[all_keys % 12]
    if tariff.ratchet_percentages and any(p > 0 for p in tariff.ratchet_percentages):
        pct = np.asarray(tariff.ratchet_percentages, dtype="float64")[keys % 12]
    else:
        pct = np.full(len(keys), float(tariff.lookback_percent or 0.0))
    return dm.ratchet_common(actual, pct, lookback, 0.0, history, eligible)
