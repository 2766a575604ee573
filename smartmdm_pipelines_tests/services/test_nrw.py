"""NRW zone balances, night flow and balance loss events against the store (both backends)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import loss_events, nrw
from smartmdm_pipelines_tests import nrw_scenario as sc


@pytest.fixture
def cfg(tmp_path):
    return load_config(data_dir=tmp_path)


def _daily(store, zone):
    return store.read_frame(
        "SELECT * FROM zone_balances WHERE zone_id = :z AND interval_seconds = 86400 ORDER BY read_day",
        {"z": zone},
    )


def test_balance_arithmetic_nested_zones_missing_inlet_day_and_estimated_customer(store, cfg):
    sc.master_data(store)
    estimated_hour = sc.hours(1)[5]
    store.bulk_insert(
        "intervals", sc.intervals(2, missing_b2_day=dt.date(2024, 3, 5), estimated_c12=estimated_hour)
    )
    run = nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    assert run.zones == ["Z1", "Z2"]
    z1 = _daily(store, "Z1")
    first, second = z1.iloc[0], z1.iloc[1]
    # day 1: input = B1 - B2 = 60 gal/h, customers 45 gal/h, loss 15 gal/h, over 24 hours
    assert first["input_volume"] == pytest.approx(24 * 60)
    assert first["metered_volume"] == pytest.approx(24 * 45)
    assert first["loss_volume"] == pytest.approx(24 * 15)
    assert first["estimated_volume"] == pytest.approx(25.0)  # the one estimated C12 hour
    assert first["complete"] and first["input_completeness"] == pytest.approx(1.0)
    assert first["metered_completeness"] == pytest.approx(1.0)
    # day 2: the child's inlet B2 is missing: the parent's input is incomplete (half its inlet
    # intervals), and so is the child's; neither balance counts as complete
    assert second["input_completeness"] == pytest.approx(0.5)
    assert not second["complete"]
    z2 = _daily(store, "Z2")
    assert z2.iloc[0]["loss_volume"] == pytest.approx(24 * 10)
    assert z2.iloc[1]["input_completeness"] == 0.0 and not z2.iloc[1]["complete"]
    hourly = store.read_frame(
        "SELECT * FROM zone_balances WHERE zone_id = 'Z1' AND interval_seconds = 3600 ORDER BY interval_end"
    )
    assert len(hourly) == 48
    assert hourly["loss_volume"].iloc[:24].tolist() == pytest.approx([15.0] * 24)
    # an incomplete balance raises no loss events
    assert store.count("loss_events") == 0


def test_rerun_replaces_the_days_rows(store, cfg):
    sc.master_data(store)
    store.bulk_insert("intervals", sc.intervals(2))
    nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    assert store.count("zone_balances") == 2 * (48 + 2)
    assert store.count("zone_night_flow") == 4


def test_night_flow_window_and_allowance(store, cfg):
    sc.master_data(store)
    store.bulk_insert("intervals", sc.intervals(2))
    nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    nights = store.read_frame("SELECT * FROM zone_night_flow WHERE zone_id = 'Z1' ORDER BY read_day")
    # constant flows: MNF = 60 gal/h; customers complete at that hour -> their 45 gal/h is the
    # legitimate night use, the excess is the 15 gal/h loss
    assert nights["min_night_flow"].tolist() == pytest.approx([60.0, 60.0])
    assert nights["legitimate_night_use"].tolist() == pytest.approx([45.0, 45.0])
    assert nights["excess_night_flow"].tolist() == pytest.approx([15.0, 15.0])


def _leak_scenario(store, cfg, days=12, start_hour=None, rate=12.0):
    sc.master_data(store)
    start = start_hour or sc.hours(days)[24 * 8 + 9] - pd.Timedelta(hours=1)
    store.bulk_insert("intervals", sc.intervals(days, leak=(start, rate), noise=1.0))
    return start


def test_a_step_is_found_at_its_hour_and_rerun_updates_not_duplicates(store, cfg):
    days = 12
    start = _leak_scenario(store, cfg, days)
    last = sc.FIRST + dt.timedelta(days=days - 1)
    run = nrw.run_days(store, cfg, sc.FIRST, last)
    events = loss_events.list_events(store, zone_id="Z1")
    assert len(events) == 1, events
    event = events.iloc[0]
    assert abs(event["start_at"] - start) <= pd.Timedelta(hours=1)
    assert event["rate"] == pytest.approx(12.0, rel=0.15)
    assert event["status"] == "open" and event["source"] == "balance"
    assert json.loads(event["evidence"])["shape"] == "step"
    assert run.events["balance"].new == [event["event_id"]]
    # the child zone (its own balance unchanged) raises nothing
    assert loss_events.list_events(store, zone_id="Z2").empty
    again = nrw.run_days(store, cfg, sc.FIRST, last)
    assert store.count("loss_events") == 1
    assert again.events["balance"].updated == [event["event_id"]] and not again.events["balance"].new
    # day by day, as the daily partitions run: still one event, same id
    for offset in range(days):
        day = sc.FIRST + dt.timedelta(days=offset)
        nrw.run_days(store, cfg, day, day)
    events = loss_events.list_events(store)
    assert events["event_id"].tolist() == [event["event_id"]]


def test_a_zone_whose_customers_have_no_interval_meters_has_no_complete_balance(store, cfg):
    sc.master_data(store)
    store.delete("meter_installs", {"meter_id": ["C21"]})  # Z2's customer is read monthly, by hand
    store.bulk_insert("intervals", sc.intervals(2))
    nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    z2 = _daily(store, "Z2")
    assert z2["metered_completeness"].tolist() == [0.0, 0.0] and not z2["complete"].any()
    assert _daily(store, "Z1")["complete"].all()


def test_missing_customer_hours_lower_the_customer_completeness(store, cfg):
    sc.master_data(store)
    rows = sc.intervals(2)
    gone = (rows["meter_id"] == "C11") & (rows["interval_end"] > sc.hours(2)[35])
    rows.loc[gone, ["value", "status"]] = [None, "missing"]  # C11 stops for the last 12 hours
    store.bulk_insert("intervals", rows)
    nrw.run_days(store, cfg, dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    second = _daily(store, "Z1").iloc[1]
    assert second["metered_completeness"] == pytest.approx(1 - 12 / 48)
    assert not second["complete"] and second["metered_volume"] == pytest.approx(24 * 45 - 12 * 20)


def test_an_inlet_read_vee_held_as_a_spike_stays_in_the_balance(store, cfg):
    sc.master_data(store)
    rows = sc.intervals(1)
    burst = (rows["meter_id"] == "B1") & (rows["interval_end"] == sc.hours(1)[5])
    estimate = rows[burst].assign(version=2, status="estimated", previous_value=3100.0, failed_rules="spike")
    rows.loc[burst, ["value", "status", "failed_rules"]] = [3100.0, "suspect", "spike"]
    store.bulk_insert("intervals", pd.concat([rows, estimate], ignore_index=True))
    hourly, _, _ = nrw.compute_balances(store, cfg, sc.FIRST, sc.FIRST)
    z1 = hourly[hourly["zone_id"] == "Z1"].reset_index(drop=True)
    assert z1.loc[5, "loss_volume"] == pytest.approx(3100 - 40 - 45)  # the burst, not the estimate
    assert z1.loc[5, "complete"] and z1.loc[5, "input_completeness"] == 1.0


def _with_operation(cfg, zone: str, start: pd.Timestamp, hours: int):
    window = {"start": start.isoformat(), "end": (start + pd.Timedelta(hours=hours)).isoformat()}
    return cfg.model_copy(
        update={"nrw": {"operations": [{"zone": zone, **window, "reason": "mains flushing"}]}}
    )


def test_a_loss_starting_inside_a_known_operation_raises_no_event(store, cfg):
    days = 12
    start = _leak_scenario(store, cfg, days)
    last = sc.FIRST + dt.timedelta(days=days - 1)
    # an operation in another zone, or in this zone at another time, explains nothing
    nrw.run_days(store, _with_operation(cfg, "Z2", start - pd.Timedelta(hours=2), 6), sc.FIRST, last)
    assert len(loss_events.list_events(store, zone_id="Z1")) == 1
    nrw.run_days(store, _with_operation(cfg, "Z1", start - pd.Timedelta(days=2), 6), sc.FIRST, last)
    assert len(loss_events.list_events(store, zone_id="Z1")) == 1
    # flushing in Z1 around the start: the step is explained, the stored event withdrawn
    run = nrw.run_days(store, _with_operation(cfg, "Z1", start - pd.Timedelta(hours=2), 6), sc.FIRST, last)
    assert loss_events.list_events(store, zone_id="Z1").empty
    assert run.events["balance"].withdrawn and not run.events["balance"].new
