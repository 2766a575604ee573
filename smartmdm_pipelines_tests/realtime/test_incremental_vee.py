"""Real-time VEE versions only what the new reads can change, with the daily engine's rules, and
the daily run over the same day afterwards adds only what belongs to the day's end: on both
backends. Also: the day lock keeps concurrent writers of a day from numbering a version twice."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.services.vee import VALIDATION_ACTOR, run_day
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import DAY_START, body, master_data

DAY = dt.date(2024, 3, 12)
METERS = ["M1", "M2", "M3", "M4"]
SPIKE = {("M3", 5): 3.0}  # flagged while the day's third-highest is ~0.6 …
EXPLAINED = {("M3", 50): 2.7, ("M3", 51): 2.8}  # … and no longer once these arrive
ZEROS = {("M3", s): 0.0 for s in range(20, 28)}  # 8 zeros delivered in two halves: a zero run
NEGATIVE = {("M4", 60): -0.5}
WITHHELD = {("M2", 40), ("M2", 41)} | {("M2", s) for s in range(90, 96)} | {("M4", 10)}
LATE = ("M4", 10)  # arrives after the rest of the day


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


@pytest.fixture(autouse=True)
def push_env(monkeypatch):
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/unused")
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)


def slot_end(slot: int) -> pd.Timestamp:
    return DAY_START + pd.Timedelta(minutes=15 * (slot + 1))


def deliver(store: Store, config, meter: str, slots: list[int]) -> None:
    override = SPIKE | EXPLAINED | ZEROS | NEGATIVE
    ingest_body(store, config, "he1", body([meter], slots, override), "http")


def current(store: Store) -> pd.DataFrame:
    frame = store.read_frame(current_intervals_sql("read_day = :d"), {"d": DAY})
    frame["slot"] = (
        (pd.to_datetime(frame["interval_end"], utc=True) - DAY_START) / pd.Timedelta(minutes=15)
    ).astype(int) - 1
    return frame.set_index(["meter_id", "slot"]).sort_index()


def real_time_day(store: Store, config) -> list[pd.DataFrame]:
    """The day in eight-quarter-hour deliveries per meter, a VEE pass after each block; returns
    the current intervals after each pass."""
    master_data(store, METERS)
    states = []
    for start in range(0, 96, 8):
        for meter in METERS:
            slots = [s for s in range(start, start + 8) if (meter, s) not in WITHHELD]
            if meter == "M3" and start == 24:  # the second half of the zero run, in its own delivery
                deliver(store, config, meter, slots[:4])
                validate_pending(store, config)
                slots = slots[4:]
            deliver(store, config, meter, slots)
        validate_pending(store, config)
        states.append(current(store))
    deliver(store, config, LATE[0], [LATE[1]])
    validate_pending(store, config)
    states.append(current(store))
    return states


def test_daily_run_after_real_time_adds_only_the_days_end(store: Store, config) -> None:
    states = real_time_day(store, config)
    early = states[0]
    assert early.loc[("M3", 5), "status"] in ("suspect", "estimated")  # the spike, flagged on receipt
    assert (
        "spike"
        in store.read_frame(
            "SELECT failed_rules FROM intervals WHERE meter_id = 'M3' AND interval_end = :e AND created_by = :v "
            "ORDER BY version",
            {"e": slot_end(5), "v": VALIDATION_ACTOR},
        )["failed_rules"].iloc[0]
    )
    assert not (early.index.get_level_values("slot") > 7).any()  # the day's future is not versioned
    before_zeros = states[2]  # after slots 16..23: four zeros, no run yet
    assert before_zeros.loc[("M3", 20), "status"] == "valid"
    end = states[-1]
    assert end.loc[("M3", 5), "status"] == "valid"  # explained by the later values: cleared in real time
    assert end.loc[("M3", 5), "value"] == 3.0
    for s in range(20, 28):  # the run, completed by the second half, flagged back to its start
        assert "zero_run" in str(
            store.read_frame(
                "SELECT failed_rules FROM intervals WHERE meter_id = 'M3' AND interval_end = :e "
                "AND created_by = :v ORDER BY version DESC LIMIT 1",
                {"e": slot_end(s), "v": VALIDATION_ACTOR},
            )["failed_rules"].iloc[0]
        )
    assert end.loc[("M2", 40), "status"] == "estimated" and end.loc[("M4", 60), "status"] == "estimated"
    assert end.loc[("M4", 10), "status"] == "valid"
    assert not any((("M2", s) in end.index) for s in range(90, 96))  # after M2's latest read

    before = store.read_frame("SELECT meter_id, channel, interval_end, version FROM intervals")
    daily = run_day(store, DAY, config)
    after = store.read_frame(
        "SELECT meter_id, interval_end, created_by, status, failed_rules FROM intervals WHERE created_at = "
        "(SELECT max(created_at) FROM intervals)"
    )
    assert store.count("intervals") == len(before) + daily.validation_versions + daily.estimation_versions
    trailing = {slot_end(s) for s in range(90, 96)}
    written = after.assign(interval_end=pd.to_datetime(after["interval_end"], utc=True))
    val = written[written["created_by"].eq(VALIDATION_ACTOR)]
    est = written[~written["created_by"].eq(VALIDATION_ACTOR)]
    # validation: exactly the intervals after their series' latest read of the day
    assert set(zip(val["meter_id"], val["interval_end"], strict=True)) == {("M2", t) for t in trailing}
    assert set(val["status"]) == {"missing"} and set(val["failed_rules"]) == {"awaiting_data"}
    # estimation: nothing: those gaps are awaited (re-collection window) and the estimates made in
    # real time (M2's mid-day gap, M4's negative read) stand
    assert est.empty and daily.validation_versions == 6
    # and nothing else differs from a second daily run
    again = run_day(store, DAY, config)
    assert (again.validation_versions, again.estimation_versions) == (0, 0)


def rollup(store: Store) -> pd.DataFrame:
    r = store.read_frame(
        "SELECT meter_id, channel, hour_start, value_sum, value_count, interval_count, estimated_count, "
        "status_rank, first_end, last_end FROM usage_hourly"
    )
    return r.sort_values(["meter_id", "channel", "hour_start"]).reset_index(drop=True)


def test_real_time_passes_refresh_only_their_hours_and_the_rollup_equals_a_rebuild(
    store: Store, config
) -> None:
    """A pass rebuilds the rollup rows of the hours its new versions fall in (not the touched
    meters' whole day): after a day of passes — flags cleared and set back in time, estimates —
    the rollup is what a rebuild from the current intervals gives."""
    real_time_day(store, config)
    kept = rollup(store)
    assert kept["interval_count"].sum() == len(current(store))  # every current interval counted once
    with store.begin() as conn:
        usage_rollup.rebuild(conn)
    pd.testing.assert_frame_equal(kept, rollup(store), check_exact=False, rtol=1e-12)


def test_billed_estimate_replaced_in_real_time_raises_a_restatement(store: Store, config) -> None:
    master_data(store, ["M2"])
    deliver(store, config, "M2", [s for s in range(48) if s not in (40, 41)])
    validate_pending(store, config)
    estimated = store.read_frame("SELECT interval_end FROM intervals WHERE status = 'estimated'")
    assert len(estimated) == 2
    store.execute("UPDATE intervals SET billed = TRUE WHERE status = 'estimated'")
    deliver(store, config, "M2", [40, 41])
    validate_pending(store, config)
    now = current(store)
    assert now.loc[("M2", 40), "status"] == "valid" and now.loc[("M2", 41), "status"] == "valid"
    exc = store.read_frame("SELECT rule, status, intervals FROM vee_exceptions WHERE meter_id = 'M2'")
    assert exc.values.tolist() == [["billed_estimate_replaced", "open", 2]]


def test_concurrent_writers_of_a_day_never_number_a_version_twice(store: Store, config) -> None:
    """The real-time path and a Dagster VEE run of the same day at the same moment (PostgreSQL
    lets both write; on DuckDB the two threads share one process and are serialised the same way)."""
    meters = [f"C{i}" for i in range(40)]
    master_data(store, meters)
    for rnd in range(3):
        slots = list(range(rnd * 8, rnd * 8 + 8))
        for m in meters:
            deliver(store, config, m, slots)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def job(fn, barrier=barrier, errors=errors) -> None:
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [
            threading.Thread(target=job, args=(lambda: validate_pending(store, config),)),
            threading.Thread(target=job, args=(lambda: run_day(store, DAY, config),)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    versions = store.read_frame("SELECT meter_id, channel, interval_end, version, created_by FROM intervals")
    dup = versions.duplicated(["meter_id", "channel", "interval_end", "version"])
    assert not dup.any(), versions[dup]
    # numbered 1..n without a hole per interval
    g = versions.groupby(["meter_id", "channel", "interval_end"])["version"]
    assert (g.max() == g.count()).all()
    # and every received read is current, validated once the two writers are done
    cur = store.read_frame(current_intervals_sql("read_day = :d"), {"d": DAY})
    received = cur[cur["interval_end"].isin([slot_end(s) for s in range(24)])]
    assert len(received) == len(meters) * 24 and received["status"].eq("valid").all()
