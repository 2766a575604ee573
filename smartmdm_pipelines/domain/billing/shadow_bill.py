"""Shadow bill: price a usage series on a URDB tariff, calendar month by calendar month.

Months are local calendar months of the intervals' local *start* times. Per month:

* energy: every interval gets its TOU period (tou.py); delivered and received are netted per
  the tariff's rule (netting.py); the billed import of each period is accumulated over the
  month and only then split into tiers (tiers.py); export is credited at the period's sell rate;
* demand: block or rolling demand over the tariff's ``demandwindow`` from delivered energy;
  TOU demand = max per period; flat demand = max of the month, ratcheted (common form, see
  docs/billing.md); coincident demand = mean customer demand at the given system-peak instants;
* fixed charge ($/month, or $/day × days), minimum charge, annual minimum, reactive ($/kVAR).

A month with data for only part of its days (first or last month of the series) is billed as a
partial period: $/month charges and plain tier thresholds are prorated by days.

Every charge line multiplies out: quantity × rate = amount (a prorated $/month charge is
1/31 month × $/month). A quantity above a capped last tier is billed at the last tier's rate
and the line and the bill say so (see tiers.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing import demand as dm
from smartmdm_pipelines.domain.billing.netting import PER_INTERVAL, check_rule, net_frame
from smartmdm_pipelines.domain.billing.numbers import cents, plain
from smartmdm_pipelines.domain.billing.proration import charge_quantity
from smartmdm_pipelines.domain.billing.tariff import Tariff, Tier, tier_bounds
from smartmdm_pipelines.domain.billing.tiers import above_last_bound, conversion_factor, tier_quantities
from smartmdm_pipelines.domain.billing.tou import (
    HolidaySpec,
    is_weekend_or_holiday,
    local_start,
    local_start_date,
    schedule_lookup,
)

KW_PER_HP = 0.745699872


@dataclass
class ChargeLine:
    """One line of a bill: quantity (in ``unit``) × rate = amount.

    ``amount`` is exact; :attr:`billed_amount` is the amount to the cent (the only rounding).
    ``quantity_label`` is the exact form of a prorated quantity (``1/31`` month); ``note``
    explains anything unusual about the line (e.g. demand above the last tier's limit).
    """

    category: str  # energy | export_credit | demand | flat_demand | coincident | reactive | fixed | minimum
    description: str
    quantity: float
    unit: str
    rate: float
    amount: float
    period: int | None = None
    tier: int | None = None
    note: str | None = None
    quantity_label: str | None = None

    @classmethod
    def of(
        cls, category: str, description: str, quantity: float, unit: str, rate: float, **extra: Any
    ) -> ChargeLine:
        """A line whose amount is quantity × rate."""
        quantity, rate = float(quantity), float(rate)
        return cls(category, description, quantity, unit, rate, quantity * rate, **extra)

    @property
    def billed_amount(self) -> float:
        return cents(self.amount)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["amount"] = self.billed_amount  # quantity and rate stay exact: quantity × rate = amount
        return d


@dataclass
class MonthBill:
    month: str  # YYYY-MM (local calendar month)
    start: dt.date  # first billed local day (inclusive)
    end: dt.date  # last billed local day (inclusive)
    days: int
    days_in_month: int
    unit: str
    energy: list[dict[str, Any]] = field(default_factory=list)  # per TOU period
    demand: list[dict[str, Any]] = field(default_factory=list)  # per kind and period
    lines: list[ChargeLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(line.amount for line in self.lines))

    def amount(self, category: str) -> float:
        return float(sum(line.amount for line in self.lines if line.category == category))

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "days_in_month": self.days_in_month,
            "unit": self.unit,
            "energy": self.energy,
            "demand": self.demand,
            "lines": [line.to_dict() for line in self.lines],
            "notes": self.notes,
            "total": cents(self.total),
        }


def _infer_interval_seconds(ends: pd.DatetimeIndex) -> int:
    if len(ends) < 2:
        raise ValueError(
            "cannot infer the interval length from fewer than two intervals; pass interval_seconds"
        )
    diffs = np.diff(ends.as_unit("s").asi8)
    diffs = diffs[diffs > 0]
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def _tier_limit(
    tier: Tier, unit: str, days: int, days_in_month: int, billing_kw: float, prorate: bool
) -> tuple[float, str]:
    """The tier's limit in the billed unit this bill period, and how it was reached.

    ``kWh/kW`` (hours use): max × billing demand; ``kWh daily``: max × days;
    ``kWh/kW daily``: max × billing demand × days; a plain limit is prorated by days in a
    partial month. The text says it in the tariff's own unit, e.g.
    ``200 kWh/kW × 100 kW billing demand = 20,000 kWh``.
    """
    if math.isinf(tier.max):
        return math.inf, "no limit"
    tier_unit = tier.unit or unit
    if tier_unit == "kWh/kW":
        factor, how = billing_kw, f" × {plain(billing_kw)} kW billing demand"
    elif tier_unit == "kWh daily":
        factor, how = float(days), f" × {days} days"
    elif tier_unit == "kWh/kW daily":
        factor, how = billing_kw * days, f" × {plain(billing_kw)} kW billing demand × {days} days"
    elif prorate and days < days_in_month:
        factor, how = days / days_in_month, f" × {days}/{days_in_month} days"
    else:
        return tier.max, f"{plain(tier.max)} {unit}"
    limit = tier.max * factor
    return limit, f"{plain(tier.max)} {tier_unit}{how} = {plain(limit)} {unit}"


def _period_label(tariff: Tariff, period: int) -> str:
    labels = tariff.energy_labels or []
    return labels[period] if period < len(labels) else f"period {period}"


def _demand_unit_values(unit: str, kw: np.ndarray, kvar: np.ndarray | None) -> np.ndarray | None:
    base = unit.replace(" daily", "")
    if base == "kW":
        return kw
    if base == "hp":
        return kw / KW_PER_HP
    if base == "kVA":
        return None if kvar is None else np.hypot(kw, kvar)
    return kw


def _month_key(start: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(start.year, dtype="int64") * 12 + np.asarray(start.month, dtype="int64") - 1


def _key_label(key: int) -> str:
    return f"{key // 12:04d}-{key % 12 + 1:02d}"


def _tiered_lines(
    category: str,
    what: str,
    quantity: float | np.ndarray,
    unit: str,
    tiers: list[Tier],
    bounds: np.ndarray,
    period: int | None,
) -> list[ChargeLine]:
    """One line per tier used: Σ of the tier's block over ``quantity`` (a month's value, or the
    daily peaks of a ``… daily`` unit) × the tier's rate. A quantity above a capped last tier is
    billed at the last tier's rate, with a note on that line."""
    values = np.atleast_1d(np.asarray(quantity, dtype="float64"))
    qty = tier_quantities(values, bounds).sum(axis=0)
    excess = np.asarray(above_last_bound(values, bounds), dtype="float64")
    total = float(values.sum())
    lines = []
    for k, (q, tier) in enumerate(zip(qty, tiers, strict=True)):
        if q <= 0 and not (k == 0 and total <= 0):
            continue
        note = None
        if k == len(tiers) - 1 and excess.sum() > 0:
            note = _above_last_note(what, values, excess, float(bounds[-1]), unit, tier.rate)
        tier_text = f" tier {k + 1}" if len(tiers) > 1 else ""
        lines.append(
            ChargeLine.of(
                category, f"{what}{tier_text}", q, unit, tier.rate, period=period, tier=k, note=note
            )
        )
    return lines


