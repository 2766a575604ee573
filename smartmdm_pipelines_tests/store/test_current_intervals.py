"""One definition of "the current version of an interval": the store's SQL builder, dbt's
``current_intervals`` macro and the ``current_intervals`` view select the same rows, on
DuckDB and PostgreSQL, and each is the highest version of its interval."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.services.dbt_runner import dbt_show
from smartmdm_pipelines.store.intervals import current_intervals_sql, current_of
from smartmdm_pipelines.store.store import Store

KEY = ["meter_id", "channel", "interval_end"]
DAY = dt.date(2024, 3, 10)


def _versions(seed: int = 7) -> pd.DataFrame:
    """Three meters × two channels × two days of 15-minute intervals with 1–4 versions each,
    inserted in shuffled order (so insertion order says nothing about the current one)."""
    rng = np.random.default_rng(seed)
    ends = pd.date_range("2024-03-10T06:15Z", periods=192, freq="15min")
    keys = pd.MultiIndex.from_product(
        [["E1", "E2", "W1"], ["kwh_delivered", "kwh_received"], ends], names=KEY
    )
    keys = keys.to_frame(index=False)
    n = rng.choice([1, 1, 1, 2, 3, 4], size=len(keys))
    rows = keys.loc[keys.index.repeat(n)].reset_index(drop=True)
    rows["version"] = rows.groupby(KEY).cumcount() + 1
    rows["value"] = np.round(rng.uniform(0, 5, len(rows)), 3)
    rows["status"] = rng.choice(["valid", "estimated", "edited", "suspect"], len(rows))
    rows["read_day"] = pd.to_datetime(
        np.where(rows["interval_end"] <= "2024-03-11T06:00Z", "2024-03-10", "2024-03-11")
    )
    rows = rows.assign(
        interval_seconds=900, unit="kWh", created_by="test", created_at=pd.Timestamp("2024-03-12", tz="UTC")
    )
    return rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[[*KEY, "version", "value", "status"]].copy()
    out["interval_end"] = pd.to_datetime(out["interval_end"], utc=True)
    out["version"] = out["version"].astype("int64")
    out["value"] = out["value"].astype("float64")
    return out.sort_values(KEY).reset_index(drop=True)


def test_store_dbt_and_view_agree_on_the_current_version(store: Store) -> None:
    versions = _versions()
    store.bulk_insert("intervals", versions)
    highest = versions.loc[versions.groupby(KEY)["version"].idxmax()]
    expected = _canonical(highest)
    assert (versions.groupby(KEY).size() > 1).sum() > 100  # many intervals were re-versioned

    from_store = _canonical(store.read_frame(current_intervals_sql()))
    from_view = _canonical(store.read_frame("SELECT * FROM current_intervals"))
    from_dbt = _canonical(dbt_show(store, "{{ current_intervals(source('smartmdm', 'intervals')) }}"))
    from_frame = _canonical(current_of(store.read_frame("SELECT * FROM intervals")))  # versions read first

    pd.testing.assert_frame_equal(from_store, expected)
    pd.testing.assert_frame_equal(from_view, expected)
    pd.testing.assert_frame_equal(from_dbt, expected)
    pd.testing.assert_frame_equal(from_frame, expected)


def test_the_filter_narrows_the_intervals_before_ranking(store: Store) -> None:
    versions = _versions(seed=11)
    store.bulk_insert("intervals", versions)
    day = versions[(versions["read_day"] == pd.Timestamp(DAY)) & (versions["meter_id"] == "E2")]
    expected = _canonical(day.loc[day.groupby(KEY)["version"].idxmax()])
    got = store.read_frame(
        current_intervals_sql(
            "read_day = :day AND meter_id = :m",
            ["meter_id", "channel", "interval_end", "version", "value", "status"],
        ),
        {"day": DAY, "m": "E2"},
    )
    pd.testing.assert_frame_equal(_canonical(got), expected)
    renamed = store.read_frame(
        current_intervals_sql("meter_id = :m", "meter_id, version AS cur_version"), {"m": "W1"}
    )
    assert list(renamed.columns) == ["meter_id", "cur_version"]
    assert len(renamed) == versions[versions["meter_id"] == "W1"][KEY].drop_duplicates().shape[0]
