"""NRW through Dagster: the day's zone balances and loss events with their metadata tables, the
high-confidence warning, lineage and group."""

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import nrw_scenario as sc

DAYS = 12


@pytest.fixture
def scenario(mdm_env: Path) -> pd.Timestamp:
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    sc.master_data(store)
    start = sc.hours(DAYS)[24 * 8 + 9] - pd.Timedelta(hours=1)
    store.bulk_insert("intervals", sc.intervals(DAYS, leak=(start, 12.0), noise=1.0))
    store.dispose()
    return start


def test_backfill_materializes_balances_and_events_and_warns(
    scenario: pd.Timestamp, definitions: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    job = definitions.resolve_job_def("nrw_job")
    last = sc.FIRST + dt.timedelta(days=DAYS - 1)
    run = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": sc.FIRST.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert run.success
    meta = {m.asset_key.to_user_string(): m.metadata for m in run.asset_materializations_for_node("nrw_day")}
    balances = meta["zone_balances"]
    assert balances["zones"].value == 2
    assert balances["complete_zone_days"].value == 2 * DAYS
    rows = balances["daily_balances"].value.records
    assert len(rows) == 2 * DAYS
    assert rows[0].data["zone_id"] == "Z1" and rows[0].data["loss_volume"] == pytest.approx(24 * 15, rel=0.05)
    events = meta["loss_events"]
    assert events["dagster/row_count"].value == 1
    [event] = events["events"].value.records
    assert event.data["zone_id"] == "Z1" and event.data["shape"] == "step"
    assert events["new_events"].value == [event.data["event_id"]]
    [check] = run.get_asset_check_evaluations()
    assert check.check_name == "new_high_confidence_loss_events" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN

    graph = definitions.resolve_asset_graph()
    assert dg.AssetKey("interval_estimates") in graph.get(dg.AssetKey("zone_balances")).parent_keys
    assert graph.get(dg.AssetKey("loss_events")).group_name == "nrw"
    # the same day again: the event is updated, not duplicated
    again = job.execute_in_process(instance=instance, partition_key=last.isoformat())
    assert again.success
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    assert store.count("loss_events") == 1
    store.dispose()
