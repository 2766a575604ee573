"""A small synthetic utility loaded into a store (master data and head-end files, no VEE yet),
and the store's VEE output as comparable frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

START = dt.date(2024, 3, 8)


def simulate(folder: Path, meters: int = 50, days: int = 3) -> Path:
    """A deterministic utility of ``meters`` meters over ``days`` days, with its injected faults."""
    generate(folder, SimulationSpec(meters=meters, start=START, days=days, seed=14, truth_values=False))
    return folder


def load(store: Store, sim: Path, data_dir: Path) -> list[dt.date]:
    """CIS master data and every head-end file into ``store``: the operating days with reads."""
    cfg = load_config(data_dir=data_dir)
    sync_master_data(store, sim / "cis")
    for path in sorted((sim / "headend").iterdir()):
        if path.is_file():
            ingest_file(store, path, cfg, archive=False)
    days = store.read_frame("SELECT DISTINCT read_day FROM raw_reads ORDER BY read_day")["read_day"]
    return [pd.Timestamp(d).date() for d in days]


# what VEE writes; the instants of writing (created_at, resolved_at) differ run to run
TABLES = ("intervals", "vee_exceptions", "daily_usage", "usage_hourly")
INSTANTS = ("created_at", "resolved_at")


def snapshot(store: Store) -> dict[str, pd.DataFrame]:
    """Each VEE table sorted on all its columns, values rounded to 9 decimals (the EPS under
    which VEE itself calls two values the same)."""
    out = {}
    for name in TABLES:
        frame = store.read_frame(f"SELECT * FROM {name}")
        frame = frame.drop(columns=[c for c in INSTANTS if c in frame.columns])
        for col in frame.columns:  # the two backends' types differ (nullable ints, dates): compare values
            values = frame[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                frame[col] = values.astype("float64").round(9)
            elif isinstance(values.dtype, pd.DatetimeTZDtype):
                frame[col] = values.dt.tz_convert("UTC")
        frame = frame.astype(str).sort_values(list(frame.columns), kind="stable").reset_index(drop=True)
        out[name] = frame
    return out


def assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        assert len(left[name]) > 0, f"{name}: nothing written"
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)


def celery_job():
    """vee_celery_job of the code location (module level: the Celery workers load the job
    through this pointer, ``dagster.reconstructable``)."""
    from smartmdm_pipelines.definitions import defs

    return defs().get_job_def("vee_celery_job")
