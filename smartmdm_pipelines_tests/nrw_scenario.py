"""Small hand-made water zones written straight into the store for the NRW tests.

Zone Z1 (parent) is fed by inlet meter B1 and feeds child zone Z2 through B2. Customers: C11 and
C12 in Z1, C21 in Z2. Hourly intervals on days 2024-03-04.. in America/Chicago (UTC-6). Every hour
B1 delivers 100 gal, B2 40 gal, C11 20, C12 25 (Z1 loses 100 - 40 - 45 = 15 gal/h), C21 30 (Z2
loses 10 gal/h). Optional: a leak added to B1 from an hour on, a missing B2 day, an estimated C12 hour.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.store.store import Store

TZ = "America/Chicago"
FIRST = dt.date(2024, 3, 4)
HOURLY = {"B1": 100.0, "B2": 40.0, "C11": 20.0, "C12": 25.0, "C21": 30.0}


def master_data(store: Store, zone_class: str | None = None) -> None:
    store.bulk_insert(
        "zones",
        pd.DataFrame(
            [
                {
                    "zone_id": "Z1",
                    "name": "Parent",
                    "timezone": TZ,
                    "bulk_meter_ids": "B1",
                    "parent_zone_id": None,
                    "zone_class": zone_class,
                },
                {
                    "zone_id": "Z2",
                    "name": "Child",
                    "timezone": TZ,
                    "bulk_meter_ids": "B2",
                    "parent_zone_id": "Z1",
                    "zone_class": zone_class,
                },
            ]
        ),
    )
    meters = pd.DataFrame(
        {
            "meter_id": list(HOURLY),
            "kind": "ami",
            "commodity": "water",
            "role": ["zone_bulk", "zone_bulk", "customer", "customer", "customer"],
            "channels": "water",
            "unit": "gal",
            "interval_seconds": 3600,
        }
    )
    store.bulk_insert("meters", meters)
    sps = pd.DataFrame(
        {
            "service_point_id": ["SP-B1", "SP-B2", "SP-C11", "SP-C12", "SP-C21"],
            "commodity": "water",
            "timezone": TZ,
            "zone_id": [None, None, "Z1", "Z1", "Z2"],
            "status": "active",
        }
    )
    store.bulk_insert("service_points", sps)
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            {
                "meter_id": list(HOURLY),
                "service_point_id": sps["service_point_id"],
                "installed_at": pd.Timestamp("2024-01-01", tz="UTC"),
            }
        ),
    )


def hours(days: int, first: dt.date = FIRST) -> pd.DatetimeIndex:
    start = pd.Timestamp(first).tz_localize(TZ).tz_convert("UTC")
    end = (pd.Timestamp(first) + pd.Timedelta(days=days)).tz_localize(TZ).tz_convert("UTC")
    return pd.date_range(start + pd.Timedelta(hours=1), end, freq="h")


def intervals(
    days: int,
    leak: tuple[pd.Timestamp, float] | None = None,
    noise: float = 0.0,
    missing_b2_day: dt.date | None = None,
    estimated_c12: pd.Timestamp | None = None,
    seed: int = 3,
) -> pd.DataFrame:
    """Current-version interval rows (version 1) of every meter."""
    rng = np.random.default_rng(seed)
    grid = hours(days)
    read_day = (grid - pd.Timedelta(hours=1)).tz_convert(TZ).date
    frames = []
    for meter, value in HOURLY.items():
        v = np.full(len(grid), value) + (rng.normal(0, noise, len(grid)) if noise and meter == "B1" else 0.0)
        if leak is not None and meter == "B1":
            v = v + np.where(grid - pd.Timedelta(hours=1) >= leak[0], leak[1], 0.0)
        status = np.full(len(grid), "valid", dtype=object)
        values = pd.Series(v)
        if meter == "B2" and missing_b2_day is not None:
            gone = read_day == missing_b2_day
            status[gone] = "missing"
            values[gone] = np.nan
        if meter == "C12" and estimated_c12 is not None:
            status[grid == estimated_c12] = "estimated"
        frames.append(
            pd.DataFrame(
                {
                    "meter_id": meter,
                    "channel": "water",
                    "interval_end": grid,
                    "version": 1,
                    "interval_seconds": 3600,
                    "value": values.to_numpy(),
                    "unit": "gal",
                    "status": status,
                    "read_day": read_day,
                    "created_by": "test",
                    "created_at": pd.Timestamp("2024-06-01", tz="UTC"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
