"""Issue 9 items 13 and 14 in the domain: a capped last tier bills the excess at its rate with a
note; every charge line multiplies out (quantity × rate = amount to the cent)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.billing.bill import MonthBill
from smartmdm_pipelines.domain.billing.numbers import cents, money, plain
from smartmdm_pipelines.domain.billing.proration import charge_quantity
from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.tariff import TariffError
from smartmdm_pipelines.domain.billing.tiers import above_last_bound, tier_quantities, tiered_charge
from smartmdm_pipelines.domain.billing.urdb import load_tariff, parse_urdb
from smartmdm_pipelines_tests.domain.billing.helpers import ZEROS, fixture, schedule, usage

CENT = 1e-9
CAPPED = [{"max": 100, "rate": 20}, {"max": 500, "rate": 15}]  # last tier capped at 500 kW


def _kw(kw: list[float], start: str = "2027-01-04 00:00") -> pd.DataFrame:
    """Hourly usage at the given kW (hourly kWh = kW), UTC."""
    return usage(start, kw, "UTC", "1h")


# ----------------------------------------------------------------------------- item 13


def test_tier_engine_bills_above_a_capped_last_tier_at_its_rate() -> None:
    assert tier_quantities(600, [100, 500]).tolist() == [100, 500]
    assert tiered_charge(600, [100, 500], [20, 15]) == pytest.approx(100 * 20 + 500 * 15, abs=CENT)
    assert above_last_bound(600, [100, 500]) == 100
    assert above_last_bound(400, [100, 500]) == 0
    assert above_last_bound(600, [100, None]) == 0
    # one row of bounds per quantity (prorated thresholds) and a batch of quantities
    got = tier_quantities([600, 50], [[100, 500], [100, 200]])
    assert got.tolist() == [[100, 500], [50, 0]]


def test_flat_demand_600_kw_on_tiers_capped_at_500_bills_600_with_a_note() -> None:
    tariff = parse_urdb({"flatdemandstructure": [CAPPED], "flatdemandmonths": [0] * 12})
    (bill,) = shadow_bill(tariff, _kw([600, 10]), "UTC")
    assert bill.total == pytest.approx(100 * 20 + 500 * 15, abs=CENT)  # not 100*20 + 400*15
    first, last = bill.lines
    assert (first.quantity, last.quantity, last.rate, last.tier) == (100, 500, 15, 1)
    assert last.note is not None and first.note is None
    for text in ("600 kW", "last tier's limit of 500 kW", "100 kW above it", "15 per kW"):
        assert text in last.note
    assert last.note in bill.notes


def test_tou_demand_capped_last_tier_per_period() -> None:
    tariff = parse_urdb(
        {
            "demandratestructure": [CAPPED, [{"max": 100, "rate": 10}, {"rate": 5}]],
            "demandweekdayschedule": schedule(lambda m, h: 0 if 15 <= h <= 19 else 1),
            "demandweekendschedule": schedule(lambda m, h: 1),
        }
    )
    kw = [50.0] * 24
    kw[16] = 700  # period 0 (capped at 500): 200 kW above the last tier
    kw[3] = 900  # period 1 (unlimited): no note
    (bill,) = shadow_bill(tariff, _kw(kw), "UTC")
    assert bill.total == pytest.approx((100 * 20 + 600 * 15) + (100 * 10 + 800 * 5), abs=CENT)
    notes = [line.note for line in bill.lines if line.note]
    assert len(notes) == 1 and "TOU demand period 0: 700 kW" in notes[0] and "200 kW above it" in notes[0]


def test_daily_demand_capped_last_tier_counts_each_days_excess() -> None:
    tariff = parse_urdb(
        {"flatdemandstructure": [CAPPED], "flatdemandmonths": [0] * 12, "flatdemandunit": "kW daily"}
    )
    kw = [10.0] * 72
    kw[5], kw[30], kw[60] = 600, 300, 550  # three days: 100 kW and 50 kW above 500
    (bill,) = shadow_bill(tariff, _kw(kw), "UTC", prorate_partial=False)
    per_day = [tiered_charge(x, [100, 500], [20, 15]) for x in (600, 300, 550)]
    assert bill.total == pytest.approx(sum(per_day), abs=CENT)
    assert [(line.quantity, line.rate) for line in bill.lines] == [(300, 20), (200 + 500 + 450, 15)]
    assert "2 daily peak(s) up to 600 kW" in bill.lines[-1].note and "150 kW above it" in bill.lines[-1].note


def test_energy_above_a_capped_last_tier_and_coincident_demand() -> None:
    tariff = parse_urdb(
        {
            "energyratestructure": [[{"max": 500, "rate": 0.10}, {"max": 1000, "rate": 0.15}]],
            "coincidentratestructure": [[{"max": 100, "rate": 3.0}]],
            "coincidentrateschedule": ZEROS,
        }
    )
    frame = usage("2027-04-01 00:00", np.full(30 * 24, 1200 / (30 * 24)), "UTC", "1h")
    frame.loc[10, "kwh"] += 150  # 150.x kW in the system-peak hour
    peak = frame.loc[10, "interval_end"]
    (bill,) = shadow_bill(tariff, frame, "UTC", system_peaks=[peak])
    energy = [line for line in bill.lines if line.category == "energy"]
    assert [line.quantity for line in energy] == pytest.approx([500, 850], abs=1e-9)
    assert bill.amount("energy") == pytest.approx(500 * 0.10 + 850 * 0.15, abs=CENT)
    assert "Energy: 1,350 kWh is above the last tier's limit of 1,000 kWh" in energy[-1].note
    cp = next(line for line in bill.lines if line.category == "coincident")
    assert cp.quantity == pytest.approx(151.6666666667, abs=1e-6) and "above the last tier" in cp.note


def test_unlimited_last_tier_has_no_note() -> None:
    tariff = load_tariff(fixture("fpl_rs1.json"))
    (bill,) = shadow_bill(tariff, usage("2027-04-01 00:00", np.full(720, 10.0), "UTC", "1h"), "UTC")
    assert bill.notes == [] and all(line.note is None for line in bill.lines)


# ----------------------------------------------------------------------------- item 14


def _assert_lines_multiply_out(bill: MonthBill) -> None:
    payload = json.loads(json.dumps(bill.to_dict()))
    for line, exact in zip(payload["lines"], bill.lines, strict=True):
        assert cents(line["quantity"] * line["rate"]) == line["amount"], line
        assert line["amount"] == cents(exact.amount) and exact.amount == exact.quantity * exact.rate


def test_prorated_monthly_fixed_charge_is_1_31_month_times_the_rate() -> None:
    tariff = load_tariff(fixture("fpl_rs1.json"))
    frame = usage("2027-01-31 00:00", np.full(24, 1.0), "UTC", "1h")  # one day of January
    (bill,) = shadow_bill(tariff, frame, "UTC")
    fixed = next(line for line in bill.lines if line.category == "fixed")
    assert (fixed.quantity, fixed.unit, fixed.quantity_label) == (1 / 31, "month", "1/31")
    assert fixed.rate == 7.57 and fixed.amount == pytest.approx(7.57 / 31, abs=CENT)
    line = bill.to_dict()["lines"][-1]
    assert line["quantity"] == 1 / 31 and line["amount"] == 0.24 and line["quantity_label"] == "1/31"
    _assert_lines_multiply_out(bill)


@pytest.mark.parametrize(
    ("unit", "days", "expected"),
    [
        ("$/month", 31, (1.0, "month", None)),
        ("$/month", 1, (1 / 31, "month", "1/31")),
        ("$/day", 31, (31.0, "day", None)),
        ("$/year", 31, (31 / 365, "year", "31/365")),
    ],
)
def test_charge_quantity_per_unit(unit: str, days: int, expected: tuple) -> None:
    assert charge_quantity(unit, days, 31, 365) == expected


def test_every_line_multiplies_out_minimum_export_daily_demand_and_annual_minimum() -> None:
    tariff = parse_urdb(
        {
            "energyratestructure": [[{"max": 3, "rate": 0.123457, "sell": 0.0456}, {"rate": 0.2}]],
            "flatdemandstructure": [[{"max": 2, "rate": 7.77}, {"rate": 3.33}]],
            "flatdemandunit": "kW daily",
            "fixedchargefirstmeter": 0.333,
            "fixedchargeunits": "$/year",
            "mincharge": 249720.88,
            "minchargeunits": "$/month",
            "annualmincharge": 5_000_000,
            "demandreactivepowercharge": 0.257,
        }
    )
    frame = usage(
        "2027-06-29 10:00",
        [1.3, 2.7, 0.4, 3.1],
        "UTC",
        "1h",
        received_kwh=[0, 0, 2.9, 0],
        kvarh=[0.5, 0.6, 0.7, 0.8],
    )
    frame = pd.concat([frame, usage("2027-07-01 10:00", [1.1], "UTC", "1h")])
    june, july = shadow_bill(tariff, frame, "UTC", netting="per_interval")
    for bill in (june, july):
        _assert_lines_multiply_out(bill)
    categories = {line.category for line in june.lines} | {line.category for line in july.lines}
    assert {"energy", "export_credit", "flat_demand", "reactive", "fixed", "minimum"} <= categories
    credit = next(line for line in june.lines if line.category == "export_credit")
    assert credit.rate == -0.0456 and credit.amount < 0
    minimum = next(line for line in june.lines if line.description == "Minimum charge adjustment")
    assert minimum.note.startswith("the minimum charge is 249,720.88 $/month × 1/30 month = 8,324.02933333;")
    assert june.total == pytest.approx(249720.88 / 30, abs=CENT)  # one day of June
    assert any(line.description == "Annual minimum charge adjustment" for line in july.lines)
    assert "reactive charge not billed: no kvarh values this month" in july.notes  # July has no kvarh


def test_rates_have_no_float_noise_and_amounts_round_half_up() -> None:
    tariff = load_tariff(fixture("fpl_rs1.json"))
    assert tariff.energy_periods[0][0].rate == 0.08721  # 0.07531 + 0.0119, not 0.08721000000000001
    assert plain(0.07531 + 0.0119) == "0.08721" and plain(249720.88) == "249,720.88"
    assert plain(2000.0000000000002) == "2,000" and plain(1e-7) == "0.0000001"
    assert cents(0.125) == 0.13 and cents(-0.125) == -0.13 and money(1234567.891) == "1,234,567.89"


def test_demo_tariffs_lines_multiply_out() -> None:
    cfg = load_config()
    rng = np.random.default_rng(7)
    for setting in cfg.billing.tariffs:
        tariff = load_tariff(cfg.tariff_path(setting), tz=cfg.utility.timezone)
        n = 96 * 40
        frame = usage(
            "2027-06-20 00:00",
            rng.uniform(0.5, 2.0, n),
            cfg.utility.timezone,
            kvarh=rng.uniform(0, 1, n),
            received_kwh=rng.uniform(0, 2.5, n),
        )
        usage_unit = "gal" if setting.rate_code.startswith("W-") else setting.unit
        bills = shadow_bill(
            tariff,
            frame,
            cfg.utility.timezone,
            setting.holidays,
            usage_unit=usage_unit,
            billing_unit=setting.unit,
        )
        for bill in bills:
            _assert_lines_multiply_out(bill)


# ----------------------------------------------------------------------------- kWh/kW tiers


def _kwh_per_kw_tariff(unit: str = "kWh/kW") -> dict:
    return {
        "energyratestructure": [[{"max": 2, "rate": 0.10, "unit": unit}, {"rate": 0.05, "unit": unit}]],
        "flatdemandstructure": [[{"rate": 0.0}]],
    }


def test_kwh_per_kw_limits_are_reported_in_kwh_per_kw() -> None:
    frame = usage("2027-04-05 10:00", [25, 25, 400], "UTC", "15min")  # 1,600 kW peak, 450 kWh
    (bill,) = shadow_bill(parse_urdb(_kwh_per_kw_tariff()), frame, "UTC", prorate_partial=False)
    first, last = bill.energy[0]["tier_limits"]
    assert first == {
        "max": 2,
        "unit": "kWh/kW",
        "limit": 3200,
        "text": "2 kWh/kW × 1,600 kW billing demand = 3,200 kWh",
    }
    assert last["limit"] is None and last["unit"] == "kWh/kW" and last["text"] == "no limit"
    energy = [line for line in bill.lines if line.category == "energy"]
    assert [line.unit for line in energy] == ["kWh"]  # the billed quantity is energy: kWh × $/kWh


def test_kwh_per_kw_daily_limit_is_max_times_demand_times_days() -> None:
    frame = usage("2027-04-05 10:00", [25, 25], "UTC", "15min")  # 100 kW peak, one day
    (bill,) = shadow_bill(parse_urdb(_kwh_per_kw_tariff("kWh/kW daily")), frame, "UTC")
    (limit, _) = bill.energy[0]["tier_limits"]
    assert (
        limit["limit"] == 200 and limit["text"] == "2 kWh/kW daily × 100 kW billing demand × 1 days = 200 kWh"
    )


def test_kwh_per_kw_mixed_with_kwh_steps_is_rejected() -> None:
    data = {
        "energyratestructure": [
            [
                {"max": 200, "rate": 0.10, "unit": "kWh/kW"},
                {"max": 3000, "rate": 0.08, "unit": "kWh"},
                {"rate": 0.05, "unit": "kWh/kW"},
            ]
        ]
    }
    with pytest.raises(TariffError) as info:
        parse_urdb(data, source="gpc.json")
    assert str(info.value) == (
        "gpc.json: energyratestructure[0][1].unit: kWh limit after kWh/kW limits in the same period is not "
        "supported (every limited tier of a period must use the same unit)"
    )
