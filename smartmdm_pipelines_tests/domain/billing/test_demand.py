"""Demand: block vs rolling (TV-16, TV-17), TOU tiers (TV-18), ratchets (TV-19), 4CP (TV-21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.billing.demand import (
    block_demand,
    coincident_demand,
    demand_series,
    four_cp_tag,
    kw_from_kwh,
    ratchet_common,
    ratchet_sam,
    rolling_demand,
)
from smartmdm_pipelines.domain.billing.tiers import tiered_charge

TIGHT = 1e-9


def _series(start: str, values, minutes: int) -> pd.Series:
    first = pd.Timestamp(start, tz="UTC") + pd.Timedelta(minutes=minutes)
    return pd.Series(
        values, index=pd.date_range(first, periods=len(values), freq=f"{minutes}min"), dtype=float
    )


def test_tv16_block_vs_rolling_30_from_15() -> None:
    kw = _series("2027-07-07 14:00", [100, 140, 60, 120, 130, 80], 15)
    assert kw.max() == 140
    block = block_demand(kw, 900, 30)
    assert block.tolist() == pytest.approx([120, 90, 105], abs=TIGHT)
    assert [t.strftime("%H:%M") for t in block.index] == ["14:30", "15:00", "15:30"]
    rolling = rolling_demand(kw, 900, 30)
    assert rolling.tolist() == pytest.approx([120, 100, 90, 125, 105], abs=TIGHT)
    assert block.max() == 120 and rolling.max() == 125
    assert kw_from_kwh(35, 15) == 140
    assert kw_from_kwh([35, 10], 30).tolist() == [70, 20]


def test_tv17_five_minute_subintervals_fifteen_minute_demand() -> None:
    kw = _series("2027-07-07 14:00", [100, 100, 100, 100, 100, 200, 200, 100, 100], 5)
    assert block_demand(kw, 300, 15).max() == pytest.approx(133.333333333, abs=1e-6)
    assert rolling_demand(kw, 300, 15).max() == pytest.approx(166.666666667, abs=1e-6)
    assert demand_series(kw, 300, 15, "rolling").max() == pytest.approx(500 / 3, abs=TIGHT)


def test_window_must_be_a_multiple_of_the_interval() -> None:
    kw = _series("2027-07-07 14:00", [1, 2, 3, 4], 15)
    with pytest.raises(ValueError, match="whole multiple"):
        block_demand(kw, 900, 5)
    with pytest.raises(ValueError, match="whole multiple"):
        rolling_demand(kw, 900, 20)
    assert demand_series(kw, 900, 15, "block").tolist() == [1, 2, 3, 4]
    assert demand_series(kw, 900, None, "rolling").tolist() == [1, 2, 3, 4]


def test_tv18_tou_demand_tiers_sam_case() -> None:
    kw = np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1], dtype=float)
    hour = np.arange(24)
    period = np.where((hour >= 15) & (hour <= 19), 0, 1)  # SAM periods 1/2 -> URDB 0/1
    peaks = pd.Series(kw).groupby(period).max()
    assert peaks.tolist() == [5, 10]
    charge = tiered_charge(peaks[0], [100, None], [20, 15]) + tiered_charge(peaks[1], [100, None], [10, 5])
    assert charge == pytest.approx(200.0, abs=TIGHT)
    assert tiered_charge(150, [100, None], [10, 5]) == pytest.approx(1250.0, abs=TIGHT)


def test_tv19_common_ratchet() -> None:
    assert ratchet_common([300], 0.8, 11, history=[500]).tolist() == [400]
    assert ratchet_common([500, 300], 0.8, 11).tolist() == [500, 400]
    assert ratchet_common([500, 300, 200], 0.8, 1).tolist() == [500, 400, 240]  # look-back of one month
    assert ratchet_common([100, 120], 0.8, 11, minimum=150).tolist() == [150, 150]
    # only summer months (eligible) count in the look-back
    assert ratchet_common([300], 0.8, 11, history=[900, 500], eligible=[False, True, True]).tolist() == [400]


SAM_PEAKS = [1200, 1100, 900, 700, 800, 950, 1050, 1150, 850, 400, 600, 750]
SAM_PCT = [0.60] * 5 + [0.95] * 4 + [0.60] * 3
SAM_CURRENT = [False] * 5 + [True] * 4 + [False] * 3


def test_tv19_sam_billing_demand() -> None:
    bd = ratchet_sam(SAM_PEAKS, 1, SAM_PCT, SAM_CURRENT, 11, minimum=500, history=SAM_PEAKS)
    expected = [1092.5] * 12
    expected[7] = 1150.0
    assert bd.tolist() == pytest.approx(expected, abs=TIGHT)
    assert bd[0] < SAM_PEAKS[0]  # January billed below its own actual peak under SAM semantics


def test_tv21_four_cp_tag_and_coincident_lookup() -> None:
    assert four_cp_tag([800, 750, 900, 820]) == pytest.approx(817.5, abs=TIGHT)
    kw = _series("2027-06-15 16:00", [700, 800, 780], 15)
    peak = pd.Timestamp("2027-06-15 16:30", tz="UTC")
    assert coincident_demand(kw, [peak], 900).tolist() == [800]
    hourly = _series("2027-06-15 16:00", [640, 810], 60)  # a 15-min peak inside an hourly interval
    assert coincident_demand(hourly, [pd.Timestamp("2027-06-15 17:45", tz="UTC")], 3600).tolist() == [810]
