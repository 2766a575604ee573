"""`smartmdm nrw …`: balance, events and water-balance as text and JSON (the issue's keys), run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import nrw
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import nrw_scenario as sc

DAYS = 12
LAST = sc.FIRST + dt.timedelta(days=DAYS - 1)


@pytest.fixture
def cli_store(store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store_url)
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    sc.master_data(store)
    start = sc.hours(DAYS)[24 * 8 + 9] - pd.Timedelta(hours=1)
    store.bulk_insert("intervals", sc.intervals(DAYS, leak=(start, 12.0), noise=1.0))
    nrw.run_days(store, load_config(data_dir=tmp_path / "data"), sc.FIRST, LAST)
    return store


def _json(capsys) -> object:
    return json.loads(capsys.readouterr().out)


def test_events_json_keys_and_offsets(cli_store: Store, capsys) -> None:
    assert main(["nrw", "events", "--json"]) == 0
    [event] = _json(capsys)
    assert {"zone_id", "start", "end", "kind", "rate_per_hour", "volume", "unit", "confidence"} <= set(event)
    assert event["zone_id"] == "Z1" and event["end"] is None and event["kind"] == "balance"
    assert event["start"].endswith("-06:00") or event["start"].endswith("-05:00")  # ISO 8601 with offset
    assert event["rate_per_hour"] == pytest.approx(12.0, rel=0.15) and event["unit"] == "gal"
    assert 0 < event["confidence"] <= 1
    assert main(["nrw", "events", "--zone", "Z2", "--json"]) == 0
    assert _json(capsys) == []
    assert main(["nrw", "events", "--from", "2024-03-04", "--to", "2024-03-05", "--json"]) == 0
    assert _json(capsys) == []  # the leak starts on day 9
    assert main(["nrw", "events"]) == 0
    assert "Z1" in capsys.readouterr().out
    assert main(["nrw", "events", "--zone", "NOPE"]) == 2
    assert "unknown zone" in capsys.readouterr().err


def test_balance_daily_hourly_and_text(cli_store: Store, capsys) -> None:
    assert (
        main(["nrw", "balance", "--zone", "Z2", "--from", "2024-03-04", "--to", "2024-03-05", "--json"]) == 0
    )
    report = _json(capsys)
    assert report["resolution"] == "day" and len(report["rows"]) == 2
    row = report["rows"][0]
    assert row["input_volume"] == pytest.approx(24 * 40) and row["metered_volume"] == pytest.approx(24 * 30)
    assert row["loss_volume"] == pytest.approx(240) and row["loss_percent"] == pytest.approx(25.0)
    assert row["complete"] is True and row["min_night_flow"] == pytest.approx(40)
    assert report["totals"]["loss_volume"] == pytest.approx(480)
    args = [
        "nrw",
        "balance",
        "--zone",
        "Z2",
        "--from",
        "2024-03-04",
        "--to",
        "2024-03-04",
        "--hourly",
        "--json",
    ]
    assert main(args) == 0
    hourly = _json(capsys)
    assert len(hourly["rows"]) == 24 and hourly["rows"][0]["loss_volume"] == pytest.approx(10)
    assert main(["nrw", "balance", "--zone", "Z1", "--from", "2024-03-04", "--to", "2024-03-15"]) == 0
    text = capsys.readouterr().out
    assert "zone Z1" in text and "minimum night flow trend" in text
    assert main(["nrw", "balance", "--zone", "ZX", "--from", "2024-03-04", "--to", "2024-03-05"]) == 2
    assert "unknown zone" in capsys.readouterr().err


def test_water_balance_json_and_text(cli_store: Store, capsys) -> None:
    assert main(["nrw", "water-balance", "--from", "2024-03-04", "--to", "2024-03-05", "--json"]) == 0
    report = _json(capsys)
    z2 = next(z for z in report["zones"] if z["zone_id"] == "Z2")
    assert z2["system_input_volume"] == pytest.approx(48 * 40)
    assert z2["billed_metered"] == pytest.approx(48 * 30)
    assert z2["non_revenue_water"] == pytest.approx(48 * 10)
    assert z2["ili"] is None  # no zone attributes configured
    assert report["system"]["system_input_volume"] == pytest.approx(
        sum(z["system_input_volume"] for z in report["zones"])
    )
    assert main(["nrw", "water-balance", "--from", "2024-03-04", "--to", "2024-03-05"]) == 0
    text = capsys.readouterr().out
    assert "Real losses (CARL)" in text and "ILI" in text


@pytest.fixture
def dagster_env(duckdb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DuckDB only: the Dagster runs of `vee run` are slow on PostgreSQL (a subprocess per step), and
    the NRW arithmetic they call is tested on both backends above."""
    url = duckdb_url
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


def _water_file(path: Path, day: str, flows: dict[str, float]) -> str:
    ends = sc.hours(1, dt.date.fromisoformat(day))
    rows = [
        f"{m},water,{e.strftime('%Y-%m-%dT%H:%M:%SZ')},3600,{v + 0.1 * (i % 3)},gal,"
        for m, v in flows.items()
        for i, e in enumerate(ends)
    ]
    path.write_text(
        "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n" + "\n".join(rows) + "\n"
    )
    return str(path)


def test_cis_sync_ingest_vee_run_leaves_the_nrw_outputs_current(dagster_env: Path, capsys) -> None:
    cis = dagster_env / "data" / "cis"
    cis.mkdir(parents=True)
    (cis / "zones.csv").write_text("zone_id,name,timezone,bulk_meter_ids\nZ9,North,America/Chicago,B9\n")
    (cis / "meters.csv").write_text(
        "meter_id,kind,commodity,role,channels,unit,interval_seconds,multiplier\n"
        "B9,ami,water,zone_bulk,water,gal,3600,1\nC9,ami,water,customer,water,gal,3600,1\n"
    )
    (cis / "service_points.csv").write_text(
        "service_point_id,commodity,timezone,zone_id,status\nSP-C9,water,America/Chicago,Z9,active\n"
    )
    (cis / "meter_installs.csv").write_text(
        "meter_id,service_point_id,installed_at\nC9,SP-C9,2024-01-01T00:00:00Z\n"
    )
    assert main(["cis", "sync"]) == 0
    files = [
        _water_file(dagster_env / f"ami-water_{day}.csv", day, {"B9": 50.0, "C9": 40.0})
        for day in ("2024-03-04", "2024-03-05")
    ]
    assert main(["ingest", "--no-archive", *files]) == 0
    assert main(["vee", "run", "--from", "2024-03-04", "--to", "2024-03-05"]) == 0
    capsys.readouterr()
    assert (
        main(["nrw", "balance", "--zone", "Z9", "--from", "2024-03-04", "--to", "2024-03-05", "--json"]) == 0
    )
    report = _json(capsys)
    assert [r["complete"] for r in report["rows"]] == [True, True]
    assert report["rows"][0]["loss_volume"] == pytest.approx(24 * 10)
    assert main(["nrw", "run", "--from", "2024-03-04", "--to", "2024-03-05"]) == 0
    assert "nrw_job 2024-03-04..2024-03-05: ok" in capsys.readouterr().out
