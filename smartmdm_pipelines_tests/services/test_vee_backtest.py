"""The estimation backtest end to end on a small synthetic utility in DuckDB, built with the
project's own APIs (simulate → ingest → CIS sync → VEE per day), and the CLI's JSON."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines import cli
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.vee.backtest import BacktestOptions
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.services.vee_backtest import BacktestError, run_backtest
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.scale.utility import load

START = dt.date(2024, 3, 4)
DAYS = 21


@pytest.fixture(scope="module")
def simulation(tmp_path_factory) -> Path:
    """A 50-meter, 21-day synthetic utility (CIS drop and head-end files)."""
    sim = tmp_path_factory.mktemp("backtest_sim")
    generate(sim, SimulationSpec(meters=50, start=START, days=DAYS, seed=11, truth_values=False))
    return sim


def load_utility(store: Store, sim: Path, data_dir: Path) -> None:
    """Master data, every head-end file, and VEE on every operating day, as production would."""
    cfg = load_config(data_dir=data_dir)
    for day in load(store, sim, data_dir):
        run_day(store, day, cfg)


@pytest.fixture(scope="module")
def built(tmp_path_factory, simulation) -> tuple[Path, Path]:
    """(data dir, DuckDB file) of the utility after VEE ran on every day."""
    root = tmp_path_factory.mktemp("backtest")
    data_dir = root / "data"
    db = root / "store.duckdb"
    store = Store(f"duckdb:///{db}")
    load_utility(store, simulation, data_dir)
    store.dispose()
    return data_dir, db


@pytest.fixture
def store_copy(built, tmp_path) -> Store:
    _, db = built
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    store = Store(f"duckdb:///{copy}")
    yield store
    store.dispose()


def config(built):
    return load_config(data_dir=built[0])


def test_json_shape_and_accuracy_from_the_cli(built, monkeypatch, capsys) -> None:
    data_dir, db = built
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{db}")
    argv = [
        *("--data-dir", str(data_dir), "backtest-estimation", "--json", "--seed", "3"),
        *("--max-series", "20", "--gaps-per-series", "3"),
    ]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["gaps"] and list(report["gaps"]) == ["1h", "4h", "24h"]
    for name, entry in report["gaps"].items():
        assert entry["n"] > 0 and entry["n_counts"] == "masked intervals"
        # up to 3 gaps per series and length, on at most 20 series
        assert 0 < entry["series"] <= 20 and entry["series"] <= entry["gaps"] <= 3 * entry["series"]
        ratio = entry["chain_vs_baseline"]
        assert ratio["ci95"][0] <= ratio["nmae_ratio"] <= ratio["ci95"][1]
        for method in ("chain", "baseline"):
            assert set(entry[method]) >= {"nmae", "bias"}
            assert 0 <= entry[method]["nmae"] < 2, (name, method, entry[method])
            assert entry[method]["unestimated"] == 0
    # 1 h gaps are interpolated, whole days come from like days (a daily gas meter on the day after
    # spring-forward may reach the class profile: the engine dates the DST day's daily read a day early)
    assert {m.split("+")[0] for m in report["gaps"]["1h"]["chain_methods"]} <= {"linear"}
    day_methods = pd.Series(report["gaps"]["24h"]["chain_methods"])
    day_methods.index = day_methods.index.str.split("+").str[0]
    assert day_methods.groupby(level=0).sum().idxmax() == "like_day"
    assert set(day_methods.index) <= {"like_day", "class_profile"}

    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == report  # same store, same seed: same report

    assert sum(e["gaps"] for e in report["gaps"].values()) > sum(e["series"] for e in report["gaps"].values())

    assert cli.main(argv[:2] + ["backtest-estimation", "--gaps-per-series", "3"]) == 0
    table = capsys.readouterr().out
    assert "chain NMAE" in table and "baseline NMAE" in table and " 24h" in table
    assert "n gaps" in table and "chain/baseline (95 % CI)" in table and "up to 3 per series" in table


def test_seed_picks_other_gaps_and_nothing_is_written(built, store_copy) -> None:
    cfg = config(built)
    versions = store_copy.count("intervals")
    a = run_backtest(store_copy, cfg, BacktestOptions(seed=1, max_series=15))
    b = run_backtest(store_copy, cfg, BacktestOptions(seed=2, max_series=15))
    assert store_copy.count("intervals") == versions  # a backtest never writes
    key = ["gap", "meter_id", "channel", "read_day", "gap_start"]
    assert not a.gaps[key].reset_index(drop=True).equals(b.gaps[key].reset_index(drop=True))
    # every masked interval was a current valid interval, and its truth is what the store holds
    current = store_copy.read_frame(
        current_intervals_sql(columns="meter_id, channel, interval_end, value, status")
    )
    m = a.results.merge(current, on=["meter_id", "channel", "interval_end"])
    assert len(m) == len(a.results) and (m["status"] == "valid").all()
    assert (m["value"] == m["truth"]).all()
    per_gap = a.results.groupby("gap_id").size()
    assert (per_gap.to_numpy() == a.gaps.set_index("gap_id").loc[per_gap.index, "intervals"].to_numpy()).all()


def test_days_from_and_to(built, store_copy) -> None:
    first, last = START + dt.timedelta(days=16), START + dt.timedelta(days=18)
    r = run_backtest(store_copy, config(built), BacktestOptions(days_from=first, days_to=last, max_series=10))
    days = {pd.Timestamp(d).date() for d in r.gaps["read_day"]}
    assert days and min(days) >= first and max(days) <= last


def test_works_without_master_data_and_registers(built, store_copy) -> None:
    for table in ("meters", "meter_installs", "service_points", "accounts", "register_reads"):
        store_copy.execute(f"DELETE FROM {table}")
    r = run_backtest(store_copy, config(built), BacktestOptions(seed=5, max_series=10))
    for entry in r.report["gaps"].values():
        assert entry["n"] > 0 and entry["chain"]["unestimated"] == 0
        # without register reads the production chain and the chain without them are the same
        assert entry["chain"] == entry["chain_without_registers"]


def test_too_little_data_says_which_condition_failed(built, tmp_path, capsys, monkeypatch) -> None:
    empty = Store(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    with pytest.raises(BacktestError, match="no validated intervals"):
        run_backtest(empty, config(built))
    empty.dispose()

    data_dir, db = built
    short = tmp_path / "short.duckdb"
    shutil.copy(db, short)
    store = Store(f"duckdb:///{short}")
    # Monday to Wednesday: no day has three clean like days before it
    store.execute("DELETE FROM intervals WHERE read_day >= :d", {"d": START + dt.timedelta(days=3)})
    store.dispose()
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{short}")
    assert cli.main(["--data-dir", str(data_dir), "backtest-estimation", "--json"]) == 2
    err = capsys.readouterr().err
    assert "too little data" in err and "clean days of the same day type" in err


def test_postgresql_gives_the_report_duckdb_gives(built, store_copy, simulation, postgres_url) -> None:
    """The same utility loaded into PostgreSQL: the same gaps, estimates and figures."""
    pg = Store(postgres_url)
    try:
        load_utility(pg, simulation, built[0])
        opts = BacktestOptions(seed=4, max_series=12, gaps_per_series=2)
        on_pg = run_backtest(pg, config(built), opts)
        on_duckdb = run_backtest(store_copy, config(built), opts)
    finally:
        pg.dispose()
    key = ["gap", "meter_id", "channel", "read_day", "gap_start"]
    pd.testing.assert_frame_equal(on_pg.gaps[key], on_duckdb.gaps[key])
    assert on_pg.report == on_duckdb.report
    assert all(entry["n"] > 0 for entry in on_pg.report["gaps"].values())
