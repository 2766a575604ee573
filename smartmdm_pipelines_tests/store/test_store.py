"""The store on both backends: migrations, bulk load, idempotent and crash-safe partition replace."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.store import migrate
from smartmdm_pipelines.store.schema import metadata
from smartmdm_pipelines.store.store import Store

DAY1, DAY2 = dt.date(2024, 3, 10), dt.date(2024, 3, 11)


def reads(day: dt.date, n: int, value: float, file_id: int = 1) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "file_id": file_id,
            "line": np.arange(2, n + 2),
            "meter_id": [f"E{i % 7:04d}" for i in range(n)],
            "channel": "kwh_delivered",
            "interval_end": pd.date_range(start + pd.Timedelta(minutes=15), periods=n, freq="15min"),
            "interval_seconds": 900,
            "value": np.full(n, value),
            "unit": "kWh",
            "source_unit": "Wh",
            "source_quality": None,
            "read_day": pd.Timestamp(day),
        }
    )


def test_migrations_create_the_whole_data_model(store: Store) -> None:
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    for table in metadata.tables:
        assert store.count(table) == 0, table
    assert store.read_frame("SELECT count(*) AS n FROM current_intervals")["n"].iloc[0] == 0
    migrate.upgrade(store.engine)  # a second run is a no-op
    assert migrate.current_revision(store.engine) == migrate.head_revision()


def test_migrations_downgrade_and_upgrade_again(store_url: str) -> None:
    s = Store(store_url)
    migrate.downgrade(s.engine, "base")
    assert migrate.current_revision(s.engine) is None
    migrate.upgrade(s.engine)
    assert s.count("raw_reads") == 0
    s.dispose()


def test_bulk_insert_round_trips_values_nulls_and_utc(store: Store) -> None:
    frame = reads(DAY1, 500, 1.25)
    frame.loc[3, "value"] = np.nan
    frame.loc[4, "meter_id"] = 'odd, "quoted" id'
    frame.loc[5, "source_quality"] = ""
    assert store.bulk_insert("raw_reads", frame) == 500
    back = store.read_frame("SELECT * FROM raw_reads ORDER BY line")
    assert len(back) == 500
    assert back["value"].isna().sum() == 1 and back["value"].iloc[3] != back["value"].iloc[3]
    assert back["meter_id"].iloc[4] == 'odd, "quoted" id'
    assert back["source_quality"].iloc[5] == "" and pd.isna(back["source_quality"].iloc[6])
    assert pd.Timestamp(back["interval_end"].iloc[0]) == pd.Timestamp("2024-03-10T00:15:00Z")
    assert pd.Timestamp(back["read_day"].iloc[0]).date() == DAY1


def test_bulk_insert_streams_batches(store: Store) -> None:
    batches = (reads(DAY1, 100, float(i)) for i in range(5))
    assert store.bulk_insert("raw_reads", batches) == 500
    assert store.scalar("SELECT sum(value) FROM raw_reads") == pytest.approx(100 * (0 + 1 + 2 + 3 + 4))


def test_replace_partition_is_idempotent_and_scoped(store: Store) -> None:
    store.bulk_insert("raw_reads", reads(DAY2, 50, 9.0))
    for _ in range(2):
        deleted, inserted = store.replace_partition("raw_reads", {"read_day": DAY1}, reads(DAY1, 96, 1.0))
        assert inserted == 96
    assert deleted == 96
    assert store.count("raw_reads", {"read_day": DAY1}) == 96
    assert store.count("raw_reads", {"read_day": DAY2}) == 50  # the other partition is untouched
    store.replace_partition("raw_reads", {"read_day": [DAY1]}, reads(DAY1, 92, 2.0))
    assert store.scalar("SELECT sum(value) FROM raw_reads WHERE read_day = :d", {"d": DAY1}) == pytest.approx(
        184
    )


def test_failure_inside_a_replace_rolls_back_everything(store: Store) -> None:
    store.replace_partition("raw_reads", {"read_day": DAY1}, reads(DAY1, 96, 1.0))

    def batches():
        yield reads(DAY1, 40, 5.0)
        bad = reads(DAY1, 10, 5.0)
        bad["meter_id"] = None  # violates NOT NULL halfway through the write
        yield bad

    with pytest.raises(Exception, match="(?i)null"):
        store.replace_partition("raw_reads", {"read_day": DAY1}, batches())
    assert store.count("raw_reads", {"read_day": DAY1}) == 96
    assert store.scalar("SELECT max(value) FROM raw_reads") == 1.0


def test_process_killed_in_the_middle_of_a_replace_leaves_the_old_partition(store_url: str) -> None:
    """A hard crash (os._exit, no cleanup) after the delete and part of the insert."""
    s = Store(store_url)
    s.replace_partition("raw_reads", {"read_day": DAY1}, reads(DAY1, 96, 1.0))
    s.dispose()
    script = textwrap.dedent(
        f"""
        import os, datetime as dt
        from smartmdm_pipelines.store.store import Store
        from smartmdm_pipelines_tests.store.test_store import reads
        s = Store({store_url!r})
        def batches():
            yield reads(dt.date(2024, 3, 10), 60, 7.0)
            print("crashing", flush=True)
            os._exit(17)
        s.replace_partition("raw_reads", {{"read_day": dt.date(2024, 3, 10)}}, batches())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr
    assert "crashing" in proc.stdout
    after = Store(store_url)
    assert after.count("raw_reads", {"read_day": DAY1}) == 96
    assert after.scalar("SELECT max(value) FROM raw_reads") == 1.0
    after.dispose()


def test_current_intervals_view_returns_the_latest_version(store: Store) -> None:
    end = pd.Timestamp("2024-03-10T06:15:00Z")
    versions = pd.DataFrame(
        {
            "meter_id": "E1",
            "channel": "kwh_delivered",
            "interval_end": [end, end, end + pd.Timedelta(minutes=15)],
            "version": [1, 2, 1],
            "interval_seconds": 900,
            "value": [1.25, 1.40, 0.5],
            "unit": "kWh",
            "status": ["estimated", "valid", "valid"],
            "read_day": pd.Timestamp(DAY1),
            "created_by": "test",
            "created_at": pd.Timestamp("2024-03-12T00:00:00Z"),
        }
    )
    store.bulk_insert("intervals", versions)
    current = store.read_frame("SELECT * FROM current_intervals ORDER BY interval_end")
    assert current["value"].tolist() == [1.40, 0.5]
    assert current["version"].tolist() == [2, 1]
    assert store.count("intervals") == 3  # nothing overwritten


def test_empty_predicate_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="empty partition predicate"):
        store.replace_partition("raw_reads", {}, reads(DAY1, 1, 1.0))
