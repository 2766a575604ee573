"""Unit tests of the pieces the generator relies on: interval grids, hashed noise, writers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from smartmdm_pipelines.simulate import noise
from smartmdm_pipelines.simulate.time_grid import build_grid, dst_days, iso_utc
from smartmdm_pipelines.simulate.writers import REGISTRY, get_writer
from smartmdm_pipelines.simulate.writers.base import SCHEMAS, Delivery


def test_grid_follows_local_days_through_spring_forward() -> None:
    grid = build_grid("America/Chicago", 900, dt.date(2024, 3, 8), 7)
    assert np.diff(grid.day_cols).tolist() == [96, 96, 92, 96, 96, 96, 96]
    assert iso_utc(grid.day_starts[0]) == "2024-03-08T06:00:00Z"  # CST midnight
    assert iso_utc(grid.day_starts[3]) == "2024-03-11T05:00:00Z"  # CDT midnight
    assert iso_utc(grid.ends[0]) == "2024-03-08T06:15:00Z"
    assert grid.ends[-1] == grid.day_starts[-1]
    assert (np.diff(grid.ends) == 900).all()
    assert grid.hour[grid.day_cols[3]] == pytest.approx(0.125)  # first quarter hour of a CDT day
    assert dst_days("America/Chicago", dt.date(2024, 3, 8), 7) == [(2, 82800)]


def test_grid_fall_back_and_daily_intervals() -> None:
    grid = build_grid("America/Chicago", 900, dt.date(2024, 11, 1), 4)
    assert np.diff(grid.day_cols).tolist() == [96, 96, 100, 96]
    hourly = build_grid("America/Chicago", 3600, dt.date(2024, 11, 1), 4)
    assert np.diff(hourly.day_cols).tolist() == [24, 24, 25, 24]
    daily = build_grid("America/Chicago", 86400, dt.date(2024, 11, 1), 4)
    assert [iso_utc(t) for t in daily.ends] == [
        "2024-11-02T05:00:00Z",
        "2024-11-03T05:00:00Z",
        "2024-11-04T06:00:00Z",
        "2024-11-05T06:00:00Z",
    ]
    assert dst_days("Europe/Berlin", dt.date(2024, 10, 24), 7) == [(3, 90000)]


def test_grid_in_a_half_hour_zone_and_holidays() -> None:
    grid = build_grid("Asia/Kolkata", 3600, dt.date(2024, 7, 1), 2, "IN")
    assert iso_utc(grid.ends[0]) == "2024-06-30T19:30:00Z"
    us = build_grid("America/Chicago", 3600, dt.date(2024, 7, 3), 3)
    off = us.off_day[us.day_cols[:-1]].tolist()
    assert off == [False, True, False]  # Independence Day


def test_noise_is_a_pure_function_of_its_coordinates() -> None:
    entities = np.arange(1000, dtype=np.int64)
    instants = np.arange(1_700_000_000, 1_700_000_000 + 96 * 900, 900, dtype=np.int64)
    full = noise.uniform(42, noise.LOAD, entities[:, None], instants[None, :])
    part = noise.uniform(42, noise.LOAD, entities[500:510, None], instants[None, 10:20])
    assert np.array_equal(full[500:510, 10:20], part)
    assert full.min() >= 0.0 and full.max() < 1.0
    assert abs(full.mean() - 0.5) < 0.01
    other_seed = noise.uniform(43, noise.LOAD, entities[:, None], instants[None, :])
    other_stream = noise.uniform(42, noise.CLOUD, entities[:, None], instants[None, :])
    assert abs(np.corrcoef(full.ravel(), other_seed.ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(full.ravel(), other_stream.ravel())[0, 1]) < 0.01
    a, b = noise.uniform_pair(1, 2, entities[:, None], instants[None, :])
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.01


def test_generic_csv_writer_appends_and_formats(tmp_path: Path) -> None:
    assert "generic_csv" in REGISTRY
    with pytest.raises(ValueError):
        get_writer("nem12-not-yet", tmp_path)
    writer = get_writer("generic_csv", tmp_path)
    delivery = Delivery("ami-east", "intervals", "20240308")
    assert writer.path_for(delivery) == "headend/ami-east_20240308_intervals.csv"
    redelivery = Delivery("ami-east", "intervals", "20240310", "redelivery")
    assert writer.path_for(redelivery) == "headend/ami-east_20240310_redelivery.csv"
    words = pa.array(["E1", "E2"])

    def table(values: list[float | None]) -> pa.Table:
        n = len(values)
        codes = pa.array(np.zeros(n, dtype=np.int32))
        return pa.table(
            {
                "meter_id": pa.DictionaryArray.from_arrays(pa.array(np.arange(n, dtype=np.int32) % 2), words),
                "channel": pa.DictionaryArray.from_arrays(codes, pa.array(["kwh_delivered"])),
                "interval_end": pa.array(np.full(n, 1710050400), pa.timestamp("s", tz="UTC")),
                "interval_seconds": pa.array(np.full(n, 900, dtype=np.int32)),
                "value": pa.array(values, pa.float64()),
                "unit": pa.DictionaryArray.from_arrays(codes, pa.array(["kWh"])),
                "quality": pa.DictionaryArray.from_arrays(codes, pa.array([""])),
            },
            schema=SCHEMAS["intervals"],
        )

    writer.write(delivery, table([0.412, None]))
    writer.write(delivery, table([48213.0]))
    writer.duplicate(delivery, Delivery("ami-east", "intervals", "20240308", "resend"))
    files = writer.close()
    assert files == [
        "headend/ami-east_20240308_intervals.csv",
        "headend/ami-east_20240308_intervals_resend.csv",
    ]
    text = (tmp_path / files[0]).read_text()
    assert text == (
        "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"
        "E1,kwh_delivered,2024-03-10T06:00:00Z,900,0.412,kWh,\n"
        "E2,kwh_delivered,2024-03-10T06:00:00Z,900,,kWh,\n"
        "E1,kwh_delivered,2024-03-10T06:00:00Z,900,48213,kWh,\n"
    )
    assert (tmp_path / files[1]).read_bytes() == (tmp_path / files[0]).read_bytes()
