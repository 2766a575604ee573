"""Shadow bills month by month: FPL RS-1 known answer and the TV vectors end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.urdb import load_tariff, parse_urdb
from smartmdm_pipelines_tests.domain.billing.helpers import ZEROS, fixture, peak_tariff, schedule, usage

CENT = 1e-9


def _month_constant(start: str, end: str, tz: str, per_month: float, freq: str = "1h") -> pd.DataFrame:
    """Interval-ending usage with ``per_month`` spread evenly over the intervals of each local month."""
    step = pd.Timedelta(freq)
    ends = pd.date_range(pd.Timestamp(start, tz=tz) + step, pd.Timestamp(end, tz=tz), freq=freq)
    local = (ends - step).tz_convert(tz)
    n = pd.Series(1, index=range(len(ends))).groupby([local.year, local.month]).transform("size").to_numpy()
    return pd.DataFrame({"interval_end": ends.tz_convert("UTC"), "kwh": per_month / n})


def test_fpl_rs1_known_answer_2342_88() -> None:
    """REopt's test: 24,000 kWh/yr (2,000 kWh a month) -> $2,342.88 energy (fixed charge excluded)."""
    tariff = load_tariff(fixture("fpl_rs1.json"))
    bills = shadow_bill(
        tariff, _month_constant("2015-01-01", "2016-01-01", "America/New_York", 2000), "America/New_York"
    )
    assert [b.month for b in bills] == [f"2015-{m:02d}" for m in range(1, 13)]
    assert all(b.days == b.days_in_month for b in bills)
    energy = sum(b.amount("energy") for b in bills)
    assert energy == pytest.approx(2342.88, abs=CENT)
    assert bills[0].amount("energy") == pytest.approx(1000 * 0.08721 + 1000 * 0.10803, abs=CENT)
    assert [line.quantity for line in bills[0].lines if line.category == "energy"] == [1000, 1000]
    assert sum(b.total for b in bills) == pytest.approx(2342.88 + 12 * 7.57, abs=CENT)


def test_fpl_rs1_any_shape_above_1000_kwh_a_month_gives_the_same_answer() -> None:
    """24,000 kWh spread evenly over every 15-min interval: each month > 1,000 kWh, same $2,342.88."""
    tariff = load_tariff(fixture("fpl_rs1.json"))
    tz = "America/New_York"
    ends = pd.date_range(
        pd.Timestamp("2015-01-01 00:15", tz=tz), pd.Timestamp("2016-01-01", tz=tz), freq="15min"
    )
    frame = pd.DataFrame({"interval_end": ends, "kwh": 24_000 / len(ends)})
    bills = shadow_bill(tariff, frame, tz)
    assert sum(b.amount("energy") for b in bills) == pytest.approx(2342.88, abs=1e-6)


@pytest.mark.parametrize(("holidays", "expected"), [("NERC", 11.10), ("none", 12.60)])
def test_tv12_through_the_bill(holidays: str, expected: float) -> None:
    tariff = parse_urdb(peak_tariff())
    bills = shadow_bill(
        tariff, usage("2027-07-02 00:00", np.ones(96), "America/Chicago", "1h"), "America/Chicago", holidays
    )
    assert len(bills) == 1 and bills[0].days == 4
    assert bills[0].total == pytest.approx(expected, abs=CENT)
    by_period = {e["period"]: e["billed"] for e in bills[0].energy}
    assert by_period == ({0: 91, 1: 5} if holidays == "NERC" else {0: 86, 1: 10})


def test_tv18_tou_demand_through_the_bill() -> None:
    tariff = parse_urdb(
        {
            "demandratestructure": [
                [{"max": 100, "rate": 20}, {"rate": 15}],
                [{"max": 100, "rate": 10}, {"rate": 5}],
            ],
            "demandweekdayschedule": schedule(lambda m, h: 0 if 15 <= h <= 19 else 1),
            "demandweekendschedule": schedule(lambda m, h: 1),
        }
    )
    kw = [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1]
    bills = shadow_bill(tariff, usage("2027-01-04 00:00", kw, "UTC", "1h"), "UTC")  # a Monday
    (bill,) = bills
    assert bill.total == pytest.approx(200.0, abs=CENT)
    assert {d["period"]: d["actual"] for d in bill.demand} == {0: 5, 1: 10}


