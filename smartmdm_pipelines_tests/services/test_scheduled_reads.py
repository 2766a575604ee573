"""Missing scheduled reads of manual/AMR meters against the store on both backends: estimated as
interval versions, idempotent, superseded by the late actual (a billed one asks for restatement)."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.scheduled_reads import estimate_missing_registers
from smartmdm_pipelines.store.store import Store

AS_OF = dt.date(2024, 3, 8)


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def master_data(store: Store) -> None:
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            [
                {"meter_id": "R1", "kind": "manual", "commodity": "electric", "channels": "kwh_delivered",
                 "unit": "kWh", "multiplier": 1.0, "dials": 5},
                {"meter_id": "R2", "kind": "amr", "commodity": "electric", "channels": "kwh_delivered",
                 "unit": "kWh", "multiplier": 2.0, "dials": 5},
            ]
        ),
    )  # fmt: skip
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            [
                {"service_point_id": f"SP{i}", "commodity": "electric", "timezone": "America/Chicago",
                 "billing_cycle": "C01", "customer_class": "residential", "status": "active", "has_solar": False}
                for i in (1, 2)
            ]
        ),
    )  # fmt: skip
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            [
                {"meter_id": f"R{i}", "service_point_id": f"SP{i}",
                 "installed_at": pd.Timestamp("2020-01-01T00:00Z"), "multiplier": m}
                for i, m in ((1, 1.0), (2, 2.0))
            ]
        ),
    )  # fmt: skip
    store.bulk_insert(
        "billing_cycles",
        pd.DataFrame(
            [
                {"cycle_id": "C01", "period_start": dt.date(2024, m - 1, 5), "period_end": dt.date(2024, m, 4),
                 "read_date": dt.date(2024, m, 5)}
                for m in (2, 3)
            ]
        ),
    )  # fmt: skip


def register_reads(store: Store, rows: list[tuple[str, str, float]], file_id: int = 1) -> None:
    frame = pd.DataFrame(
        [
            {"file_id": file_id, "line": i + 2, "meter_id": m, "channel": "kwh_delivered",
             "read_at": pd.Timestamp(t), "value": v, "unit": "kWh", "source_unit": "kWh",
             "source_quality": "", "read_day": pd.Timestamp(t).date()}
            for i, (m, t, v) in enumerate(rows)
        ]
    )  # fmt: skip
    store.bulk_insert("register_reads", frame)


def current(store: Store, meter: str) -> pd.DataFrame:
    return store.read_frame(
        "SELECT * FROM intervals WHERE meter_id = :m ORDER BY interval_end, version", {"m": meter}
    )


def test_missing_scheduled_reads_are_estimated_and_superseded(store: Store, config) -> None:
    master_data(store)
    register_reads(
        store,
        [
            ("R1", "2023-12-05T15:00Z", 10000.0),
            ("R1", "2024-01-05T15:00Z", 10300.0),
            ("R1", "2024-02-05T15:00Z", 10610.0),
            ("R2", "2024-02-05T16:00Z", 500.0),
        ],
    )
    summary = estimate_missing_registers(store, AS_OF, cfg=config)
    # Feb 5: both read; Mar 5: both missing
    assert (summary.scheduled_reads, summary.actual_reads, summary.estimated) == (4, 2, 2)
    assert summary.versions_written == 2 and summary.by_source == {"recent": 1, "class": 1}
    r1 = current(store, "R1").iloc[-1]
    adu = 610 / 62  # Dec 5 -> Feb 5
    days = (pd.Timestamp("2024-03-06T06:00Z") - pd.Timestamp("2024-02-05T15:00Z")) / pd.Timedelta(days=1)
    assert r1["value"] == np.floor(adu * days)  # consumption since the Feb read, multiplier 1
    assert r1["interval_end"] == pd.Timestamp("2024-03-06T06:00Z")  # end of the read date, Chicago
    assert pd.Timestamp(r1["read_day"]).date() == dt.date(2024, 3, 5)
    assert r1["interval_seconds"] == int(days * 86400)
    assert (r1["status"], r1["estimation_method"], r1["espi_quality"], r1["iec_quality"]) == (
        "estimated",
        "register_recent",
        8,
        "2.8.0",
    )
    assert r1["created_by"] == "vee:register_estimation" and r1["failed_rules"] == "missing_register_read"
    assert f"= register {10610 + np.floor(adu * days)}" in r1["reason"]
    r2 = current(store, "R2").iloc[-1]
    assert r2["estimation_method"] == "register_class"
    assert r2["value"] == pytest.approx(np.floor(adu / 2.0 * (days - 1 / 24)) * 2.0)

    again = estimate_missing_registers(store, AS_OF, cfg=config)
    assert again.versions_written == 0 and store.count("intervals") == 2

    # R1's estimate was billed; its actual read arrives late (inside the window): superseded
    store.execute("UPDATE intervals SET billed = TRUE WHERE meter_id = 'R1'")
    register_reads(store, [("R1", "2024-03-06T17:00Z", 10905.0)], file_id=2)
    third = estimate_missing_registers(store, AS_OF, cfg=config)
    # R1's new read also moves the class average R2's (unbilled) estimate uses: R2 gets a new version
    assert (third.superseded, third.restatements, third.versions_written) == (1, 1, 2)
    assert current(store, "R2")["version"].tolist() == [1, 2]
    last = current(store, "R1").iloc[-1]
    assert (last["version"], last["status"]) == (2, "missing") and np.isnan(last["value"])
    assert "actual register read 10905.0" in last["reason"]
    assert last["previous_value"] == pytest.approx(r1["value"])
    restate = store.read_frame("SELECT * FROM vee_exceptions")
    assert restate["rule"].tolist() == ["billed_estimate_replaced"] and restate["meter_id"].tolist() == ["R1"]
    assert estimate_missing_registers(store, AS_OF, cfg=config).versions_written == 0  # stable


def test_only_the_listed_meters_and_nothing_without_history(store: Store, config) -> None:
    master_data(store)
    summary = estimate_missing_registers(store, AS_OF, ["R2"], cfg=config)
    assert summary.scheduled_reads == 2 and summary.estimated == 0 and summary.versions_written == 0
    assert {u["reason"] for u in summary.unestimated} == {
        "scheduled read missing: no previous actual read to estimate from"
    }
