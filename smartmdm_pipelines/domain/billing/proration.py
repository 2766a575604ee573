"""Proration for partial periods, $/day fixed charges, rate changes and meter exchanges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from smartmdm_pipelines.domain.billing.tiers import scale_bounds

# $/day -> $/month conventions of the NREL tools (for comparison only; bills use actual days)
REOPT_DAYS_PER_MONTH = 365.25 / 12  # 30.4375
PYSAM_DAYS_PER_MONTH = 365 / 12


def prorate(amount: float, billable_days: float, standard_days: float) -> float:
    """A period charge × billable days / days in the standard period ($30 × 19/30 = $19.00)."""
    return amount * billable_days / standard_days


def prorate_bounds(bounds, billable_days: float, standard_days: float) -> np.ndarray:
    """Tier thresholds × days / standard days (500 kWh over 18 of 30 days = 300 kWh)."""
    return scale_bounds(bounds, billable_days / standard_days)


def charge_quantity(
    unit: str, days: int, days_in_month: int, days_in_year: int = 365
) -> tuple[float, str, str | None]:
    """How much of a URDB fixed or minimum charge's unit a bill period of ``days`` local days is.

    Returns (quantity, unit of the quantity, exact fraction or None): $/day → the actual days;
    $/month → 1 month, or days / days in the month for a partial month (1/31 month);
    $/year → days / days in the year. quantity × the charge's rate is the amount billed.
    """
    if unit == "$/day":
        return float(days), "day", None
    if unit == "$/month":
        if days >= days_in_month:
            return 1.0, "month", None
        return days / days_in_month, "month", f"{days}/{days_in_month}"
    if unit == "$/year":
        return days / days_in_year, "year", f"{days}/{days_in_year}"
    raise ValueError(f"unknown charge unit {unit!r} (expected $/month, $/day or $/year)")


def fixed_charge(amount: float, unit: str, days: int, days_in_month: int, days_in_year: int = 365) -> float:
    """A URDB fixed or minimum charge for a bill period of ``days`` local days.

    $/day × actual days; $/month × days / days in the month (a full month is the amount);
    $/year × days / days in the year.
    """
    return amount * charge_quantity(unit, days, days_in_month, days_in_year)[0]


def monthly_equivalent(rate_per_day: float, convention: str = "reopt") -> float:
    """$/day expressed per month as REopt (× 30.4375) or PySAM (× 365/12) do."""
    days = {"reopt": REOPT_DAYS_PER_MONTH, "pysam": PYSAM_DAYS_PER_MONTH}[convention]
    return rate_per_day * days


def billable_range(
    bill_from: dt.date,
    bill_through: dt.date,
    move_in: dt.date | None = None,
    service_start: dt.date | None = None,
    service_end: dt.date | None = None,
) -> tuple[dt.date, dt.date, int]:
    """Inclusive billable dates: latest start and earliest end; returns (start, end, days)."""
    start = max(d for d in (bill_from, move_in, service_start) if d is not None)
    end = min(d for d in (bill_through, service_end) if d is not None)
    return start, end, max((end - start).days + 1, 0)


def split_by_days(
    quantity: float, period_days: int, segment_days: Sequence[int], normal_days: int = 30
) -> list[float]:
    """Oracle CC&B service-quantity proration across a rate change.

    Each segment gets ``quantity × normal/actual × segment/normal`` (= quantity × segment/actual):
    100 kWh over 45 days split 15/30 -> 33.333 / 66.667 kWh.
    """
    consumption_factor = normal_days / period_days
    return [quantity * consumption_factor * (days / normal_days) for days in segment_days]


def meter_exchange_energy(registers: Sequence[tuple[float, float, float]]) -> float:
    """Energy over a period served by several meters: Σ (final − initial) × multiplier."""
    return float(sum((final - initial) * multiplier for initial, final, multiplier in registers))


def meter_exchange_demand(demands: Sequence[float]) -> float:
    """Demand over a period served by several meters: the max of their demands, not the sum."""
    return float(np.max(np.asarray(demands, dtype="float64")))
