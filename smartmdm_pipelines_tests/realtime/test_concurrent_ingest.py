"""Pushed deliveries are parsed concurrently and written one at a time on DuckDB (the service's
write lock; PostgreSQL writes them concurrently): every distinct delivery is loaded once, and the
same bytes pushed at the same moment by two clients are loaded once and reported a duplicate
to the other."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.realtime import ingest_body
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data

METERS = [f"P{i}" for i in range(24)]


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def test_concurrent_pushes_load_each_delivery_once(store: Store, config) -> None:
    master_data(store, METERS)
    write_lock = threading.Lock() if store.backend == "duckdb" else None  # as server/runtime.py
    bodies = [body(METERS[i : i + 4], range(0, 8)) for i in range(0, len(METERS), 4)]
    bodies += [bodies[0], bodies[0]]  # the same bytes from two more clients at once
    barrier = threading.Barrier(len(bodies))
    results, errors = [], []

    def push(data: bytes) -> None:
        try:
            barrier.wait()
            results.append(ingest_body(store, config, "he1", data, "http", write_lock=write_lock))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    statuses = sorted(r.status for r in results)
    assert statuses == ["duplicate"] * 2 + ["loaded"] * 6
    loaded = {r.file_id for r in results if r.status == "loaded"}
    assert {r.duplicate_of for r in results if r.status == "duplicate"} <= loaded
    assert store.count("headend_files") == 6
    assert store.count("raw_reads") == len(METERS) * 8
    per_file = store.read_frame("SELECT file_id, count(*) AS n FROM raw_reads GROUP BY file_id")
    assert set(per_file["file_id"]) == loaded and set(per_file["n"]) == {32}
