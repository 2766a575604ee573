"""The real-time path in Dagster: the push_outbox monitor's observation and backlog check, and the
runless observations the service reports per VEE pass."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.defs.realtime.assets import CHECK, PUSH_OUTBOX, push_outbox_monitor
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.server.dagster_events import Reporter
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data, utility_yaml


def _queue(url: str, data: Path, monkeypatch) -> None:
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/unused")
    store = Store(url)
    master_data(store, ["M1"])
    cfg = load_config(data_dir=data)
    ingest_body(store, cfg, "he1", body(["M1"], range(0, 6)), "http")
    validate_pending(store, cfg)
    store.dispose()


def _evaluate(instance):
    resources = {
        "store": StoreResource.from_environment(),
        "utility": UtilityConfigResource.from_environment(),
    }
    return push_outbox_monitor(dg.build_sensor_context(instance=instance, resources=resources))


def test_monitor_observes_the_backlog_and_fails_its_check_when_old(
    store_env: Path, instance, monkeypatch
) -> None:
    url = os.environ["SMARTMDM_DATABASE_URL"]
    monkeypatch.setenv("SMARTMDM_CONFIG", str(utility_yaml(store_env, {"port": 9})))  # no service there
    _queue(url, store_env, monkeypatch)
    fresh = _evaluate(instance)
    observation, check = fresh.asset_events
    assert observation.asset_key == PUSH_OUTBOX and observation.metadata["pending"].value == 6
    assert check.check_name == CHECK and check.passed

    store = Store(url)  # the records have waited an hour
    store.execute(
        "UPDATE outbox SET created_at = :t", {"t": pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)}
    )
    store.dispose()
    stale = _evaluate(instance)
    check = stale.asset_events[1]
    assert not check.passed and "6 records wait" in check.description


def test_service_reports_runless_observations(store_env: Path, instance, monkeypatch) -> None:
    url = os.environ["SMARTMDM_DATABASE_URL"]
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/unused")
    store = Store(url)
    master_data(store, ["M1"])
    cfg = load_config(data_dir=store_env)
    ingest_body(store, cfg, "he1", body(["M1"], range(0, 6)), "mqtt")
    run = validate_pending(store, cfg)
    store.dispose()
    Reporter(instance).delivery_validated(run)
    for key, field in (("raw_reads", "interval_reads"), ("validated_intervals", "validation_versions")):
        records = instance.fetch_observations(dg.AssetKey(key), limit=5).records
        assert len(records) == 1
        meta = records[0].asset_observation.metadata
        # six reads in, six versions out: real-time VEE versions the new reads, not the day's future
        assert meta[field].value == 6
        assert meta["latency_seconds"].value >= 0


def test_pull_sensor_per_configured_headend(mdm_env: Path, instance, httpserver, monkeypatch) -> None:
    from smartmdm_pipelines.defs.realtime.pull import pull_sensors
    from smartmdm_pipelines_tests.realtime.test_pull import HeadEnd

    monkeypatch.setenv("HE3_TOKEN", "pull-secret")
    httpserver.expect_request("/reads").respond_with_handler(HeadEnd(slots=8))
    pull = [{"source": "he3", "url": httpserver.url_for("/reads"), "token_env": "HE3_TOKEN", "page_size": 4}]
    monkeypatch.setenv("SMARTMDM_CONFIG", str(utility_yaml(mdm_env, {"port": 9, "pull": pull})))
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    master_data(store, ["M1"])
    store.dispose()
    sensors = list(pull_sensors().sensors)
    assert [s.name for s in sensors] == ["pull_headend_he3"]
    resources = {
        "store": StoreResource.from_environment(),
        "utility": UtilityConfigResource.from_environment(),
    }
    result = sensors[0](dg.build_sensor_context(instance=instance, resources=resources))
    meta = result.asset_events[0].metadata
    assert meta["interval_reads"].value == 8 and meta["deliveries"].value == 2 and meta["cursor"].value == "8"
    again = sensors[0](dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(again, dg.SkipReason) and "no new reads" in again.skip_message
