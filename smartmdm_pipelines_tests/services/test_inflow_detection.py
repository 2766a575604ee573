"""Inflow-only loss detection through the real store (DuckDB and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.water.inflow_events import InflowParams
from smartmdm_pipelines.services.inflow_detection import detect_inflow_events, event_id

from ..domain.water.synthetic import TZ, demand, hours, step, tank_zone

PARAMS = {
    "dma": InflowParams(lookback_days=90),
    "dma_tank": InflowParams(night_start_hour=0, night_end_hour=6, lookback_days=90),
}
DAYS = 100
GAL = 264.1720523581484  # gallons per m3
START = dt.date(2024, 1, 1)


def _zones(store, rows: list[dict]) -> None:
    base = {
        "name": None,
        "timezone": TZ,
        "parent_zone_id": None,
        "zone_class": "dma",
        "tank_level_meter_id": None,
        "tank_area_m2": None,
    }
    store.bulk_insert("zones", pd.DataFrame([{**base, **r} for r in rows]))


def _intervals(
    store,
    meter_id: str,
    hourly: pd.Series,
    unit: str = "gal",
    channel: str = "water",
    status: str = "valid",
    version: int = 1,
    minutes: int = 15,
) -> None:
    """Each known hour as intervals of ``minutes`` sharing its volume (a level meter: ``minutes=60``,
    the value as read); NaN hours are left out."""
    hourly = hourly.dropna()
    per_hour = 60 // minutes
    ends = np.concatenate(
        [hourly.index + pd.Timedelta(minutes=minutes * (k - per_hour + 1)) for k in range(per_hour)]
    )
    frame = pd.DataFrame(
        {"interval_end": pd.DatetimeIndex(ends), "value": np.tile(hourly.to_numpy() / per_hour, per_hour)}
    )
    frame = frame.sort_values("interval_end")
    frame = frame.assign(
        meter_id=meter_id,
        channel=channel,
        version=version,
        interval_seconds=60 * minutes,
        unit=unit,
        status=status,
        read_day=(frame["interval_end"] - pd.Timedelta(minutes=minutes)).dt.tz_convert(TZ).dt.date,
        created_by="test",
        created_at=pd.Timestamp("2024-06-01", tz="UTC") + pd.Timedelta(days=version),
    )
    store.bulk_insert("intervals", frame)


def _local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def _stored(store) -> pd.DataFrame:
    frame = store.read_frame("SELECT * FROM loss_events ORDER BY zone_id, start_at")
    frame["start_at"] = pd.to_datetime(frame["start_at"], utc=True)
    frame["end_at"] = pd.to_datetime(frame["end_at"], utc=True)
    return frame


def test_step_repair_ramp_gap_and_idempotent_rerun(store):
    index = hours(DAYS)
    burst = _local("2024-02-20 15:00")
    repair = _local("2024-03-18 09:00")
    onset = _local("2024-02-10 00:00")
    ramp = np.clip((index - onset) / pd.Timedelta(days=1), 0, 30) / 30
    gap = (index > _local("2024-03-01")) & (index <= _local("2024-03-04 07:00"))
    series = {
        "INL-STEP": demand(index, seed=1) + step(index, burst, 5.0, repair),
        "INL-RAMP": demand(index, seed=2) + 9.0 * ramp,
        "INL-GAP": np.where(gap, np.nan, demand(index, seed=3)),
    }
    _zones(
        store, [{"zone_id": z, "bulk_meter_ids": m} for z, m in zip(["ZS", "ZR", "ZG"], series, strict=True)]
    )
    for meter, values in series.items():
        _intervals(store, meter, pd.Series(values, index=index))
    # two customers in the gap zone, and the service point of its inlet meter (not a customer)
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            {"service_point_id": ["C1", "C2", "NET"], "commodity": "water", "timezone": TZ, "zone_id": "ZG"}
        ),
    )
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            {
                "meter_id": ["INL-GAP"],
                "kind": "ami",
                "commodity": "water",
                "role": "zone_bulk",
                "channels": "water",
            }
        ).assign(unit="gal", interval_seconds=900),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            {
                "meter_id": ["INL-GAP"],
                "service_point_id": ["NET"],
                "installed_at": [pd.Timestamp("2020-01-01", tz="UTC")],
            }
        ),
    )
    end = START + dt.timedelta(days=DAYS - 1)
    returned = detect_inflow_events(store, START + dt.timedelta(days=30), end, params=PARAMS)
    stored = _stored(store)
    assert len(stored) == len(returned) == 2
    step_ev = stored[stored["zone_id"] == "ZS"].iloc[0]
    assert step_ev["kind"] == "abrupt" and step_ev["source"] == "inflow"
    assert abs(step_ev["start_at"] - burst) <= pd.Timedelta(hours=1)
    assert abs(step_ev["end_at"] - repair) <= pd.Timedelta(hours=2) and step_ev["status"] == "ended"
    assert 4.0 < step_ev["rate"] < 6.0 and step_ev["unit"] == "gal"
    assert step_ev["event_id"] == event_id("ZS", "abrupt", step_ev["start_at"])
    evidence = json.loads(step_ev["evidence"])
    assert evidence["detector"] == "inflow" and evidence["repair"]["step"] < 0
    ramp_ev = stored[stored["zone_id"] == "ZR"].iloc[0]
    assert ramp_ev["kind"] == "gradual" and ramp_ev["status"] == "open"
    assert abs(ramp_ev["start_at"] - onset) <= pd.Timedelta(days=10)
    assert "ZG" not in set(stored["zone_id"])  # the three-day gap raised nothing

    first_detected = stored.set_index("event_id")["detected_at"]
    again = detect_inflow_events(store, START + dt.timedelta(days=30), end, params=PARAMS)
    restored = _stored(store)
    assert len(restored) == 2 and sorted(again["event_id"]) == sorted(restored["event_id"])
    assert (restored.set_index("event_id")["detected_at"] == first_detected).all()

    nights = store.read_frame("SELECT * FROM zone_night_flow WHERE zone_id = 'ZG' ORDER BY read_day")
    assert len(nights) == DAYS - 30
    assert nights["min_night_flow"].isna().sum() >= 2  # the gap's nights are unknown, not zero
    assert nights["completeness"].min() == 0.0
    allowance = 2 * 1.7 / 1000 * GAL  # two properties x 1.7 l/h, in gallons
    assert nights["legitimate_night_use"].to_numpy() == pytest.approx(allowance)
    assert (nights["excess_night_flow"] - (nights["min_night_flow"] - allowance)).abs().max() < 1e-9


def test_estimated_intervals_are_gaps_and_a_tank_fed_zone_works(store):
    index = hours(DAYS)
    area = 400.0
    at = _local("2024-03-05 13:00")
    use = demand(index, seed=4) + step(index, at, 6.0)  # m3; the store holds gallons
    pumped, levels = tank_zone(use, area)
    pumped = pumped * GAL
    _zones(
        store,
        [
            {
                "zone_id": "ZT",
                "bulk_meter_ids": "PUMP",
                "zone_class": "dma_tank",
                "tank_level_meter_id": "LVL",
                "tank_area_m2": area,
            }
        ],
    )
    _intervals(store, "PUMP", pd.Series(pumped, index=index))
    _intervals(store, "LVL", pd.Series(levels, index=index), unit="m", channel="level", minutes=60)
    detect_inflow_events(
        store, START + dt.timedelta(days=30), START + dt.timedelta(days=DAYS - 1), params=PARAMS
    )
    stored = _stored(store)
    assert list(stored["kind"]) == ["abrupt"]
    assert abs(stored.iloc[0]["start_at"] - at) <= pd.Timedelta(hours=6)
    assert 4.5 * GAL < stored.iloc[0]["rate"] < 7.5 * GAL  # gal/h, from pumped gallons and metre levels

    # a newer version marks the leak's days as estimated: those hours become gaps, the event goes
    # (the VEE's estimate repeats the past, it cannot carry the leak's start)
    days = (index > at - pd.Timedelta(days=1)) & (index <= at + pd.Timedelta(days=5))
    newer = pd.Series(np.where(days, 0.0, np.nan), index=index)
    _intervals(store, "PUMP", newer, status="estimated", version=2)
    rerun = detect_inflow_events(
        store, START + dt.timedelta(days=30), START + dt.timedelta(days=DAYS - 1), params=PARAMS
    )
    stored = _stored(store)
    assert len(stored) == len(rerun)
    assert all(abs(s - at) > pd.Timedelta(hours=6) for s in stored["start_at"]) or stored.empty


def test_unknown_zones_and_a_silent_inlet_write_no_event(store):
    assert detect_inflow_events(store, START, START, zone_ids=["NOPE"], params=PARAMS).empty
    _zones(store, [{"zone_id": "ZQ", "bulk_meter_ids": "SILENT"}])
    assert detect_inflow_events(store, START, START + dt.timedelta(days=2), params=PARAMS).empty
    assert store.count("loss_events") == 0
    nights = store.read_frame("SELECT * FROM zone_night_flow")
    assert len(nights) == 3 and nights["min_night_flow"].isna().all() and (nights["completeness"] == 0).all()
