"""The theft option of the simulator: bypassed and stopped meters with ground truth, and nothing
else changes without it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from smartmdm_pipelines.simulate import SimulationSpec, generate


def _delivered(out: Path) -> pd.DataFrame:
    files = sorted((out / "headend").glob("*_intervals.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def test_bypassed_and_stopped_meters_with_ground_truth(tmp_path: Path) -> None:
    spec = SimulationSpec(meters=200, days=6, seed=3, theft_rate=0.02)
    summary = generate(tmp_path, spec)
    assert summary.faults_by_type["meter_bypass"] == 4 and summary.faults_by_type["meter_stopped"] == 4
    faults = pd.read_csv(tmp_path / "ground_truth" / "faults.csv")
    thefts = faults[faults["fault_type"].isin(["meter_bypass", "meter_stopped"])]
    assert not thefts["meter_id"].duplicated().any()
    assert not faults[~faults.index.isin(thefts.index)]["meter_id"].isin(thefts["meter_id"]).any()
    delivered = _delivered(tmp_path)
    delivered["interval_end"] = pd.to_datetime(delivered["interval_end"], utc=True)
    truth = pq.read_table(tmp_path / "ground_truth" / "truth_intervals.parquet").to_pandas()
    truth["interval_end"] = pd.to_datetime(truth["interval_end"], utc=True)
    for f in thefts.itertuples():
        start = pd.Timestamp(f.start)
        mine = delivered[(delivered["meter_id"] == f.meter_id) & (delivered["channel"] == f.channel)]
        after = mine[mine["interval_end"] >= start]["value"]
        before = mine[mine["interval_end"] < start]["value"]
        assert len(after) and len(before) and before.sum() > 0
        detail = json.loads(f.detail)
        if f.fault_type == "meter_stopped":
            assert (after == 0).all() and detail["unmetered"] > 0
        else:
            clean = truth[(truth["meter_id"] == f.meter_id) & (truth["interval_end"] >= start)]
            clean = clean[clean["channel"] == f.channel]["value"].sum()
            assert after.sum() == pytest.approx(clean * (1 - detail["bypassed_share"]), rel=0.01)


def test_without_the_option_the_manifest_and_faults_do_not_mention_it(tmp_path: Path) -> None:
    generate(tmp_path, SimulationSpec(meters=60, days=2, seed=3, truth_values=False))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "theft_rate" not in manifest["spec"]
    faults = pd.read_csv(tmp_path / "ground_truth" / "faults.csv")
    assert not faults["fault_type"].isin(["meter_bypass", "meter_stopped"]).any()
    with pytest.raises(ValueError, match="theft_rate"):
        SimulationSpec(theft_rate=0.5)
