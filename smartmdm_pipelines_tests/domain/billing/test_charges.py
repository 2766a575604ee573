"""Power factor (TV-20), netting (TV-22), tiers and units (TV-23, TV-24), proration (TV-25, TV-26)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.billing.netting import net_frame, net_quantities, netting_charge
from smartmdm_pipelines.domain.billing.power_factor import (
    average_power_factor,
    kva_demand,
    pf_adjusted_demand,
    pf_surcharge_fraction,
    reactive_charge,
)
from smartmdm_pipelines.domain.billing.proration import (
    billable_range,
    fixed_charge,
    meter_exchange_demand,
    meter_exchange_energy,
    monthly_equivalent,
    prorate,
    prorate_bounds,
    split_by_days,
)
from smartmdm_pipelines.domain.billing.tiers import convert, tier_quantities, tiered_charge

TIGHT = 1e-9


def test_tv20_power_factor() -> None:
    pf = average_power_factor(100_000, 75_000)
    assert pf == pytest.approx(0.8, abs=TIGHT)
    assert pf_adjusted_demand(500, pf, 0.90) == pytest.approx(562.5, abs=TIGHT)
    assert pf_adjusted_demand(500, 0.95, 0.90) == 500
    assert kva_demand(500, pf) == pytest.approx(625, abs=TIGHT)
    assert pf_surcharge_fraction(pf) == pytest.approx(0.10, abs=TIGHT)
    assert pf_surcharge_fraction(0.97) == pytest.approx(-0.01, abs=TIGHT)  # 0.5 % per 0.01 above 0.95
    assert pf_surcharge_fraction(0.99) == pytest.approx(-0.01, abs=TIGHT)  # credit capped at 0.97
    assert pf_surcharge_fraction(0.92) == 0
    assert average_power_factor(0, 0) == 1.0
    assert reactive_charge(120, 0.25) == pytest.approx(30.0, abs=TIGHT)


DELIVERED = [2, 0.5, 0, 3]
RECEIVED = [0, 3, 2, 0.5]


def test_tv22_netting_rules() -> None:
    assert netting_charge(DELIVERED, RECEIVED, 0.30, 0.08, "per_period") == pytest.approx(0.0, abs=TIGHT)
    assert netting_charge(DELIVERED, RECEIVED, 0.30, 0.08, "per_interval") == pytest.approx(0.99, abs=TIGHT)
    assert netting_charge(DELIVERED, RECEIVED, 0.30, 0.08, "buy_all_sell_all") == pytest.approx(
        1.21, abs=TIGHT
    )
    n = net_quantities(DELIVERED, RECEIVED, "per_interval")
    assert (n.imported, n.exported) == pytest.approx((4.5, 4.5), abs=TIGHT)
    with pytest.raises(ValueError, match="netting must be one of"):
        net_quantities(DELIVERED, RECEIVED, "monthly")


def test_net_frame_vectorised_over_groups() -> None:
    frame = pd.DataFrame(
        {
            "account": ["A"] * 4 + ["B"] * 4,
            "delivered": DELIVERED + [1, 1, 1, 1],
            "received": RECEIVED + [0, 0, 3, 3],
        }
    )
    per_period = net_frame(frame, ["account"], "per_period").set_index("account")
    assert per_period.loc["A", ["imported", "exported"]].tolist() == pytest.approx([0, 0], abs=TIGHT)
    assert per_period.loc["B", ["imported", "exported"]].tolist() == pytest.approx([0, 2], abs=TIGHT)
    per_interval = net_frame(frame, ["account"], "per_interval").set_index("account")
    assert per_interval.loc["A", ["imported", "exported"]].tolist() == pytest.approx([4.5, 4.5], abs=TIGHT)
    assert per_interval.loc["B", ["imported", "exported"]].tolist() == pytest.approx([2, 4], abs=TIGHT)
    basa = net_frame(frame, ["account"], "buy_all_sell_all").set_index("account")
    assert basa.loc["A", ["imported", "exported"]].tolist() == pytest.approx([5.5, 5.5], abs=TIGHT)


def test_tv23_tiers_are_cumulative_over_the_month_not_per_interval() -> None:
    assert tiered_charge(800, [500, None], [0.10, 0.15]) == pytest.approx(95.0, abs=TIGHT)
    intervals = np.full(8, 100.0)  # the same 800 kWh as eight readings
    assert tiered_charge(intervals.sum(), [500, None], [0.10, 0.15]) == pytest.approx(95.0, abs=TIGHT)
    assert tiered_charge(intervals, [500, None], [0.10, 0.15]).sum() == pytest.approx(
        80.0
    )  # the per-interval bug
    assert tier_quantities(800, [500, np.inf]).tolist() == [500, 300]
    # many accounts at once, with per-account (prorated) bounds
    got = tiered_charge([800, 400], [[500, np.inf], [300, np.inf]], [0.10, 0.15])
    assert got.tolist() == pytest.approx([95.0, 45.0], abs=TIGHT)


def test_tv24_water_tiers_and_exact_units() -> None:
    assert tiered_charge(50, [12, 40, None], [2.011, 2.120, 2.228]) == pytest.approx(105.772, abs=TIGHT)
    assert convert(50, "CCF", "gal") == pytest.approx(2_880_000 / 77, abs=1e-9)
    assert round(convert(50, "CCF", "gal"), 3) == 37402.597
    assert convert(50, "CCF", "m3") == pytest.approx(141.58423296, abs=1e-9)
    assert convert(2_880_000 / 77, "gal", "CCF") == pytest.approx(50.0, abs=1e-12)
    assert convert(1, "kgal", "gal") == pytest.approx(1000.0, abs=1e-12)
    assert convert(1, "HCF", "ft3") == pytest.approx(100.0, abs=1e-12)
    assert convert(np.array([748.0519480519481]), "gal", "CCF").tolist() == pytest.approx([1.0], abs=1e-12)
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1, "CCF", "therm")


def test_tv25_proration() -> None:
    assert prorate(30, 19, 30) == pytest.approx(19.00, abs=TIGHT)
    bounds = prorate_bounds([500, None], 18, 30)
    assert bounds.tolist() == [300, np.inf]
    assert tiered_charge(400, bounds, [0.10, 0.15]) == pytest.approx(45.00, abs=TIGHT)
    assert split_by_days(100, 45, [15, 30]) == pytest.approx([33.333333333, 66.666666667], abs=1e-6)
    assert meter_exchange_energy([(12_345, 12_845, 1), (0, 250, 2)]) == 1000
    assert meter_exchange_demand([80, 95]) == 95
    start, end, days = billable_range(
        dt.date(2027, 4, 1), dt.date(2027, 4, 30), move_in=dt.date(2027, 4, 12), service_end=None
    )
    assert (start, end, days) == (dt.date(2027, 4, 12), dt.date(2027, 4, 30), 19)


def test_tv26_daily_fixed_charge() -> None:
    assert monthly_equivalent(3.298, "reopt") == pytest.approx(100.3829, abs=5e-5)
    assert monthly_equivalent(3.298, "pysam") == pytest.approx(100.3142, abs=5e-5)
    assert fixed_charge(3.298, "$/day", 31, 31) == pytest.approx(102.238, abs=TIGHT)
    assert fixed_charge(30, "$/month", 30, 30) == 30
    assert fixed_charge(30, "$/month", 19, 30) == pytest.approx(19.0, abs=TIGHT)
    assert fixed_charge(365, "$/year", 31, 31) == pytest.approx(31.0, abs=TIGHT)
