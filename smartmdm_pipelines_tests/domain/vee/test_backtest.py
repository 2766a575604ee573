"""Backtest logic on small frames: metric math, the California baseline, deterministic gap
selection, and that masking never lets the hidden values reach an estimator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.timeutil import interval_ends
from smartmdm_pipelines.domain.vee import backtest as bt
from smartmdm_pipelines.domain.vee.day import DayInputs, DayResult
from smartmdm_pipelines.domain.vee.estimate import estimate_day

DAY = dt.date(2024, 3, 5)  # a Tuesday


def current(meter="M1", channel="kwh_delivered", day=DAY, seconds=900, tz="UTC", value=None, status="valid"):
    """Current intervals of one series and day; ``value(i, ends)`` gives each interval's value."""
    ends = interval_ends(day, tz, seconds)
    i = np.arange(len(ends))
    values = value(i, day) if value else np.full(len(ends), 1.0)
    return pd.DataFrame(
        {
            "meter_id": meter,
            "channel": channel,
            "interval_end": ends,
            "interval_seconds": seconds,
            "value": np.asarray(values, dtype="float64"),
            "unit": "kWh",
            "status": status,
            "failed_rules": None,
            "estimation_method": None,
        }
    )


def days_of(first: dt.date, n: int, **kw) -> pd.DataFrame:
    return pd.concat([current(day=first + dt.timedelta(days=k), **kw) for k in range(n)], ignore_index=True)


def gap(meter, start, end, name="4h", gap_id=0, channel="kwh_delivered"):
    return pd.DataFrame(
        {
            "gap_id": [gap_id],
            "gap": [name],
            "meter_id": [meter],
            "channel": [channel],
            "gap_start": [pd.Timestamp(start, tz="UTC")],
            "gap_end": [pd.Timestamp(end, tz="UTC")],
        }
    )


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_nmae_and_bias() -> None:
    m = bt.error_metrics([1.0, 2.0, 3.0, 0.5], [1.0, 1.0, 1.0, 1.0])
    assert m["nmae"] == pytest.approx((0 + 1 + 2 + 0.5) / 4)
    assert m["bias"] == pytest.approx((6.5 - 4) / 4)
    assert m["unestimated"] == 0


def test_metrics_empty_estimate_counts_as_zero_and_zero_truth_is_null() -> None:
    m = bt.error_metrics([np.nan, 2.0], [1.0, 2.0])
    assert m == {
        "nmae": pytest.approx(1 / 3, abs=1e-6),
        "bias": pytest.approx(-1 / 3, abs=1e-6),
        "unestimated": 1,
    }
    assert bt.error_metrics([1.0], [0.0])["nmae"] is None


def test_summary_shape_per_gap_length() -> None:
    results = pd.DataFrame(
        {
            "gap": ["1h", "1h", "24h"],
            "gap_id": [0, 0, 1],
            "meter_id": ["A", "A", "B"],
            "channel": "kwh_delivered",
            "truth": [1.0, 1.0, 2.0],
            "chain": [1.0, 2.0, 2.0],
            "baseline": [1.0, 1.0, 3.0],
            "chain_method": ["linear", "linear", "like_day"],
        }
    )
    report = bt.summarise(results)
    assert set(report) == {"gaps"} and list(report["gaps"]) == ["1h", "4h", "24h"]
    h1 = report["gaps"]["1h"]
    assert h1["chain"]["nmae"] == pytest.approx(0.5) and h1["baseline"]["nmae"] == 0.0
    assert (h1["n"], h1["gaps"], h1["series"], h1["n_counts"]) == (2, 1, 1, "masked intervals")
    assert h1["chain_methods"] == {"linear": 2}
    assert report["gaps"]["4h"]["n"] == 0 and report["gaps"]["4h"]["chain"]["nmae"] is None
    assert report["gaps"]["24h"]["baseline"]["bias"] == pytest.approx(0.5)
    assert "24h" in bt.format_table(report)


