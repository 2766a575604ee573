"""VEE as operators see it in Dagster, on both backends: a day whose meters the master data does
not know yet, the CIS sync that requests it again, per-day metadata and check evaluations in a
backfill range, the exception queue asset and the typed launchpad config that resolves one."""

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.defs.test_ingest import run_requests, sensor_tick
from smartmdm_pipelines_tests.defs.test_vee import load_master_data, vee_tick
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER, interval_file

METERS_CSV = "meter_id,kind,commodity,role,channels,unit,interval_seconds,multiplier,dials\n"


@pytest.fixture
def definitions(store_env: Path) -> dg.Definitions:
    from smartmdm_pipelines.definitions import defs

    return defs()


def vee_runs(definitions, instance, tick) -> list[dg.ExecuteInProcessResult]:
    job = definitions.resolve_job_def("vee_job")
    return [
        job.execute_in_process(instance=instance, partition_key=r.partition_key, raise_on_error=False)
        for r in tick.run_requests
    ]


def store() -> Store:
    return Store(os.environ["SMARTMDM_DATABASE_URL"])


def day_file(path: Path, meter: str, day: str, spike_at: int | None = None, negative_at: int | None = None):
    """One Chicago day of 15-minute reads of ``meter`` (about 1 kWh, shaped), optionally a spike
    and a negative."""
    interval_file(path, [meter], day, value=1.0, shaped=True)
    if spike_at is None and negative_at is None:
        return path
    lines = path.read_text().splitlines()
    for slot, value in ((spike_at, "20.0"), (negative_at, "-3.0")):
        if slot is not None:
            fields = lines[1 + slot].split(",")
            fields[4] = value
            lines[1 + slot] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_day_of_unregistered_meters_completes_and_the_cis_sync_requests_it_again(
    store_env: Path, definitions, instance
) -> None:
    interval_file(store_env / "landing" / "ami-east_20240312.csv", ["E1", "E2"], "2024-03-12", shaped=True)
    assert all(r.success for r in run_requests(definitions, instance, sensor_tick(definitions, instance)))
    first = vee_tick(definitions, instance)
    [run] = vee_runs(definitions, instance, first)
    assert run.success  # no KeyError: the reads wait for the master data
    db = store()
    waiting = db.read_frame("SELECT meter_id, rule, status FROM vee_exceptions ORDER BY meter_id")
    assert waiting.to_dict(orient="records") == [
        {"meter_id": m, "rule": "unregistered_meter", "status": "open"} for m in ("E1", "E2")
    ]
    assert db.count("intervals") == 0

    cis = store_env / "cis"
    cis.mkdir(parents=True)
    (cis / "meters.csv").write_text(
        METERS_CSV + "".join(f"{m},ami,electric,customer,kwh_delivered,kWh,900,1,6\n" for m in ("E1", "E2"))
    )
    sync = definitions.resolve_job_def("cis_sync_job").execute_in_process(instance=instance)
    [mat] = sync.asset_materializations_for_node("cis_master_data")
    assert mat.metadata["vee_days"].value == ["2024-03-12"]
    again = vee_tick(definitions, instance, first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2024-03-12"]
    assert all(r.success for r in vee_runs(definitions, instance, again))
    assert db.count("intervals") == 2 * 96
    assert set(db.read_frame("SELECT status FROM vee_exceptions")["status"]) == {"resolved"}
    db.dispose()


def test_metadata_and_gx_evaluations_are_per_day_in_a_backfill_range(
    store_env: Path, definitions, instance
) -> None:
    load_master_data(os.environ["SMARTMDM_DATABASE_URL"], ["E1"])
    landing = store_env / "landing"
    day_file(landing / "ami-east_20240312.csv", "E1", "2024-03-12", spike_at=40, negative_at=50)
    day_file(landing / "ami-east_20240313.csv", "E1", "2024-03-13")
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    result = definitions.resolve_job_def("vee_job").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2024-03-12",
            "dagster/asset_partition_range_end": "2024-03-13",
        },
        raise_on_error=False,
    )
    by_day = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("vee_day")
        if m.asset_key.path == ["validated_intervals"]
    }
    assert set(by_day) == {"2024-03-12", "2024-03-13"}
    busy, quiet = by_day["2024-03-12"], by_day["2024-03-13"]
    assert busy["open_exceptions"] == 2 and busy["open_exceptions_by_rule"] == {"negative": 1, "spike": 1}
    assert busy["oldest_open_exception"] == "2024-03-12"  # the read day, not when VEE found it
    assert [r.data["rule"] for r in busy["open_exceptions_table"].records] == ["negative", "spike"]
    assert quiet["open_exceptions"] == 0 and quiet["oldest_open_exception"] == "none"
    assert busy["dagster/row_count"] == quiet["dagster/row_count"] == 96

    gx = {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "interval_estimates_gx"
    }
    assert gx["2024-03-12"].passed and gx["2024-03-13"].passed  # one evaluation per day of the range
    [errors] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "validated_intervals_open_errors"
    ]
    assert not errors.passed and errors.description.startswith(
        "2024-03-12..2024-03-13: 1 open error-severity"
    )


