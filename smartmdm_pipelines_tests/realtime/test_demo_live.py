"""The demo's live section on both backends: the service in-process on loopback, reads POSTed with a
bearer token over real HTTP, VEE on receipt, the records pushed to a real HTTP CIS stub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.demo_live import live_lines, run_live
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def test_live_section_pushes_the_posted_reads(store_url: str, config, monkeypatch) -> None:
    for name in ("SMARTMDM_CIS_PUSH_URL", "SMARTMDM_CIS_PUSH_TOKEN", "SMARTMDM_PORTAL_PUSH_URL"):
        monkeypatch.delenv(name, raising=False)
    store = Store(store_url)
    master_data(store, ["M1", "M2", "M3"])
    ingest_body(store, config, "he1", body(["M2", "M3"], range(96)), "pull")
    gap = [s for s in range(96) if s != 7]  # M1's day is not complete: not a demo meter
    ingest_body(store, config, "he1", body(["M1"], gap), "pull")
    validate_pending(store, config)
    assert store.count("outbox") == 0  # no push configured for the batch part
    store.dispose()

    live = run_live(config, store_url, timeout=60.0)
    assert live.ok, live.error
    assert live.http_status == 202 and live.day == "2024-03-13" and live.meters == ["M2", "M3"]
    assert (live.delivery["interval_reads"], live.delivery["rejected_rows"]) == (192, 0)
    assert live.posted == live.received == 192 and live.batches >= 1
    assert live.first_seconds is not None and live.all_seconds >= live.first_seconds
    assert os.environ.get("SMARTMDM_CIS_PUSH_URL") is None  # the environment is restored

    store = Store(store_url)
    try:
        queued = store.read_frame(
            "SELECT message_id, meter_id, state, read_day FROM outbox WHERE destination = 'cis'"
        )
        assert len(queued) == 192 and set(queued["state"]) == {"delivered"}
        assert set(queued["meter_id"]) == {"M2", "M3"}
        registry = store.read_frame("SELECT channel, rows_loaded FROM headend_files WHERE channel = 'http'")
        assert registry.values.tolist() == [["http", 192]]
    finally:
        store.dispose()
    assert live.outbox["pending"] == 0  # read once the dispatcher marked the batch delivered
    cis = next(d for d in live.outbox["destinations"] if d["destination"] == "cis")
    assert cis["delivered"] == 192
    sample = live.sample[0]
    assert sample["message_id"] in set(queued["message_id"]) and sample["status"] == "valid"

    lines = live_lines(live.to_dict())
    assert 3 <= len(lines) <= 6
    assert str(live.delivery["delivery_id"]) in lines[1] and "192 records" in lines[2]


def test_live_section_reports_a_failure_instead_of_hanging(duckdb_url: str, config) -> None:
    live = run_live(config, duckdb_url, timeout=10.0)  # an empty store: no demo meter
    assert not live.ok and "no validated intervals" in live.error
    lines = live_lines(live.to_dict())
    assert len(lines) == 2 and "did not complete" in lines[1]