def test_nmae_ratio_with_a_bootstrap_interval_over_series() -> None:
    rng = np.random.default_rng(1)
    n_series, per = 40, 25
    truth = rng.gamma(2.0, 0.5, size=n_series * per)
    results = pd.DataFrame(
        {
            "gap": "4h",
            "gap_id": np.repeat(np.arange(n_series), per),
            "meter_id": np.repeat([f"M{i:02d}" for i in range(n_series)], per),
            "channel": "kwh_delivered",
            "truth": truth,
            "chain": truth * (1 + rng.normal(0, 0.2, truth.size)),  # errors about half the baseline's
            "baseline": truth * (1 + rng.normal(0, 0.4, truth.size)),
        }
    )
    ratio = bt.nmae_ratio(results)
    chain, base = (
        bt.error_metrics(results["chain"], results["truth"]),
        bt.error_metrics(results["baseline"], results["truth"]),
    )
    assert ratio["nmae_ratio"] == pytest.approx(chain["nmae"] / base["nmae"], abs=1e-4)
    low, high = ratio["ci95"]
    assert low < ratio["nmae_ratio"] < high and low > 0.35 and high < 0.65
    b_low, b_high = ratio["bias_ci95"]["chain"]
    assert b_low < chain["bias"] < b_high
    assert bt.nmae_ratio(results) == ratio  # seeded: the same report every time
    same = results.assign(chain=results["baseline"])
    assert bt.nmae_ratio(same)["ci95"] == [1.0, 1.0]
    assert ratio["resampled"] == "series"
    # one meter: its gaps are resampled instead, so a single meter-year still gets an interval
    one = bt.nmae_ratio(results[results["meter_id"] == "M00"].assign(gap_id=np.arange(per)))
    assert one["resampled"] == "gaps" and one["ci95"][0] < one["nmae_ratio"] < one["ci95"][1]
    report = bt.summarise(results)
    assert report["gaps"]["4h"]["chain_vs_baseline"] == ratio
    assert "chain/baseline" in bt.format_table(report)


# --- the California baseline ------------------------------------------------------------------------


def test_baseline_interpolates_gaps_up_to_two_hours() -> None:
    day = current(value=lambda i, d: np.where(i < 40, 1.0, 2.0))
    g = gap("M1", "2024-03-05 09:45", "2024-03-05 10:45", "1h")  # slots 39..42 hidden
    masked, truth = bt.mask_day(bt.validated_frame(day), g)
    assert len(truth) == 4
    est = bt.california_baseline(masked, truth, None, DAY, "UTC", frozenset())
    # end points: 09:45 = 1.0 and 11:00 = 2.0, five steps apart
    assert est.tolist() == pytest.approx([1.2, 1.4, 1.6, 1.8])


def test_baseline_end_point_may_come_from_the_neighbouring_day() -> None:
    day = current()
    g = gap("M1", "2024-03-05 00:00", "2024-03-05 01:00", "1h")
    masked, truth = bt.mask_day(bt.validated_frame(day), g)
    prev = current(day=DAY - dt.timedelta(days=1), value=lambda i, d: np.full(len(i), 3.0))
    history = prev
    est = bt.california_baseline(masked, truth, history, DAY, "UTC", frozenset())
    # 00:00 = 3.0 (the day before) to 01:15 = 1.0
    assert est.tolist() == pytest.approx([2.6, 2.2, 1.8, 1.4])


def test_baseline_averages_recent_same_type_days_without_exclusions() -> None:
    # 14 days before DAY; each day's value is its day number; weekends are 100 (other day type)
    first = DAY - dt.timedelta(days=14)
    parts = []
    for k in range(14):
        d = first + dt.timedelta(days=k)
        v = 100.0 if d.weekday() >= 5 else float(k)
        status = "estimated" if k == 13 else "valid"  # no exclusions: an estimated day counts
        parts.append(current(day=d, value=lambda i, _d, v=v: np.full(len(i), v), status=status))
    history = pd.concat(parts, ignore_index=True)
    g = gap("M1", "2024-03-05 08:00", "2024-03-05 12:00", "4h")
    masked, truth = bt.mask_day(bt.validated_frame(current()), g)
    est = bt.california_baseline(masked, truth, history, DAY, "UTC", frozenset(), baseline_days=5)
    weekdays = [k for k in range(14) if (first + dt.timedelta(days=k)).weekday() < 5][-5:]
    assert est.tolist() == pytest.approx([np.mean(weekdays)] * 16)


# --- eligibility and selection -----------------------------------------------------------------------


def daily_rows(meters, first, n, seconds=900, tz="UTC", bad=()):
    rows = []
    for m in meters:
        for k in range(n):
            d = first + dt.timedelta(days=k)
            expected = len(interval_ends(d, tz, seconds))
            clean = expected - (1 if (m, d) in bad else 0)
            rows.append(
                {
                    "meter_id": m,
                    "channel": "kwh_delivered",
                    "read_day": pd.Timestamp(d),
                    "interval_seconds": seconds,
                    "lengths": 1,
                    "intervals": expected,
                    "clean_intervals": clean,
                }
            )
    return pd.DataFrame(rows)