def test_the_queue_asset_lists_open_exceptions_and_the_launchpad_resolves_one(
    store_env: Path, definitions, instance
) -> None:
    load_master_data(os.environ["SMARTMDM_DATABASE_URL"], ["E1"])
    day_file(store_env / "landing" / "ami-east_20240312.csv", "E1", "2024-03-12", spike_at=40)
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    assert all(r.success for r in vee_runs(definitions, instance, vee_tick(definitions, instance)))

    queue_job = definitions.resolve_job_def("exception_queue_job")
    [mat] = queue_job.execute_in_process(instance=instance).asset_materializations_for_node(
        "vee_exception_queue"
    )
    [row] = [r.data for r in mat.metadata["queue"].value.records]
    assert (row["meter_id"], row["read_day"], row["rule"], row["severity"]) == (
        "E1",
        "2024-03-12",
        "spike",
        "warning",
    )
    assert "far above the day's third-highest" in row["detail"]
    assert {c.name for c in mat.metadata["queue"].value.schema.columns} >= {"exception_id", "detail"}

    resolve = definitions.resolve_job_def("resolve_exception_job")

    def launch(**config):
        return resolve.execute_in_process(
            instance=instance,
            run_config={"ops": {"resolve_exception": {"config": config}}},
            raise_on_error=False,
        )

    with pytest.raises(dg.DagsterInvalidConfigError, match="by"):
        launch(exception_id=row["exception_id"], action="edit", reason="meter test", value=0.5)
    with pytest.raises(dg.DagsterInvalidConfigError, match="fix"):
        launch(exception_id=row["exception_id"], action="fix", by="ana", reason="meter test")
    done = launch(exception_id=row["exception_id"], action="edit", by="ana", reason="meter test", value=0.5)
    assert done.success
    db = store()
    status = db.read_frame("SELECT status, resolved_by FROM vee_exceptions WHERE rule = 'spike'")
    assert status.to_dict(orient="records") == [{"status": "edited", "resolved_by": "ana"}]
    db.dispose()
    [after] = queue_job.execute_in_process(instance=instance).asset_materializations_for_node(
        "vee_exception_queue"
    )
    assert after.metadata["open_exceptions"].value == 0


def test_awaited_intervals_are_not_called_missing(store_env: Path, definitions, instance) -> None:
    load_master_data(os.environ["SMARTMDM_DATABASE_URL"], ["E1", "E2"])
    start = pd.Timestamp("2024-03-12T05:00Z")
    rows = [  # E1 complete; E2 stopped at 10:00 local, inside the re-collection window
        f"{m},kwh_delivered,{(start + pd.Timedelta(minutes=15 * (s + 1))).strftime('%Y-%m-%dT%H:%M:%SZ')},900,"
        f"{0.4 + s / 1000},kWh,"
        for m in ("E1", "E2")
        for s in range(96 if m == "E1" else 40)
    ]
    landing = store_env / "landing"
    landing.mkdir(parents=True)
    (landing / "ami-east_20240312.csv").write_text(INTERVAL_HEADER + "\n".join(rows) + "\n")
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    [run] = vee_runs(definitions, instance, vee_tick(definitions, instance))
    meta = {
        m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
        for m in run.asset_materializations_for_node("vee_day")
    }
    assert meta["validated_intervals"]["awaiting_intervals"] == 56
    assert meta["validated_intervals"]["missing_intervals"] == 0
    assert meta["interval_estimates"]["awaiting_intervals"] == 56
    [gx] = [e for e in run.get_asset_check_evaluations() if e.check_name == "interval_estimates_gx"]
    assert gx.passed and gx.metadata["awaiting_intervals"].value == 56

    from smartmdm_pipelines.demo import DemoResult, format_summary, store_summary

    db = store()
    summary = store_summary(db)
    db.dispose()
    assert summary["intervals_by_status"] == {"awaiting": 56, "valid": 136}
    assert "awaiting 56 (inside the re-collection window), valid 136" in format_summary(
        DemoResult(summary=summary)
    )
