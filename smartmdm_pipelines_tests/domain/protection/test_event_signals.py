"""Signals from events, the received channel and the VEE exception queue, on small frames."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from smartmdm_pipelines.domain.protection import event_signals as ev
from smartmdm_pipelines.domain.protection.params import ProtectionParams

P = ProtectionParams()
DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(6)]
START = pd.Series(pd.DatetimeIndex([f"{d}T06:00Z" for d in DAYS]), index=DAYS)
END = pd.Timestamp("2024-03-07T06:00Z")


def test_tv27_reverse_energy_only_without_solar_and_the_event_dates_it() -> None:
    daily = pd.DataFrame(
        {
            "service_point_id": ["A", "A", "A", "A", "S"],
            "meter_id": ["MA"] * 4 + ["MS"],
            "channel": "kwh_received",
            "read_day": DAYS[:4] + DAYS[:1],
            "total": [0.0, 0.0, 0.4, 0.0, 5.0],  # TV-27: flag at the third interval
        }
    )
    sps = pd.DataFrame({"service_point_id": ["A", "S"], "commodity": "electric", "has_solar": [False, True]})
    events = pd.DataFrame(
        {
            "service_point_id": ["A"],
            "meter_id": ["MA"],
            "event_at": [pd.Timestamp("2024-03-03T14:45Z")],
            "event_type": ["reverse_flow"],
        }
    )
    out = ev.reverse_flow(daily, events, sps, START, END, P)
    assert out["service_point_id"].tolist() == ["A"] and out["volume"].tolist() == [0.4]
    assert out["start_at"].iloc[0] == pd.Timestamp("2024-03-03T14:45Z")
    assert out["evidence"].iloc[0]["days_with_received_energy"] == 1
    no_event = ev.reverse_flow(daily, events.iloc[0:0], sps, START, END, P)
    assert no_event["start_at"].iloc[0] == START[DAYS[2]] and no_event["strength"].iloc[0] == 0.8


def test_register_disagreement_and_repeated_estimation_from_the_queue() -> None:
    exceptions = pd.DataFrame(
        {
            "service_point_id": ["A", "A", "B", "C", "C"],
            "meter_id": ["MA", "MA", "MB", "MC", "MC"],
            "read_day": [DAYS[1], DAYS[2], DAYS[0], DAYS[3], DAYS[4]],
            "rule": [
                "sum_check",
                "multiplier_mismatch",
                "sum_check",
                "prolonged_estimation",
                "prolonged_estimation",
            ],
        }
    )
    reg = ev.register_interval_disagreement(exceptions, START, END, P).set_index("service_point_id")
    assert reg.loc["A", "strength"] == pytest.approx(0.40) and reg.loc["B", "strength"] == pytest.approx(0.35)
    assert reg.loc["A", "start_at"] == START[DAYS[1]]
    daily = pd.DataFrame(
        {
            "service_point_id": "C",
            "meter_id": "MC",
            "channel": "kwh_delivered",
            "read_day": DAYS[:3],
            "intervals": 96,
            "estimated_intervals": [60, 96, 10],  # two days mostly estimated, one not
        }
    )
    main = pd.Series({"C": "kwh_delivered"})
    est = ev.repeated_estimation(daily, exceptions, main, START, END, P)
    assert est["service_point_id"].tolist() == ["C"] and est["evidence"].iloc[0] == {"estimated_days": 4}
    assert ev.repeated_estimation(daily, exceptions.iloc[:3], main, START, END, P).empty  # 2 days: too few
