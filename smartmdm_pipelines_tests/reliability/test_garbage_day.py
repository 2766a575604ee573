"""Issue 15, bad data at scale: a day where 30 % of the meters send garbage (too few fields, values
that are not numbers, impossible timestamps, unknown units, negative values, truncated files).
Every bad row is accounted for, and the valid meters' intervals are exactly the clean day's.
The speed half (valid reads/s against a clean day) is ``benchmarks/bench_garbage_day.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.simulate.garbage_day import master_data, write_day
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

pytestmark = pytest.mark.reliability

DAY = dt.date(2024, 3, 12)
METERS = 60


def _run(store: Store, files: list[Path], meters: list[str], data_dir: Path) -> None:
    config = load_config(data_dir=data_dir)
    sync_master_data(store, master_data(meters), effective_date=dt.date(2024, 1, 1))
    for path in files:
        ingest_file(store, path, config, archive=False)
    run_day(store, DAY, config)


def _current(store: Store, meters: list[str]) -> pd.DataFrame:
    frame = store.read_frame(
        current_intervals_sql(
            "meter_id IN (SELECT unnest(:m))",
            "meter_id, channel, interval_end, version, value, status, failed_rules, estimation_method",
        ),
        {"m": meters},
    )
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    return frame.sort_values(["meter_id", "channel", "interval_end"]).reset_index(drop=True)


def test_every_bad_row_is_accounted_for_and_the_valid_meters_equal_a_clean_day(
    store: Store, tmp_path
) -> None:
    garbage = write_day(tmp_path / "garbage", METERS, DAY, garbage_share=0.3, meters_per_file=15)
    clean = write_day(tmp_path / "clean", METERS, DAY, garbage_share=0.0, meters_per_file=15)
    assert len(garbage.garbage_meters) == 18 and set(garbage.bad["kind"]) >= {
        "too_few_fields",
        "not_a_number",
        "bad_timestamp",
        "unknown_unit",
        "negative_value",
        "truncated",
    }
    _run(store, garbage.files, garbage.meters, tmp_path / "data")
    reference = Store(f"duckdb:///{tmp_path / 'clean.duckdb'}")
    try:
        _run(reference, clean.files, clean.meters, tmp_path / "data-clean")
        expected = _current(reference, garbage.valid_meters)
    finally:
        reference.dispose()

    files = store.read_frame("SELECT file_id, name, rows_in, rows_loaded, rows_rejected FROM headend_files")
    assert sorted(files["name"]) == sorted(p.name for p in garbage.files)
    for row in files.itertuples():  # rows_in = loaded + rejected, per delivery
        assert row.rows_in == garbage.data_lines[row.name], row.name
        assert row.rows_loaded + row.rows_rejected == row.rows_in, row.name
    assert store.count("raw_reads") == int(files["rows_loaded"].sum())

    rejected = store.read_frame(
        "SELECT h.name AS file, r.line, r.reason FROM rejected_rows r JOIN headend_files h USING (file_id)"
    )
    assert rejected["reason"].map(lambda r: bool(r) and "\n" not in r).all()  # each with a one-line reason
    must_reject = garbage.bad[garbage.bad["expect"] == "rejected"]
    assert sorted(zip(rejected["file"], rejected["line"].astype(int), strict=True)) == sorted(
        zip(must_reject["file"], must_reject["line"], strict=True)
    )  # exactly the bad rows: none lost, no good row rejected
    assert int(files["rows_rejected"].sum()) == len(must_reject)

    flagged = garbage.bad[garbage.bad["expect"] == "flagged"]
    loaded_negative = store.read_frame("SELECT meter_id, value FROM raw_reads WHERE value < 0")
    assert len(loaded_negative) == len(flagged)  # loaded as delivered ...
    statuses = store.read_frame(
        current_intervals_sql("meter_id IN (SELECT unnest(:m))", "meter_id, value, status"),
        {"m": sorted(set(flagged["meter_id"]))},
    )
    assert (statuses.loc[statuses["value"] < 0, "status"] != "valid").all()  # ... and flagged by VEE
    assert len(statuses[statuses["value"] < 0]) + len(statuses[statuses["status"] == "estimated"]) >= len(
        flagged
    )

    got = _current(store, garbage.valid_meters)
    assert len(got) == len(garbage.valid_meters) * 96
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
