"""A day validated in meter chunks, in this process or on worker processes, writes what the
unchunked day writes (both backends): versions, values, flags, exceptions, daily usage, the
portal rollup and the outbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.services.vee_chunks import combine_stats, meter_chunks, run_day_chunked
from smartmdm_pipelines.services.vee_shards import day_meters
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.scale.utility import assert_same, load, simulate, snapshot


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return simulate(tmp_path_factory.mktemp("chunks_sim"))


def _outbox(store: Store) -> pd.DataFrame:
    """The outbox without what differs run to run (its sequence, the instant of writing)."""
    frame = store.read_frame("SELECT * FROM outbox").drop(columns=["seq", "created_at"])
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    return frame.sort_values(["destination", "meter_id", "channel", "interval_end"]).reset_index(drop=True)


def assert_same_outbox(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """The same messages. A class-profile estimate's value may differ in its last bits (the
    profile's sums are added chunk by chunk, as in a sharded day: ≤ 1e-12, far under the EPS
    under which VEE calls two values the same), and with it its content-hash message id."""
    assert len(left) > 0
    assert len(left) == len(right)
    rest = [c for c in left.columns if c not in ("value", "message_id")]
    pd.testing.assert_frame_equal(left[rest].astype(str), right[rest].astype(str), obj="outbox")
    a, b = left["value"].to_numpy(dtype="float64"), right["value"].to_numpy(dtype="float64")
    close = (abs(a - b) <= 1e-12) | (np.isnan(a) & np.isnan(b))
    assert close.all()
    exact = (a == b) | (np.isnan(a) & np.isnan(b))
    assert (left["message_id"][exact] == right["message_id"][exact]).all()
    assert exact.mean() > 0.99  # the others: only the last bits of some class-profile estimates


def test_meter_chunks_cover_each_meter_once() -> None:
    ids = [f"M{i:04d}" for i in reversed(range(1000))] + ["M0001"]
    chunks = meter_chunks(ids, 300)
    assert len(chunks) == 4
    assert sorted(sum(chunks, [])) == sorted(set(ids))
    assert all(c == sorted(c) and 150 < len(c) < 350 for c in chunks)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_chunked_day_writes_what_the_unchunked_day_writes(
    sim: Path,
    store_url: str,
    tmp_path: Path,
    duckdb_url: str,
    processes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/cis")  # the outbox is written
    cfg = load_config(data_dir=tmp_path / "data")
    whole, chunked = Store(duckdb_url.replace("store.duckdb", "whole.duckdb")), Store(store_url)
    try:
        days = load(whole, sim, tmp_path / "data")
        assert load(chunked, sim, tmp_path / "data") == days
        for day in days:  # in order: a day's estimates use the days before it
            expected = run_day(whole, day, cfg)
            assert len(meter_chunks(day_meters(chunked, day), 15)) == 4
            got = run_day_chunked(chunked, day, cfg, chunk_meters=15, processes=processes)
            assert (got.validation_versions, got.estimation_versions) == (
                expected.validation_versions,
                expected.estimation_versions,
            )
            figures = expected.estimation.stats
            for key in (
                "expected_intervals",
                "suspect_intervals",
                "estimated_intervals",
                "estimated_by_method",
            ):
                assert got.estimation.stats[key] == figures[key], key
            assert got.estimation.stats["completeness"] == pytest.approx(figures["completeness"])
        want, have = snapshot(whole), snapshot(chunked)
        # the whole-day profile reached every chunk: class-profile estimates exist and agree
        assert want["intervals"]["estimation_method"].eq("class_profile").any()
        assert_same(want, have)
        assert_same_outbox(_outbox(whole), _outbox(chunked))
        # a second chunked run of a day with unchanged data writes nothing
        again = run_day_chunked(chunked, days[-1], cfg, chunk_meters=15, processes=processes)
        assert (again.validation_versions, again.estimation_versions) == (0, 0)
    finally:
        whole.dispose()
        chunked.dispose()


def test_combined_figures_weigh_shares_by_their_base() -> None:
    a = {"expected_intervals": 10, "first_pass_valid_share": 1.0, "due_intervals": 10, "completeness": 1.0}
    b = {"expected_intervals": 30, "first_pass_valid_share": 0.5, "due_intervals": 0, "completeness": 1.0}
    both = combine_stats(
        [a | {"estimated_by_method": {"linear": 2}}, b | {"estimated_by_method": {"linear": 1}}]
    )
    assert both["expected_intervals"] == 40
    assert both["first_pass_valid_share"] == pytest.approx(0.625)
    assert both["estimated_by_method"] == {"linear": 3}
