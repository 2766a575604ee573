"""Ingestion through the store on both backends: registry, counts, duplicates, quarantine."""

from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_file, inspect_file
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def test_rows_in_equal_rows_loaded_plus_rows_rejected(store: Store, config, tmp_path: Path) -> None:
    path = interval_file(
        config.landing_dir / "ami-east_20240310.csv",
        ["E1", "E2"],
        "2024-03-10",
        bad_lines=[
            "E3,kwh_delivered,not-a-time,900,1,kWh,",
            "E3,kwh_delivered,2024-03-10T06:15:00Z,900,-,kWh,",
        ],
    )
    summary = ingest_file(store, path, config)
    assert summary.status == "partially loaded"
    assert summary.interval_reads == 2 * 92  # spring-forward day in Chicago
    assert summary.read_days == ["2024-03-10"]
    registry = store.read_frame("SELECT * FROM headend_files")
    row = registry.iloc[0]
    assert row["rows_in"] == row["rows_loaded"] + row["rows_rejected"] == 186
    assert row["rows_loaded"] == row["interval_reads"] == 184
    assert row["source"] == "ami-east" and row["status"] == "partially loaded"
    assert "line 186" in row["error"]
    assert store.count("raw_reads") == 184
    rejected = store.read_frame("SELECT line, reason FROM rejected_rows ORDER BY line")
    assert rejected["line"].tolist() == [186, 187]
    assert not path.exists() and Path(summary.archived_to).exists()  # moved, not deleted


def test_identical_redelivery_is_a_no_op(store: Store, config) -> None:
    first = interval_file(config.landing_dir / "a.csv", ["E1"], "2024-03-11")
    copy = config.landing_dir / "a_again.csv"
    copy.write_bytes(first.read_bytes())
    assert ingest_file(store, first, config).status == "loaded"
    again = ingest_file(store, copy, config)
    assert again.status == "duplicate" and again.duplicate_of == 1
    assert store.count("raw_reads") == 96 and store.count("headend_files") == 1
    assert "duplicates" in again.archived_to


def test_corrected_redelivery_is_registered_as_a_new_file(store: Store, config) -> None:
    ingest_file(store, interval_file(config.landing_dir / "a.csv", ["E1"], "2024-03-11", value=0.25), config)
    ingest_file(store, interval_file(config.landing_dir / "a.csv", ["E1"], "2024-03-11", value=0.30), config)
    files = store.read_frame("SELECT file_id FROM headend_files ORDER BY file_id")["file_id"].tolist()
    assert files == [1, 2]
    latest = store.read_frame(
        "SELECT DISTINCT value FROM raw_reads WHERE file_id = (SELECT max(file_id) FROM headend_files)"
    )
    assert latest["value"].tolist() == [0.30]


def test_unparseable_file_is_quarantined_with_its_reason(store: Store, config) -> None:
    path = config.landing_dir / "junk.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01garbage")
    summary = ingest_file(store, path, config)
    assert summary.status == "rejected"
    assert "quarantine" in summary.archived_to
    row = store.read_frame("SELECT status, error, rows_rejected FROM headend_files").iloc[0]
    assert row["status"] == "rejected" and "unrecognised format" in row["error"]
    assert store.read_frame("SELECT reason FROM rejected_rows")["reason"].iloc[0].startswith("file rejected")


def test_inspect_does_not_load(config, tmp_path: Path) -> None:
    path = interval_file(tmp_path / "x.csv", ["E1", "E2", "E3"], "2024-11-03")
    summary = inspect_file(path, config).to_dict()
    assert summary["interval_reads"] == 3 * 100 and summary["meters"] == 3
    assert summary["first_interval_end"] == "2024-11-03T05:15:00+00:00"
    assert summary["status"] == "loaded" and path.exists()


def test_registers_and_events_rerun_only_days_that_hold_interval_reads(store: Store, config) -> None:
    intervals = ingest_file(store, interval_file(config.landing_dir / "iv.csv", ["E1"], "2024-03-11"), config)
    assert intervals.read_days == intervals.vee_days == ["2024-03-11"]
    registers = config.landing_dir / "reg.csv"
    registers.write_text(
        "meter_id,channel,read_at,value,unit,quality\n"
        "E1,kwh_delivered,2024-03-11T18:00:00Z,100.0,kWh,\n"  # 2024-03-11: has interval reads
        "E1,kwh_delivered,2024-03-13T18:00:00Z,101.0,kWh,\n"  # 2024-03-13: none yet
    )
    summary = ingest_file(store, registers, config)
    assert summary.read_days == ["2024-03-11", "2024-03-13"]
    assert summary.vee_days == ["2024-03-11"]
