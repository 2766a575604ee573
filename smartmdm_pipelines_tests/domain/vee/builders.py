"""Small, explicit VEE inputs for the reference test vectors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends
from smartmdm_pipelines.domain.vee.config import RuleSet, VeeConfig
from smartmdm_pipelines.domain.vee.day import DayInputs
from smartmdm_pipelines.domain.vee.estimate import estimate_day
from smartmdm_pipelines.domain.vee.validation import validate_day

DAY = dt.date(2024, 3, 5)  # a Tuesday


def meter(
    meter_id="M1",
    seconds=900,
    channels="kwh_delivered",
    kind="ami",
    commodity="electric",
    multiplier=1.0,
    dials=5,
    unit="kWh",
):
    return {
        "meter_id": meter_id,
        "kind": kind,
        "commodity": commodity,
        "channels": channels,
        "interval_seconds": seconds,
        "unit": unit,
        "multiplier": multiplier,
        "dials": dials,
    }


def day_reads(
    values, meter_id="M1", channel="kwh_delivered", day=DAY, tz="UTC", seconds=900, quality="", file_id=1
):
    """Reads for the day's grid; ``values`` maps slot index -> value (None = not received, NaN = no-read)."""
    ends = interval_ends(day, tz, seconds)
    rows = []
    for i, v in values.items():
        if v is None:
            continue
        rows.append(
            {
                "meter_id": meter_id,
                "channel": channel,
                "interval_end": ends[i],
                "interval_seconds": seconds,
                "value": v,
                "source_quality": "N" if isinstance(v, float) and np.isnan(v) else quality,
                "file_id": file_id,
                "line": i + 2,
            }
        )
    return pd.DataFrame(rows)


def full_day(value_fn, **kw):
    seconds = kw.get("seconds", 900)
    n = len(interval_ends(kw.get("day", DAY), kw.get("tz", "UTC"), seconds))
    return day_reads({i: value_fn(i) for i in range(n)}, **kw)


def inputs(meters, reads, day=DAY, tz="UTC", rules: RuleSet | None = None, **kw) -> DayInputs:
    config = VeeConfig(default=rules or RuleSet())
    return DayInputs(day=day, tz=tz, reads=reads, meters=pd.DataFrame(meters), config=config, **kw)


def run(inp: DayInputs):
    validated = validate_day(inp)
    return validated, estimate_day(validated, inp)


def history_from(reads: pd.DataFrame, status="valid", failed_rules=None) -> pd.DataFrame:
    h = reads[["meter_id", "channel", "interval_end", "interval_seconds", "value"]].copy()
    h["status"] = status
    h["failed_rules"] = failed_rules
    h["estimation_method"] = None
    return h
