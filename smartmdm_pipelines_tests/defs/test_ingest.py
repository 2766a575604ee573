"""The landing sensor and the ingestion job, through Dagster's own test APIs."""

import os
import zipfile
from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.resources import UtilityConfigResource
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file, nem12_text


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


def test_a_zip_in_landing_is_one_run_that_loads_each_member(mdm_env: Path, definitions, instance) -> None:
    landing = mdm_env / "landing"
    day = interval_file(mdm_env / "src" / "ami-east_20240311.csv", ["E1"], "2024-03-11").read_text()
    landing.mkdir(parents=True)
    with zipfile.ZipFile(landing / "NEM12#0001#MDPX#RETAILER.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "ami-south_20240309.csv", nem12_text(["20240309", "20240310", "20240311", "20240312"])
        )
        archive.writestr("ami-east_20240311.csv", day)
        archive.writestr("../escape.csv", day)
    tick = sensor_tick(definitions, instance)
    assert len(tick.run_requests) == 1
    (run,) = run_requests(definitions, instance, tick)
    assert not run.success  # a rejected member fails the run, after the good members loaded
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "escape.csv" in failure.event_specific_data.error.message
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    statuses = dict(store.read_frame("SELECT name, status FROM headend_files").itertuples(index=False))
    assert statuses == {
        "NEM12#0001#MDPX#RETAILER.zip!ami-south_20240309.csv": "loaded",
        "NEM12#0001#MDPX#RETAILER.zip!ami-east_20240311.csv": "loaded",
        "NEM12#0001#MDPX#RETAILER.zip!../escape.csv": "rejected",
    }
    assert store.count("raw_reads") == 768 + 96
    store.dispose()
    assert list(landing.iterdir()) == [] and len(list((mdm_env / "archive").rglob("*.zip"))) == 1


def test_identical_empty_files_of_two_head_ends_are_both_delivered(
    mdm_env: Path, definitions, instance
) -> None:
    landing = mdm_env / "landing"
    landing.mkdir(parents=True)
    for name in ("ami-east_20240308_events.csv", "ami-water_20240308_events.csv"):
        (landing / name).write_text("meter_id,event_at,event_type,code\n")
    tick = sensor_tick(definitions, instance)
    assert len(tick.run_requests) == 2  # not one run and a "duplicate"
    assert all(r.success for r in run_requests(definitions, instance, tick))
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    rows = store.read_frame("SELECT name, source, status, rows_in FROM headend_files ORDER BY name")
    assert rows["source"].tolist() == ["ami-east", "ami-water"] and rows["rows_in"].tolist() == [0, 0]
    assert rows["status"].tolist() == ["empty", "empty"]
    store.dispose()
    # delivered again under its name after it was archived: a duplicate, not left in landing
    (landing / "ami-east_20240308_events.csv").write_text("meter_id,event_at,event_type,code\n")
    assert sensor_tick(definitions, instance).run_requests == []
    assert list(landing.iterdir()) == []
