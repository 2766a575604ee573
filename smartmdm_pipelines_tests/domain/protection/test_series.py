"""Change points, peer adjustment, runs and occupancy on small hand-made series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.protection.series import UsageMatrix, downward_steps, peer_adjusted
from smartmdm_pipelines.domain.protection.usage_signals import _last_runs, occupancy


def test_tv30_change_point_after_index_5() -> None:
    """Daily kWh 20, 21, 19, 20, 20, 8, 9, 8, 7, 8: the L2 break is after index 5 (SSE 364 -> 4)."""
    x = np.array([[20, 21, 19, 20, 20, 8, 9, 8, 7, 8]], dtype="float64")
    cp = downward_steps(x, min_segment=2)
    assert cp.k[0] == 5
    assert cp.before[0] == pytest.approx(20.0) and cp.after[0] == pytest.approx(8.0)
    assert cp.ratio[0] == pytest.approx(0.4)
    residual = ((x[0, :5] - 20) ** 2).sum() + ((x[0, 5:] - 8) ** 2).sum()
    assert residual == pytest.approx(4.0)
    assert cp.t[0] > 10


def test_only_steps_down_and_gaps_are_skipped() -> None:
    x = np.array(
        [
            [5, 5, 5, 5, 20, 20, 20, 20],  # a rise: no downward step
            [10, np.nan, 10, 10, 2, np.nan, 2, 2],  # NaN days are skipped, the step is still at column 4
        ],
        dtype="float64",
    )
    cp = downward_steps(x, min_segment=2)
    assert cp.k[0] == 0 and np.isnan(cp.ratio[0])
    assert cp.k[1] == 4 and cp.n_before[1] == 3 and cp.n_after[1] == 3


def test_peer_adjustment_removes_a_common_seasonal_swing() -> None:
    """Every peer doubles its use in the second half (a heat wave): against its peers nobody moved much;
    the one that stayed flat fell to about half of its peer-relative level."""
    days = [dt.date(2024, 7, 1) + dt.timedelta(days=i) for i in range(8)]
    season = np.array([1, 1, 1, 1, 2, 2, 2, 2], dtype="float64")
    values = np.vstack([season * s for s in (10, 12, 14, 16, 18, 20)] + [np.full(8, 15.0)])
    ids = pd.Index([f"SP{i}" for i in range(7)])
    m = UsageMatrix(ids, days, values, pd.Series("kWh", index=ids), pd.Series("M", index=ids))
    sps = pd.DataFrame(
        {
            "service_point_id": ids,
            "commodity": "electric",
            "customer_class": "residential",
            "rate_code": "E-RES",
        }
    )
    adjusted, median = peer_adjusted(m, sps, min_peers=5)
    assert median[0, 0] == 15.0 and median[0, 7] == 28.0  # medians of the day, over all seven
    raw = downward_steps(values, min_segment=2)
    cp = downward_steps(adjusted, min_segment=2)
    assert (raw.k[:6] == 0).all()  # raw: the peers only rose
    assert np.all(np.abs(adjusted[:6, 4:].mean(axis=1) / adjusted[:6, :4].mean(axis=1) - 1) < 0.1)
    assert cp.k[6] == 4 and cp.ratio[6] == pytest.approx(15 / 28)


def test_latest_run_of_at_least_n() -> None:
    flags = np.array(
        [
            [1, 1, 1, 0, 0, 1, 1, 0],  # runs of 3 and 2: the run of 3 is the latest long one
            [0, 1, 1, 1, 1, 0, 1, 1],
            [1, 0, 1, 0, 1, 0, 1, 0],
        ],
        dtype=bool,
    )
    first, last = _last_runs(flags, 3)
    assert first.tolist() == [0, 1, -1] and last.tolist() == [2, 4, -1]


def test_occupancy_follows_move_out_as_the_last_day_of_service() -> None:
    days = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(5)]
    ids = pd.Index(["A", "B", "C"])
    accounts = pd.DataFrame(
        {
            "account_id": ["1", "2"],
            "service_point_id": ["A", "B"],
            "move_in": [dt.date(2020, 1, 1), dt.date(2024, 3, 3)],
            "move_out": [dt.date(2024, 3, 2), None],
        }
    )
    sps = pd.DataFrame({"service_point_id": ["A", "B", "C"], "status": ["active", "active", "inactive"]})
    occupied, known = occupancy(accounts, sps, ids, days)
    assert occupied.astype(int).tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    assert known.tolist() == [True, True, False]