def _above_last_note(
    what: str, values: np.ndarray, excess: np.ndarray, limit: float, unit: str, rate: float
) -> str:
    """The note on a line that holds a quantity above the last tier's limit."""
    over = excess > 0
    base = unit.removesuffix(" daily")  # a daily peak is in kW; the rate is per kW and day
    if len(values) == 1:
        head = f"{what}: {plain(values[0])} {base} is above the last tier's limit of {plain(limit)} {base}"
    else:
        head = (
            f"{what}: {int(over.sum())} daily peak(s) up to {plain(values[over].max())} {base} are above "
            f"the last tier's limit of {plain(limit)} {base}"
        )
    return (
        f"{head}; the {plain(excess.sum())} {base} above it is billed at the last tier's rate "
        f"({plain(rate)} per {unit}), as the tariff gives no rate beyond its last tier"
    )


def _demand_for(
    values: pd.Series, interval_seconds: int, window: int | None, method: str, notes: list[str]
) -> pd.Series:
    try:
        return dm.demand_series(values, interval_seconds, window, method)
    except ValueError as exc:
        notes.append(f"{exc}; demand taken per interval")
        return values.astype("float64")


def shadow_bill(
    tariff: Tariff,
    usage: pd.DataFrame,
    tz: str,
    holidays: HolidaySpec = "NERC",
    *,
    interval_seconds: int | None = None,
    demand_method: str = "block",
    netting: str | None = None,
    usage_unit: str | None = None,
    billing_unit: str | None = None,
    system_peaks: Iterable[pd.Timestamp] | None = None,
    prior_peaks: Mapping[str, float] | None = None,
    prorate_partial: bool = True,
) -> list[MonthBill]:
    """Bill ``usage`` (``interval_end`` tz-aware, ``kwh``, optional ``received_kwh``, ``kvarh``).

    For water and gas the ``kwh`` column holds the volume in ``usage_unit`` (e.g. gal), which is
    converted exactly to the tariff's unit (``billing_unit`` or the tier unit, e.g. CCF).
    ``prior_peaks`` maps ``YYYY-MM`` to the actual peak kW of months before the series (for the
    ratchet look-back); ``system_peaks`` are the interval-end instants of coincident peaks.
    """
    if "interval_end" not in usage.columns:
        raise ValueError("usage needs an interval_end column (tz-aware interval-ending instants)")
    value_col = "kwh" if "kwh" in usage.columns else "value" if "value" in usage.columns else None
    if value_col is None:
        raise ValueError("usage needs a kwh column (delivered energy or volume)")
    rule = check_rule(netting or tariff.netting)
    frame = usage.sort_values("interval_end", kind="stable").reset_index(drop=True)
    ends = pd.DatetimeIndex(frame["interval_end"])
    if ends.tz is None:
        raise ValueError("usage.interval_end must be timezone-aware")
    ends = ends.tz_convert("UTC")
    if len(ends) == 0:
        return []
    seconds = int(interval_seconds or _infer_interval_seconds(ends))

    tariff_unit = billing_unit or tariff.energy_unit
    source_unit = usage_unit or ("kWh" if tariff_unit.startswith("kWh") else tariff_unit)
    factor = 1.0 if tariff_unit.startswith("kWh") else conversion_factor(source_unit, tariff_unit)

    delivered = frame[value_col].to_numpy(dtype="float64")
    received = (
        frame["received_kwh"].fillna(0.0).to_numpy(dtype="float64")
        if "received_kwh" in frame.columns
        else np.zeros(len(frame))
    )
    kvarh = frame["kvarh"].to_numpy(dtype="float64") if "kvarh" in frame.columns else None

    start = local_start(ends, seconds, tz)
    weekend = is_weekend_or_holiday(start, holidays)
    month = np.asarray(start.month)
    hour = np.asarray(start.hour)
    mkey = _month_key(start)
    dates = local_start_date(start)

    # ---- calendar of bill months
    days_frame = pd.DataFrame({"mkey": mkey, "date": dates})
    span = days_frame.groupby("mkey")["date"].agg(["min", "max"])
    bills: dict[int, MonthBill] = {}
    for key, row in span.iterrows():
        first = pd.Timestamp(row["min"]).date()
        last = pd.Timestamp(row["max"]).date()
        dim = calendar.monthrange(key // 12, key % 12 + 1)[1]
        days = (last - first).days + 1 if prorate_partial else dim
        bills[key] = MonthBill(_key_label(key), first, last, days, dim, tariff_unit)

    # ---- demand (delivered only)
    kw = delivered * 3600.0 / seconds
    kvar = None if kvarh is None else kvarh * 3600.0 / seconds
    window = tariff.demand_window
    notes: list[str] = []
    billing_kw: dict[int, float] = {}
    has_demand = bool(tariff.demand_periods or tariff.flat_demand_periods or tariff.coincident_periods)

    def demand_frame(unit: str) -> pd.DataFrame | None:
        values = _demand_unit_values(unit, kw, kvar)
        if values is None:
            notes.append(f"{unit} demand needs a kvarh channel; not billed")
            return None
        d = _demand_for(pd.Series(values, index=ends), seconds, window, demand_method, notes)
        d_start = local_start(d.index, seconds, tz)
        return pd.DataFrame(
            {
                "value": d.to_numpy(),
                "mkey": _month_key(d_start),
                "month": np.asarray(d_start.month),
                "hour": np.asarray(d_start.hour),
                "weekend": is_weekend_or_holiday(d_start, holidays),
                "date": local_start_date(d_start),
            }
        )

    if has_demand or any(
        t.unit in ("kWh/kW", "kWh/kW daily") for tiers in tariff.energy_periods for t in tiers
    ):
        base = demand_frame("kW")
        monthly_max = base.groupby("mkey")["value"].max() if base is not None else pd.Series(dtype=float)
        billing_kw = {int(k): float(v) for k, v in monthly_max.items()}

    # flat demand with ratchet
    if tariff.flat_demand_periods:
        fd = demand_frame(tariff.flat_demand_unit)
        if fd is not None:
            actual = fd.groupby("mkey")["value"].max()
            keys = np.arange(actual.index.min(), actual.index.max() + 1)
            actual = actual.reindex(keys)
            billed = actual.to_numpy()
            if tariff.has_ratchet:
                billed = _ratchet(tariff, keys, actual.to_numpy(), prior_peaks)
            for key, act, bd in zip(keys, actual.to_numpy(), billed, strict=True):
                if key not in bills or not np.isfinite(act):
                    continue
                billing_kw[int(key)] = float(bd)
                period = tariff.flat_demand_months[key % 12] if tariff.flat_demand_months else 0
                tiers = tariff.flat_demand_periods[period]
                bill = bills[int(key)]
                bill.demand.append(
                    {
                        "kind": "flat",
                        "period": period,
                        "actual": float(act),
                        "billing": float(bd),
                        "unit": tariff.flat_demand_unit,
                    }
                )
                daily_unit = tariff.flat_demand_unit.endswith("daily")
                bill.lines += _tiered_lines(
                    "flat_demand",
                    "Demand (daily peaks)" if daily_unit else "Demand",
                    fd[fd["mkey"] == key].groupby("date")["value"].max().to_numpy() if daily_unit else bd,
                    tariff.flat_demand_unit,
                    tiers,
                    tier_bounds(tiers),
                    period,
                )

    # TOU demand
    if tariff.demand_periods:
        td = demand_frame(tariff.demand_unit)
        if td is not None:
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
                bill.demand.append(
                    {
                        "kind": "tou",
                        "period": int(period),
                        "actual": float(peak),
                        "billing": float(peak),
                        "unit": tariff.demand_unit,
                    }
                )
                bill.lines += _tiered_lines(
                    "demand",
                    f"TOU demand period {int(period)}" + (" (daily peaks)" if daily is not None else ""),
                    daily.loc[(key, period)].to_numpy() if daily is not None else peak,
                    tariff.demand_unit,
                    tiers,
                    tier_bounds(tiers),
                    int(period),
                )

    # coincident demand
    if tariff.coincident_periods:
        peaks_list = list(system_peaks or [])
        if not peaks_list:
            notes.append("coincident demand not billed: no system-peak instants given")
        else:
            cp = dm.coincident_demand(pd.Series(kw, index=ends), peaks_list, seconds).dropna()
            if len(cp):
                c_start = local_start(cp.index, seconds, tz)
                sched = tariff.coincident_schedule
                cf = pd.DataFrame(
                    {
                        "value": cp.to_numpy(),
                        "mkey": _month_key(c_start),
                        "period": sched[np.asarray(c_start.month) - 1, np.asarray(c_start.hour)],
                    }
                )
                for (key, period), value in cf.groupby(["mkey", "period"])["value"].mean().items():
                    if key not in bills:
                        continue
                    tiers = tariff.coincident_periods[int(period)]
                    bills[int(key)].demand.append(
                        {
                            "kind": "coincident",
                            "period": int(period),
                            "actual": float(value),
                            "billing": float(value),
                            "unit": tariff.coincident_unit,
                        }
                    )
                    bills[int(key)].lines += _tiered_lines(
                        "coincident",
                        f"Coincident demand period {int(period)}",
                        float(value),
                        tariff.coincident_unit,
                        tiers,
                        tier_bounds(tiers),
                        int(period),
                    )

    # reactive demand
    if tariff.reactive_charge:
        if kvar is None:
            notes.append("reactive charge not billed: no kvarh channel")
        else:
            rd = _demand_for(pd.Series(kvar, index=ends), seconds, window, demand_method, [])
            r_key = _month_key(local_start(rd.index, seconds, tz))
            for key, peak in pd.Series(rd.to_numpy()).groupby(r_key).max().items():
                if key in bills and not np.isfinite(peak):
                    bills[int(key)].notes.append("reactive charge not billed: no kvarh values this month")
                elif key in bills:
                    bills[int(key)].demand.append(
                        {
                            "kind": "reactive",
                            "period": None,
                            "actual": float(peak),
                            "billing": float(peak),
                            "unit": "kVAR",
                        }
                    )
                    bills[int(key)].lines.append(
                        ChargeLine.of("reactive", "Reactive demand", peak, "kVAR", tariff.reactive_charge)
                    )

    # ---- energy
    if tariff.energy_periods:
        period = schedule_lookup(month, hour, weekend, tariff.energy_weekday, tariff.energy_weekend)
        ef = pd.DataFrame(
            {"mkey": mkey, "period": period, "delivered": delivered * factor, "received": received * factor}
        )
        keys = ["mkey", "period"]
        if (
            rule == PER_INTERVAL
            and tariff.netting_interval_seconds
            and tariff.netting_interval_seconds > seconds
        ):
            starts_utc = ends - pd.Timedelta(seconds=seconds)
            ef["bucket"] = starts_utc.floor(f"{tariff.netting_interval_seconds}s").as_unit("s").asi8
            hourly = ef.groupby([*keys, "bucket"], sort=False).sum().reset_index()  # net per clock hour
            netted = net_frame(hourly, keys, rule)
        else:
            netted = net_frame(ef, keys, rule)
        for row in netted.itertuples(index=False):
            key, p = int(row.mkey), int(row.period)
            bill = bills[key]
            tiers = tariff.energy_periods[p]
            limits = [
                _tier_limit(
                    t, tariff_unit, bill.days, bill.days_in_month, billing_kw.get(key, 0.0), prorate_partial
                )
                for t in tiers
            ]
            bounds = np.array([limit for limit, _ in limits], dtype="float64")
            label = _period_label(tariff, p)
            quantities = tier_quantities(row.imported, bounds)
            bill.energy.append(
                {
                    "period": p,
                    "label": label,
                    "delivered": float(row.delivered),
                    "received": float(row.received),
                    "billed": float(row.imported),
                    "exported": float(row.exported),
                    "tiers": [float(q) for q in quantities],
                    "tier_limits": [
                        {
                            "max": None if np.isinf(t.max) else t.max,
                            "unit": t.unit or tariff_unit,
                            "limit": None if np.isinf(limit) else limit,
                            "text": text,
                        }
                        for t, (limit, text) in zip(tiers, limits, strict=True)
                    ],
                    "unit": tariff_unit,
                }
            )
            what = "Energy" if len(tariff.energy_periods) == 1 else f"Energy {label}"
            bill.lines += _tiered_lines("energy", what, float(row.imported), tariff_unit, tiers, bounds, p)
            if row.exported > 0:
                sell = tiers[0].sell or (tiers[0].rate if tariff.use_net_metering else 0.0)
                bill.lines.append(
                    ChargeLine.of(
                        "export_credit", f"Export credit {label}", row.exported, tariff_unit, -sell, period=p
                    )
                )

    # ---- fixed, minimum, annual minimum
    for bill in bills.values():
        year = int(bill.month[:4])
        diy = 366 if calendar.isleap(year) else 365
        if tariff.fixed_charge:
            qty, per, fraction = charge_quantity(tariff.fixed_charge_unit, bill.days, bill.days_in_month, diy)
            bill.lines.append(
                ChargeLine.of(
                    "fixed",
                    f"Fixed charge ({tariff.fixed_charge_unit})",
                    qty,
                    per,
                    tariff.fixed_charge,
                    quantity_label=fraction,
                )
            )
        if tariff.min_charge:
            qty, per, fraction = charge_quantity(tariff.min_charge_unit, bill.days, bill.days_in_month, diy)
            minimum = tariff.min_charge * qty
            if bill.total < minimum:
                share = "" if qty == 1 else f" × {fraction or plain(qty)} {per}"
                bill.lines.append(
                    ChargeLine.of(
                        "minimum",
                        "Minimum charge adjustment",
                        1.0,
                        "bill",
                        minimum - bill.total,
                        note=f"the minimum charge is {plain(tariff.min_charge)} {tariff.min_charge_unit}{share}"
                        f" = {plain(minimum)}; the charges come to {plain(bill.total)}",
                    )
                )
    if tariff.annual_min_charge:
        by_year: dict[int, list[MonthBill]] = {}
        for key in sorted(bills):
            by_year.setdefault(key // 12, []).append(bills[key])
        for year, months in by_year.items():
            diy = 366 if calendar.isleap(year) else 365
            days = sum(b.days for b in months)
            minimum = tariff.annual_min_charge * min(days / diy, 1.0)
            total = sum(b.total for b in months)
            if total < minimum:
                share = f" × {days}/{diy}" if days < diy else ""
                months[-1].lines.append(
                    ChargeLine.of(
                        "minimum",
                        "Annual minimum charge adjustment",
                        1.0,
                        "year",
                        minimum - total,
                        note=f"the annual minimum is {plain(tariff.annual_min_charge)}{share} = {plain(minimum)};"
                        f" the charges of {year} come to {plain(total)}",
                    )
                )
    for bill in bills.values():  # the run's notes, the month's own, then what its lines explain
        explained = (line.note for line in bill.lines if line.note)
        bill.notes = list(dict.fromkeys([*notes, *bill.notes, *explained]))
    return [bills[k] for k in sorted(bills)]


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
