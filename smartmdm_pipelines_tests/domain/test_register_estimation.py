"""Register estimation (docs/vee_rules.md E10) on small frames: ADU sources, dials and multiplier, chaining."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.register_estimation import estimate_registers


def scheduled(meter="A", at=("2024-03-06T06:00Z",), dials=5, multiplier=1.0, customer_class="res"):
    return pd.DataFrame(
        [
            {
                "meter_id": meter,
                "channel": "kwh_delivered",
                "read_date": (pd.Timestamp(t) - pd.Timedelta(days=1)).date(),
                "scheduled_at": pd.Timestamp(t),
                "commodity": "electric",
                "customer_class": customer_class,
                "dials": dials,
                "multiplier": multiplier,
            }
            for t in at
        ]
    )


def reads(meter="A", points=()):
    return pd.DataFrame(
        [
            {"meter_id": meter, "channel": "kwh_delivered", "read_at": pd.Timestamp(t), "value": v}
            for t, v in points
        ],
        columns=["meter_id", "channel", "read_at", "value"],
    )


def test_recent_adu_with_rollover_ct_multiplier_and_chained_spans() -> None:
    sched = scheduled(at=("2024-03-06T06:00Z", "2024-04-04T05:00Z"), multiplier=80.0)
    got = reads(points=(("2024-01-05T15:00Z", 99900.0), ("2024-02-05T15:00Z", 99962.0)))
    out = estimate_registers(sched, got)
    assert not out["actual"].any() and (out["adu_source"] == "recent").all()
    assert out["adu"].iloc[0] == pytest.approx(2.0)  # 62 dial units over 31 days
    # 99962 + floor(2 × 29.625) = 100021 -> 21 on five dials; then + floor(2 × 58.58) = 117 -> 79
    assert out["register_value"].tolist() == [21.0, 79.0]
    assert out["value"].tolist() == [59 * 80.0, 58 * 80.0]  # consumption since the read before, × CT
    assert out["span_start"].iloc[1] == pd.Timestamp("2024-03-06T06:00Z")  # chained to the estimate
    assert (
        out["interval_seconds"].iloc[0]
        == (pd.Timestamp("2024-03-06T06:00Z") - pd.Timestamp("2024-02-05T15:00Z")).total_seconds()
    )
    assert out["method"].iloc[0] == "register_recent"
    assert "previous actual 99962.0" in out["reason"].iloc[0] and "mod 10^5" in out["reason"].iloc[0]


def test_an_actual_read_near_the_read_date_is_the_scheduled_read() -> None:
    got = reads(
        points=(("2024-01-05T15:00Z", 100.0), ("2024-02-05T15:00Z", 200.0), ("2024-03-07T16:00Z", 310.0))
    )
    out = estimate_registers(scheduled(), got)
    assert out["actual"].iloc[0] and out["actual_value"].iloc[0] == 310.0
    assert np.isnan(out["register_value"].iloc[0]) and out["method"].iloc[0] is None
    late = reads(
        points=(("2024-01-05T15:00Z", 100.0), ("2024-02-05T15:00Z", 200.0), ("2024-03-12T16:00Z", 360.0))
    )
    assert not estimate_registers(scheduled(), late)["actual"].iloc[0]  # beyond the 3-day window


def test_previous_year_when_preferred_and_class_average_as_last_resort() -> None:
    history = (
        ("2023-02-06T15:00Z", 1000.0),
        ("2023-03-06T15:00Z", 1290.0),  # 290 in 28 days a year earlier
        ("2024-01-05T15:00Z", 5000.0),
        ("2024-02-05T15:00Z", 5310.0),  # 10 a day recently
    )
    rules = RuleSet(register_adu_sources=("previous_year", "recent", "class"))
    out = estimate_registers(scheduled(), reads(points=history), rules)
    assert out["adu_source"].iloc[0] == "previous_year"
    assert out["adu"].iloc[0] == pytest.approx(290 / 28)
    assert estimate_registers(scheduled(), reads(points=history))["adu_source"].iloc[0] == "recent"

    # B has a single read: no ADU of its own; A's class usage (10 kWh a day) / B's multiplier 2
    both = pd.concat([scheduled(), scheduled("B", multiplier=2.0)], ignore_index=True)
    got = pd.concat([reads(points=history[2:]), reads("B", (("2024-02-05T15:00Z", 40.0),))])
    out = estimate_registers(both, got).set_index("meter_id")
    assert out.loc["B", "adu_source"] == "class" and out.loc["B", "adu"] == pytest.approx(5.0)
    assert out.loc["B", "register_value"] == 40.0 + np.floor(5.0 * 29.625)
    assert out.loc["B", "value"] == pytest.approx(np.floor(5.0 * 29.625) * 2.0)


def test_without_a_previous_read_or_any_adu_nothing_is_estimated() -> None:
    out = estimate_registers(scheduled(), reads())
    assert np.isnan(out["register_value"].iloc[0]) and "no previous actual read" in out["reason"].iloc[0]
    lonely = reads(points=(("2024-02-05T15:00Z", 10.0),))
    out = estimate_registers(scheduled(), lonely)
    assert np.isnan(out["register_value"].iloc[0]) and "no ADU source" in out["reason"].iloc[0]


def test_decimals_and_unknown_dials() -> None:
    got = reads(points=(("2024-01-05T15:00Z", 100.0), ("2024-02-05T15:00Z", 131.0)))
    out = estimate_registers(scheduled(dials=None), got, RuleSet(register_estimate_decimals=1))
    assert out["register_value"].iloc[0] == pytest.approx(131.0 + 29.6)  # 1/day × 29.625, to 0.1
    assert out["read_date"].iloc[0] == dt.date(2024, 3, 5)
