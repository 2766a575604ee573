"""Ingestion requests VEE for exactly the days it touched; VEE runs through Dagster with its
blocking Great Expectations check."""

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.defs.test_ingest import run_requests, sensor_tick
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER, interval_file


def load_master_data(url: str, meters: list[str]) -> None:
    store = Store(url)
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            [
                {
                    "meter_id": m,
                    "kind": "ami",
                    "commodity": "electric",
                    "role": "customer",
                    "channels": "kwh_delivered",
                    "unit": "kWh",
                    "interval_seconds": 900,
                    "multiplier": 1.0,
                    "dials": 6,
                }
                for m in meters
            ]
        ),
    )
    store.dispose()


def vee_tick(definitions, instance, cursor: str | None = None) -> dg.SensorResult:
    sensor = definitions.resolve_sensor_def("vee_day_sensor")
    return sensor(dg.build_sensor_context(instance=instance, definitions=definitions, cursor=cursor))


def run_vee(definitions, instance, tick) -> list[dg.ExecuteInProcessResult]:
    job = definitions.resolve_job_def("vee_job")
    return [
        job.execute_in_process(
            instance=instance, partition_key=r.partition_key, tags=r.tags, raise_on_error=False
        )
        for r in tick.run_requests
    ]


def test_files_request_exactly_the_days_they_touched(mdm_env: Path, definitions, instance) -> None:
    load_master_data(os.environ["SMARTMDM_DATABASE_URL"], ["E1", "E2"])
    landing = mdm_env / "landing"
    interval_file(landing / "ami-east_20240310.csv", ["E1", "E2"], "2024-03-10", shaped=True)
    interval_file(landing / "ami-east_20240311.csv", ["E1", "E2"], "2024-03-11", shaped=True)
    assert all(r.success for r in run_requests(definitions, instance, sensor_tick(definitions, instance)))

    tick = vee_tick(definitions, instance)
    assert sorted(r.partition_key for r in tick.run_requests) == ["2024-03-10", "2024-03-11"]
    runs = run_vee(definitions, instance, tick)
    assert all(r.success for r in runs)
    evaluations = {e.check_name: e for e in runs[0].get_asset_check_evaluations()}
    assert (
        evaluations["interval_estimates_gx"].passed and evaluations["validated_intervals_open_errors"].passed
    )
    meta = runs[0].asset_materializations_for_node("vee_day")
    by_key = {m.asset_key.to_user_string(): m.metadata for m in meta}
    assert by_key["validated_intervals"]["dagster/row_count"].value == 2 * 92  # spring-forward day
    assert by_key["validated_intervals"]["first_pass_valid_share"].value == 1.0
    assert by_key["interval_estimates"]["completeness"].value == 1.0

    # nothing new: no request; a corrected file for one day requests that day only
    assert vee_tick(definitions, instance, tick.cursor).run_requests == []
    interval_file(landing / "ami-east_20240311_fix.csv", ["E1"], "2024-03-11", value=0.3, shaped=True)
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    again = vee_tick(definitions, instance, tick.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2024-03-11"]
    assert all(r.success for r in run_vee(definitions, instance, again))
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    latest = store.read_frame(current_intervals_sql("read_day = '2024-03-11' AND meter_id = 'E1'", ["value"]))
    assert (
        latest["value"].min() == 0.3 and latest["value"].max() == 0.33
    )  # the corrected delivery superseded the first as a new version
    store.dispose()


def test_incomplete_day_fails_the_blocking_check(mdm_env: Path, definitions, instance) -> None:
    load_master_data(os.environ["SMARTMDM_DATABASE_URL"], ["E1", "E2"])
    landing = mdm_env / "landing"
    start = pd.Timestamp("2024-03-12T05:00Z")
    rows = [
        f"{m},kwh_delivered,{(start + pd.Timedelta(minutes=15 * (s + 1))).strftime('%Y-%m-%dT%H:%M:%SZ')},900,"
        f"{0.4 + s / 1000},kWh,"
        for m in ("E1", "E2")
        for s in list(range(10)) + list(range(60, 96))  # a 12.5-hour hole nobody can estimate
    ]
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "ami-east_20240312.csv").write_text(INTERVAL_HEADER + "\n".join(rows) + "\n")
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    [run] = run_vee(definitions, instance, vee_tick(definitions, instance))
    assert not run.success
    evaluation = next(e for e in run.get_asset_check_evaluations() if e.check_name == "interval_estimates_gx")
    assert not evaluation.passed
    assert evaluation.metadata["completeness"].value < 0.98
