"""A small utility written straight into the store for the revenue-protection tests: daily usage of
electric and water service points over four weeks, with a theft of each kind and its look-alikes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.store.store import Store

TZ = "America/Chicago"
FIRST = dt.date(2024, 3, 1)
DAYS = 28
AS_OF = FIRST + dt.timedelta(days=DAYS - 1)  # 2024-03-28
NORMAL_E = [f"SP-E{i:02d}" for i in range(12)]
NORMAL_W = [f"SP-W{i:02d}" for i in range(6)]
# the thefts, and look-alikes that must not become cases
DROP = "SP-DROP"  # tamper event, then 70 % less from day 15
VACANT_USE = "SP-VACUSE"  # moved out on day 10, the use goes on at the same level
VACANT_OK = "SP-VACOK"  # moved out on day 10, standby use only (8 %)
REVERSE = "SP-REV"  # energy received on days 20-22, no solar
SOLAR = "SP-SOLAR"  # received energy with solar: legitimate
STOPPED = "SP-WSTOP"  # water meter reads zero from day 20 while zone Z1's losses rise by its use
AWAY = "SP-WAWAY"  # zero from day 20 in zone Z2 whose losses do not move (a vacation)


def day(i: int) -> dt.date:
    return FIRST + dt.timedelta(days=i)


def _sp(sp: str, commodity: str, rate: str, zone: str | None = None, solar: bool = False) -> dict:
    return {
        "service_point_id": sp,
        "commodity": commodity,
        "timezone": TZ,
        "rate_code": rate,
        "billing_cycle": "C01",
        "zone_id": zone,
        "customer_class": "residential",
        "has_solar": solar,
        "status": "active",
    }


def build(store: Store, seed: int = 7) -> None:
    """Write master data, daily usage, events and zone balances of the scenario."""
    rng = np.random.default_rng(seed)
    electric = [*NORMAL_E, DROP, VACANT_USE, VACANT_OK, REVERSE, SOLAR]
    water = [*NORMAL_W, STOPPED, AWAY]
    sps = [_sp(s, "electric", "E-RES-NEM" if s == SOLAR else "E-RES", solar=s == SOLAR) for s in electric]
    sps += [_sp(s, "water", "W-RES", zone="Z1" if i % 2 == 0 else "Z2") for i, s in enumerate(water)]
    sps[-2]["zone_id"], sps[-1]["zone_id"] = "Z1", "Z2"
    store.bulk_insert("service_points", pd.DataFrame(sps))
    meter = {s: "M-" + s[3:] for s in electric + water}
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            [
                {
                    "meter_id": meter[s],
                    "kind": "ami",
                    "commodity": "electric" if s in electric else "water",
                    "channels": "kwh_delivered" if s in electric else "water",
                    "unit": "kWh" if s in electric else "gal",
                    "interval_seconds": 900 if s in electric else 3600,
                }
                for s in meter
            ]
        ),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            [
                {
                    "meter_id": meter[s],
                    "service_point_id": s,
                    "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                }
                for s in meter
            ]
        ),
    )
    accounts = [
        {"account_id": f"A-{s[3:]}", "service_point_id": s, "move_in": dt.date(2019, 5, 1), "move_out": None}
        for s in meter
    ]
    for a in accounts:
        if a["service_point_id"] in (VACANT_USE, VACANT_OK):
            a["move_out"] = day(9)  # the last day of service: vacant from day 10
    store.bulk_insert("accounts", pd.DataFrame(accounts))

    rows = []
    for s in meter:
        base = 20.0 if s in electric else 230.0
        values = base * rng.uniform(0.85, 1.15, DAYS)
        if s == DROP:
            values[15:] *= 0.3
        if s == VACANT_OK:
            values[10:] *= 0.08
        if s in (STOPPED, AWAY):
            values[20:] = 0.0
        channel = "kwh_delivered" if s in electric else "water"
        rows += [
            {
                "meter_id": meter[s],
                "channel": channel,
                "read_day": day(i),
                "total": round(float(v), 3),
                "max_value": None,
                "intervals": 96 if s in electric else 24,
                "valid_intervals": 96 if s in electric else 24,
                "estimated_intervals": 0,
                "has_outage": False,
                "unit": "kWh" if s in electric else "gal",
            }
            for i, v in enumerate(values)
        ]
    rows += _received_rows(meter)
    store.bulk_insert("daily_usage", pd.DataFrame(rows))
    store.bulk_insert(
        "meter_events",
        pd.DataFrame(
            [
                {
                    "file_id": 1,
                    "line": 2,
                    "meter_id": meter[DROP],
                    "event_at": pd.Timestamp(f"{day(15)}T15:10Z"),
                    "event_type": "tamper",
                    "source_code": "3.12.0.257",
                    "read_day": day(15),
                }
            ]
        ),
    )
    zone_rows = []
    for zone in ("Z1", "Z2"):
        for i in range(DAYS):
            loss = 2000.0 + 40.0 * np.sin(i)
            if zone == "Z1" and i >= 20:
                loss += 230.0  # the stopped meter's water still flows through the zone
            start = pd.Timestamp(day(i)).tz_localize(TZ).tz_convert("UTC")
            zone_rows.append(
                {
                    "zone_id": zone,
                    "interval_end": start + pd.Timedelta(days=1),
                    "interval_seconds": 86400,
                    "input_volume": 4000.0 + loss,
                    "metered_volume": 4000.0,
                    "loss_volume": loss,
                    "unit": "gal",
                    "read_day": day(i),
                }
            )
    store.bulk_insert("zone_balances", pd.DataFrame(zone_rows))


def _received_rows(meter: dict[str, str], only: tuple[str, ...] = (REVERSE, SOLAR)) -> list[dict]:
    """Received energy: three days on the meter without solar, every day on the solar one."""
    rows = []
    for s, first in ((REVERSE, 20), (SOLAR, 0)):
        if s not in only:
            continue
        rows += [
            {
                "meter_id": meter[s],
                "channel": "kwh_received",
                "read_day": day(i),
                "total": 6.5,
                "intervals": 96,
                "valid_intervals": 96,
                "estimated_intervals": 0,
                "has_outage": False,
                "unit": "kWh",
            }
            for i in range(first, min(first + 3, DAYS) if s == REVERSE else DAYS)
        ]
    return rows


def build_received(store: Store) -> None:
    """Write the reversed meter's received energy again (after a test removed it)."""
    store.bulk_insert("daily_usage", pd.DataFrame(_received_rows({REVERSE: "M-REV"}, only=(REVERSE,))))
