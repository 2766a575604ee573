"""A push is written to ``spool/tmp…/`` while it is parsed and loaded; a process killed meanwhile
leaves that folder behind (found by the crash-anywhere suite). The service sweeps such folders
when it starts, leaving fresh ones (another worker process may be writing them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.services.realtime import STALE_SPOOL_SECONDS, ingest_body, sweep_spool
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data


def _folder(spool: Path, name: str, age_seconds: float) -> Path:
    folder = spool / name
    folder.mkdir(parents=True)
    (folder / "push.csv").write_text("meter_id,channel\n")
    then = time.time() - age_seconds
    os.utime(folder, (then, then))
    return folder


def test_a_push_leaves_no_folder_and_a_stale_one_is_swept(store: Store, tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path / "data")
    master_data(store, ["S1", "S2"])
    summary = ingest_body(store, config, "he1", body(["S1", "S2"], range(0, 4)), "http")
    assert summary.status == "loaded"
    spool = config.data_dir / "spool"
    assert list(spool.iterdir()) == []  # the push's own folder went with it

    stale = _folder(spool, "tmpkilled1", STALE_SPOOL_SECONDS + 60)
    fresh = _folder(spool, "tmpwriting", 5)
    other = _folder(spool, "keep-me", STALE_SPOOL_SECONDS + 60)  # not a push folder
    assert sweep_spool(config) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()


def test_the_service_sweeps_the_spool_when_it_starts(duckdb_url: str, tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path / "data")
    stale = _folder(config.data_dir / "spool", "tmpkilled2", STALE_SPOOL_SECONDS + 60)
    # no MQTT, no push destinations, no Dagster reporting: the VEE worker alone
    settings = ServerSettings(config=config, store_url=duckdb_url, mqtt_host=None, report_to_dagster=False)
    runtime = Runtime(settings)
    try:
        runtime.start()
        assert not stale.exists()
    finally:
        runtime.stop()
