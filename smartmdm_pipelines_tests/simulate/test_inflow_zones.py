"""Inlet-only DMAs of the simulator (issue 16): leaks within their stated ranges, gaps, tanks, CIS rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.simulate.inflow_zones import InflowZoneSpec, simulate_inflow_zones


def test_a_year_of_inlet_only_zones_with_leaks_gaps_and_a_tank():
    spec = InflowZoneSpec(zones=4, days=365, seed=3)
    sim = simulate_inflow_zones(spec)
    assert set(sim.reads["interval_seconds"]) <= {300, 600, 900}
    assert (sim.reads["unit"] == "m3").all() and (sim.reads["value"] >= 0).all()
    truth = sim.truth
    assert len(truth) >= 8 and set(truth["kind"]) == {"abrupt", "gradual"}
    abrupt, gradual = truth[truth["kind"] == "abrupt"], truth[truth["kind"] == "gradual"]
    assert abrupt["share_of_mean_inflow"].between(0.02, 0.30).all()
    assert (
        gradual["share_of_mean_inflow"].between(0.05, 0.20).all()
        and gradual["ramp_days"].between(14, 84).all()
    )
    first = pd.Timestamp(spec.start, tz=spec.timezone) + pd.Timedelta(days=spec.warmup_days)
    assert (truth["start"] >= first).all() and truth["end"].notna().any()
    # every gap is missing from the inlet reads
    for gap in sim.gaps.itertuples():
        meter = sim.zones.set_index("zone_id").at[gap.zone_id, "bulk_meter_ids"]
        ends = sim.reads.loc[sim.reads["meter_id"] == meter, "interval_end"]
        assert not ((ends > gap.start) & (ends <= gap.end)).any()
    # the fourth zone is tank-fed: pump on/off, level in metres at 1 cm
    tank = sim.zones.iloc[3]
    assert tank["zone_class"] == "dma_tank" and tank["tank_level_meter_id"] == "LVL-I04"
    levels = sim.levels["value"].to_numpy()
    assert np.allclose(levels, np.round(levels, 2)) and levels.min() > 1.0 and levels.max() < 5.0
    pumped = sim.reads.loc[sim.reads["meter_id"] == "INL-I04", "value"]
    assert (pumped == 0).mean() > 0.2  # the pump rests while the tank is full
    again = simulate_inflow_zones(spec)
    pd.testing.assert_frame_equal(again.reads, sim.reads)


def test_generate_adds_the_zones_to_the_cis_drop_and_the_head_end_files(tmp_path):
    spec = SimulationSpec(meters=60, days=3, start=dt.date(2024, 3, 8), inflow_zones=2)
    summary = generate(tmp_path, spec)
    zones = pd.read_csv(tmp_path / "cis" / "zones.csv", dtype=str, keep_default_na=False)
    mine = zones[zones["zone_id"].str.startswith("DMA-I")]
    assert list(mine["bulk_meter_ids"]) == ["INL-I01", "INL-I02"] and set(mine["zone_class"]) == {"dma"}
    meters = pd.read_csv(tmp_path / "cis" / "meters.csv", dtype=str, keep_default_na=False).set_index(
        "meter_id"
    )
    assert meters.loc["INL-I01", "role"] == "zone_bulk" and meters.loc["INL-I01", "unit"] == "m3"
    inlet = [f for f in summary.files if f.startswith("headend/inflow/")]
    assert inlet == [
        "headend/inflow/scada-inflow_INL-I01_202403.csv",
        "headend/inflow/scada-inflow_INL-I02_202403.csv",
    ]
    head = (tmp_path / inlet[0]).read_text().splitlines()[0]
    assert head == "meter_id,channel,interval_end,interval_seconds,value,unit,quality"
    assert summary.zones == len(zones)
    assert (tmp_path / "ground_truth" / "inflow_events.csv").exists()
