"""A zone fed only by a metered inlet, end to end from the CLI: `smartmdm cis sync` (zones feed with
the bulk meter id), `smartmdm ingest` of the inlet's generic CSV in m3, `smartmdm vee run --from
--to`, then the inflow-only detector on what VEE stored (both backends)."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.domain.water.inflow_events import InflowParams
from smartmdm_pipelines.services.inflow_detection import detect_inflow_events
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.cli.test_ops_cli import env  # noqa: F401  (the same CLI environment)
from smartmdm_pipelines_tests.domain.water.synthetic import TZ, demand, hours, step

DAYS = 21
START = dt.date(2024, 1, 8)
GAL = 264.1720523581484


def _inlet_csv(path: Path, at: pd.Timestamp) -> None:
    index = hours(DAYS, START.isoformat())
    # a small zone: VEE's per-hour bound (20,000 gal/h) is sized for customer meters
    hourly = demand(index, mean=10.0, seed=11) + step(index, at, 2.0)  # m3/h
    ends = np.concatenate([index + pd.Timedelta(minutes=15 * (k - 3)) for k in range(4)])
    frame = pd.DataFrame({"interval_end": pd.DatetimeIndex(ends), "value": np.tile(hourly / 4.0, 4)})
    frame = frame.sort_values("interval_end")
    frame = frame.assign(
        meter_id="INL-1",
        channel="water",
        interval_end=frame["interval_end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        interval_seconds=900,
        unit="m3",
        quality="",
    )[["meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality"]]
    frame.to_csv(path, index=False, float_format="%.5f")


def test_inlet_only_zone_from_cis_sync_to_loss_event(env: Path, capsys) -> None:  # noqa: F811
    cis = env / "data" / "cis"
    cis.mkdir(parents=True)
    (cis / "zones.csv").write_text(
        "zone_id,name,timezone,bulk_meter_ids,parent_zone_id,zone_class\nDMA-9,Hilltop,America/Chicago,INL-1,,dma\n"
    )
    (cis / "meters.csv").write_text(
        "meter_id,kind,commodity,role,channels,unit,interval_seconds,multiplier,dials\n"
        "INL-1,ami,water,zone_bulk,water,m3,900,1,8\n"
    )
    assert main(["cis", "sync"]) == 0
    at = pd.Timestamp("2024-01-24 16:00", tz=TZ).tz_convert("UTC")
    inlet = env / "scada-inflow_INL-1.csv"
    _inlet_csv(inlet, at)
    assert main(["ingest", "--no-archive", str(inlet)]) == 0
    last = START + dt.timedelta(days=DAYS - 1)
    # the first day has no history for VEE's rules: it stays unvalidated, a gap for the detector
    first = START + dt.timedelta(days=1)
    assert main(["vee", "run", "--from", first.isoformat(), "--to", last.isoformat()]) == 0

    # `vee run` ran the NRW job after each chunk: the inflow detector's event is listed already
    capsys.readouterr()
    assert main(["nrw", "events", "--zone", "DMA-9", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in listed] == ["abrupt"]
    assert abs(pd.Timestamp(listed[0]["start"]) - at) <= pd.Timedelta(hours=1)
    assert listed[0]["zone_id"] == "DMA-9" and listed[0]["unit"] == "gal"

    store = Store()
    try:
        assert store.scalar("SELECT count(*) FROM intervals WHERE meter_id = 'INL-1'") == (DAYS - 1) * 96
        events = detect_inflow_events(
            store, START + dt.timedelta(days=7), last, params=InflowParams(lookback_days=30)
        )
        assert list(events["kind"]) == ["abrupt"]
        event = events.iloc[0]
        assert event["zone_id"] == "DMA-9" and event["unit"] == "gal" and event["source"] == "inflow"
        assert abs(pd.Timestamp(event["start_at"]) - at) <= pd.Timedelta(hours=1)
        assert 1.6 * GAL < event["rate"] < 2.4 * GAL
        assert store.count("loss_events") == 1
        # one night per validated day (the NRW job wrote them; the detector rewrote its 14, no duplicates)
        assert store.count("zone_night_flow") == DAYS - 1
    finally:
        store.dispose()
