"""The real-time path against the store on both backends: a pushed delivery is validated on only
the meter-days it touched, its versions reach the outbox in the same transaction, and the
dispatcher delivers them to a real HTTP receiver that fails on command."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import outbox
from smartmdm_pipelines.services.dispatch import Dispatcher, retry_after_seconds
from smartmdm_pipelines.services.outbox import PushTarget
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.cis_stub import CisStub
from smartmdm_pipelines_tests.realtime.helpers import body, master_data

DAY = dt.date(2024, 3, 12)
METERS = ["M1", "M2", "M3"]


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


@pytest.fixture
def push_env(monkeypatch):
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/unused")
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)


def dispatcher(store: Store, stub: CisStub, **kw) -> Dispatcher:
    kw = {"batch_size": 50, "timeout": 2.0, "backoff_base": 0.01, "backoff_cap": 0.05} | kw
    return Dispatcher(store, PushTarget("cis", stub.url, stub.token), **kw)


def outbox_rows(store: Store) -> pd.DataFrame:
    return store.read_frame("SELECT * FROM outbox ORDER BY seq")


def test_push_validates_only_touched_meter_days_and_queues_them(store: Store, config, push_env) -> None:
    master_data(store, METERS)
    summary = ingest_body(store, config, "he1", body(["M1"], range(0, 40)), "http")
    assert (summary.status, summary.interval_reads, summary.rejected_rows) == ("loaded", 40, 0)
    registry = store.read_frame("SELECT channel, rows_in, rows_loaded, vee_at FROM headend_files")
    assert registry["channel"].tolist() == ["http"] and registry["vee_at"].isna().all()

    run = validate_pending(store, config)
    assert run.deliveries == [summary.file_id] and run.days == [DAY.isoformat()] and run.meter_days == 1
    assert set(store.read_frame("SELECT DISTINCT meter_id FROM intervals")["meter_id"]) == {"M1"}
    rows = outbox_rows(store)
    assert len(rows) == 40 and set(rows["status"]) == {"valid"} and rows["message_id"].is_unique
    assert set(rows["account_id"]) == {"A-M1"} and set(rows["service_point_id"]) == {"SP-M1"}
    assert store.read_frame("SELECT vee_at FROM headend_files")["vee_at"].notna().all()
    assert validate_pending(store, config).deliveries == []  # nothing left

    # identical bytes again: a duplicate, nothing new to validate or push
    again = ingest_body(store, config, "he1", body(["M1"], range(0, 40)), "mqtt")
    assert again.status == "duplicate" and again.duplicate_of == summary.file_id
    assert len(outbox_rows(store)) == 40


def test_daily_run_after_the_real_time_path_writes_nothing_new(store: Store, config, push_env) -> None:
    master_data(store, METERS)
    for meter in METERS:
        ingest_body(store, config, "he1", body([meter], range(0, 96)), "http")
    validate_pending(store, config)
    versions = store.count("intervals")
    assert versions == 3 * 96
    daily = run_day(store, DAY, config)
    assert (daily.validation_versions, daily.estimation_versions) == (0, 0)
    assert store.count("intervals") == versions and len(outbox_rows(store)) == versions


def test_late_read_gets_a_new_version_and_a_new_message_id(store: Store, config, push_env) -> None:
    master_data(store, ["M1"])
    gap = [s for s in range(96) if s not in (40, 41)]
    ingest_body(store, config, "he1", body(["M1"], gap), "http")
    validate_pending(store, config)
    first = outbox_rows(store)
    est = first[first["status"].eq("estimated")]
    assert len(est) == 2, first["status"].value_counts()
    ingest_body(store, config, "he1", body(["M1"], [40, 41], {("M1", 40): 0.71, ("M1", 41): 0.72}), "http")
    validate_pending(store, config)
    later = outbox_rows(store).iloc[len(first) :]
    assert later["status"].tolist() == ["valid", "valid"] and later["value"].tolist() == [0.71, 0.72]
    assert (later["version"].to_numpy() > est["version"].to_numpy()).all()
    assert not set(later["message_id"]) & set(first["message_id"])
    # the same content gives the same id
    assert outbox.message_ids(later) == later["message_id"].tolist()


def test_dispatcher_survives_failures_without_losing_or_renaming(store: Store, config, push_env) -> None:
    master_data(store, METERS)
    ingest_body(store, config, "he1", body(METERS, range(0, 60)), "http")
    validate_pending(store, config)
    queued = outbox_rows(store)
    with CisStub(token="s3cret") as stub:
        d = dispatcher(store, stub)
        d.target = PushTarget("cis", stub.url, "s3cret")
        stub.fail_codes = [503, 503, 500, 429]
        stub.retry_after = "0"
        stub.slow_seconds, stub.slow_requests = 3.0, 1  # one client timeout
        keys = []
        for _ in range(30):
            attempt = d.step()
            if attempt.idle:
                break
            keys.append(attempt)
        assert d.step().idle
        got = stub.message_ids()
    assert sorted(got) == sorted(queued["message_id"])  # every record, each once (no failure was accepted)
    assert stub.unauthorised == 0
    # the failed attempts re-sent the very same batch: one Idempotency-Key per batch
    batch_keys = [b["key"] for b in stub.batches]
    assert len(batch_keys) == len(set(batch_keys)) == -(-len(queued) // 50)
    status = outbox.status(store)
    assert (status.pending, status.delivered, status.dead_lettered) == (0, len(queued), 0)
    first = store.read_frame("SELECT attempts FROM outbox ORDER BY seq LIMIT 1")["attempts"].iloc[0]
    assert first == 6  # 4 refusals, a timeout, then the delivery
    # ordering per meter-channel: interval ends ascend in receipt order
    recs = pd.DataFrame(stub.records())
    for _, group in recs.groupby(["meter_id", "channel"]):
        assert group["interval_end"].is_monotonic_increasing
    r = recs.iloc[0]
    assert r["interval_end"].endswith("+00:00") and r["unit"] == "kWh" and r["account_id"].startswith("A-")


def test_refused_record_is_dead_lettered_alone_and_replayable(store: Store, config, push_env) -> None:
    master_data(store, METERS)
    ingest_body(store, config, "he1", body(METERS, range(0, 20)), "http")
    validate_pending(store, config)
    queued = outbox_rows(store)
    bad = queued["message_id"].iloc[17]
    with CisStub() as stub:
        stub.refuse_ids = {bad}
        d = dispatcher(store, stub, batch_size=25)
        while not d.step().idle:
            pass
        assert sorted(stub.message_ids()) == sorted(set(queued["message_id"]) - {bad})
        dead = outbox.dead_letters(store)
        assert dead["message_id"].tolist() == [bad]
        assert (
            dead["last_error"].iloc[0].startswith("HTTP 400")
            and "unknown meter" in dead["last_error"].iloc[0]
        )
        assert outbox.status(store).dead_lettered == 1

        stub.refuse_ids = set()
        assert outbox.replay(store) == 1
        while not d.step().idle:
            pass
        assert sorted(stub.message_ids()) == sorted(queued["message_id"])
    assert outbox.status(store).dead_lettered == 0


def test_an_outage_holds_records_until_the_receiver_is_back(store: Store, config, push_env) -> None:
    master_data(store, ["M1"])
    ingest_body(store, config, "he1", body(["M1"], range(0, 10)), "http")
    validate_pending(store, config)
    with CisStub() as stub:
        stub.outage = True
        d = dispatcher(store, stub)
        waits = [d.step().wait_seconds for _ in range(5)]
        assert all(w > 0 for w in waits) and stub.batches == []
        st = outbox.status(store)
        assert st.pending == 10 and st.oldest_pending_age_seconds >= 0
        stub.outage = False
        assert d.drain(max_seconds=10) == 10
        assert len(stub.message_ids()) == 10


def test_no_destination_configured_queues_nothing(store: Store, config, monkeypatch) -> None:
    monkeypatch.delenv("SMARTMDM_CIS_PUSH_URL", raising=False)
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)
    master_data(store, ["M1"])
    ingest_body(store, config, "he1", body(["M1"], range(0, 10)), "http")
    # the ten received quarter-hours; the day's later ones are its future, not gaps: not versioned yet
    assert validate_pending(store, config).validation_versions == 10
    assert store.count("outbox") == 0


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_records_are_the_push_contracts_json_types() -> None:
    """Each outbox row as its JSON record: plain ints, a float or null value, nulls for what is
    missing, interval ends in ISO 8601 with their UTC offset."""
    frame = pd.DataFrame(
        {
            "message_id": ["m1", "m2", "m3"],
            "meter_id": ["E1", "E2", "E1"],
            "service_point_id": ["SP1", None, "SP1"],
            "account_id": ["A-1", float("nan"), "A-1"],
            "channel": ["kwh_delivered"] * 3,
            "interval_end": pd.to_datetime(
                ["2024-03-12T05:15:00Z", "2024-03-12T05:15:00Z", "2024-03-12T05:30:00Z"], utc=True
            ),
            "interval_seconds": [900.0, float("nan"), 900.0],
            "value": [0.25, float("nan"), 1.0],
            "unit": ["kWh", "kWh", None],
            "status": ["valid", "estimated", "valid"],
            "quality": ["2.0.0", None, "2.0.0"],
            "version": [1, 3, 2],
            "seq": [7, 8, 9],  # not part of a record
        }
    )
    got = outbox.records(frame)
    assert got == [
        {
            "message_id": "m1", "meter_id": "E1", "service_point_id": "SP1", "account_id": "A-1",
            "channel": "kwh_delivered", "interval_end": "2024-03-12T05:15:00+00:00", "interval_seconds": 900,
            "value": 0.25, "unit": "kWh", "status": "valid", "quality": "2.0.0", "version": 1,
        },
        {
            "message_id": "m2", "meter_id": "E2", "service_point_id": None, "account_id": None,
            "channel": "kwh_delivered", "interval_end": "2024-03-12T05:15:00+00:00", "interval_seconds": None,
            "value": None, "unit": "kWh", "status": "estimated", "quality": None, "version": 3,
        },
        {
            "message_id": "m3", "meter_id": "E1", "service_point_id": "SP1", "account_id": "A-1",
            "channel": "kwh_delivered", "interval_end": "2024-03-12T05:30:00+00:00", "interval_seconds": 900,
            "value": 1.0, "unit": None, "status": "valid", "quality": "2.0.0", "version": 2,
        },
    ]  # fmt: skip
    assert [type(r["version"]) for r in got] == [int, int, int] and type(got[0]["interval_seconds"]) is int
    assert outbox.records(frame.iloc[:0]) == []
