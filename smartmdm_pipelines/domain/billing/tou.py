"""TOU calendar: interval-ending UTC instants -> URDB 12x24 schedule periods, vectorised.

An interval (t - Δ, t] is looked up at the local clock hour it *starts* in (so the interval
ending 16:00 is hour 15). Month, weekday/weekend and holidays come from the local start
date; holidays use the weekend schedule. Local time is prevailing time, so spring-forward
and fall-back days simply have 23 and 25 clock hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from functools import lru_cache

import numpy as np
import pandas as pd
from holidays import US as USHolidays
from holidays import country_holidays

from smartmdm_pipelines.domain.calendar import NERC_NAMES, holidays_for

HolidaySpec = str | Iterable[dt.date] | None


def _as_index(instants: pd.Series | pd.DatetimeIndex | Iterable) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(instants)
    if idx.tz is None:
        raise ValueError("interval_end must be timezone-aware (UTC instants)")
    return idx


def local_start(
    interval_end: pd.Series | pd.DatetimeIndex, interval_seconds: int | np.ndarray | pd.Series, tz: str
) -> pd.DatetimeIndex:
    """Local (prevailing time) start instant of each interval."""
    end = _as_index(interval_end)
    seconds = np.asarray(interval_seconds, dtype="int64")
    return (end - pd.to_timedelta(seconds, unit="s")).tz_convert(tz)


def local_start_date(start: pd.DatetimeIndex) -> np.ndarray:
    """Local calendar date (``datetime64[D]``) of local instants."""
    return start.tz_localize(None).to_numpy().astype("datetime64[D]")


def resolve_holidays(spec: HolidaySpec, first_year: int, last_year: int) -> frozenset[dt.date]:
    """'NERC' (default), 'none', a ``holidays`` country code, or an explicit collection of dates."""
    if spec is None:
        return frozenset()
    if isinstance(spec, str):
        return holidays_for(spec, first_year, last_year)
    return frozenset(spec)


def holiday_names(calendar: str, first_year: int, last_year: int) -> dict[dt.date, str]:
    """The holidays of ``calendar`` with their names (NERC: Sunday holidays observed on Monday)."""
    return dict(_holiday_names(calendar, first_year, last_year))


@lru_cache(maxsize=32)
def _holiday_names(calendar: str, first_year: int, last_year: int) -> tuple[tuple[dt.date, str], ...]:
    return tuple(sorted(_names(calendar, first_year, last_year).items()))


def _names(calendar: str, first_year: int, last_year: int) -> dict[dt.date, str]:
    days = holidays_for(calendar, first_year, last_year)
    if not days:
        return {}
    years = range(first_year, last_year + 2)
    if calendar.upper() == "NERC":
        us = USHolidays(years=years, observed=False)
        out = {}
        for day in days:
            name = us.get(day)
            if name is None or not any(name.startswith(n) for n in NERC_NAMES):
                name = f"{us.get(day - dt.timedelta(days=1), 'Holiday')} (observed)"
            out[day] = name
        return out
    book = country_holidays(calendar, years=years)
    return {day: book.get(day, "Holiday") for day in days}


def is_weekend_or_holiday(start: pd.DatetimeIndex, holidays: HolidaySpec) -> np.ndarray:
    """True where the weekend schedule applies (Sat, Sun or a holiday), from local start instants."""
    weekend = np.asarray(start.dayofweek >= 5)
    if len(start) == 0:
        return weekend
    years = start.year
    days = resolve_holidays(holidays, int(years.min()), int(years.max()))
    if days:
        dates = local_start_date(start)
        hol = np.array(sorted(days), dtype="datetime64[D]")
        weekend = weekend | np.isin(dates, hol)
    return weekend


def schedule_lookup(
    month: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    weekday_sched: np.ndarray,
    weekend_sched: np.ndarray,
) -> np.ndarray:
    """Period index from months 1..12, hours 0..23 and the weekend flag (fancy indexing, no loop)."""
    m = np.asarray(month, dtype="int64") - 1
    h = np.asarray(hour, dtype="int64")
    wd = np.asarray(weekday_sched)[m, h]
    we = np.asarray(weekend_sched)[m, h]
    return np.where(np.asarray(weekend, dtype=bool), we, wd).astype("int64")


def tou_period(
    interval_end: pd.Series | pd.DatetimeIndex,
    interval_seconds: int | np.ndarray | pd.Series,
    tz: str,
    weekday: np.ndarray | list,
    weekend: np.ndarray | list,
    holidays: HolidaySpec | Collection[dt.date] = "NERC",
) -> np.ndarray:
    """The URDB period (0-based) of each interval, looked up at its local start hour."""
    start = local_start(interval_end, interval_seconds, tz)
    flag = is_weekend_or_holiday(start, holidays)
    return schedule_lookup(
        np.asarray(start.month), np.asarray(start.hour), flag, np.asarray(weekday), np.asarray(weekend)
    )


def local_day_counts(interval_end: pd.Series | pd.DatetimeIndex, interval_seconds: int, tz: str) -> pd.Series:
    """How many intervals start on each local date (92 / 100 / 96 for 15-min data on DST days)."""
    dates = local_start_date(local_start(interval_end, interval_seconds, tz))
    return pd.Series(dates).value_counts().sort_index()