def test_eligible_days_need_a_clean_day_and_clean_like_days_before() -> None:
    first = dt.date(2024, 3, 4)  # a Monday
    bad = {("A", dt.date(2024, 3, 5))}  # one suspect interval on Tuesday
    daily = daily_rows(["A"], first, 10, bad=bad)
    got = bt.eligible_days(daily, "UTC", frozenset(), like_days=3, reference_weeks=5)
    days = [d.date() for d in got["read_day"]]
    # weekdays 4, 6, 7 are clean; the 3rd clean weekday before a day is needed: 11th (Mon) is
    # the first with three (4, 6, 7, 8 before it); the 8th has 4, 6, 7 before it
    assert days == [dt.date(2024, 3, 8), dt.date(2024, 3, 11), dt.date(2024, 3, 12), dt.date(2024, 3, 13)]
    assert got["like_days_before"].tolist() == [3, 4, 5, 6]


def test_incomplete_day_and_dst_day_counts() -> None:
    tz = "America/Chicago"
    first = dt.date(2024, 3, 4)
    daily = daily_rows(["A"], first, 8, tz=tz)  # includes 2024-03-10, a 23-hour day
    assert daily.loc[daily["read_day"] == pd.Timestamp("2024-03-10"), "intervals"].item() == 92
    short = daily.copy()
    short.loc[short["read_day"] == pd.Timestamp("2024-03-08"), ["intervals", "clean_intervals"]] = 95
    ok = bt.eligible_days(daily, tz, frozenset(), 3, 5)
    cut = bt.eligible_days(short, tz, frozenset(), 3, 5)
    assert pd.Timestamp("2024-03-08") in set(ok["read_day"])
    assert pd.Timestamp("2024-03-08") not in set(cut["read_day"])


def test_days_from_and_to_restrict_the_targets() -> None:
    daily = daily_rows(["A"], dt.date(2024, 3, 4), 14)
    got = bt.eligible_days(daily, "UTC", frozenset(), 3, 5, dt.date(2024, 3, 12), dt.date(2024, 3, 13))
    assert [d.date() for d in got["read_day"]] == [dt.date(2024, 3, 12), dt.date(2024, 3, 13)]


def candidates(n_meters=30, days=21, seconds=900):
    daily = daily_rows([f"M{i:02d}" for i in range(n_meters)], dt.date(2024, 3, 4), days, seconds=seconds)
    return bt.eligible_days(daily, "America/Chicago", frozenset(), 3, 5)


def test_gap_selection_is_deterministic_by_seed() -> None:
    cand = candidates()
    a = bt.choose_gaps(cand, "America/Chicago", seed=7, max_series=10)
    b = bt.choose_gaps(cand.sample(frac=1, random_state=1), "America/Chicago", seed=7, max_series=10)
    c = bt.choose_gaps(cand, "America/Chicago", seed=8, max_series=10)
    pd.testing.assert_frame_equal(a, b)  # independent of the candidates' order
    assert not a[["meter_id", "read_day", "gap_start"]].equals(c[["meter_id", "read_day", "gap_start"]])


def test_gaps_are_distinct_and_inside_their_operating_day() -> None:
    tz = "America/Chicago"
    cand = candidates()
    gaps = bt.choose_gaps(cand, tz, seed=3, max_series=10, gaps_per_series=1)
    assert gaps.groupby("gap").size().to_dict() == {"1h": 10, "24h": 10, "4h": 10}
    assert not gaps.duplicated(["gap", "meter_id", "channel"]).any()  # distinct series per length
    assert not gaps.duplicated(["meter_id", "channel", "read_day"]).any()  # a series-day holds one gap
    bounds = bt.day_bounds(gaps["read_day"], tz).set_index("read_day")
    start = gaps["read_day"].map(bounds["day_start"])
    end = gaps["read_day"].map(bounds["day_end"])
    assert (gaps["gap_start"] >= start).all() and (gaps["gap_end"] <= end).all()
    length = (gaps["gap_end"] - gaps["gap_start"]).dt.total_seconds()
    short = gaps["gap"] != "24h"
    assert (length[short] == gaps.loc[short, "gap_seconds"]).all()
    whole = gaps[~short]
    assert (whole["gap_start"] == start[~short]).all() and (whole["gap_end"] == end[~short]).all()
    assert (gaps.loc[gaps["gap"] == "1h", "intervals"] == 4).all()


def test_many_non_overlapping_gaps_per_series() -> None:
    tz = "America/Chicago"
    cand = candidates(n_meters=6, days=70)  # 10 weeks: about 60 eligible days per series
    per_series = cand.groupby("meter_id").size()
    gaps = bt.choose_gaps(cand, tz, seed=5, max_series=None, gaps_per_series=15)
    counts = gaps.groupby(["meter_id", "gap"]).size()
    assert (counts == 15).all() and len(counts) == 6 * 3  # 15 of each length on every series
    assert not gaps.duplicated(["meter_id", "channel", "read_day"]).any()  # never two on a day
    # fewer eligible days than asked for: every day is used, dealt evenly over the lengths
    few = bt.choose_gaps(cand, tz, seed=5, max_series=None, gaps_per_series=50)
    assert (few.groupby("meter_id").size() == per_series).all()
    spread = few.groupby(["meter_id", "gap"]).size().groupby("meter_id").agg(lambda c: c.max() - c.min())
    assert (spread <= 1).all()
    # max_series caps the series, not the gaps
    two = bt.choose_gaps(cand, tz, seed=5, max_series=2, gaps_per_series=15)
    assert two["meter_id"].nunique() == 2 and len(two) == 2 * 3 * 15
    # the same seed gives the same gaps; the default asks for 50 per length
    pd.testing.assert_frame_equal(gaps, bt.choose_gaps(cand, tz, seed=5, max_series=None, gaps_per_series=15))
    assert bt.BacktestOptions().gaps_per_series == 50


