"""An account world for the portal API tests: two accounts on Chicago service points with
15-minute electric intervals over the 2024 fall-back day, some estimated and edited."""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

from smartmdm_pipelines.config import default_config
from smartmdm_pipelines.server.app import create_app
from smartmdm_pipelines.server.portal_auth import issue_token
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.services.billing_reference import tariff_frames
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.store import Store

KEY = "portal-test-signing-key-" + "x" * 24
TZ = "America/Chicago"
FIRST = pd.Timestamp("2024-10-01")  # local days loaded: 2024-10-01 .. 2024-11-10
LAST = pd.Timestamp("2024-11-10")
ACCOUNTS = {"A1": ("SP-1", "M1"), "A2": ("SP-2", "M2")}


def value(i: int) -> float:
    return round(0.2 + 0.05 * (i % 8), 3)


def seed(store: Store, with_tariffs: bool = True) -> pd.DataFrame:
    """Master data and current intervals; returns the version-1 intervals of M1."""
    meters = [m for _, m in ACCOUNTS.values()]
    sps = [sp for sp, _ in ACCOUNTS.values()]
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            {
                "meter_id": meters,
                "kind": "ami",
                "commodity": "electric",
                "role": "customer",
                "channels": "kwh_delivered;kwh_received",
                "unit": "kWh",
                "interval_seconds": 900,
                "multiplier": 1.0,
            }
        ),
    )
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            {
                "service_point_id": sps,
                "commodity": "electric",
                "timezone": TZ,
                "rate_code": "E-RES",
                "status": "active",
                "has_solar": False,
            }
        ),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            {
                "meter_id": meters,
                "service_point_id": sps,
                "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                "multiplier": 1.0,
            }
        ),
    )
    store.bulk_insert(
        "accounts",
        pd.DataFrame(
            {"account_id": list(ACCOUNTS), "service_point_id": sps, "move_in": pd.Timestamp("2020-01-01")}
        ),
    )
    start = FIRST.tz_localize(TZ).tz_convert("UTC")
    end = (LAST + pd.Timedelta(days=1)).tz_localize(TZ).tz_convert("UTC")
    ends = pd.date_range(start, end, freq="15min", inclusive="right")
    frames = []
    for k, meter in enumerate(meters):
        f = pd.DataFrame(
            {
                "meter_id": meter,
                "channel": "kwh_delivered",
                "interval_end": ends,
                "version": 1,
                "interval_seconds": 900,
                "value": [value(i) * (1 + k) for i in range(len(ends))],
                "unit": "kWh",
                "status": "valid",
                "read_day": ends.tz_convert(TZ).normalize().tz_localize(None),
                "created_by": "test",
                "created_at": pd.Timestamp("2024-12-01T00:00Z"),
            }
        )
        frames.append(f)
    m1 = frames[0]
    # the received channel must never show up as usage
    frames.append(m1.assign(channel="kwh_received", value=100.0))
    write_intervals(store, pd.concat(frames, ignore_index=True))
    if with_tariffs:
        for table, frame in tariff_frames(default_config(), pd.Timestamp("2024-12-01T00:00Z")).items():
            store.bulk_insert(table, frame)
    return m1


def add_version(store: Store, rows: pd.DataFrame, status: str, value: float | None, version: int = 2) -> None:
    write_intervals(store, rows.assign(version=version, status=status, value=value, created_by="test-v2"))


def write_intervals(store: Store, rows: pd.DataFrame) -> None:
    """Write interval versions the way the store's writers do: with the hourly rollup refreshed
    for the meter-days written, in the same transaction."""
    with store.begin() as conn:
        store.bulk_insert("intervals", rows, conn)
        usage_rollup.refresh_written(conn, rows)


def client(store: Store, monkeypatch, rate: str = "0") -> TestClient:
    monkeypatch.setenv("SMARTMDM_API_SIGNING_KEY", KEY)
    monkeypatch.setenv("SMARTMDM_API_RATE_LIMIT", rate)
    settings = ServerSettings(config=default_config(), store_url=store.url, workers=False, mqtt_host=None)
    app = create_app(settings, Runtime(settings, store))
    return TestClient(app)


def token(scope: str = "customer", *accounts: str, ttl: int = 3600) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(scope, list(accounts), ttl=ttl, key=KEY)}