TV22 = dict(delivered=[2, 0.5, 0, 3], received=[0, 3, 2, 0.5])


def _tv22_tariff(dgrules: str) -> dict:
    return {"energyratestructure": [[{"rate": 0.30, "sell": 0.08}]], "dgrules": dgrules}


@pytest.mark.parametrize(
    ("dgrules", "expected"),
    [
        ("Net Metering", 0.0),
        ("Net Billing Instantaneous", 0.99),
        ("Buy All Sell All", 1.21),
        ("Net Billing Hourly", 0.0),  # the four 15-min intervals fall in one clock hour
    ],
)
def test_tv22_netting_through_the_bill(dgrules: str, expected: float) -> None:
    frame = usage("2027-04-05 10:00", TV22["delivered"], "UTC", received_kwh=TV22["received"])
    (bill,) = shadow_bill(parse_urdb(_tv22_tariff(dgrules)), frame, "UTC")
    assert bill.total == pytest.approx(expected, abs=CENT)


def test_netting_override_and_export_credit_line() -> None:
    frame = usage("2027-04-05 10:00", [1, 1], "UTC", received_kwh=[3, 3])
    (bill,) = shadow_bill(parse_urdb(_tv22_tariff("Net Metering")), frame, "UTC", netting="per_period")
    credit = [line for line in bill.lines if line.category == "export_credit"]
    assert len(credit) == 1 and credit[0].quantity == 4 and credit[0].amount == pytest.approx(-0.32, abs=CENT)


def test_tv23_tiers_accumulate_over_the_month_from_15_minute_data() -> None:
    tariff = parse_urdb({"energyratestructure": [[{"max": 500, "rate": 0.10}, {"rate": 0.15}]]})
    frame = _month_constant("2027-04-01", "2027-05-01", "UTC", 800, "15min")
    (bill,) = shadow_bill(tariff, frame, "UTC")
    assert bill.total == pytest.approx(95.0, abs=CENT)


def test_tv25b_partial_month_prorates_tier_threshold_and_monthly_charge() -> None:
    tariff = parse_urdb(
        {"energyratestructure": [[{"max": 500, "rate": 0.10}, {"rate": 0.15}]], "fixedmonthlycharge": 30}
    )
    frame = _month_constant("2027-04-13", "2027-05-01", "UTC", 400, "1h")  # move-in: 18 of 30 days
    (bill,) = shadow_bill(tariff, frame, "UTC")
    assert bill.days == 18
    assert bill.amount("energy") == pytest.approx(45.0, abs=CENT)
    assert bill.amount("fixed") == pytest.approx(18.0, abs=CENT)
    (full,) = shadow_bill(tariff, frame, "UTC", prorate_partial=False)
    assert full.amount("energy") == pytest.approx(40.0, abs=CENT) and full.amount("fixed") == 30


def test_tv24_water_in_gallons_billed_in_ccf() -> None:
    tariff = load_tariff(fixture("london_water_ccf.json"))
    gallons = 2_880_000 / 77  # = 50 CCF
    frame = _month_constant("2027-04-01", "2027-05-01", "America/Toronto", gallons, "1h")
    (bill,) = shadow_bill(tariff, frame, "America/Toronto", "none", usage_unit="gal")
    assert bill.unit == "CCF"
    assert bill.energy[0]["billed"] == pytest.approx(50.0, abs=1e-9)
    assert bill.energy[0]["tiers"] == pytest.approx([12, 28, 10], abs=1e-9)
    assert bill.total == pytest.approx(105.772, abs=1e-9)


