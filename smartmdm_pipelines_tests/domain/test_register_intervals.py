"""Register -> interval derivation on small frames (docs/vee_rules.md T7, T15) and on a year of AMR reads."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.readings import DERIVED_QUALITY, SPREAD_QUALITY
from smartmdm_pipelines.domain.register_intervals import decrease_exceptions, derive_intervals
from smartmdm_pipelines.domain.timeutil import operating_day
from smartmdm_pipelines_tests import amr_export as ax

GAL_PER_L = ax.GAL_PER_L


def reads(times: list[str], values: list[float], meter: str = "M1", unit: str = "gal", file_id: int = 1):
    return pd.DataFrame(
        {
            "meter_id": meter,
            "channel": "water",
            "read_at": pd.to_datetime(times, utc=True),
            "value": values,
            "source_unit": unit,
            "file_id": file_id,
            "line": np.arange(2, len(times) + 2),
        }
    )


def meter(seconds: int = 3600, multiplier: float = 1.0, dials: float | None = 6, meter_id: str = "M1"):
    return pd.DataFrame(
        [{"meter_id": meter_id, "interval_seconds": seconds, "multiplier": multiplier, "dials": dials}]
    )


def by_end(frame: pd.DataFrame) -> dict[str, float]:
    return {
        e.strftime("%Y-%m-%dT%H:%M"): v for e, v in zip(frame["interval_end"], frame["value"], strict=True)
    }


def test_t7_rollover_with_multiplier_is_25_dial_units_times_80() -> None:
    r = reads(["2024-01-01T00:00Z", "2024-01-01T01:00Z"], [99990, 15], unit="kWh")
    r["channel"] = "kwh_delivered"
    out = derive_intervals(r, meter(multiplier=80.0, dials=5), None, "UTC")
    assert by_end(out.intervals) == pytest.approx({"2024-01-01T01:00": 2000.0})
    assert out.decreases["kind"].tolist() == ["rollover"]
    assert decrease_exceptions(out.decreases, dt.date(2024, 1, 1), "UTC").empty  # not a VEE exception


def test_a_register_advance_is_apportioned_linearly_over_the_grid_it_spans() -> None:
    # 5 h 00 min 40 s between two reads with drifting seconds: 5 whole hours and two partial ones
    r = reads(["2024-01-01T00:59:40Z", "2024-01-01T06:00:20Z"], [1000.0, 1301.0])
    out = derive_intervals(r, meter(), None, "UTC")
    rate = 301.0 / (5 * 3600 + 40)
    assert by_end(out.intervals) == pytest.approx({f"2024-01-01T0{h}:00": rate * 3600 for h in range(2, 7)})
    assert set(out.intervals["source_quality"]) == {SPREAD_QUALITY}  # a 5-hour gap: spread
    assert out.intervals["line"].tolist() == [3] * 5  # the closing read


def test_an_interval_straddling_a_read_takes_its_parts_from_both_pairs() -> None:
    r = reads(["2024-01-01T00:00:30Z", "2024-01-01T01:00:30Z", "2024-01-01T02:00:10Z"], [0.0, 60.0, 120.0])
    out = derive_intervals(r, meter(), None, "UTC")
    # 01:00-01:00:30 from the first pair, 01:00:30-02:00 from the second; the intervals at both
    # ends of the chain are not covered yet (they wait for the reads before and after)
    assert by_end(out.intervals) == pytest.approx({"2024-01-01T02:00": 60 / 3600 * 30 + 60 / 3580 * 3570})
    assert out.intervals["source_quality"].tolist() == [DERIVED_QUALITY]
    assert out.intervals["line"].tolist() == [4]


def test_a_low_and_a_high_bad_read_are_ignored_and_bridged() -> None:
    times = [f"2024-01-01T{h:02d}:00Z" for h in range(7)]
    r = reads(times, [100.0, 110.0, 11.0, 130.0, 900.0, 150.0, 160.0])  # 11: a dropped digit; 900: a spike
    out = derive_intervals(r, meter(), None, "UTC")
    values = by_end(out.intervals)
    assert sum(values.values()) == pytest.approx(60.0)
    assert values["2024-01-01T02:00"] == pytest.approx(10.0) and values["2024-01-01T03:00"] == pytest.approx(
        10.0
    )
    assert min(values.values()) >= 0
    bad = out.decreases[out.decreases["kind"] == "bad_read"]
    assert sorted(bad["value"]) == [11.0, 900.0]
    exc = decrease_exceptions(out.decreases, dt.date(2024, 1, 1), "UTC")
    assert exc[["meter_id", "rule", "severity"]].values.tolist() == [["M1", "register_decrease", "warning"]]
    assert "read 11 gal" in exc["detail"].iloc[0] and "ignored as a bad read" in exc["detail"].iloc[0]


def test_an_unexplained_decrease_derives_nothing_across_it_and_raises_an_exception_on_each_day() -> None:
    times = ["2024-01-01T20:00Z", "2024-01-01T21:00Z", "2024-01-02T01:00Z", "2024-01-02T02:00Z"]
    r = reads(times, [5000.0, 5010.0, 40.0, 50.0])  # a reset, not near the top of 6 dials
    out = derive_intervals(r, meter(), None, "UTC")
    assert sorted(by_end(out.intervals)) == ["2024-01-01T21:00", "2024-01-02T02:00"]
    assert out.decreases["kind"].tolist() == ["reset"]
    for day in (dt.date(2024, 1, 1), dt.date(2024, 1, 2)):
        exc = decrease_exceptions(out.decreases, day, "UTC")
        assert len(exc) == 1 and "no consumption derived" in exc["detail"].iloc[0]
    assert decrease_exceptions(out.decreases, dt.date(2024, 1, 3), "UTC").empty


def installs(end_register: float | None = None, start_register: float | None = None, multiplier=(1.0, 1.0)):
    at = pd.Timestamp("2024-01-01T10:00Z")
    return pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "installed_at": pd.Timestamp("2023-01-01T00:00Z"),
                "removed_at": at,
                "multiplier": multiplier[0],
                "start_register": None,
                "end_register": end_register,
            },
            {
                "meter_id": "M1",
                "installed_at": at,
                "removed_at": pd.NaT,
                "multiplier": multiplier[1],
                "start_register": start_register,
                "end_register": None,
            },
        ]
    )


def test_t15_no_consumption_is_derived_across_a_meter_exchange() -> None:
    times = ["2024-01-01T08:00Z", "2024-01-01T09:00Z", "2024-01-01T11:00Z", "2024-01-01T12:00Z"]
    r = reads(times, [12345.0, 12350.0, 1.0, 4.0])
    out = derive_intervals(r, meter(), installs(), "UTC")
    assert by_end(out.intervals) == pytest.approx({"2024-01-01T09:00": 5.0, "2024-01-01T12:00": 3.0})
    assert out.decreases["kind"].tolist() == ["exchange"]
    assert decrease_exceptions(out.decreases, dt.date(2024, 1, 1), "UTC").empty


def test_the_cis_final_and_initial_registers_bridge_an_exchange() -> None:
    times = ["2024-01-01T08:00Z", "2024-01-01T09:00Z", "2024-01-01T11:00Z", "2024-01-01T12:00Z"]
    r = reads(times, [12345.0, 12350.0, 1.0, 4.0])
    out = derive_intervals(r, meter(), installs(end_register=12352.0, start_register=0.0), "UTC")
    assert by_end(out.intervals) == pytest.approx(
        {
            "2024-01-01T09:00": 5.0,
            "2024-01-01T10:00": 2.0,  # 12350 -> 12352 on the old meter
            "2024-01-01T11:00": 1.0,  # 0 -> 1 on the new one
            "2024-01-01T12:00": 3.0,
        }
    )
    assert out.intervals["file_id"].isna().tolist() == [False, True, False, False]  # closed by the CIS


def test_each_installation_applies_its_own_multiplier() -> None:
    times = ["2024-01-01T08:00Z", "2024-01-01T09:00Z", "2024-01-01T11:00Z", "2024-01-01T12:00Z"]
    out = derive_intervals(
        reads(times, [10.0, 11.0, 20.0, 21.0]),
        meter(multiplier=1.0),
        installs(multiplier=(40.0, 80.0)),
        "UTC",
    )
    assert by_end(out.intervals) == pytest.approx({"2024-01-01T09:00": 40.0, "2024-01-01T12:00": 80.0})


def test_reads_further_apart_than_the_gap_limit_are_left_to_vee() -> None:
    r = reads(["2024-01-01T00:00Z", "2024-01-04T01:00Z", "2024-01-04T02:00Z"], [0.0, 700.0, 710.0])
    assert sorted(by_end(derive_intervals(r, meter(), None, "UTC").intervals)) == ["2024-01-04T02:00"]
    longer = derive_intervals(r.assign(max_gap_hours=80.0), meter(), None, "UTC").intervals
    assert len(longer) == 74 and longer["value"].sum() == pytest.approx(710.0)


def test_a_re_delivered_read_counts_once_and_the_latest_delivery_wins() -> None:
    first = reads(["2024-01-01T00:00Z", "2024-01-01T01:00Z", "2024-01-01T02:00Z"], [0.0, 10.0, 20.0])
    again = reads(["2024-01-01T01:00Z", "2024-01-01T02:00Z"], [10.0, 25.0], file_id=2)  # 20 corrected to 25
    out = derive_intervals(pd.concat([first, again]), meter(), None, "UTC")
    assert by_end(out.intervals) == pytest.approx({"2024-01-01T01:00": 10.0, "2024-01-01T02:00": 15.0})
    assert out.intervals["file_id"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("day", "seconds", "expected"),
    [("2019-03-31", 3600, 23), ("2019-10-27", 3600, 25), ("2019-03-31", 900, 92), ("2019-10-27", 900, 100)],
)
def test_dst_days_get_23_25_hours_or_92_100_quarter_hours(day: str, seconds: int, expected: int) -> None:
    start = pd.Timestamp(day).tz_localize(ax.TZ).tz_convert("UTC")
    times = start + pd.to_timedelta(np.arange(-2, 30) * 3600 + 17, unit="s")  # hourly, 17 s past
    r = reads(list(times.strftime("%Y-%m-%dT%H:%M:%SZ")), list(np.arange(len(times)) * 36.0))
    out = derive_intervals(r, meter(seconds=seconds), None, ax.TZ).intervals
    days = operating_day(out["interval_end"], out["interval_seconds"], ax.TZ)
    assert (days == pd.Timestamp(day)).sum() == expected
    assert out.loc[(days == pd.Timestamp(day)).to_numpy(), "value"].sum() == pytest.approx(
        36.0 * expected * seconds / 3600
    )


def test_a_daily_grid_ends_at_local_midnight_with_23_hour_days() -> None:
    times = ["2019-03-29T09:13:00Z", "2019-04-01T08:50:00Z"]
    out = derive_intervals(reads(times, [0.0, 1000.0]), meter(seconds=86400), None, ax.TZ).intervals
    ends = out["interval_end"].dt.tz_convert(ax.TZ)
    assert [e.strftime("%d %H:%M") for e in ends] == ["31 00:00", "01 00:00"]
    rate = 1000.0 / (pd.Timestamp(times[1]) - pd.Timestamp(times[0])).total_seconds()
    assert out["value"].tolist() == pytest.approx([rate * 86400, rate * 23 * 3600])
    assert out["interval_seconds"].tolist() == [86400, 86400]


# ------------------------------------------------------------------ the year of AMR reads
def reference(truth: pd.DataFrame, step: int = 3600) -> dict[tuple[str, pd.Timestamp], float]:
    """A plain loop over the pairs the generator knows are good: no pair across the exchange,
    the bad read left out, the rollover adding 10^6 L; hourly grid, complete intervals only."""
    ok = ~(
        (truth["meter_id"] == "12345") & ((truth["read_at"] - ax.BAD_READ_AT).abs() < pd.Timedelta(minutes=5))
    )
    portions: dict[tuple[str, pd.Timestamp], float] = {}
    covered: dict[tuple[str, pd.Timestamp], float] = {}
    for meter_id, rows in truth[ok].groupby("meter_id"):
        t, litres = rows["read_at"].tolist(), rows["litres"].tolist()
        for i in range(1, len(t)):
            (t0, v0), (t1, v1) = (t[i - 1], litres[i - 1]), (t[i], litres[i])
            if meter_id == "12345" and t0 < ax.EXCHANGE_AT < t1:
                continue
            advance = v1 - v0 + (10**ax.DIALS if v1 < v0 else 0)
            seconds = (t1 - t0).total_seconds()
            end = t0.floor("h") + pd.Timedelta(hours=1)
            while end - pd.Timedelta(seconds=step) < t1:
                overlap = (min(end, t1) - max(end - pd.Timedelta(seconds=step), t0)).total_seconds()
                portions[meter_id, end] = (
                    portions.get((meter_id, end), 0.0) + advance * GAL_PER_L * overlap / seconds
                )
                covered[meter_id, end] = covered.get((meter_id, end), 0.0) + overlap
                end += pd.Timedelta(seconds=step)
    return {k: v for k, v in portions.items() if abs(covered[k] - step) < 1e-6}


@pytest.fixture(scope="module")
def year() -> tuple[pd.DataFrame, pd.DataFrame]:
    truth = ax.register_reads()
    r = ax.canonical_reads(truth)
    return truth, r


def year_installs() -> pd.DataFrame:
    rows = [
        ("12345", "2018-01-01T00:00Z", ax.EXCHANGE_AT),
        ("12345", ax.EXCHANGE_AT, pd.NaT),
        ("67890", "2018-01-01", pd.NaT),
    ]
    return pd.DataFrame(
        [
            {
                "meter_id": m,
                "installed_at": pd.Timestamp(a, tz="UTC") if isinstance(a, str) else a,
                "removed_at": b,
                "multiplier": 1.0,
            }
            for m, a, b in rows
        ]
    )


def test_a_year_of_hourly_register_reads_matches_a_plain_reference(year) -> None:
    truth, r = year
    gaps = truth.groupby("meter_id")["read_at"].diff().dt.total_seconds() / 3600
    assert ((gaps > 4.9) & (gaps < 29.1)).sum() == 2 * len(ax.GAPS_HOURS) and gaps.max() > 28.9
    meters = pd.concat([meter(meter_id="12345"), meter(meter_id="67890")])
    out = derive_intervals(r, meters, year_installs(), ax.TZ)
    got = {
        (m, e): v
        for m, e, v in zip(
            out.intervals["meter_id"], out.intervals["interval_end"], out.intervals["value"], strict=True
        )
    }
    expected = reference(truth)
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), rtol=1e-9, atol=1e-9)
    assert (out.intervals["value"] >= 0).all()
    kinds = out.decreases.groupby(["meter_id", "kind"]).size().to_dict()
    assert kinds == {("12345", "bad_read"): 1, ("12345", "exchange"): 1, ("67890", "rollover"): 1}
    days = operating_day(out.intervals["interval_end"], out.intervals["interval_seconds"], ax.TZ)
    per_day = out.intervals.groupby([out.intervals["meter_id"], days]).size()
    for name in ("12345", "67890"):
        assert (
            per_day[name, pd.Timestamp(ax.SPRING_DAY)] == 23
            and per_day[name, pd.Timestamp(ax.AUTUMN_DAY)] == 25
        )
    spread = out.intervals["source_quality"].eq(SPREAD_QUALITY)
    assert spread.sum() >= sum(g - 2 for g in ax.GAPS_HOURS) * 2  # the intervals inside every gap
