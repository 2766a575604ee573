"""The landing sensor and the ingestion job, through Dagster's own test APIs."""

import os
from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.resources import UtilityConfigResource
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file


def sensor_tick(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    sensor = definitions.resolve_sensor_def("headend_file_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        definitions=definitions,
        resources={"utility": UtilityConfigResource.from_environment()},
    )
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def run_requests(definitions, instance, result) -> list[dg.ExecuteInProcessResult]:
    job = definitions.resolve_job_def("ingest_headend_job")
    return [
        job.execute_in_process(
            instance=instance, partition_key=r.partition_key, tags=r.tags, raise_on_error=False
        )
        for r in result.run_requests or []
    ]


def test_sensor_registers_files_and_the_job_loads_them(mdm_env: Path, definitions, instance) -> None:
    landing = mdm_env / "landing"
    interval_file(landing / "ami-east_20240310.csv", ["E1", "E2"], "2024-03-10")
    broken = landing / "ami-east_broken.csv"
    broken.write_text("this is not a head-end file\n")
    result = sensor_tick(definitions, instance)
    assert len(result.run_requests) == 2
    assert all(len(r.run_key) == 64 for r in result.run_requests)  # sha256 run keys
    keys = set(instance.get_dynamic_partitions("headend_files"))
    assert {r.partition_key for r in result.run_requests} == keys
    assert any(k.endswith("-ami-east_20240310.csv") for k in keys)

    runs = run_requests(definitions, instance, result)
    outcome = {r.dagster_run.tags["smartmdm/file"]: r for r in runs}
    assert outcome["ami-east_20240310.csv"].success
    bad = outcome["ami-east_broken.csv"]
    assert not bad.success  # a bad file fails its own run …
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "was rejected" in failure.event_specific_data.error.message
    assert "unrecognised format" in failure.event_specific_data.error.message

    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    statuses = dict(store.read_frame("SELECT name, status FROM headend_files").itertuples(index=False))
    assert statuses == {"ami-east_20240310.csv": "loaded", "ami-east_broken.csv": "rejected"}
    assert store.count("raw_reads") == 2 * 92
    mat = instance.get_latest_materialization_event(dg.AssetKey("raw_reads"))
    assert mat.asset_materialization.metadata["interval_reads"].value == 184
    store.dispose()

    # … and the landing folder is empty: nothing more to request
    assert list(landing.iterdir()) == []
    assert sensor_tick(definitions, instance).run_requests == []


def test_identical_bytes_under_another_name_are_not_loaded_twice(
    mdm_env: Path, definitions, instance
) -> None:
    landing = mdm_env / "landing"
    first = interval_file(landing / "ami-east_a.csv", ["E1"], "2024-03-12")
    run_requests(definitions, instance, sensor_tick(definitions, instance))
    (landing / "ami-east_a_resent.csv").write_bytes(
        (mdm_env / "archive").rglob("*ami-east_a.csv").__next__().read_bytes()
    )
    tick = sensor_tick(definitions, instance)
    assert tick.run_requests == []
    assert any((mdm_env / "archive" / "duplicates").iterdir())
    assert not first.exists()