def test_tv26_daily_fixed_charge_times_actual_days() -> None:
    tariff = load_tariff(fixture("reopt_daily_fixed.json"))
    frame = _month_constant("2027-01-01", "2027-03-01", "UTC", 1000, "1h")
    jan, feb = shadow_bill(tariff, frame, "UTC")
    assert jan.amount("fixed") == pytest.approx(102.238, abs=CENT)
    assert feb.amount("fixed") == pytest.approx(3.298 * 28, abs=CENT)
    assert jan.amount("energy") == pytest.approx(1000 * 0.061731, abs=CENT)


def _flat_demand_tariff(**extra) -> dict:
    return {
        "flatdemandstructure": [[{"max": 500, "rate": 6.5}, {"rate": 5.75}]],
        "flatdemandmonths": [0] * 12,
        "demandratchetpercentage": [0.8] * 12,
        **extra,
    }


def test_ratchet_common_form_on_flat_demand() -> None:
    frame = pd.concat(
        [usage("2027-01-10 12:00", [250.0], "UTC"), usage("2027-02-10 12:00", [75.0], "UTC")]
    )  # 15-min: 1000 kW then 300 kW
    jan, feb = shadow_bill(parse_urdb(_flat_demand_tariff()), frame, "UTC", interval_seconds=900)
    assert jan.demand[0]["billing"] == 1000
    assert feb.demand[0]["actual"] == 300 and feb.demand[0]["billing"] == pytest.approx(800, abs=CENT)
    assert feb.total == pytest.approx(500 * 6.5 + 300 * 5.75, abs=CENT)
    (only,) = shadow_bill(
        parse_urdb(_flat_demand_tariff()),
        frame.iloc[1:],
        "UTC",
        interval_seconds=900,
        prior_peaks={"2026-07": 1500},
    )
    assert only.demand[0]["billing"] == pytest.approx(1200, abs=CENT)


@pytest.mark.parametrize(("method", "expected"), [("block", 120), ("rolling", 125)])
def test_demand_window_block_vs_rolling_tv16(method: str, expected: float) -> None:
    tariff = parse_urdb(
        {
            "demandratestructure": [[{"rate": 1.0}]],
            "demandweekdayschedule": ZEROS,
            "demandweekendschedule": ZEROS,
            "demandwindow": 30,
        }
    )
    kwh = np.array([100, 140, 60, 120, 130, 80]) / 4
    (bill,) = shadow_bill(tariff, usage("2027-07-07 14:00", kwh, "UTC"), "UTC", demand_method=method)
    assert bill.total == pytest.approx(expected, abs=CENT)


def test_reactive_minimum_and_annual_minimum() -> None:
    tariff = parse_urdb(
        {
            "energyratestructure": [[{"rate": 0.10}]],
            "demandreactivepowercharge": 0.25,
            "minmonthlycharge": 20,
        }
    )
    frame = usage("2027-04-05 10:00", [10, 10], "UTC", kvarh=[5, 30])  # kVAR 20 and 120
    (bill,) = shadow_bill(tariff, frame, "UTC")
    assert bill.amount("reactive") == pytest.approx(120 * 0.25, abs=CENT)
    assert bill.amount("energy") == pytest.approx(2.0, abs=CENT)
    minimum = 20 * 1 / 30  # one day of a 30-day month
    assert bill.total == pytest.approx(max(32.0, minimum), abs=CENT)
    (small,) = shadow_bill(tariff, usage("2027-04-05 10:00", [1, 1], "UTC"), "UTC")
    assert small.total == pytest.approx(minimum, abs=CENT)
    assert "reactive charge not billed: no kvarh channel" in small.notes
    annual = parse_urdb({"energyratestructure": [[{"rate": 0.10}]], "annualmincharge": 365})
    (bill,) = shadow_bill(annual, usage("2027-04-05 10:00", [1, 1], "UTC"), "UTC")
    assert bill.total == pytest.approx(1.0, abs=CENT)  # one day of a $365/yr minimum