def test_daily_meters_only_get_whole_day_gaps() -> None:
    gaps = bt.choose_gaps(candidates(5, seconds=86400), "UTC", seed=1, max_series=10)
    assert set(gaps["gap"]) == {"24h"} and (gaps["intervals"] == 1).all()


# --- masking never uses the hidden values ------------------------------------------------------------


def _estimate(masked: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    frame, catalog = bt.with_keys(masked)
    inp = DayInputs(
        day=DAY, tz="UTC", reads=pd.DataFrame(), meters=pd.DataFrame(), history=history, catalog=catalog
    )
    return estimate_day(DayResult(frame, pd.DataFrame(), {}), inp).intervals


def test_masking_hides_the_values_from_every_estimator() -> None:
    shape = lambda i, d: 1.0 + np.sin(i / 10.0) + 0.1 * (d.toordinal() % 3)  # noqa: E731
    history_raw = days_of(DAY - dt.timedelta(days=21), 21, value=shape)
    history_raw = pd.concat([history_raw, current(day=DAY + dt.timedelta(days=1), value=shape)])
    history = history_raw
    gaps = gap("M1", "2024-03-05 06:00", "2024-03-05 10:00", "4h")
    truth_a = current(value=shape)
    truth_b = truth_a.copy()
    hidden = (truth_b["interval_end"] > gaps["gap_start"][0]) & (
        truth_b["interval_end"] <= gaps["gap_end"][0]
    )
    truth_b.loc[hidden, "value"] = 1e6
    truth_b.loc[hidden, "failed_rules"] = "spike"  # nothing read with a hidden value survives masking
    masked_a, hidden_a = bt.mask_day(bt.validated_frame(truth_a), gaps)
    masked_b, hidden_b = bt.mask_day(bt.validated_frame(truth_b), gaps)
    pd.testing.assert_frame_equal(masked_a, masked_b)
    assert (hidden_b["value"] == 1e6).all() and len(hidden_a) == 16
    assert masked_a.loc[masked_a["interval_end"].isin(hidden_a["interval_end"]), "value"].isna().all()

    est_a, est_b = _estimate(masked_a, history_raw), _estimate(masked_b, history_raw)
    pd.testing.assert_frame_equal(est_a, est_b)
    assert set(est_a.loc[est_a["final_status"] == "estimated", "estimation_method"]) == {"like_day"}
    base_a = bt.california_baseline(masked_a, hidden_a, history, DAY, "UTC", frozenset())
    base_b = bt.california_baseline(masked_b, hidden_b, history, DAY, "UTC", frozenset())
    pd.testing.assert_series_equal(base_a, base_b)


def test_validated_frame_without_master_data() -> None:
    water = current(meter="W1", channel="water", seconds=3600)
    frame = bt.validated_frame(pd.concat([current(), water], ignore_index=True))
    by_meter = frame.drop_duplicates("meter_id").set_index("meter_id")
    assert by_meter.loc["M1", "commodity"] == "electric" and by_meter.loc["W1", "commodity"] == "water"
    assert set(frame["customer_class"]) == {"unknown"} and set(frame["kind"]) == {"ami"}


def test_validated_frame_uses_master_data_when_present() -> None:
    meters = pd.DataFrame(
        [{"meter_id": "M1", "kind": "ami", "commodity": "electric", "multiplier": 2.0, "dials": 6}]
    )
    installs = pd.DataFrame(
        [{"meter_id": "M1", "service_point_id": "SP1", "installed_at": pd.Timestamp("2020-01-01", tz="UTC")}]
    )
    sps = pd.DataFrame([{"service_point_id": "SP1", "customer_class": "residential"}])
    frame = bt.validated_frame(
        pd.concat([current(), current(meter="M2")], ignore_index=True), meters, installs, sps
    )
    first = frame.drop_duplicates("meter_id").set_index("meter_id")
    assert first.loc["M1", "customer_class"] == "residential" and first.loc["M1", "multiplier"] == 2.0
    assert first.loc["M2", "customer_class"] == "unknown"
