"""Register-derived intervals through ingestion and VEE, on both backends: a year of AMR register
reads (YAML-mapped source) becomes validated intervals on DST days, across a rollover, a bad read,
a meter exchange and gaps; late reads re-derive, re-deliveries double nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.register_intervals import derive_intervals
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import amr_export as ax

METERS = ("12345", "67890")


@pytest.fixture
def config(tmp_path: Path):
    return load_config(ax.config_file(tmp_path), data_dir=tmp_path / "data")


def installs() -> pd.DataFrame:
    old = pd.Timestamp("2018-01-01T00:00Z")
    rows = [
        ("12345", "SP1", old, ax.EXCHANGE_AT),
        ("12345", "SP1", ax.EXCHANGE_AT, pd.NaT),
        ("67890", "SP2", old, pd.NaT),
    ]
    return pd.DataFrame(
        [
            {"meter_id": m, "service_point_id": sp, "installed_at": a, "removed_at": b, "multiplier": 1.0}
            for m, sp, a, b in rows
        ]
    )


def master_data(store: Store) -> pd.DataFrame:
    meters = pd.DataFrame(
        [
            {
                "meter_id": m,
                "kind": "ami",
                "commodity": "water",
                "role": "customer",
                "channels": "water",
                "unit": "gal",
                "interval_seconds": 3600,
                "multiplier": 1.0,
                "dials": ax.DIALS,
            }
            for m in METERS
        ]
    )
    store.bulk_insert("meters", meters)
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            [
                {
                    "service_point_id": sp,
                    "commodity": "water",
                    "timezone": ax.TZ,
                    "status": "active",
                    "customer_class": "residential",
                    "has_solar": False,
                }
                for sp in ("SP1", "SP2")
            ]
        ),
    )
    store.bulk_insert("meter_installs", installs())
    return meters


def expected_intervals(truth: pd.DataFrame, meters: pd.DataFrame) -> dict[tuple[str, pd.Timestamp], float]:
    """The domain derivation of the reads as written (meter, interval end) -> gallons."""
    reads = ax.canonical_reads(truth)
    out = derive_intervals(reads, meters, installs(), ax.TZ).intervals
    return dict(zip(zip(out["meter_id"], out["interval_end"], strict=True), out["value"], strict=True))


def current(store: Store, days: list[dt.date]) -> pd.DataFrame:
    return store.read_frame(
        "SELECT meter_id, channel, interval_end, read_day, value, status, failed_rules, source_file_id, source_line "
        "FROM current_intervals WHERE read_day IN (SELECT unnest(:days)) ORDER BY meter_id, interval_end",
        {"days": days},
    ).assign(
        interval_end=lambda f: pd.to_datetime(f["interval_end"], utc=True),
        read_day=lambda f: pd.to_datetime(f["read_day"]).dt.date,
    )


def local_day(at: pd.Timestamp) -> dt.date:
    return at.tz_convert(ax.TZ).date()


def test_a_year_of_amr_register_reads_becomes_validated_intervals(store: Store, config) -> None:
    meters = master_data(store)
    export = ax.write_export(config.landing_dir / "lecturas_2019.csv")
    summary = ingest_file(store, export.path, config)
    assert (summary.format, summary.status, summary.interval_reads) == ("mapped_csv", "loaded", 0)
    assert summary.register_reads == summary.records == len(export.reads) and summary.rejected_rows == 0
    assert summary.vee_days[0] == "2019-01-01" and len(summary.vee_days) >= 365  # every day the reads span

    truth = export.reads
    wrap = truth[(truth["meter_id"] == "67890") & (truth.groupby("meter_id")["litres"].diff() < 0)]
    gap_reads = truth[truth["meter_id"] == "67890"]["read_at"]
    longest = gap_reads.diff().idxmax()  # the 29-hour gap
    days = {
        "spring": dt.date.fromisoformat(ax.SPRING_DAY),
        "autumn": dt.date.fromisoformat(ax.AUTUMN_DAY),
        "rollover": local_day(wrap["read_at"].iloc[0]),
        "exchange": local_day(ax.EXCHANGE_AT),
        "bad read": local_day(ax.BAD_READ_AT),
        "gap": local_day(gap_reads[longest] - pd.Timedelta(hours=14)),
    }
    for day in days.values():
        run_day(store, day, config)

    got = current(store, list(days.values()))
    expected = expected_intervals(truth, meters)
    valid = got[got["status"] == "valid"]
    assert len(valid) > 0.9 * len(got)
    assert valid["value"].to_numpy() == pytest.approx(
        [expected[m, e] for m, e in zip(valid["meter_id"], valid["interval_end"], strict=True)], rel=1e-9
    )
    assert (valid["source_file_id"] == summary.file_id).all()
    lines = truth.set_index("read_at")["line"]
    closing = valid["source_line"].map(dict(zip(lines.to_numpy(), lines.index, strict=True)))
    assert (closing >= valid["interval_end"]).all()  # each interval traces to the register read closing it
    assert (got["value"].dropna() >= 0).all()

    per_day = got.groupby(["read_day", "meter_id"]).size()
    for name in METERS:
        assert per_day[days["spring"], name] == 23 and per_day[days["autumn"], name] == 25
        assert (
            got[(got["meter_id"] == name) & (got["read_day"] == days["autumn"])]["status"] == "valid"
        ).all()

    # the exchange: nothing derived between the old meter's last read and the new one's first
    before = truth[(truth["meter_id"] == "12345") & (truth["read_at"] < ax.EXCHANGE_AT)]["read_at"].max()
    after = truth[(truth["meter_id"] == "12345") & (truth["read_at"] > ax.EXCHANGE_AT)]["read_at"].min()
    swap = got[(got["meter_id"] == "12345") & (got["read_day"] == days["exchange"])]
    across = (swap["interval_end"] > before.floor("h")) & (swap["interval_end"] <= after.ceil("h"))
    assert set(swap.loc[across, "status"]) == {"estimated"} and (swap.loc[~across, "status"] == "valid").all()

    exceptions = store.read_frame(
        "SELECT meter_id, read_day, rule, severity, detail, status FROM vee_exceptions"
    )
    exceptions["read_day"] = pd.to_datetime(exceptions["read_day"]).dt.date
    decreases = exceptions[exceptions["rule"] == "register_decrease"]
    assert decreases[["meter_id", "read_day", "severity", "status"]].values.tolist() == [
        ["12345", days["bad read"], "warning", "open"]
    ]
    assert "ignored as a bad read" in decreases["detail"].iloc[0] and " L at " in decreases["detail"].iloc[0]
    assert not set(exceptions["rule"]) & {"flat_line", "continuous_flow", "sum_check", "negative"}
    # inside the 29-hour gap: valid, evenly apportioned values (no flat-line suspect)
    start, end = gap_reads[longest - 1], gap_reads[longest]
    inside = got[
        (got["meter_id"] == "67890")
        & (got["interval_end"] > start.ceil("h") + pd.Timedelta(hours=1))
        & (got["interval_end"] <= end.floor("h"))
    ]
    assert len(inside) >= 12 and (inside["status"] == "valid").all()
    assert np.ptp(inside["value"].to_numpy()) < 1e-9


def hourly(meter: str, start: str, hours: int, litres: float = 1000.0, seed: int = 7) -> pd.DataFrame:
    """About-hourly reads of one meter (drifting seconds), cumulative litres."""
    rng = np.random.default_rng(seed)
    at = pd.Timestamp(start) + pd.to_timedelta(
        np.arange(hours) * 3600 + rng.integers(-40, 40, hours), unit="s"
    )
    return pd.DataFrame(
        {"meter_id": meter, "read_at": at, "litres": litres + np.cumsum(rng.integers(0, 30, hours))}
    )


def day_values(store: Store, day: dt.date) -> pd.Series:
    got = current(store, [day])
    return got[got["meter_id"] == "67890"].set_index(["meter_id", "interval_end"])["value"]


def test_a_late_read_between_two_used_reads_rederives_the_span(store: Store, config) -> None:
    master_data(store)
    day = dt.date(2019, 5, 6)
    reads = hourly("67890", "2019-05-05T21:00:20Z", 30)
    late = reads.iloc[[10]]
    early = reads.drop(index=range(6, 15))  # a 10-hour gap around the late read
    first = ingest_file(store, ax.write_export(config.landing_dir / "lecturas_a.csv", early).path, config)
    assert day.isoformat() in first.vee_days
    run_day(store, day, config)
    flat = day_values(store, day)
    assert flat.round(9).value_counts().max() >= 8  # the gap apportioned evenly

    second = ingest_file(store, ax.write_export(config.landing_dir / "lecturas_b.csv", late).path, config)
    assert day.isoformat() in second.vee_days  # the days the late read changes
    run_day(store, day, config)
    now = day_values(store, day)
    expected = pd.concat([early, late]).sort_values("read_at").assign(line=0)
    want = expected_intervals(expected, store.read_frame("SELECT * FROM meters"))
    assert now.to_numpy() == pytest.approx([want[k] for k in now.index], rel=1e-9)
    changed = ~np.isclose(now.to_numpy(), flat.reindex(now.index).to_numpy())
    assert changed.sum() >= 8  # no interval of the old, even split is left behind
    before = store.read_frame("SELECT count(*) AS n FROM intervals WHERE read_day = :d", {"d": day})[
        "n"
    ].iloc[0]
    run_day(store, day, config)  # unchanged data: nothing new
    assert (
        store.read_frame("SELECT count(*) AS n FROM intervals WHERE read_day = :d", {"d": day})["n"].iloc[0]
        == before
    )


def test_a_re_delivery_doubles_nothing(store: Store, config) -> None:
    meters = master_data(store)
    days = [dt.date(2019, 5, 6), dt.date(2019, 5, 7)]
    reads = hourly("67890", "2019-05-05T21:00:20Z", 54).assign(line=0)
    path = ax.write_export(config.landing_dir / "lecturas_1.csv", reads.iloc[:40]).path
    copy_bytes = path.read_bytes()
    first = ingest_file(store, path, config)
    for day in days:
        run_day(store, day, config)
    before = current(store, days)
    before = before[(before["status"] == "valid") & (before["meter_id"] == "67890")]
    before = before.set_index(["meter_id", "interval_end"])["value"]

    duplicate = config.landing_dir / "lecturas_1_again.csv"
    duplicate.write_bytes(copy_bytes)
    assert ingest_file(store, duplicate, config).status == "duplicate"
    overlapping = ax.write_export(
        config.landing_dir / "lecturas_2.csv", reads.iloc[20:]
    ).path  # 20 reads again
    second = ingest_file(store, overlapping, config)
    assert second.register_reads == 34 and {d.isoformat() for d in days} <= set(second.vee_days)
    for day in days:
        run_day(store, day, config)
    assert store.count("register_reads") == 40 + 34  # both deliveries kept as received
    after = current(store, days)
    after = after[after["meter_id"] == "67890"].set_index(["meter_id", "interval_end"])
    assert (after["status"] == "valid").all()
    want = expected_intervals(reads, meters)  # each read once
    assert after["value"].to_numpy() == pytest.approx([want[k] for k in after.index], rel=1e-9)
    assert after.loc[before.index, "value"].to_numpy() == pytest.approx(before.to_numpy(), rel=1e-9)
    assert first.file_id != second.file_id
