"""Pushed deliveries written together (group commit, ``services/realtime.IngestBatcher`` and
``ingestion.write_deliveries``): one transaction for the deliveries waiting, yet each keeps its own
``headend_files`` row, accounting (rows_in = loaded + rejected), rejected rows with their reasons
and sha256 idempotency; the same bytes twice in one batch load once; a delivery the store refuses
does not sink the others; an MQTT message is acknowledged only when its own rows are committed."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.server.mqtt import Subscriber
from smartmdm_pipelines.services.ingestion import FileSummary, PreparedDelivery, write_deliveries
from smartmdm_pipelines.services.realtime import IngestBatcher, _prepare_body, ingest_bodies, ingest_body
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data

METERS = [f"G{i}" for i in range(10)]


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def _registry(store: Store):
    return store.read_frame(
        "SELECT file_id, sha256, status, channel, rows_in, rows_loaded, rows_rejected, interval_reads "
        "FROM headend_files ORDER BY file_id"
    ).set_index("file_id")


def test_deliveries_written_together_keep_their_own_accounting(store: Store, config) -> None:
    master_data(store, METERS)
    earlier = body(METERS[8:10], range(0, 4))
    first = ingest_body(store, config, "he1", earlier, "http")
    good = [body(METERS[i : i + 2], range(0, 4)) for i in (0, 2)]
    bad_row = body(METERS[4:6], range(0, 4)) + b"G4,kwh_delivered,not-a-time,900,1.5,kWh,\n"
    fatal = b"\x00\x01\x02 no head-end format at all \xff\xfe\n"
    bodies = [good[0], good[1], bad_row, fatal, good[0], earlier]
    outcomes = ingest_bodies(store, config, [("he1", b, "mqtt", None) for b in bodies])

    assert all(isinstance(o, FileSummary) for o in outcomes), outcomes
    statuses = [o.status for o in outcomes]
    assert statuses == ["loaded", "loaded", "partially loaded", "rejected", "duplicate", "duplicate"]
    ids = [o.file_id for o in outcomes[:4]]
    assert ids == sorted(ids) and ids[0] > first.file_id  # registered in arrival order
    assert outcomes[4].duplicate_of == ids[0]  # the same bytes earlier in the same batch
    assert outcomes[5].duplicate_of == first.file_id  # bytes registered before the batch

    reg = _registry(store)
    assert list(reg.index) == [first.file_id, *ids]  # one row per delivery, none for the duplicates
    assert list(reg.loc[ids, "sha256"]) == [hashlib.sha256(b).hexdigest() for b in bodies[:4]]
    assert set(reg.loc[ids, "channel"]) == {"mqtt"}
    for file_id in ids[:3]:  # rows_in = loaded + rejected, per delivery
        row = reg.loc[file_id]
        assert row["rows_in"] == row["rows_loaded"] + row["rows_rejected"]
    assert list(reg.loc[ids, "rows_loaded"]) == [8, 8, 8, 0]
    assert list(reg.loc[ids, "rows_rejected"]) == [0, 0, 1, 1]
    per_file = store.read_frame("SELECT file_id, count(*) AS n FROM raw_reads GROUP BY file_id")
    assert dict(zip(per_file["file_id"], per_file["n"], strict=True)) == {
        first.file_id: 8,
        ids[0]: 8,
        ids[1]: 8,
        ids[2]: 8,
    }
    rejected = store.read_frame("SELECT file_id, reason FROM rejected_rows ORDER BY file_id")
    assert list(rejected["file_id"]) == [ids[2], ids[3]]  # each delivery's own, with its reason
    assert rejected["reason"].iloc[0].startswith("interval_end 'not-a-time'")
    assert rejected["reason"].iloc[1].startswith("file rejected")


def test_a_delivery_the_store_refuses_does_not_sink_the_others(store: Store, config) -> None:
    master_data(store, METERS)
    prepared = []
    for i in (0, 2, 4):
        ready = _prepare_body(store, config, "he1", body(METERS[i : i + 2], range(0, 4)), "http", None)
        assert isinstance(ready, PreparedDelivery)
        prepared.append(ready)
    prepared[1].parsed.intervals["meter_id"] = None  # raw_reads.meter_id is NOT NULL: refused

    outcomes = write_deliveries(store, config, prepared)

    assert isinstance(outcomes[1], Exception)
    assert [o.status for o in (outcomes[0], outcomes[2])] == ["loaded", "loaded"]
    reg = _registry(store)
    assert list(reg.index) == [outcomes[0].file_id, outcomes[2].file_id]
    assert prepared[1].key not in set(reg["sha256"])  # nothing of the refused delivery
    per_file = store.read_frame("SELECT file_id, count(*) AS n FROM raw_reads GROUP BY file_id ORDER BY 1")
    assert per_file["file_id"].tolist() == list(reg.index) and set(per_file["n"]) == {8}


def test_the_batcher_writes_the_deliveries_waiting_in_one_transaction(store: Store, config) -> None:
    master_data(store, METERS)
    write_lock = threading.Lock()
    batcher = IngestBatcher(store, config, write_lock)
    bodies = [body(METERS[i : i + 2], range(0, 4)) for i in (0, 2, 4, 6)]
    bodies.append(bodies[0])  # the same bytes from another client at the same moment
    results: list = [None] * len(bodies)

    def push(i: int) -> None:
        try:
            results[i] = ingest_body(store, config, "he1", bodies[i], "http", batcher=batcher)
        except BaseException as exc:  # noqa: BLE001 (asserted below)
            results[i] = exc

    with write_lock:  # a write in progress: every push parses, then waits for the next write
        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(batcher._waiting) < len(bodies):
            assert time.monotonic() < deadline, "the pushes never queued"
            time.sleep(0.01)
        assert all(r is None for r in results)  # nobody answered before its rows are committed
    for t in threads:
        t.join(timeout=60)

    assert batcher.transactions == 1
    assert sorted(r.status for r in results) == ["duplicate"] + ["loaded"] * 4
    assert results[4].duplicate_of == results[0].file_id
    assert store.count("headend_files") == 4 and store.count("raw_reads") == 4 * 8


class _Client:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def _message(mid: int, topic: str = "smartmdm/headend/he1/reads") -> SimpleNamespace:
    return SimpleNamespace(topic=topic, payload=f"delivery {mid}".encode(), qos=1, mid=mid)


def test_mqtt_acknowledges_only_the_messages_stored() -> None:
    stored: list[list] = []

    def handle_many(items):
        stored.append(items)
        return [
            FileSummary("a", "s", "csv", "loaded"),
            RuntimeError("refused"),
            FileSummary("b", "t", "csv", "loaded"),
        ]

    sub = Subscriber("127.0.0.1", 1, lambda s, b: None, handle_many=handle_many)
    sub.client = _Client()
    messages = [_message(0), _message(1), _message(2), _message(3, "smartmdm/other")]
    sub._store(messages)
    assert stored == [[("he1", b"delivery 0"), ("he1", b"delivery 1"), ("he1", b"delivery 2")]]  # together
    assert sub.client.acked == [0, 2, 3]  # the refused one stays unacknowledged (redelivered)

    def broken(items):
        raise RuntimeError("the store is down")

    sub = Subscriber("127.0.0.1", 1, lambda s, b: None, handle_many=broken)
    sub.client = _Client()
    sub._store([_message(0), _message(1)])
    assert sub.client.acked == []
