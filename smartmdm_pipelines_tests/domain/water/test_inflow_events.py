"""The inflow-only detector on hand-made hourly series: steps, ramps, repairs, gaps, tanks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.water.inflow import (
    hour_index,
    hourly_volumes,
    tank_storage_change,
    zone_inflow,
)
from smartmdm_pipelines.domain.water.inflow_baseline import night_flow
from smartmdm_pipelines.domain.water.inflow_events import InflowParams, detect_zone_events, tank_noise_floor

from .synthetic import TZ, demand, hours, step, tank_zone

PARAMS = InflowParams()


def _detect(values: np.ndarray, index: pd.DatetimeIndex, **kw) -> pd.DataFrame:
    events, _ = detect_zone_events(pd.Series(values, index=index), TZ, PARAMS, "Z1", "m3", **kw)
    return events


def test_a_step_is_found_within_an_hour_of_its_start_with_its_rate():
    index = hours(70)
    at = pd.Timestamp("2024-02-20 15:00", tz=TZ).tz_convert("UTC")
    events = _detect(demand(index) + step(index, at, 4.0), index)
    assert list(events["kind"]) == ["abrupt"]
    ev = events.iloc[0]
    assert abs(ev["start_at"] - at) <= pd.Timedelta(hours=1)
    assert 3.2 < ev["rate"] < 4.8
    assert ev["status"] == "open" and pd.isna(ev["end_at"])
    hours_open = (index[-1] - ev["start_at"]) / pd.Timedelta(hours=1)
    assert ev["volume"] == pytest.approx(ev["rate"] * hours_open)
    assert 0.5 < ev["confidence"] <= 1.0
    assert ev["evidence"]["signal"] == "night_flow" and ev["evidence"]["timed_on"] == "hourly_residual"


def test_a_repair_ends_the_open_event():
    index = hours(90)
    at = pd.Timestamp("2024-02-10 09:00", tz=TZ).tz_convert("UTC")
    fixed = pd.Timestamp("2024-03-05 11:00", tz=TZ).tz_convert("UTC")
    events = _detect(demand(index) + step(index, at, 6.0, fixed), index)
    assert list(events["kind"]) == ["abrupt"]
    ev = events.iloc[0]
    assert ev["status"] == "ended"
    assert abs(ev["end_at"] - fixed) <= pd.Timedelta(hours=2)
    assert ev["volume"] == pytest.approx(ev["rate"] * (ev["end_at"] - ev["start_at"]) / pd.Timedelta(hours=1))


def test_a_ramp_is_a_gradual_event_not_a_step():
    index = hours(120)
    onset = pd.Timestamp("2024-02-15", tz=TZ).tz_convert("UTC")
    days = np.clip((index - onset) / pd.Timedelta(days=1), 0, 35) / 35
    events = _detect(demand(index) + 8.0 * days, index)
    assert list(events["kind"]) == ["gradual"]
    ev = events.iloc[0]
    assert abs(ev["start_at"] - onset) <= pd.Timedelta(days=10)
    assert ev["detected_day"] <= (onset + pd.Timedelta(days=21)).date()
    assert ev["rate"] > 4.0 and ev["volume"] > 0


def test_a_heat_wave_lifts_night_and_day_and_is_no_step_with_demand_adjust():
    """Two weeks of 30 % more demand (every hour, night use too) lift the night flow like a step; the
    day's demand lifts with it, so the night flow less its demand share stays flat."""
    index = hours(100)
    day = ((index - index[0]) // pd.Timedelta(days=1)).to_numpy()
    spell = np.where((day >= 50) & (day < 64), 1.3, 1.0)
    values = 8.0 + (demand(index) - 8.0) * spell
    assert _detect(values, index).empty
    plain, _ = detect_zone_events(
        pd.Series(values, index=index), TZ, replace(PARAMS, demand_adjust=False), "Z1", "m3"
    )
    assert list(plain["kind"]) == ["abrupt"]  # what the night flow alone says


def test_a_second_rise_after_the_first_settled_is_an_event_of_its_own():
    index = hours(170)
    t = (index - index[0]) / pd.Timedelta(days=1)
    ramps = 6.0 * np.clip((t - 45) / 30, 0, 1) + 6.0 * np.clip((t - 110) / 25, 0, 1)
    series = pd.Series(demand(index) + ramps, index=index)
    events, _ = detect_zone_events(series, TZ, PARAMS, "Z1", "m3")
    assert list(events["kind"]) == ["gradual", "gradual"]
    second = pd.Timestamp("2024-01-01", tz=TZ) + pd.Timedelta(days=110)
    assert abs(events.iloc[1]["start_at"] - second) <= pd.Timedelta(days=10)
    assert all(4.0 < r < 8.0 for r in events["rate"])  # each its own rate, not 12 on one event
    merged, _ = detect_zone_events(series, TZ, replace(PARAMS, settle_nights=0), "Z1", "m3")
    assert list(merged["kind"]) == ["gradual"] and merged.iloc[0]["rate"] > 10.0


def test_no_leak_no_event():
    index = hours(120)
    assert _detect(demand(index), index).empty


def test_a_gap_is_never_a_step():
    index = hours(80)
    values = demand(index)
    gap = (index > pd.Timestamp("2024-02-20", tz="UTC")) & (
        index <= pd.Timestamp("2024-02-23 07:00", tz="UTC")
    )
    values[gap] = np.nan
    values[
        (index > pd.Timestamp("2024-03-01 08:00", tz="UTC"))
        & (index <= pd.Timestamp("2024-03-01 11:00", tz="UTC"))
    ] = np.nan
    assert _detect(values, index).empty
    # the same gap around a real step: the step is still found, and after the gap
    at = pd.Timestamp("2024-02-21 14:00", tz="UTC")
    events = _detect(demand(index) + step(index, at, 5.0) + np.where(gap, np.nan, 0.0), index)
    assert list(events["kind"]) == ["abrupt"]
    assert events.iloc[0]["start_at"] >= pd.Timestamp("2024-02-19", tz="UTC")


def test_night_flow_is_the_window_mean_and_a_gap_makes_it_unknown():
    index = hours(3)
    values = pd.Series(np.arange(len(index), dtype="float64"), index=index)
    values.iloc[30] = np.nan  # day 2, local 05:00-06:00: outside the window
    values.iloc[27] = np.nan  # day 2, local 02:00-03:00: inside
    nights = night_flow(values, TZ)
    assert nights["night_flow"].iloc[0] == 2.5  # hours 02-03 and 03-04 local = positions 2, 3
    assert np.isnan(nights["night_flow"].iloc[1]) and nights["completeness"].iloc[1] == 0.5


def test_hourly_volumes_keep_gaps_and_zone_inflow_subtracts_children():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    ends = t0 + pd.to_timedelta(np.arange(1, 25) * 300, unit="s")  # two hours of 5-minute reads
    reads = pd.DataFrame(
        {"meter_id": "P", "interval_end": ends, "interval_seconds": 300, "value": np.full(24, 1.0)}
    )
    child = reads.assign(meter_id="C", value=0.25)
    reads = pd.concat([reads.drop(index=20), child])  # P misses one interval of the second hour
    index = hour_index(t0, t0 + pd.Timedelta(hours=2))
    volumes = hourly_volumes(reads, index)
    assert volumes.loc[index[0], "P"] == 12.0 and np.isnan(volumes.loc[index[1], "P"])
    zones = pd.DataFrame({"zone_id": ["A", "B"], "bulk_meter_ids": ["P", "C"], "parent_zone_id": [None, "A"]})
    inflow = zone_inflow(volumes, zones)
    assert inflow.loc[index[0], "A"] == 9.0 and inflow.loc[index[0], "B"] == 3.0
    assert np.isnan(inflow.loc[index[1], "A"]) and inflow.loc[index[1], "B"] == 3.0


def _tank_zone(index: pd.DatetimeIndex, use: np.ndarray, area: float) -> tuple[np.ndarray, pd.DataFrame]:
    pumped, levels = tank_zone(use, area)
    return pumped, pd.DataFrame({"meter_id": "L", "interval_end": index, "value": levels})


def test_a_tank_fed_zone_consumes_feed_minus_storage_and_1cm_levels_raise_no_event():
    index = hours(120)
    area = 400.0
    use = demand(index)
    pumped, levels = _tank_zone(index, use, area)
    storage = tank_storage_change(levels, index, area, "m3")
    consumption = pumped - storage.to_numpy()
    assert np.nanmax(np.abs(consumption - use)) <= area * 0.01 + 1e-9  # one level step per hour at most
    params = InflowParams(night_start_hour=0, night_end_hour=6)
    floor = tank_noise_floor(area, params, 1.0)
    events, _ = detect_zone_events(pd.Series(consumption, index=index), TZ, params, "T", "m3", floor)
    assert events.empty
    at = pd.Timestamp("2024-03-12 13:00", tz="UTC")
    leaky = use + step(index, at, 6.0)
    pumped, levels = _tank_zone(index, leaky, area)
    consumption = pumped - tank_storage_change(levels, index, area, "m3").to_numpy()
    events, _ = detect_zone_events(pd.Series(consumption, index=index), TZ, params, "T", "m3", floor)
    assert list(events["kind"]) == ["abrupt"]
    assert abs(events.iloc[0]["start_at"] - at) <= pd.Timedelta(hours=6)
