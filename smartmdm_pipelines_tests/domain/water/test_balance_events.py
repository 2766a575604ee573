"""Balance loss events on synthetic hourly balances: step timing, repair, ramp, gaps, estimates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.water.balance_events import detect_balance_events, event_id
from smartmdm_pipelines.domain.water.params import ZoneParams

TZ = "America/Chicago"
HOURS = 24 * 30
GRID = pd.date_range("2024-03-01 07:00", periods=HOURS, freq="h", tz="UTC")


def hourly(extra: np.ndarray | None = None, seed: int = 1, noise: float = 0.1) -> pd.DataFrame:
    """A zone whose background loss (150 gal/h, 35 % higher around 03:30 local) has 10 % noise."""
    rng = np.random.default_rng(seed)
    hour = (GRID - pd.Timedelta(hours=1)).tz_convert(TZ).hour.to_numpy()
    demand = 1500 * (1 + 0.6 * np.sin((hour - 6) / 24 * 2 * np.pi))
    loss = 150 * (1 + 0.35 * np.exp(-(((hour - 3.5) / 2.5) ** 2))) * rng.normal(1, noise, HOURS)
    if extra is not None:
        loss = loss + extra
    return pd.DataFrame(
        {
            "interval_end": GRID,
            "input_volume": demand + loss,
            "metered_volume": demand,
            "loss_volume": loss,
            "estimated_volume": 0.0,
            "complete": True,
            "unit": "gal",
        }
    )


def step(at: int, rate: float, until: int | None = None) -> np.ndarray:
    x = np.zeros(HOURS)
    x[at:until] = rate
    return x


def test_a_step_of_known_size_is_found_within_an_hour_of_its_start():
    at = 24 * 12 + 5
    events = detect_balance_events(hourly(step(at, 60.0)), "Z1", TZ, ZoneParams())
    assert len(events) == 1
    e = events.iloc[0]
    assert abs(e["start_at"] - (GRID[at] - pd.Timedelta(hours=1))) <= pd.Timedelta(hours=1)
    assert e["rate"] == pytest.approx(60.0, rel=0.15)
    assert e["status"] == "open" and pd.isna(e["end_at"])
    assert json.loads(e["evidence"])["shape"] == "step"
    assert e["event_id"] == event_id("balance", "Z1", e["start_at"])
    assert e["confidence"] >= 0.8


def test_a_repair_ends_the_event_and_the_volume_is_rate_times_duration():
    at, until = 24 * 10, 24 * 16
    events = detect_balance_events(hourly(step(at, 80.0, until)), "Z1", TZ, ZoneParams())
    assert len(events) == 1
    e = events.iloc[0]
    assert e["status"] == "ended"
    assert abs(e["end_at"] - (GRID[until] - pd.Timedelta(hours=1))) <= pd.Timedelta(hours=2)
    assert e["volume"] == pytest.approx(80.0 * (until - at), rel=0.1)


def test_a_burst_on_top_of_an_open_leak_is_a_second_event():
    extra = step(24 * 8, 60.0) + step(24 * 20 + 3, 2500.0, 24 * 20 + 9)
    events = detect_balance_events(hourly(extra), "Z1", TZ, ZoneParams())
    assert len(events) == 2
    leak, burst = events.iloc[0], events.iloc[1]
    assert leak["status"] == "open" and burst["status"] == "ended"
    assert burst["rate"] == pytest.approx(2500.0, rel=0.05)
    assert burst["start_at"] == GRID[24 * 20 + 3] - pd.Timedelta(hours=1)


def test_a_slow_rise_is_told_apart_from_a_step():
    x = np.zeros(HOURS)
    ramp = np.arange(HOURS - 24 * 10)
    x[24 * 10 :] = 150.0 * ramp / len(ramp)
    events = detect_balance_events(hourly(x), "Z1", TZ, ZoneParams())
    assert len(events) >= 1
    assert json.loads(events.iloc[0]["evidence"])["shape"] == "rise"


def test_a_gap_is_never_a_step_and_noise_raises_nothing():
    frame = hourly()
    gap = slice(24 * 12, 24 * 14)
    frame.loc[gap, "complete"] = False
    frame.loc[gap, "loss_volume"] = 5000.0  # what an incomplete balance might show
    assert detect_balance_events(frame, "Z1", TZ, ZoneParams()).empty
    for seed in range(5):
        assert detect_balance_events(hourly(seed=seed), "Z1", TZ, ZoneParams()).empty


def test_a_rise_the_estimated_volume_explains_is_suppressed():
    at, until = 24 * 12, 24 * 13
    frame = hourly(step(at, 300.0, until))
    frame.loc[at : until - 1, "estimated_volume"] = 400.0  # an estimated customer day, under-estimated
    assert detect_balance_events(frame, "Z1", TZ, ZoneParams()).empty
    frame.loc[at : until - 1, "estimated_volume"] = 20.0  # a little estimation cannot explain it
    assert len(detect_balance_events(frame, "Z1", TZ, ZoneParams())) == 1
