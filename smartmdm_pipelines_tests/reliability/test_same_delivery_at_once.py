"""Issue 15, concurrency: the same bytes delivered twice at the same moment — an HTTP push and a
file drop, or two sensor runs — are loaded once, and neither caller sees an error.

A barrier holds both deliveries after their duplicate check and before either registers, so the
race the unique ``sha256`` must settle happens on every run, not by luck of timing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import ingestion
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.realtime import ingest_body
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file

pytestmark = pytest.mark.reliability


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


@pytest.fixture
def both_past_the_duplicate_check(monkeypatch):
    """Make every delivery wait, after its duplicate check, until the other one got there too."""
    barrier = threading.Barrier(2, timeout=30)
    parse = ingestion._Delivery.parse

    def parse_then_wait(self):
        parsed = parse(self)
        barrier.wait()
        return parsed

    monkeypatch.setattr(ingestion._Delivery, "parse", parse_then_wait)
    return barrier


def test_http_push_and_file_drop_of_the_same_bytes_load_once(
    store: Store, config, tmp_path, both_past_the_duplicate_check
) -> None:
    path = interval_file(tmp_path / "drop" / "ami-east_20240311.csv", ["E1", "E2"], "2024-03-11")
    body = path.read_bytes()
    with ThreadPoolExecutor(2) as pool:
        pushed = pool.submit(ingest_body, store, config, "ami-east", body, "http")
        dropped = pool.submit(ingest_file, store, path, config, archive=False)
        outcomes = [pushed.result(timeout=60), dropped.result(timeout=60)]
    assert sorted(o.status for o in outcomes) == ["duplicate", "loaded"]
    loaded = next(o for o in outcomes if o.status == "loaded")
    duplicate = next(o for o in outcomes if o.status == "duplicate")
    assert duplicate.duplicate_of == loaded.file_id
    assert store.count("headend_files") == 1
    assert store.count("raw_reads") == 2 * 96  # once, not twice


def test_two_ingests_of_one_file_load_it_once(
    store: Store, config, tmp_path, both_past_the_duplicate_check
) -> None:
    path = interval_file(tmp_path / "drop" / "ami-east_20240312.csv", ["E1"], "2024-03-12")
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(ingest_file, store, path, config, archive=False) for _ in range(2)]
        outcomes = [r.result(timeout=60) for r in runs]
    assert sorted(o.status for o in outcomes) == ["duplicate", "loaded"]
    assert store.count("raw_reads") == 96
    files = store.read_frame("SELECT rows_in, rows_loaded, rows_rejected FROM headend_files")
    assert len(files) == 1 and int(files["rows_loaded"].iloc[0]) == 96


def test_two_ingest_processes_of_one_file_load_it_once(store_url: str, tmp_path: Path) -> None:
    """Two `smartmdm ingest` processes started together on the same file (an operator and a cron
    job): whatever the interleaving — on PostgreSQL both race to register, on DuckDB the second
    waits for the first's file lock — the rows are loaded once, one process reports the load and
    the other a duplicate, and neither fails."""
    import json
    import os
    import subprocess
    import sys

    Store(store_url).dispose()  # the schema exists before either process starts
    path = interval_file(tmp_path / "drop" / "ami-east_20240311.csv", ["E1", "E2", "E3"], "2024-03-11")
    env = {
        **os.environ,
        "SMARTMDM_DATABASE_URL": store_url,
        "SMARTMDM_DATA_DIR": str(tmp_path / "data"),
        "SMARTMDM_STORE_BUSY_WAIT": "120",
    }
    command = [sys.executable, "-m", "smartmdm_pipelines.cli", "ingest", "--no-archive", str(path)]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "Traceback" not in err
    statuses = sorted(json.loads(out)["status"] for out, _ in outputs)  # one summary per file
    assert statuses == ["duplicate", "loaded"]
    check = Store(store_url)
    assert check.count("headend_files") == 1
    assert check.count("raw_reads") == 3 * 96
    check.dispose()
