"""Holiday calendars for like-day estimation and TOU schedules.

NERC's six off-peak holidays (New Year's Day, Memorial Day, Independence Day, Labor Day,
Thanksgiving Day, Christmas Day) are taken from the ``holidays`` package's US calendar;
a holiday falling on a Sunday is observed on the Monday after (NERC does not shift
Saturday holidays).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

NERC_NAMES = (
    "New Year's Day",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Thanksgiving",
    "Christmas Day",
)


@lru_cache(maxsize=64)
def nerc_holidays(first_year: int, last_year: int) -> frozenset[dt.date]:
    days: set[dt.date] = set()
    us = holidays.US(years=range(first_year, last_year + 1), observed=False)
    for day, name in us.items():
        if any(name.startswith(n) for n in NERC_NAMES):
            days.add(day + dt.timedelta(days=1) if day.weekday() == 6 else day)
    return frozenset(days)


def holidays_for(calendar: str, first_year: int, last_year: int) -> frozenset[dt.date]:
    """'NERC' (default), 'none', or a country code of the holidays package (e.g. 'US', 'CA')."""
    if calendar.upper() == "NERC":
        return nerc_holidays(first_year, last_year)
    if calendar.lower() == "none":
        return frozenset()
    return frozenset(holidays.country_holidays(calendar, years=range(first_year, last_year + 1)).keys())
