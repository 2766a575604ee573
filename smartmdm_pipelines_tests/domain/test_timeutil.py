"""DST-aware interval arithmetic: 92 / 100 / 96 quarter-hours (docs/vee_rules.md §8, T9)."""

import datetime as dt

import pandas as pd
import pytest

from smartmdm_pipelines.domain.timeutil import expected_intervals, interval_ends, local_date, operating_day


@pytest.mark.parametrize(
    ("day", "tz", "seconds", "count"),
    [
        (dt.date(2024, 3, 10), "America/Toronto", 900, 92),
        (dt.date(2024, 11, 3), "America/Toronto", 900, 100),
        (dt.date(2024, 11, 4), "America/Toronto", 900, 96),
        (dt.date(2024, 3, 10), "America/Chicago", 3600, 23),
        (dt.date(2024, 11, 3), "America/Chicago", 3600, 25),
        (dt.date(2024, 3, 31), "Europe/Berlin", 900, 92),
        (dt.date(2024, 3, 10), "UTC", 900, 96),
        (dt.date(2024, 3, 10), "America/Chicago", 86400, 1),
    ],
)
def test_expected_intervals_follow_the_local_day(day, tz, seconds, count) -> None:
    assert expected_intervals(day, tz, seconds) == count
    ends = interval_ends(day, tz, seconds)
    assert len(ends) == count
    assert ends.is_unique and str(ends.tz) == "UTC"


def test_fall_back_hour_is_two_distinct_utc_hours() -> None:
    ends = pd.Series(interval_ends(dt.date(2024, 11, 3), "America/Toronto", 900))
    local = ends.dt.tz_convert("America/Toronto")
    repeated = ends[(local.dt.hour == 1) & (local.dt.minute == 15)]
    assert len(repeated) == 2
    assert set(repeated.dt.hour) == {5, 6}  # 01:15 EDT = 05:15Z, 01:15 EST = 06:15Z


def test_interval_ending_at_midnight_belongs_to_the_day_before() -> None:
    ends = pd.Series(pd.to_datetime(["2024-03-11T05:00:00Z", "2024-03-11T05:15:00Z"], utc=True))
    days = operating_day(ends, 900, "America/Chicago").dt.date.tolist()
    assert days == [dt.date(2024, 3, 10), dt.date(2024, 3, 11)]


def test_every_interval_of_a_dst_day_maps_back_to_that_day() -> None:
    for day in (dt.date(2024, 3, 10), dt.date(2024, 11, 3)):
        ends = pd.Series(interval_ends(day, "America/Chicago", 900))
        assert set(operating_day(ends, 900, "America/Chicago").dt.date) == {day}


def test_local_date_of_instants() -> None:
    instants = pd.Series(pd.to_datetime(["2024-03-10T05:59:00Z", "2024-03-10T06:00:00Z"], utc=True))
    assert local_date(instants, "America/Chicago").dt.date.tolist() == [
        dt.date(2024, 3, 9),
        dt.date(2024, 3, 10),
    ]


def test_a_register_read_at_midnight_closes_the_day_before() -> None:
    from smartmdm_pipelines.domain.timeutil import register_day

    reads = pd.Series(
        pd.to_datetime(["2024-03-10T06:00:00Z", "2024-03-10T06:00:01Z", "2024-03-10T20:00:00Z"], utc=True)
    )
    assert register_day(reads, "America/Chicago").dt.date.tolist() == [
        dt.date(2024, 3, 9),
        dt.date(2024, 3, 10),
        dt.date(2024, 3, 10),
    ]


def test_a_daily_interval_on_a_dst_day_belongs_to_that_day() -> None:
    # the 23-hour local day 2024-03-10 ends at 05:00Z on the 11th; the head-end still says 86400 s
    ends = pd.Series(
        pd.to_datetime(["2024-03-10T06:00:00Z", "2024-03-11T05:00:00Z", "2024-11-04T06:00:00Z"], utc=True)
    )
    days = operating_day(ends, 86400, "America/Chicago").dt.date.tolist()
    assert days == [dt.date(2024, 3, 9), dt.date(2024, 3, 10), dt.date(2024, 11, 3)]
