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
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing.bill import ChargeLine, MonthBill, key_label, month_key, tiered_lines
from smartmdm_pipelines.domain.billing.bill_demand import DemandSeries, demand_charges
from smartmdm_pipelines.domain.billing.netting import PER_INTERVAL, check_rule, net_frame
from smartmdm_pipelines.domain.billing.numbers import plain
from smartmdm_pipelines.domain.billing.proration import charge_quantity
from smartmdm_pipelines.domain.billing.tariff import Tariff, Tier
from smartmdm_pipelines.domain.billing.tiers import conversion_factor, tier_quantities
from smartmdm_pipelines.domain.billing.tou import (
    HolidaySpec,
    is_weekend_or_holiday,
    local_start,
    local_start_date,
    schedule_lookup,
)


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
    mkey = month_key(start)

    bills = _bill_months(mkey, local_start_date(start), tariff_unit, prorate_partial)
    notes: list[str] = []
    demand = DemandSeries(
        ends=ends,
        seconds=seconds,
        tz=tz,
        holidays=holidays,
        kw=delivered * 3600.0 / seconds,  # demand from delivered energy only
        kvar=None if kvarh is None else kvarh * 3600.0 / seconds,
        window=tariff.demand_window,
        method=demand_method,
        notes=notes,
    )
    billing_kw = demand_charges(tariff, demand, bills, system_peaks, prior_peaks)
    if tariff.energy_periods:
        energy = pd.DataFrame(
            {
                "mkey": mkey,
                "period": schedule_lookup(
                    np.asarray(start.month),
                    np.asarray(start.hour),
                    is_weekend_or_holiday(start, holidays),
                    tariff.energy_weekday,
                    tariff.energy_weekend,
                ),
                "delivered": delivered * factor,
                "received": received * factor,
            }
        )
        _energy_charges(tariff, bills, billing_kw, energy, ends, seconds, rule, tariff_unit, prorate_partial)
    _fixed_and_minimum(tariff, bills)
    for bill in bills.values():  # the run's notes, the month's own, then what its lines explain
        explained = (line.note for line in bill.lines if line.note)
        bill.notes = list(dict.fromkeys([*notes, *bill.notes, *explained]))
    return [bills[k] for k in sorted(bills)]


def _infer_interval_seconds(ends: pd.DatetimeIndex) -> int:
    if len(ends) < 2:
        raise ValueError(
            "cannot infer the interval length from fewer than two intervals; pass interval_seconds"
        )
    diffs = np.diff(ends.as_unit("s").asi8)
    diffs = diffs[diffs > 0]
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def _bill_months(
    mkey: np.ndarray, dates: np.ndarray, unit: str, prorate_partial: bool
) -> dict[int, MonthBill]:
    """The calendar: one bill per local month the series touches, with its first and last day
    (a partial month bills only its days when ``prorate_partial``)."""
    span = pd.DataFrame({"mkey": mkey, "date": dates}).groupby("mkey")["date"].agg(["min", "max"])
    bills: dict[int, MonthBill] = {}
    for key, row in span.iterrows():
        first = pd.Timestamp(row["min"]).date()
        last = pd.Timestamp(row["max"]).date()
        dim = calendar.monthrange(key // 12, key % 12 + 1)[1]
        days = (last - first).days + 1 if prorate_partial else dim
        bills[key] = MonthBill(key_label(key), first, last, days, dim, unit)
    return bills


def _energy_charges(
    tariff: Tariff,
    bills: dict[int, MonthBill],
    billing_kw: dict[int, float],
    energy: pd.DataFrame,
    ends: pd.DatetimeIndex,
    seconds: int,
    rule: str,
    unit: str,
    prorate_partial: bool,
) -> None:
    """Energy lines: ``energy`` (mkey, TOU period, delivered, received in the billed unit) netted
    per the rule, the month's import of each period split into tiers, export credited."""
    keys = ["mkey", "period"]
    if rule == PER_INTERVAL and tariff.netting_interval_seconds and tariff.netting_interval_seconds > seconds:
        starts_utc = ends - pd.Timedelta(seconds=seconds)
        energy["bucket"] = starts_utc.floor(f"{tariff.netting_interval_seconds}s").as_unit("s").asi8
        hourly = energy.groupby([*keys, "bucket"], sort=False).sum().reset_index()  # net per clock hour
        netted = net_frame(hourly, keys, rule)
    else:
        netted = net_frame(energy, keys, rule)
    for row in netted.itertuples(index=False):
        key, p = int(row.mkey), int(row.period)
        bill = bills[key]
        tiers = tariff.energy_periods[p]
        limits = [
            _tier_limit(t, unit, bill.days, bill.days_in_month, billing_kw.get(key, 0.0), prorate_partial)
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
                        "unit": t.unit or unit,
                        "limit": None if np.isinf(limit) else limit,
                        "text": text,
                    }
                    for t, (limit, text) in zip(tiers, limits, strict=True)
                ],
                "unit": unit,
            }
        )
        what = "Energy" if len(tariff.energy_periods) == 1 else f"Energy {label}"
        bill.lines += tiered_lines("energy", what, float(row.imported), unit, tiers, bounds, p)
        if row.exported > 0:
            sell = tiers[0].sell or (tiers[0].rate if tariff.use_net_metering else 0.0)
            bill.lines.append(
                ChargeLine.of("export_credit", f"Export credit {label}", row.exported, unit, -sell, period=p)
            )


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


def _fixed_and_minimum(tariff: Tariff, bills: dict[int, MonthBill]) -> None:
    """The fixed charge, the monthly minimum (after every other line) and the annual minimum."""
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
        _annual_minimum(tariff.annual_min_charge, bills)


def _annual_minimum(annual_min_charge: float, bills: dict[int, MonthBill]) -> None:
    """The annual minimum (prorated to the days billed in the year), on the year's last month."""
    by_year: dict[int, list[MonthBill]] = {}
    for key in sorted(bills):
        by_year.setdefault(key // 12, []).append(bills[key])
    for year, months in by_year.items():
        diy = 366 if calendar.isleap(year) else 365
        days = sum(b.days for b in months)
        minimum = annual_min_charge * min(days / diy, 1.0)
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
                    note=f"the annual minimum is {plain(annual_min_charge)}{share} = {plain(minimum)};"
                    f" the charges of {year} come to {plain(total)}",
                )
            )
