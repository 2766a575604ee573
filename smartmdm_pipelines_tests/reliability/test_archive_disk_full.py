"""Issue 15, dependencies failing: the archive folder's disk is full while files are ingested.

The archive folder is a real tmpfs of 1 MiB (``mount -t tmpfs``), filled to the last byte, so the
copy out of the landing folder (another file system) fails half-way with ENOSPC, as on a full
disk. Nothing may be deleted or half-moved: the landed file stays in landing, no partial copy is
left in the archive, the error names the folder; once space is freed a retry archives each file
where its outcome sends it, and no row is loaded twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ArchiveError, ingest_path
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file

pytestmark = pytest.mark.reliability


@pytest.fixture
def full_archive(tmp_path: Path):
    """``data/archive`` on a 1 MiB tmpfs, and a filler file that takes all of its space."""
    archive = tmp_path / "data" / "archive"
    archive.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(archive)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount -t tmpfs is needed in CI: {mounted.stderr.strip()}")
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    filler = archive / "filler"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass  # ENOSPC: the folder is full
    try:
        yield archive, filler
    finally:
        subprocess.run(["umount", "-l", str(archive)], check=False)


def _landed(tmp_path: Path, n: int) -> list[Path]:
    landing = tmp_path / "data" / "landing"
    return [
        interval_file(
            landing / f"ami-east_202403{11 + i:02d}.csv",
            [f"E{j}" for j in range(40)],
            f"2024-03-{11 + i:02d}",
        )
        for i in range(n)
    ]


def _archive_files(archive: Path) -> list[Path]:
    return sorted(p for p in archive.rglob("*") if p.is_file() and p.name != "filler")


def test_a_full_archive_moves_nothing_half_and_a_retry_archives_without_reloading(
    store: Store, tmp_path: Path, full_archive
) -> None:
    archive, filler = full_archive
    config = load_config(data_dir=tmp_path / "data")
    assert config.archive_dir == archive.resolve()
    files = _landed(tmp_path, 3)
    contents = {p.name: p.read_bytes() for p in files}
    assert all(len(b) > 100_000 for b in contents.values())  # larger than any space left

    for path in files:
        with pytest.raises(ArchiveError) as failed:
            ingest_path(store, path, config)
        message = str(failed.value)
        assert str(archive) in message and "No space left on device" in message and "\n" not in message
        assert path.read_bytes() == contents[path.name]  # still in landing, whole
    assert _archive_files(archive) == []  # no partial copy, no .part left
    registered = store.read_frame(
        "SELECT file_id, status, archive_path, rows_loaded FROM headend_files ORDER BY file_id"
    )
    # the target was recorded before the move (the crash-anywhere rule) and does not exist
    assert list(registered["status"]) == ["loaded"] * 3
    assert all(str(archive) in p and not Path(p).exists() for p in registered["archive_path"])
    reads = store.count("raw_reads")
    assert reads == 3 * 40 * 96

    filler.unlink()  # space freed
    for path in files:
        [summary] = ingest_path(store, path, config)
        assert summary.status == "loaded"  # the retry finishes the first run: its outcome, not a duplicate
        assert not path.exists()
    archived = _archive_files(archive)
    assert len(archived) == 3 and all("duplicates" not in p.parts for p in archived)  # the day folder
    assert sorted(p.name.split("_", 1)[1] for p in archived) == sorted(contents)
    assert {p.name.split("_", 1)[1]: p.read_bytes() for p in archived} == contents
    assert store.count("raw_reads") == reads  # nothing loaded twice
    after = store.read_frame("SELECT archive_path FROM headend_files ORDER BY file_id")
    assert sorted(after["archive_path"]) == sorted(str(p) for p in archived)


def test_ingest_command_reports_the_full_archive_in_one_line_and_loads_once(
    tmp_path: Path, full_archive
) -> None:
    archive, filler = full_archive
    [path] = _landed(tmp_path, 1)
    db = tmp_path / "smartmdm.duckdb"
    env = {
        **os.environ,
        "SMARTMDM_DATABASE_URL": f"duckdb:///{db}",
        "SMARTMDM_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("SMARTMDM_DEBUG", None)

    def ingest() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "smartmdm_pipelines.cli", "ingest", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = ingest()
    assert first.returncode == 2 and first.stderr.count("\n") == 1, first.stderr
    assert "cannot archive into" in first.stderr and str(archive) in first.stderr
    assert "Traceback" not in first.stderr and path.exists() and _archive_files(archive) == []
    filler.unlink()
    second = ingest()
    assert second.returncode == 0, second.stderr
    assert not path.exists() and len(_archive_files(archive)) == 1
    shutil.rmtree(tmp_path / "data" / "landing")
    store = Store(f"duckdb:///{db}")
    try:
        assert store.count("raw_reads") == 40 * 96 and store.count("headend_files") == 1
    finally:
        store.dispose()


def test_the_dagster_ingest_run_fails_naming_the_folder_and_a_re_execution_archives(
    tmp_path: Path, full_archive, monkeypatch
) -> None:
    import dagster as dg

    from smartmdm_pipelines.definitions import defs
    from smartmdm_pipelines_tests.defs.test_ingest import run_requests, sensor_tick

    archive, filler = full_archive
    db = tmp_path / "smartmdm.duckdb"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{db}")
    monkeypatch.setenv("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    [path] = _landed(tmp_path, 1)
    definitions = defs()
    with dg.instance_for_test() as instance:
        tick = sensor_tick(definitions, instance)
        [failed] = run_requests(definitions, instance, tick)
        assert not failed.success
        [failure] = failed.get_step_failure_events()
        message = failure.event_specific_data.error.message
        assert "cannot archive into" in message and str(archive) in message
        assert path.exists() and _archive_files(archive) == []
        filler.unlink()
        job = definitions.resolve_job_def("ingest_headend_job")
        [request] = tick.run_requests
        again = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
        )
        assert again.success
    assert not path.exists() and len(_archive_files(archive)) == 1
    store = Store(f"duckdb:///{db}")
    try:
        assert store.count("raw_reads") == 40 * 96 and store.count("headend_files") == 1
        assert store.scalar("SELECT archive_path FROM headend_files") == str(_archive_files(archive)[0])
    finally:
        store.dispose()
