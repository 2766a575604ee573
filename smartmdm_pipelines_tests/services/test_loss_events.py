"""The shared loss_events writer: idempotent upsert by matching, withdrawal, cross-source merge."""

from __future__ import annotations

import json

import pandas as pd

from smartmdm_pipelines.domain.water.balance_events import EVENT_COLUMNS, event_id
from smartmdm_pipelines.services.loss_events import list_events, merge_events, upsert_events

T0 = pd.Timestamp("2024-03-10 08:00", tz="UTC")
WINDOW = (pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC"))


def event(
    source: str, start: pd.Timestamp, rate: float, zone: str = "Z1", end=None, kind="balance", conf=0.9
):
    return {
        "event_id": event_id(source, zone, start),
        "zone_id": zone,
        "meter_id": None,
        "kind": kind,
        "start_at": start,
        "end_at": end,
        "rate": rate,
        "unit": "gal",
        "detail": f"{source} event",
        "volume": rate * 10,
        "confidence": conf,
        "source": source,
        "evidence": json.dumps({"shape": "step", "sources": [source]}),
        "status": "open" if end is None else "ended",
    }


def frame(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=EVENT_COLUMNS)


def test_a_start_found_an_hour_later_updates_the_same_event(store):
    first = upsert_events(store, frame(event("balance", T0, 50.0)), "balance", WINDOW)
    [eid] = first.new
    moved = upsert_events(
        store,
        frame(event("balance", T0 + pd.Timedelta(hours=1), 52.0, end=T0 + pd.Timedelta(days=2))),
        "balance",
        WINDOW,
    )
    assert moved.updated == [eid] and not moved.new
    [row] = list_events(store).to_dict(orient="records")
    assert row["event_id"] == eid and row["status"] == "ended" and row["rate"] == 52.0


def test_an_event_not_found_again_is_withdrawn_only_inside_the_window(store):
    upsert_events(
        store,
        frame(event("balance", T0, 50.0), event("balance", T0 + pd.Timedelta(days=5), 40.0)),
        "balance",
        WINDOW,
    )
    later = (T0 + pd.Timedelta(days=3), WINDOW[1])
    result = upsert_events(store, frame(), "balance", later, ["Z1"])
    assert len(result.withdrawn) == 1
    assert list_events(store)["start_at"].tolist() == [T0]


def test_events_of_two_sources_describing_one_leak_merge_and_stay_merged(store):
    upsert_events(store, frame(event("balance", T0, 50.0)), "balance", WINDOW)
    upsert_events(
        store,
        frame(
            event("inflow", T0 + pd.Timedelta(hours=2), 60.0, kind="abrupt", conf=0.7),
            event("inflow", T0, 500.0, zone="Z2"),
        ),
        "inflow",
        WINDOW,
    )
    merged = merge_events(store)
    assert merged == [event_id("inflow", "Z1", T0 + pd.Timedelta(hours=2))]
    events = list_events(store)
    assert len(events) == 2  # Z1's merged leak and Z2's own event
    z1 = events[events["zone_id"] == "Z1"].iloc[0]
    evidence = json.loads(z1["evidence"])
    assert z1["source"] == "balance" and evidence["sources"] == ["balance", "inflow"]
    assert evidence["merged"][0]["kind"] == "abrupt"
    # both detectors run again: still one row for the leak, still listing both sources
    upsert_events(store, frame(event("balance", T0, 51.0)), "balance", WINDOW)
    upsert_events(
        store,
        frame(event("inflow", T0 + pd.Timedelta(hours=2), 60.0, kind="abrupt")),
        "inflow",
        WINDOW,
        ["Z1"],
    )
    merge_events(store)
    events = list_events(store, zone_id="Z1")
    assert len(events) == 1
    assert json.loads(events.iloc[0]["evidence"])["sources"] == ["balance", "inflow"]


def test_different_rates_do_not_merge(store):
    upsert_events(store, frame(event("balance", T0, 50.0)), "balance", WINDOW)
    upsert_events(store, frame(event("inflow", T0, 400.0)), "inflow", WINDOW)
    assert merge_events(store) == []
    assert len(list_events(store)) == 2
