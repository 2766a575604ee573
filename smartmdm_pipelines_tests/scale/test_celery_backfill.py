"""Issue 14: a small VEE backfill (3 days × 2 meter shards) through Dagster's Celery executor,
on two Celery worker processes over RabbitMQ, with a PostgreSQL-backed Dagster instance (its own
database) and a PostgreSQL store, writes what the daily ``vee_job`` writes in-process.

RabbitMQ: ``SMARTMDM_TEST_AMQP_URL`` (default amqp://guest:guest@127.0.0.1:5672//); skipped
when unreachable unless CI=true. The test's tasks go to a queue of its own.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from pytest_postgresql.janitor import DatabaseJanitor

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.conftest import PG_HOST, PG_PASSWORD, PG_PORT, PG_USER
from smartmdm_pipelines_tests.scale import utility
from smartmdm_pipelines_tests.scale.celery_workers import WorkerError, Workers
from smartmdm_pipelines_tests.scale.utility import assert_same, load, simulate, snapshot

pytestmark = pytest.mark.postgres

BROKER = os.environ.get("SMARTMDM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REPO = Path(__file__).resolve().parents[2]
WORKERS = 2
SHARDS = 2
READY_SECONDS = 180  # workers import Dagster and the code location once
RUN_SECONDS = 600  # one day's run; a dead worker must fail the test, not hang it


def require_rabbitmq() -> None:
    url = sa.engine.make_url(BROKER.replace("amqp://", "postgresql://", 1))  # only host and port
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5672), timeout=3).close()
    except OSError as exc:
        message = f"RabbitMQ at {url.host}:{url.port or 5672} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the Celery test must run; .ci/run starts RabbitMQ)")
        pytest.skip(message)


@pytest.fixture
def instance_db(postgres_url: str) -> Iterator[str]:
    """A second fresh PostgreSQL database: the Dagster instance's (runs, event log, schedules)."""
    name = f"smartmdm_dagster_{uuid.uuid4().hex[:10]}"
    janitor = DatabaseJanitor(
        user=PG_USER, host=PG_HOST, port=PG_PORT, dbname=name, version="15", password=PG_PASSWORD or None
    )
    janitor.init()
    try:
        yield name
    finally:
        janitor.drop()


def dagster_home(folder: Path, db_name: str) -> Path:
    """DAGSTER_HOME with the repository's PostgreSQL storage block, values resolved."""
    storage = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["storage"]
    storage["postgres"]["postgres_db"].update(
        hostname=PG_HOST, port=PG_PORT, username=PG_USER, password=PG_PASSWORD, db_name=db_name
    )
    folder.mkdir(parents=True)
    (folder / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
    )
    return folder


def run_bounded(fn, seconds: float, workers: Workers):
    """``fn()`` in a thread, failing the test when it outlives ``seconds`` or a worker dies."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while thread.is_alive() and time.monotonic() < deadline:
        workers.check_alive()
        thread.join(timeout=1)
    if thread.is_alive():
        pytest.fail(f"the Celery run did not finish within {seconds:.0f} s:\n{workers.tail()}")
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_vee_backfill_on_two_celery_workers_matches_the_in_process_daily_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, instance_db: str, duckdb_url: str
) -> None:
    require_rabbitmq()
    sim = simulate(tmp_path / "sim")
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
    from smartmdm_pipelines.definitions import defs

    # the reference: the daily vee_job (unsharded asset) in-process, day by day, on a DuckDB store
    reference = Store(duckdb_url)
    days = load(reference, sim, data)
    reference.dispose()
    assert len(days) >= 3
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    vee_job = defs().resolve_job_def("vee_job")
    for day in days:
        assert vee_job.execute_in_process(partition_key=day.isoformat()).success

    # the same days through Celery: 2 workers, 2 shards a day, PostgreSQL store and instance
    store = Store(postgres_url)
    assert load(store, sim, data) == days
    store.dispose()
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", postgres_url)
    home = dagster_home(tmp_path / "dagster_home", instance_db)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = {**os.environ, "DAGSTER_HOME": str(home), "SMARTMDM_DATABASE_URL": postgres_url}
    workers = Workers(tmp_path / "workers", env, WORKERS, BROKER)
    try:
        workers.wait_ready(READY_SECONDS)
        run_config = {
            "execution": {
                "config": {
                    "broker": BROKER,
                    "backend": "rpc://",
                    "config_source": {"task_default_queue": workers.queue},
                }
            },
            "resources": {"vee_shards": {"config": {"count": SHARDS}}},
        }
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            runs = []
            for day in days:  # in order: a day's estimates use the days before it
                result = run_bounded(
                    lambda day=day: dg.execute_job(
                        dg.reconstructable(utility.celery_job),
                        instance=instance,
                        run_config=run_config,
                        tags={"dagster/partition": day.isoformat()},
                    ),
                    RUN_SECONDS,
                    workers,
                )
                assert result.success, workers.tail()
                runs.append(result.run_id)
            took = set()
            for run_id in runs:
                for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                    data_ = entry.dagster_event.engine_event_data
                    worker = data_.metadata.get("Celery worker") if data_ and data_.metadata else None
                    if worker is not None:
                        took.add(str(worker.value).split("@")[0])
            assert took == set(workers.names), f"steps ran on {took}"
            # the asset graph saw the days: the sharded runs recorded the daily partitions
            materialized = instance.get_materialized_partitions(dg.AssetKey("validated_intervals"))
            assert {d.isoformat() for d in days} <= set(materialized)
    except WorkerError as exc:
        pytest.fail(str(exc))
    finally:
        workers.stop()

    reference, got = Store(duckdb_url), Store(postgres_url)
    try:
        expected, actual = snapshot(reference), snapshot(got)
        assert expected["intervals"]["estimation_method"].eq("class_profile").any()
        assert_same(expected, actual)
    finally:
        reference.dispose()
        got.dispose()
