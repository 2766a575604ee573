"""Revenue at stake through the shadow-bill engine: the margin of the customer's own tariff."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smartmdm_pipelines.domain.billing.urdb import parse_urdb
from smartmdm_pipelines.domain.protection.revenue import TariffContext, hourly, revenue_at_stake
from smartmdm_pipelines_tests.domain.billing.helpers import ZEROS

DAYS = [dt.date(2024, 4, 1) + dt.timedelta(days=i) for i in range(10)]


def _tariff(structure: list[dict], fixed: float = 0.0) -> TariffContext:
    data = {
        "energyratestructure": [structure],
        "energyweekdayschedule": ZEROS,
        "energyweekendschedule": ZEROS,
        "fixedchargefirstmeter": fixed,
        "fixedchargeunits": "$/month",
    }
    return TariffContext(parse_urdb(data), holidays="none")


def test_flat_rate_prices_the_unbilled_volume_and_the_fixed_charge_cancels() -> None:
    ctx = _tariff([{"rate": 0.10}], fixed=9.0)
    assert revenue_at_stake(ctx, "America/Chicago", DAYS, np.full(10, 15.0), 100.0, "kWh") == pytest.approx(
        10.0
    )


def test_tiers_price_it_at_the_customers_margin() -> None:
    """450 kWh recorded, 100 kWh unbilled, 0-500 at $0.10 then $0.15: 50 x 0.10 + 50 x 0.15 = $12.50.
    Ten days of a 30-day month prorate the threshold to 500 x 10/30 = 166.67 kWh: 150 recorded, so the
    unbilled 100 kWh are 16.67 at $0.10 and 83.33 at $0.15 = $14.17."""
    ctx = _tariff([{"rate": 0.10, "max": 500}, {"rate": 0.15}])
    april = [dt.date(2024, 4, 1) + dt.timedelta(days=i) for i in range(30)]
    assert revenue_at_stake(ctx, "UTC", april, np.full(30, 15.0), 100.0, "kWh") == pytest.approx(12.5)
    assert revenue_at_stake(ctx, "UTC", DAYS, np.full(10, 15.0), 100.0, "kWh") == pytest.approx(14.17)


def test_hourly_spreads_days_over_their_local_hours_dst_included() -> None:
    days = [dt.date(2024, 3, 9), dt.date(2024, 3, 10), dt.date(2024, 3, 11)]  # spring forward on the 10th
    frame = hourly(days, np.array([24.0, 23.0, np.nan]), "America/Chicago")
    assert len(frame) == 24 + 23 + 24
    assert frame["kwh"].iloc[:47].tolist() == [1.0] * 47 and frame["kwh"].iloc[47:].sum() == 0
    assert frame["interval_end"].iloc[0].isoformat() == "2024-03-09T07:00:00+00:00"
