"""Small builders for billing tests (tariffs and usage frames written in code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).with_name("fixtures")


def fixture(name: str) -> Path:
    return FIXTURES / name


def fixture_json(name: str) -> dict:
    return json.loads(fixture(name).read_text())


def schedule(fn) -> list[list[int]]:
    """12x24 schedule from fn(month 1..12, hour 0..23)."""
    return [[int(fn(m, h)) for h in range(24)] for m in range(1, 13)]


ZEROS = schedule(lambda m, h: 0)


def peak_tariff(off: float = 0.10, peak: float = 0.40) -> dict:
    """TV-11/TV-12 synthetic tariff: weekday hours 16-20 are period 1, everything else period 0."""
    return {
        "energyratestructure": [[{"rate": off}], [{"rate": peak}]],
        "energyweekdayschedule": schedule(lambda m, h: 1 if 16 <= h <= 20 else 0),
        "energyweekendschedule": ZEROS,
    }


def usage(start_local: str, values, tz: str, freq: str = "15min", **channels) -> pd.DataFrame:
    """Interval-ending usage: the first interval starts at ``start_local`` (local time)."""
    values = np.asarray(values, dtype="float64")
    step = pd.Timedelta(freq)
    first_end = pd.Timestamp(start_local, tz=tz) + step
    ends = pd.date_range(first_end.tz_convert("UTC"), periods=len(values), freq=freq)
    frame = pd.DataFrame({"interval_end": ends, "kwh": values})
    for name, col in channels.items():
        frame[name] = np.asarray(col, dtype="float64")
    return frame
