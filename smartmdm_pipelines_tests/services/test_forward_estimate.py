"""Forward estimates for billing on both backends, end to end with the VEE run: projected while
the data is awaited, kept by VEE until it arrives, superseded by the late actuals (a billed one
asks for restatement)."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.timeutil import interval_ends, local_day_bounds
from smartmdm_pipelines.services.forward_estimate import forward_estimate
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER
from smartmdm_pipelines_tests.services.test_vee_service import master_data

TZ = "America/Chicago"
DAY = dt.date(2024, 3, 12)  # a Tuesday
WEEK_BEFORE = DAY - dt.timedelta(days=7)


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def value(slot: int) -> float:
    return round(0.3 + 0.1 * (slot % 4) + slot / 1000, 3)


def reads(path: Path, day: dt.date, meters: dict[str, range]) -> Path:
    ends = interval_ends(day, TZ, 900)
    lines = [
        f"{m},kwh_delivered,{ends[s].strftime('%Y-%m-%dT%H:%M:%SZ')},900,{value(s)},kWh,"
        for m, slots in meters.items()
        for s in slots
    ]
    path.write_text(INTERVAL_HEADER + "\n".join(lines) + "\n")
    return path


def current(store: Store, meter: str, day: dt.date) -> pd.DataFrame:
    frame = store.read_frame(
        "SELECT * FROM intervals WHERE meter_id = :m AND read_day = :d", {"m": meter, "d": day}
    )
    frame = frame.sort_values(["interval_end", "version"]).drop_duplicates("interval_end", keep="last")
    return frame.reset_index(drop=True)


def test_forward_estimate_then_late_actuals_through_run_day(store: Store, config, tmp_path: Path) -> None:
    master_data(store)
    ingest_file(store, reads(tmp_path / "w.csv", WEEK_BEFORE, {"M1": range(96), "M2": range(96)}), config)
    run_day(store, WEEK_BEFORE, config)
    ingest_file(store, reads(tmp_path / "d.csv", DAY, {"M1": range(40), "M2": range(96)}), config)
    first = run_day(store, DAY, config)
    assert first.estimation.stats["awaiting_intervals"] == 56  # M1 stopped at 10:00, still awaited

    through = local_day_bounds(DAY, TZ)[1]
    summary = forward_estimate(store, None, through, "billing-close", "cycle C01 close", cfg=config)
    assert (summary.series_considered, summary.series_estimated, summary.intervals_written) == (2, 1, 56)
    assert summary.intervals_unestimated == 0 and summary.beyond_limit == []
    assert summary.by_method == {"multi_week": 56}
    cur = current(store, "M1", DAY)
    projected = cur.iloc[40:]
    assert (projected["status"] == "estimated").all() and (projected["estimation_method"] == "forward").all()
    assert (projected["espi_quality"] == 12).all() and (projected["iec_quality"] == "2.12.0").all()
    assert (projected["created_by"] == "billing-close").all() and (projected["version"] == 2).all()
    assert "cycle C01 close" in projected["reason"].iloc[0] and "multi_week" in projected["reason"].iloc[0]
    assert projected["value"].tolist() == pytest.approx([value(s) for s in range(40, 96)])  # a week earlier
    assert (cur.iloc[:40]["status"] == "valid").all()

    # idempotent: the series now reaches ``through``
    assert (
        forward_estimate(store, ["M1"], through, "billing-close", "again", cfg=config).intervals_written == 0
    )
    # VEE on the still-awaited day keeps the forward estimate current
    again = run_day(store, DAY, config)
    assert (again.validation_versions, again.estimation_versions) == (0, 0)
    assert (current(store, "M1", DAY).iloc[40:]["estimation_method"] == "forward").all()

    # the bill used them; then the actuals arrive: they supersede, and the bill must be restated
    store.execute("UPDATE intervals SET billed = TRUE WHERE estimation_method = 'forward'")
    late = {"M1": range(40, 96)}
    ingest_file(store, reads(tmp_path / "late.csv", DAY, late), config)
    third = run_day(store, DAY, config)
    assert third.validation_versions == 56
    cur = current(store, "M1", DAY)
    assert (cur["status"] == "valid").all() and cur["estimation_method"].isna().all()
    assert cur["previous_value"].iloc[40] == pytest.approx(value(40))  # the forward estimate it replaced
    restate = store.read_frame("SELECT * FROM vee_exceptions WHERE rule = 'billed_estimate_replaced'")
    assert len(restate) == 1 and restate["meter_id"].iloc[0] == "M1" and restate["intervals"].iloc[0] == 56


def test_forward_estimate_of_a_day_vee_has_not_seen_and_silent_series(
    store: Store, config, tmp_path: Path
) -> None:
    master_data(store)
    ingest_file(store, reads(tmp_path / "w.csv", WEEK_BEFORE, {"M1": range(96)}), config)
    run_day(store, WEEK_BEFORE, config)
    ingest_file(store, reads(tmp_path / "d.csv", DAY, {"M1": range(96)}), config)
    run_day(store, DAY, config)
    nxt = DAY + dt.timedelta(days=1)
    through = local_day_bounds(nxt, TZ)[0] + pd.Timedelta(hours=6)  # 06:00 local on the next day
    summary = forward_estimate(store, ["M1", "M2"], through, "ops", "early close", cfg=config)
    assert summary.intervals_written == 24 and summary.beyond_limit == [("M2", "kwh_delivered")]
    cur = current(store, "M1", nxt)
    assert len(cur) == 24 and (cur["version"] == 1).all() and cur["previous_value"].isna().all()
    assert pd.Timestamp(cur["read_day"].iloc[0]).date() == nxt

    # the actuals arrive and VEE runs the day: they replace the (unbilled) projection quietly
    ingest_file(store, reads(tmp_path / "n.csv", nxt, {"M1": range(96)}), config)
    run = run_day(store, nxt, config)
    assert run.validation_versions == 96 + 96  # M1 actuals (24 over the projection) and M2 missing
    cur = current(store, "M1", nxt)
    assert (cur["status"] == "valid").all() and len(cur) == 96
    assert store.count("vee_exceptions", {"rule": "billed_estimate_replaced"}) == 0


def test_forward_estimate_needs_who_and_why(store: Store, config) -> None:
    with pytest.raises(ValueError, match="created_by"):
        forward_estimate(store, None, dt.datetime(2024, 3, 13, tzinfo=dt.UTC), "", "x", cfg=config)
