"""Issue 15, dependencies failing: PostgreSQL restarted while an ingestion or a VEE day is being
written.

The server is a private cluster of the test (``private_postgres.PrivateCluster``), restarted
with ``pg_ctl restart -m fast`` (every session terminated) at a known point *inside* the write
transaction — after the delivery's raw reads are inserted and before its events are, after a
VEE day's versions are written and before the transaction commits — so the fault hits the same
statement on every run. The write must fail with the driver's disconnect error and leave nothing
of itself behind; the same call on the same ``Store`` then succeeds (the pool replaces the dead
connections) and the store equals one that never saw the restart (the shared server).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_path
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.reliability.private_postgres import PrivateCluster
from smartmdm_pipelines_tests.services.test_forward_estimate import reads
from smartmdm_pipelines_tests.services.test_vee_service import master_data

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

DAY = dt.date(2024, 3, 12)
ALL = range(96)


@pytest.fixture
def cluster():
    c = PrivateCluster()
    yield c
    c.close()


@pytest.fixture
def restarted(cluster):
    store = Store(cluster.url)
    yield store
    store.dispose()


@pytest.fixture
def undisturbed(postgres_url):
    store = Store(postgres_url)
    yield store
    store.dispose()


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def _restart_before(store: Store, cluster: PrivateCluster, table: str, monkeypatch) -> list[str]:
    """Restart the server when ``store`` is about to bulk-insert into ``table`` (once)."""
    done: list[str] = []
    insert = store.bulk_insert

    def insert_or_restart(target, frame, conn=None):
        name = getattr(target, "name", target)
        if name == table and not done:
            cluster.restart("fast")
            done.append(name)
        return insert(target, frame, conn)

    monkeypatch.setattr(store, "bulk_insert", insert_or_restart)
    return done


def _content(store: Store, table: str, order: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = store.read_frame(f"SELECT * FROM {table} ORDER BY {order}")
    return frame.drop(columns=[c for c in drop if c in frame.columns]).reset_index(drop=True)


TIMES = ("file_id", "received_at", "loaded_at", "created_at", "archive_path")


def test_a_restart_inside_an_ingestion_loses_the_delivery_whole_and_a_retry_loads_it_once(
    restarted: Store, undisturbed: Store, cluster, config, tmp_path, monkeypatch
) -> None:
    path = reads(tmp_path / "ami-east_20240312.csv", DAY, {"M1": ALL, "M2": range(0, 96, 2)})
    restarts = _restart_before(restarted, cluster, "meter_events", monkeypatch)
    with pytest.raises(sa.exc.OperationalError, match="terminat|closed the connection|server"):
        ingest_path(restarted, path, config, archive=False)
    assert restarts == ["meter_events"]  # the fault hit inside the delivery's transaction
    for table in ("headend_files", "raw_reads", "register_reads", "meter_events", "rejected_rows"):
        assert restarted.count(table) == 0, table  # nothing of the delivery is left

    [retried] = ingest_path(restarted, path, config, archive=False)
    [clean] = ingest_path(undisturbed, path, config, archive=False)
    assert retried.status == clean.status == "loaded"
    for table, order in (("headend_files", "name"), ("raw_reads", "meter_id, interval_end")):
        pd.testing.assert_frame_equal(
            _content(restarted, table, order, TIMES), _content(undisturbed, table, order, TIMES)
        )
    assert restarted.count("raw_reads") == 96 + 48


def test_a_restart_inside_a_vee_day_keeps_the_current_intervals_and_a_retry_equals_an_undisturbed_run(
    restarted: Store, undisturbed: Store, cluster, config, tmp_path, monkeypatch
) -> None:
    week_before = DAY - dt.timedelta(days=7)
    late = reads(tmp_path / "ami-east_20240312_late.csv", DAY, {"M2": range(1, 96, 2)})
    for store in (restarted, undisturbed):
        master_data(store)
        ingest_path(
            store,
            reads(tmp_path / "ami-east_20240305.csv", week_before, {"M1": ALL, "M2": ALL}),
            config,
            archive=False,
        )
        ingest_path(
            store,
            reads(tmp_path / "ami-east_20240312.csv", DAY, {"M1": ALL, "M2": range(0, 96, 2)}),
            config,
            archive=False,
        )
        run_day(store, week_before, config)
        first = run_day(store, DAY, config)  # M2's odd intervals missing: estimated
        assert first.estimation_versions > 0
        ingest_path(store, late, config, archive=False)  # the actuals arrive: the next run replaces them
    before = _content(restarted, "intervals", "meter_id, channel, interval_end, version", TIMES)
    exceptions_before = _content(restarted, "vee_exceptions", "exception_id", ("created_at", "detected_at"))

    def restart(conn, now) -> None:  # after every version of the day is written, before the commit
        cluster.restart("fast")

    with pytest.raises(sa.exc.OperationalError):
        run_day(restarted, DAY, config, after_write=restart)
    pd.testing.assert_frame_equal(
        _content(restarted, "intervals", "meter_id, channel, interval_end, version", TIMES), before
    )  # the current intervals unchanged: no version of the interrupted run is left
    pd.testing.assert_frame_equal(
        _content(restarted, "vee_exceptions", "exception_id", ("created_at", "detected_at")),
        exceptions_before,
    )

    retried = run_day(restarted, DAY, config)
    clean = run_day(undisturbed, DAY, config)
    assert (retried.validation_versions, retried.estimation_versions) == (
        clean.validation_versions,
        clean.estimation_versions,
    )
    assert retried.validation_versions > 0
    order = "meter_id, channel, interval_end, version"
    pd.testing.assert_frame_equal(
        _content(restarted, "intervals", order, TIMES), _content(undisturbed, "intervals", order, TIMES)
    )
    for table, order in (("daily_usage", "meter_id, channel, read_day"), ("vee_exceptions", "exception_id")):
        pd.testing.assert_frame_equal(
            _content(restarted, table, order, (*TIMES, "detected_at", "resolved_at")),
            _content(undisturbed, table, order, (*TIMES, "detected_at", "resolved_at")),
        )


def test_ingest_command_with_the_server_down_is_one_line_exit_4_and_runs_once_it_is_back(
    cluster, tmp_path
) -> None:
    import os
    import subprocess
    import sys

    path = reads(tmp_path / "ami-east_20240312.csv", DAY, {"M1": ALL})
    env = {**os.environ, "SMARTMDM_DATABASE_URL": cluster.url, "SMARTMDM_DATA_DIR": str(tmp_path / "data")}
    env.pop("SMARTMDM_DEBUG", None)

    def ingest() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "smartmdm_pipelines.cli", "ingest", str(path), "--no-archive"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    cluster.stop()
    down = ingest()
    assert down.returncode == 4, down.stderr
    assert down.stderr.count("\n") == 1 and "the database is unavailable" in down.stderr
    assert "run the command again" in down.stderr and "Traceback" not in down.stderr
    cluster.start()
    env["SMARTMDM_DATABASE_URL"] = cluster.url.rsplit("/", 1)[0] + "/no_such_database"
    missing = ingest()  # not cured by running again: not reported as the database going away
    assert missing.returncode not in (0, 4) and "the database is unavailable" not in missing.stderr
    env["SMARTMDM_DATABASE_URL"] = cluster.url
    up = ingest()
    assert up.returncode == 0, up.stderr
    store = Store(cluster.url)
    try:
        assert store.count("raw_reads") == 96
    finally:
        store.dispose()


def test_a_dagster_vee_run_across_a_restart_fails_cleanly_and_a_re_execution_succeeds(
    restarted: Store, cluster, config, tmp_path, monkeypatch
) -> None:
    import dagster as dg

    from smartmdm_pipelines.definitions import defs
    from smartmdm_pipelines.services import vee as vee_service

    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", cluster.url)
    master_data(restarted)
    ingest_path(
        restarted,
        reads(tmp_path / "ami-east_20240312.csv", DAY, {"M1": ALL, "M2": ALL}),
        config,
        archive=False,
    )
    refresh = vee_service.usage_rollup.refresh
    restarts: list[str] = []

    def refresh_then_restart(
        conn, day, meters=None, **kwargs
    ):  # in the day's transaction, after the versions
        refresh(conn, day, meters, **kwargs)
        if not restarts:
            cluster.restart("fast")
            restarts.append(str(day))

    monkeypatch.setattr(vee_service.usage_rollup, "refresh", refresh_then_restart)
    job = defs().resolve_job_def("vee_job")
    with dg.instance_for_test() as instance:
        failed = job.execute_in_process(
            instance=instance, partition_key=DAY.isoformat(), raise_on_error=False
        )
        assert not failed.success and restarts == [DAY.isoformat()]
        [failure] = failed.get_step_failure_events()
        chain, error = [], failure.event_specific_data.error
        while error is not None:  # the step error wraps the driver's
            chain.append(f"{error.cls_name}: {error.message}")
            error = error.cause or error.context
        lost = ("server closed the connection", "terminating connection")
        assert any(c.startswith("OperationalError") and any(w in c for w in lost) for c in chain), chain
        assert (
            restarted.count("intervals") == 0 and restarted.count("daily_usage") == 0
        )  # nothing half-written
        again = job.execute_in_process(instance=instance, partition_key=DAY.isoformat(), raise_on_error=False)
    assert again.success
    current = restarted.read_frame(current_intervals_sql("read_day = :d", "meter_id, status"), {"d": DAY})
    assert len(current) == 2 * 96 and set(current["status"]) == {"valid"}
