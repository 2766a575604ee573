"""Revenue at stake: the unbilled volume priced on the customer's tariff through the shadow-bill
engine, as the difference between the bill of what should have been recorded and the bill of
what was. Tiers, TOU periods and demand charges therefore price the volume at the customer's
margin; fixed charges cancel out.

Both series are hourly over the case's days (``start`` .. the evaluated day): the recorded daily
totals and the unbilled volume are each spread evenly over the hours of their days (the daily
series is what the indicators work on; docs/protection.md says what this simplification costs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.tariff import Tariff


@dataclass(frozen=True)
class TariffContext:
    """A service point's tariff and how to bill it (from the ``tariffs`` table)."""

    tariff: Tariff
    holidays: str = "NERC"
    netting: str | None = None
    demand_method: str = "block"
    billing_unit: str | None = None


def hourly(days: list[dt.date], daily: np.ndarray, tz: str) -> pd.DataFrame:
    """Daily totals spread evenly over each local day's hours (23/25 on DST days)."""
    bounds = pd.DatetimeIndex(pd.to_datetime([*days, days[-1] + dt.timedelta(days=1)])).tz_localize(tz)
    bounds = bounds.tz_convert("UTC")
    ends = pd.date_range(bounds[0], bounds[-1], freq="h", inclusive="right")
    day_of = bounds.searchsorted(ends, side="left") - 1
    hours = np.bincount(day_of, minlength=len(days))
    values = (np.nan_to_num(np.asarray(daily, dtype="float64")) / np.maximum(hours, 1))[day_of]
    return pd.DataFrame({"interval_end": ends, "kwh": values})


def revenue_at_stake(
    ctx: TariffContext,
    tz: str,
    days: list[dt.date],
    recorded: np.ndarray,
    unbilled: float,
    usage_unit: str,
) -> float:
    """Bill(recorded + unbilled) − bill(recorded) over ``days``, in the tariff's currency."""
    if not days or not np.isfinite(unbilled) or unbilled <= 0:
        return 0.0
    base = hourly(days, recorded, tz)
    extra = base.assign(kwh=base["kwh"] + unbilled / len(base))
    kwargs = {
        "interval_seconds": 3600,
        "demand_method": ctx.demand_method,
        "netting": ctx.netting,
        "usage_unit": None if usage_unit == "kWh" else usage_unit,
        "billing_unit": ctx.billing_unit,
    }
    before = shadow_bill(ctx.tariff, base, tz, ctx.holidays, **kwargs)
    after = shadow_bill(ctx.tariff, extra, tz, ctx.holidays, **kwargs)
    return round(sum(b.total for b in after) - sum(b.total for b in before), 2)
