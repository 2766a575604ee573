"""Historical migration: a folder of legacy files as partitioned, chunked, resumable backfills."""

import os
import zipfile
from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.partitions import LEGACY_FILES
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file


def run_range(definitions, instance, keys: list[str]) -> dg.ExecuteInProcessResult:
    job = definitions.resolve_job_def("legacy_migration_job")
    return job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )


def test_legacy_folder_backfills_in_chunks_and_resumes(
    mdm_env: Path, definitions, instance, monkeypatch
) -> None:
    folder = mdm_env / "legacy"
    monkeypatch.setenv("SMARTMDM_MIGRATION_DIR", str(folder))
    for month in (1, 2, 3):
        interval_file(folder / "2019" / f"{month:02d}" / "reads.csv", ["L1", "L2"], f"2019-{month:02d}-15")
    (folder / "2019" / "03" / "broken.csv").write_text("garbage\n")

    register = definitions.resolve_job_def("register_legacy_files_job").execute_in_process(instance=instance)
    assert register.success
    keys = instance.get_dynamic_partitions(LEGACY_FILES.name)
    assert keys == ["2019/01/reads.csv", "2019/02/reads.csv", "2019/03/broken.csv", "2019/03/reads.csv"]

    first = run_range(definitions, instance, keys[:2])  # a first chunk …
    assert first.success
    meta = first.asset_materializations_for_node("legacy_raw_reads")[0].metadata
    assert meta["loaded"].value == 2 and meta["reads"].value == 2 * 2 * 96

    resumed = run_range(definitions, instance, keys)  # … then the whole range: the first two are skipped
    assert resumed.success
    meta = resumed.asset_materializations_for_node("legacy_raw_reads")[0].metadata
    assert meta["skipped_already_loaded"].value == 2
    assert meta["loaded"].value == 1 and meta["rejected"].value == 1
    assert "broken.csv" in meta["rejected_files"].value[0]

    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    assert store.count("headend_files") == 4
    assert store.count("raw_reads") == 3 * 2 * 96
    assert store.scalar("SELECT count(DISTINCT read_day) FROM raw_reads") == 3
    store.dispose()
    assert (folder / "2019" / "01" / "reads.csv").exists()  # legacy files stay where they are

    # the asset is declared for chunked backfills
    asset = definitions.resolve_assets_def("legacy_raw_reads")
    assert asset.backfill_policy.max_partitions_per_run == 50


def test_a_zipped_legacy_file_loads_each_member_once(
    mdm_env: Path, definitions, instance, monkeypatch
) -> None:
    folder = mdm_env / "legacy"
    monkeypatch.setenv("SMARTMDM_MIGRATION_DIR", str(folder))
    folder.mkdir(parents=True)
    reads = [
        interval_file(mdm_env / "src" / f"{m}.csv", ["L1"], f"2019-{m:02d}-15").read_text() for m in (1, 2)
    ]
    with zipfile.ZipFile(folder / "2019.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("2019-01.csv", reads[0])
        archive.writestr("2019-02.csv", reads[1])
    assert (
        definitions.resolve_job_def("register_legacy_files_job").execute_in_process(instance=instance).success
    )
    keys = instance.get_dynamic_partitions(LEGACY_FILES.name)
    assert keys == ["2019.zip"]
    meta = (
        run_range(definitions, instance, keys).asset_materializations_for_node("legacy_raw_reads")[0].metadata
    )
    assert meta["files"].value == 1 and meta["loaded"].value == 2 and meta["reads"].value == 2 * 96
    again = (
        run_range(definitions, instance, keys).asset_materializations_for_node("legacy_raw_reads")[0].metadata
    )
    assert again["skipped_already_loaded"].value == 2 and again["loaded"].value == 0
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    names = store.read_frame("SELECT name FROM headend_files ORDER BY name")["name"].tolist()
    assert names == ["2019.zip!2019-01.csv", "2019.zip!2019-02.csv"]
    store.dispose()
    assert (folder / "2019.zip").exists()  # legacy files stay where they are