def test_kwh_per_kw_tier_bounds_scale_with_billing_demand() -> None:
    tariff = parse_urdb(
        {
            "energyratestructure": [
                [{"max": 2, "rate": 0.10, "unit": "kWh/kW"}, {"rate": 0.05, "unit": "kWh/kW"}]
            ],
            "flatdemandstructure": [[{"rate": 0.0}]],
        }
    )
    frame = usage("2027-04-05 10:00", [25, 25], "UTC")  # 100 kW peak, 50 kWh
    (bill,) = shadow_bill(tariff, frame, "UTC", prorate_partial=False)
    assert bill.energy[0]["tiers"] == [50, 0]  # bound 2 kWh/kW × 100 kW = 200 kWh
    assert bill.total == pytest.approx(5.0, abs=CENT)


def test_coincident_peak_demand() -> None:
    tariff = parse_urdb({"coincidentratestructure": [[{"rate": 3.0}]], "coincidentrateschedule": ZEROS})
    frame = usage("2027-07-07 16:00", [200, 205, 190], "UTC")
    peak = pd.Timestamp("2027-07-07 16:30", tz="UTC")
    (bill,) = shadow_bill(tariff, frame, "UTC", system_peaks=[peak])
    assert bill.total == pytest.approx(820 * 3.0, abs=CENT)
    (none,) = shadow_bill(tariff, frame, "UTC")
    assert none.total == 0 and any("system-peak" in n for n in none.notes)


def test_month_boundary_uses_local_start_time() -> None:
    """The interval ending at local midnight on Feb 1 belongs to January."""
    tariff = parse_urdb({"energyratestructure": [[{"rate": 1.0}]]})
    frame = usage("2027-01-31 23:00", [1, 2], "America/Chicago", "1h")
    jan, feb = shadow_bill(tariff, frame, "America/Chicago")
    assert (jan.month, jan.total, feb.month, feb.total) == ("2027-01", 1.0, "2027-02", 2.0)


def test_to_dict_is_json() -> None:
    tariff = load_tariff(fixture("camel_export.json"))
    frame = usage("2027-07-07 15:00", np.full(12, 30.0), "America/Los_Angeles", kvarh=np.full(12, 10.0))
    bills = shadow_bill(tariff, frame, "America/Los_Angeles")
    d = json.loads(json.dumps([b.to_dict() for b in bills]))
    assert {"month", "energy", "demand", "lines", "total"} <= set(d[0])
    assert d[0]["total"] == round(bills[0].total, 2)


def test_bad_usage_is_rejected() -> None:
    tariff = parse_urdb({"energyratestructure": [[{"rate": 1.0}]]})
    with pytest.raises(ValueError, match="kwh column"):
        shadow_bill(tariff, pd.DataFrame({"interval_end": []}), "UTC")
    naive = pd.DataFrame({"interval_end": pd.date_range("2027-01-01", periods=2, freq="1h"), "kwh": [1, 1]})
    with pytest.raises(ValueError, match="timezone-aware"):
        shadow_bill(tariff, naive, "UTC")


@pytest.mark.parametrize(
    "code", ["E-RES", "E-RES-NEM", "E-GS", "E-LGS", "W-RES", "W-COM", "W-DMA", "G-RES", "G-COM"]
)
def test_demo_tariffs_load_and_bill(code: str) -> None:
    cfg = load_config()
    setting = next(t for t in cfg.billing.tariffs if t.rate_code == code)
    tariff = load_tariff(cfg.tariff_path(setting))
    unit = setting.unit or "kWh"
    usage_unit = "gal" if code.startswith("W-") else unit
    n = 96 * 45
    rng = np.random.default_rng(1)
    frame = usage(
        "2027-06-20 00:00", rng.uniform(0.5, 2.0, n), cfg.utility.timezone, kvarh=rng.uniform(0, 1, n)
    )
    if code == "E-RES-NEM":
        frame["received_kwh"] = rng.uniform(0, 2.5, n)
    bills = shadow_bill(
        tariff,
        frame,
        cfg.utility.timezone,
        setting.holidays,
        demand_method=setting.demand_method,
        netting=setting.netting,
        usage_unit=usage_unit,
        billing_unit=setting.unit,
    )
    assert [b.month for b in bills] == ["2027-06", "2027-07", "2027-08"]
    assert all(b.total > 0 for b in bills)
    assert tariff.energy_unit == unit
