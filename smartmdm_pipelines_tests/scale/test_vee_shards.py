"""A day validated in meter shards writes what the unsharded day writes (both backends)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.vee.shards import Shard, meters_in, shard_of
from smartmdm_pipelines.lib.check_gate import INTERVAL_ESTIMATES_GX
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.services.vee_shards import run_day_sharded
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.scale.utility import assert_same, load, simulate, snapshot


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return simulate(tmp_path_factory.mktemp("shards_sim"))


def test_shards_partition_the_meters_stably() -> None:
    ids = [f"M{i:04d}" for i in range(200)]
    shards = [meters_in(ids, Shard(i, 3)) for i in range(3)]
    assert sorted(sum(shards, [])) == ids  # each meter in exactly one shard
    assert all(len(s) > 40 for s in shards)  # and the hash spreads them
    assert shard_of(ids, 3).tolist() == shard_of(list(reversed(ids)), 3).tolist()[::-1]
    with pytest.raises(ValueError, match="outside 0..2"):
        Shard(3, 3)


def test_sharded_days_write_what_the_unsharded_days_write(
    sim: Path, store_url: str, tmp_path: Path, duckdb_url: str
) -> None:
    cfg = load_config(data_dir=tmp_path / "data")
    whole, sharded = Store(duckdb_url.replace("store.duckdb", "whole.duckdb")), Store(store_url)
    try:
        days = load(whole, sim, tmp_path / "data")
        assert load(sharded, sim, tmp_path / "data") == days
        for day in days:  # in order: a day's estimates use the days before it
            run_day(whole, day, cfg)
            runs = run_day_sharded(sharded, day, cfg, 3)
            assert len(runs) == 3
        expected, got = snapshot(whole), snapshot(sharded)
        # the whole-day profile reached the shards: class-profile estimates exist and agree
        methods = expected["intervals"]["estimation_method"]
        assert methods.eq("class_profile").any()
        assert_same(expected, got)
    finally:
        whole.dispose()
        sharded.dispose()


def _try(store: Store, key: str, shared: bool = False) -> bool:
    """Whether another session could take lock ``key`` now (without waiting)."""
    fn = "pg_try_advisory_xact_lock_shared" if shared else "pg_try_advisory_xact_lock"
    with store.engine.begin() as conn:
        return bool(conn.exec_driver_sql(f"SELECT {fn}(hashtextextended(%(k)s, 0))", {"k": key}).scalar())


def test_a_shard_lock_lets_other_shards_in_and_keeps_whole_day_writers_out(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        with store.begin_locked("vee_day:2024-03-08:shard:0/2", within="vee_day:2024-03-08"):
            assert _try(store, "vee_day:2024-03-08:shard:1/2")  # another shard of the day
            assert _try(store, "vee_day:2024-03-08", shared=True)  # … which holds the day shared
            assert not _try(store, "vee_day:2024-03-08")  # a whole-day writer waits
            assert not _try(store, "vee_day:2024-03-08:shard:0/2")  # the same shard waits
        assert _try(store, "vee_day:2024-03-08")  # released at commit
    finally:
        store.dispose()


def test_the_sharded_job_in_process_records_the_daily_partitions(
    sim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    cfg = load_config(data_dir=data)
    whole, sharded = Store(duckdb_url.replace("store.duckdb", "whole.duckdb")), Store(duckdb_url)
    try:
        days = load(whole, sim, data)
        load(sharded, sim, data)
        for day in days:
            run_day(whole, day, cfg)
    finally:
        sharded.dispose()  # the job opens its own
    from smartmdm_pipelines.definitions import defs

    job = defs().get_job_def("vee_sharded_job")
    config = {"resources": {"vee_shards": {"config": {"count": 2}}}}
    with dg.instance_for_test() as instance:
        for day in days:
            result = job.execute_in_process(
                partition_key=day.isoformat(), run_config=config, instance=instance
            )
            assert result.success
            units = {e.step_key for e in result.all_events if e.is_step_success}
            assert {"vee_shard[shard_0]", "vee_shard[shard_1]", "vee_shard_profile[shard_1]"} <= units
        materialized = instance.get_materialized_partitions(dg.AssetKey("interval_estimates"))
        assert {d.isoformat() for d in days} <= set(materialized)
        # the billing close's gate sees each day's blocking GX evaluation, as after vee_job
        infos = instance.event_log_storage.get_asset_check_partition_info(
            [INTERVAL_ESTIMATES_GX], partition_keys=[d.isoformat() for d in days]
        )
        assert {i.partition_key for i in infos} == {d.isoformat() for d in days}
        assert all(i.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED for i in infos)
    expected = snapshot(whole)
    whole.dispose()
    got = Store(duckdb_url)
    try:
        assert_same(expected, snapshot(got))
    finally:
        got.dispose()
