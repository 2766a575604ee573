"""TOU calendar: interval-ending mapping (TV-11), holidays (TV-12, TV-14), DST days (TV-15)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.billing.tou import local_day_counts, resolve_holidays, tou_period
from smartmdm_pipelines.domain.billing.urdb import parse_urdb
from smartmdm_pipelines.domain.timeutil import expected_intervals
from smartmdm_pipelines_tests.domain.billing.helpers import peak_tariff

TZ = "America/Chicago"


def _tariff():
    return parse_urdb(peak_tariff())


def test_tv11_interval_ending_labels_map_to_the_start_hour() -> None:
    t = _tariff()
    labels = ["2027-07-07 16:00", "2027-07-07 16:15", "2027-07-07 21:00", "2027-07-07 21:15"]  # a Wednesday
    ends = pd.DatetimeIndex([pd.Timestamp(x, tz=TZ) for x in labels]).tz_convert("UTC")
    periods = tou_period(ends, 900, TZ, t.energy_weekday, t.energy_weekend, "NERC")
    assert periods.tolist() == [0, 1, 1, 0]


def _tv12(holidays) -> tuple[float, float, float]:
    t = _tariff()
    ends = pd.date_range(pd.Timestamp("2027-07-02 01:00", tz=TZ), periods=96, freq="h").tz_convert("UTC")
    periods = tou_period(ends, 3600, TZ, t.energy_weekday, t.energy_weekend, holidays)
    kwh = np.ones(96)
    off, peak = kwh[periods == 0].sum(), kwh[periods == 1].sum()
    return off, peak, off * 0.10 + peak * 0.40


def test_tv12_nerc_holiday_uses_the_weekend_schedule() -> None:
    off, peak, cost = _tv12("NERC")
    assert (off, peak) == (91, 5) and cost == pytest.approx(11.10, abs=1e-9)
    off, peak, cost = _tv12("none")
    assert (off, peak) == (86, 10) and cost == pytest.approx(12.60, abs=1e-9)
    off, peak, _ = _tv12([dt.date(2027, 7, 5)])  # an explicit per-tariff list works too
    assert (off, peak) == (91, 5)


def test_tv14_nerc_generator() -> None:
    assert sorted(resolve_holidays("NERC", 2027, 2027)) == [
        dt.date(2027, 1, 1), dt.date(2027, 5, 31), dt.date(2027, 7, 5),
        dt.date(2027, 9, 6), dt.date(2027, 11, 25), dt.date(2027, 12, 25),
    ]  # fmt: skip
    assert sorted(resolve_holidays("NERC", 2028, 2028)) == [
        dt.date(2028, 1, 1), dt.date(2028, 5, 29), dt.date(2028, 7, 4),
        dt.date(2028, 9, 4), dt.date(2028, 11, 23), dt.date(2028, 12, 25),
    ]  # fmt: skip


def test_tv15_dst_day_lengths_los_angeles_2027() -> None:
    tz = "America/Los_Angeles"
    start = pd.Timestamp("2027-03-13 00:15", tz=tz).tz_convert("UTC")
    ends = pd.date_range(start, pd.Timestamp("2027-11-09", tz=tz).tz_convert("UTC"), freq="15min")
    counts = local_day_counts(ends, 900, tz)
    assert counts[np.datetime64("2027-03-14")] == 92
    assert counts[np.datetime64("2027-11-07")] == 100
    assert counts[np.datetime64("2027-07-02")] == 96
    for day, n in ((dt.date(2027, 3, 14), 92), (dt.date(2027, 11, 7), 100), (dt.date(2027, 7, 2), 96)):
        assert expected_intervals(day, tz, 900) == n


def test_dst_days_use_local_clock_hours() -> None:
    """On the fall-back day hour 1 occurs twice; on spring-forward hour 2 never occurs."""
    tz = "America/Los_Angeles"
    t = parse_urdb(
        {
            "energyratestructure": [[{"rate": 0}] for _ in range(24)],
            "energyweekdayschedule": [list(range(24))] * 12,
            "energyweekendschedule": [list(range(24))] * 12,
        }
    )
    for day, hours in (("2027-03-14", 23), ("2027-11-07", 25)):
        first = pd.Timestamp(day, tz=tz) + pd.Timedelta(hours=1)
        nxt = pd.Timestamp(pd.Timestamp(day) + pd.Timedelta(days=1), tz=tz)
        ends = pd.date_range(first.tz_convert("UTC"), nxt.tz_convert("UTC"), freq="h")
        assert len(ends) == hours
        periods = tou_period(ends, 3600, tz, t.energy_weekday, t.energy_weekend, "none")
        counts = np.bincount(periods, minlength=24)
        if hours == 23:
            assert counts[2] == 0 and counts.sum() == 23
        else:
            assert counts[1] == 2 and counts.sum() == 25


def test_seasons_by_month_and_naive_input_rejected() -> None:
    t = parse_urdb(
        {
            "energyratestructure": [[{"rate": 1}], [{"rate": 2}]],
            "energyweekdayschedule": [[1] * 24 if 6 <= m <= 9 else [0] * 24 for m in range(1, 13)],
            "energyweekendschedule": [[0] * 24] * 12,
        }
    )
    ends = pd.DatetimeIndex(["2027-06-30 06:00", "2027-07-01 06:00"], tz="UTC")  # Wed, Thu
    assert tou_period(ends, 3600, TZ, t.energy_weekday, t.energy_weekend).tolist() == [1, 1]
    ends = pd.DatetimeIndex(["2027-05-31 18:00"], tz="UTC")  # Memorial Day: weekend schedule
    assert tou_period(ends, 3600, TZ, t.energy_weekday, t.energy_weekend).tolist() == [0]
    with pytest.raises(ValueError, match="timezone-aware"):
        tou_period(pd.DatetimeIndex(["2027-06-30 06:00"]), 3600, TZ, t.energy_weekday, t.energy_weekend)
