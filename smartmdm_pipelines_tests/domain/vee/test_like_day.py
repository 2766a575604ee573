"""The anchored like-day estimators (domain/vee/like_day.py) on small hand-made days: reference-day
weights (kind, recency, the day after, similarity), level and edge anchoring, the linear/profile
blend for short gaps, DST days, and that every estimate says what it used."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.domain.timeutil import interval_ends
from smartmdm_pipelines.domain.vee import like_day
from smartmdm_pipelines.domain.vee.config import RuleSet, VeeConfig
from smartmdm_pipelines_tests.domain.vee.builders import DAY, day_reads, history_from, inputs, meter, run

HOURLY = 3600
# every new feature off: the plain like-day average of the nearest matching days
PLAIN = {
    "like_day_other_type_weight": 0.0,
    "like_day_half_life_days": 0.0,
    "like_day_recency_check": True,
    "like_day_next_day": False,
    "like_day_similarity": 0.0,
    "anchor_level_weight": 0.0,
    "anchor_edge_half_life_minutes": 0.0,
    "linear_profile_weight": 0.0,
}


def rules(**changes) -> RuleSet:
    return RuleSet(**{**PLAIN, "spike_min_value": 1e9, **changes})


def history_days(days: dict[dt.date, object], seconds: int = HOURLY, tz: str = "UTC") -> pd.DataFrame:
    """Clean current intervals for each day; a value per day is a constant or a function of the slot."""
    parts = []
    for day, value in days.items():
        n = len(interval_ends(day, tz, seconds))
        values = {i: float(value(i) if callable(value) else value) for i in range(n)}
        parts.append(history_from(day_reads(values, day=day, tz=tz, seconds=seconds)))
    return pd.concat(parts, ignore_index=True)


def weekdays_before(day: dt.date, n: int) -> list[dt.date]:
    out, d = [], day
    while len(out) < n:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


def estimate(values: dict[int, float | None], history: pd.DataFrame, ruleset: RuleSet, **kw) -> pd.DataFrame:
    """Meter M1's estimated day; a sibling meter M2 read the whole day (the day is not empty)."""
    seconds = kw.pop("seconds", HOURLY)
    day = kw.get("day", DAY)
    tz = kw.get("tz", "UTC")
    n = len(interval_ends(day, tz, seconds))
    reads = pd.concat(
        [
            day_reads(values, day=day, tz=tz, seconds=seconds),
            day_reads(dict.fromkeys(range(n), 1.0), meter_id="M2", day=day, tz=tz, seconds=seconds),
        ],
        ignore_index=True,
    )
    meters = [meter(seconds=seconds), meter("M2", seconds=seconds)]
    _, est = run(inputs(meters, reads, rules=ruleset, history=history, **kw))
    out = est.intervals
    return out[out["meter_id"] == "M1"].reset_index(drop=True)


def gap_day(gap: range, value=1.0, n: int = 24) -> dict[int, float | None]:
    return {i: (None if i in gap else (value(i) if callable(value) else value)) for i in range(n)}


# --- reference-day weights ---------------------------------------------------------------------------


def test_plain_settings_average_the_nearest_matching_days() -> None:
    days = weekdays_before(DAY, 10)
    history = history_days({d: 1.0 + k / 10 for k, d in enumerate(days)})  # 1.0 yesterday … 1.9
    out = estimate(gap_day(range(8, 12)), history, rules(like_days=3))
    gap = out.iloc[8:12]
    assert gap["final_value"].tolist() == pytest.approx([1.1] * 4)  # mean of 1.0, 1.1, 1.2
    assert set(gap["estimation_method"]) == {"like_day"}


def test_recency_halves_the_weight_every_half_life() -> None:
    yesterday, week_ago = DAY - dt.timedelta(days=1), DAY - dt.timedelta(days=7)  # Monday, Tuesday
    history = history_days({yesterday: 2.0, week_ago: 1.0})
    always = {"like_day_half_life_days": 7.0, "like_day_recency_check": False}  # two days: no evidence
    out = estimate(gap_day(range(24)), history, rules(like_days=2, **always))
    w = 0.5 ** (6 / 7)  # six days further than the day before
    assert out["final_value"].to_numpy() == pytest.approx(np.full(24, (2.0 + w * 1.0) / (1 + w)))
    reason = out["estimation_inputs"].iloc[0]
    assert "2024-02-27 36%" in reason and "2024-03-04 64%" in reason and "level x1" in reason


def test_other_kind_of_day_and_the_day_after_weigh_in() -> None:
    monday, saturday, after = (DAY + dt.timedelta(days=k) for k in (-1, -3, 1))  # DAY is a Tuesday
    old = [dt.date(2024, 2, 23), dt.date(2024, 2, 22), dt.date(2024, 2, 21), dt.date(2024, 2, 20)]
    history = history_days({monday: 1.0, saturday: 4.0, after: 3.0, **dict.fromkeys(old, 1.0)})
    ruleset = dict(like_days=4, like_day_half_life_days=7.0, like_day_recency_check=False)

    def weight(day: dt.date, match: bool = True) -> float:
        return (1.0 if match else 0.5) * 0.5 ** ((abs((day - DAY).days) - 1) / 7)

    plain = estimate(gap_day(range(24)), history, rules(**ruleset))
    assert plain["final_value"].to_numpy() == pytest.approx(np.ones(24))  # weekdays before the day only
    # the Saturday (half weight, 3 days away) outweighs the weekdays of two weeks before
    mixed = estimate(gap_day(range(24)), history, rules(**ruleset, like_day_other_type_weight=0.5))
    w = [weight(monday), weight(saturday, match=False), weight(old[0]), weight(old[1])]
    expected = (w[0] + 4.0 * w[1] + w[2] + w[3]) / sum(w)
    assert mixed["final_value"].to_numpy() == pytest.approx(np.full(24, expected))
    # the day after, when already in the store, weighs like the day before
    both = estimate(
        gap_day(range(24)), history, rules(**ruleset, like_day_other_type_weight=0.5, like_day_next_day=True)
    )
    w = [weight(monday), weight(after), weight(saturday, match=False), weight(old[0])]
    expected = (w[0] + 3.0 * w[1] + 4.0 * w[2] + w[3]) / sum(w)
    assert both["final_value"].to_numpy() == pytest.approx(np.full(24, expected))
    assert (
        "2024-03-06" in both["estimation_inputs"].iloc[0]
        and "2024-03-02" in both["estimation_inputs"].iloc[0]
    )


def test_the_recency_self_check(monkeypatch) -> None:
    def series(levels, sid=0, kinds=None):
        n = len(levels)
        days = pd.DataFrame({"sid": sid, "offset": np.arange(-n, 0), "day_type": kinds or ["weekday"] * n})
        shape = np.array([0.5, 1.0, 1.5, 1.0])  # four intervals a day
        values = pd.DataFrame(
            {
                "sid": sid,
                "offset": np.repeat(np.arange(-n, 0), 4),
                "slot": np.tile([0, 360, 720, 1080], n),
                "value": np.repeat(np.asarray(levels, dtype="float64"), 4) * np.tile(shape, n),
            }
        )
        return values, days

    drift = 50 + 5 * np.sin(np.arange(30) / 5)  # the level drifts slowly: recent days predict better
    seesaw = 10 + np.tile([1.0, -1.0], 15)  # no day resembles the day before
    parts = [series(drift, 0), series(seesaw, 1), series([5.0, 6.0], 2)]  # 2: too few days to judge
    values = pd.concat([v for v, _ in parts], ignore_index=True)
    days = pd.concat([d for _, d in parts], ignore_index=True)
    assert like_day.recency_helps(values, days, 7.0).to_dict() == {0: True, 1: False, 2: False}
    # days of the other type are not compared with each other; missing days are skipped
    values, days = series(drift, kinds=list(np.tile(["weekday", "weekend_holiday"], 15)))
    days = days.drop(index=[4, 9])
    assert like_day.recency_helps(values, days, 7.0).to_dict() == {0: True}
    # many series are checked in blocks with the same answers
    many_v = pd.concat([series(drift if k % 2 else seesaw, k)[0] for k in range(7)], ignore_index=True)
    many_d = pd.concat([series(drift if k % 2 else seesaw, k)[1] for k in range(7)], ignore_index=True)
    monkeypatch.setattr(like_day, "CHECK_CHUNK", 3)
    assert like_day.recency_helps(many_v, many_d, 7.0).tolist() == [k % 2 == 1 for k in range(7)]


def test_recency_only_where_the_meter_s_own_days_say_it_helps() -> None:
    days = sorted(d for d in (DAY - dt.timedelta(days=k) for k in range(1, 36)) if d.weekday() < 5)
    drift = {d: 1.0 + k / 10 for k, d in enumerate(days)}  # the level climbs towards the day
    seesaw = {d: 1.0 + (k % 2) for k, d in enumerate(days)}  # alternating: no persistence
    recency = rules(like_day_half_life_days=7.0)
    for values, persists in ((drift, True), (seesaw, False)):
        history = history_days(values)
        plain = estimate(gap_day(range(24)), history, rules())
        weighted = estimate(gap_day(range(24)), history, recency)
        assert set(weighted["estimation_method"]) == {"like_day"}
        if persists:  # recent days weigh more: closer to the latest level than the plain average
            assert weighted["final_value"].iloc[0] > plain["final_value"].iloc[0] + 0.05
        else:
            pd.testing.assert_series_equal(weighted["final_value"], plain["final_value"])


def test_similar_days_weigh_more() -> None:
    # two kinds of weekday: a morning peak (A) and an evening peak (B); today looks like A
    morning = lambda i: 3.0 if 6 <= i < 12 else 1.0  # noqa: E731
    evening = lambda i: 3.0 if 16 <= i < 22 else 1.0  # noqa: E731
    days = weekdays_before(DAY, 8)
    history = history_days({d: (morning if k % 2 else evening) for k, d in enumerate(days)})
    today = gap_day(range(8, 12), morning)
    plain = estimate(today, history, rules(like_days=8))
    similar = estimate(today, history, rules(like_days=8, like_day_similarity=2.0))
    assert plain["final_value"].iloc[8:12].to_numpy() == pytest.approx(np.full(4, 2.0))
    # the 8 hours within 4 h of the gap read 1, 1, 3, 3 | 1, 1, 1, 1: the A days match them, the
    # B days differ by 2 on two of them (mean |diff| 0.5 against a mean of 1.5 -> exp(-2 x 1/3))
    w_b = np.exp(-2.0 * 0.5 / 1.5)
    assert similar["final_value"].iloc[8:12].to_numpy() == pytest.approx(
        np.full(4, (4 * 3.0 + 4 * w_b * 1.0) / (4 + 4 * w_b))
    )
    # where the day can be compared, similarity replaces recency (which would favour yesterday, a B day)
    recency = {"like_day_half_life_days": 7.0, "like_day_recency_check": False}
    with_recency = estimate(today, history, rules(like_days=8, like_day_similarity=2.0, **recency))
    pd.testing.assert_series_equal(with_recency["final_value"], similar["final_value"])
    recency_only = estimate(today, history, rules(like_days=8, **recency))
    assert recency_only["final_value"].iloc[8] < plain["final_value"].iloc[8]


# --- anchoring to the estimated day ----------------------------------------------------------------------


def test_level_anchoring_moves_the_profile_towards_the_observed_level() -> None:
    history = history_days({d: 1.0 for d in weekdays_before(DAY, 7)})
    today = gap_day(range(10, 14), 2.0)  # today runs at twice the reference days
    full = estimate(today, history, rules(anchor_level_weight=1.0))
    part = estimate(today, history, rules(anchor_level_weight=0.2))
    none = estimate(today, history, rules())
    assert full["final_value"].iloc[10:14].to_numpy() == pytest.approx(np.full(4, 2.0))
    assert part["final_value"].iloc[10:14].to_numpy() == pytest.approx(np.full(4, 1.2))
    assert none["final_value"].iloc[10:14].to_numpy() == pytest.approx(np.full(4, 1.0))
    assert "level x1.2" in part["estimation_inputs"].iloc[10]
    bounded = estimate(gap_day(range(10, 14), 9.0), history, rules(anchor_level_weight=1.0))
    assert bounded["final_value"].iloc[10] == pytest.approx(3.0)  # anchor_level_max_factor


def wavy_days(n: int = 8) -> pd.DataFrame:
    """n weekdays whose deviations from their mean (1.0 at every hour) last for hours: half of
    them run above it in the night and below in the day, the other half the other way round."""
    wave = lambda sign: lambda i: 1.0 + sign * 0.3 * np.cos(2 * np.pi * i / 24)  # noqa: E731
    return history_days({d: wave(1 if k % 2 else -1) for k, d in enumerate(weekdays_before(DAY, n))})


def test_edge_anchoring_is_an_ar1_bridge_between_the_edges() -> None:
    history = wavy_days()
    today = gap_day(range(10, 13))
    today[9] = 3.0  # the interval before the gap is 2 above the profile, the one after on it
    out = estimate(today, history, rules(like_days=8, anchor_edge_half_life_minutes=60.0))
    rho, n = 0.5, 4  # halves every hour on hourly data; end points 4 steps apart
    t = np.arange(1, 4)
    weight_before = (rho**t - rho ** (2 * n - t)) / (1 - rho ** (2 * n))
    assert out["final_value"].iloc[10:13].to_numpy() == pytest.approx(1.0 + 2.0 * weight_before)
    assert out["final_value"].iloc[10:13].to_numpy() == pytest.approx(
        [1.988235, 1.470588, 1.188235], abs=1e-6
    )
    # a longer half life carries the edge further in
    slow = estimate(today, history, rules(like_days=8, anchor_edge_half_life_minutes=240.0))
    assert (slow["final_value"].iloc[10:13].to_numpy() > out["final_value"].iloc[10:13].to_numpy()).all()


def test_edges_carry_only_as_far_as_the_meter_s_own_deviations_do() -> None:
    rng = np.random.default_rng(5)
    noisy = {d: (1.0 + rng.uniform(-0.3, 0.3, 24)).__getitem__ for d in weekdays_before(DAY, 8)}
    history = history_days(noisy)  # deviations independent from one hour to the next
    today = gap_day(range(10, 13))
    today[9] = 3.0
    with_edges = estimate(today, history, rules(like_days=8, anchor_edge_half_life_minutes=60.0))
    without = estimate(today, history, rules(like_days=8))
    pd.testing.assert_series_equal(with_edges["final_value"], without["final_value"])

    # the measure itself: lasting deviations correlate, independent ones do not
    def ref(h: pd.DataFrame) -> pd.DataFrame:
        start = h["interval_end"] - pd.Timedelta(hours=1)
        return pd.DataFrame(
            {
                "sid": 0,
                "key": start.dt.hour.to_numpy() * 60,
                "day_key": start.dt.day.to_numpy(),
                "value": h["value"].to_numpy(),
                "step": 60,
            }
        )

    assert like_day.residual_correlation(ref(wavy_days()))[0] > 0.9
    assert like_day.residual_correlation(ref(history))[0] < 0.3
    two_mornings = ref(wavy_days(2)).groupby("day_key").head(12)  # 22 consecutive pairs: too few to tell
    assert like_day.residual_correlation(two_mornings)[0] == 0.0
    assert like_day.residual_correlation(ref(wavy_days(2)))[0] > 0.9  # 46 pairs


def test_edges_never_push_a_delivered_estimate_below_zero() -> None:
    # the profile peaks at the gap's edges and is low inside; today both edges read almost nothing
    shape = lambda i: 2.0 if i in (9, 13) else (0.2 if 10 <= i <= 12 else 1.0)  # noqa: E731
    wave = lambda sign: lambda i: shape(i) + sign * 0.1 * np.cos(2 * np.pi * i / 24)  # noqa: E731
    history = history_days({d: wave(1 if k % 2 else -1) for k, d in enumerate(weekdays_before(DAY, 8))})
    today = gap_day(range(10, 13), 1.0)
    today[9], today[13] = 0.01, 0.01  # 2 below the profile on both sides: the bridge alone would go negative
    out = estimate(today, history, rules(like_days=8, anchor_edge_half_life_minutes=600.0))
    assert out["final_value"].iloc[10:13].tolist() == [0.0, 0.0, 0.0]
    assert set(out["estimation_method"].iloc[10:13]) == {"like_day"}


def test_short_gaps_blend_linear_and_the_profile() -> None:
    history = history_days({d: 1.0 for d in weekdays_before(DAY, 7)})
    today = gap_day(range(10, 11))
    today[9], today[11] = 2.0, 2.0
    ruleset = rules(linear_profile_weight=0.5, anchor_edge_half_life_minutes=60.0)
    out = estimate(today, history, ruleset)
    # linear 2.0 and the profile's 1.0: the profile's edge anchoring is left out (the interpolation
    # already holds the edges)
    assert out["final_value"].iloc[10] == pytest.approx(0.5 * 2.0 + 0.5 * 1.0)
    assert out["estimation_method"].iloc[10] == "linear+profile"
    assert out["espi_quality"].iloc[10] == 9
    assert (
        out["estimation_inputs"].iloc[10].startswith("between 2 and 2 blended 50% with the like-day profile")
    )
    pure = estimate(today, history, rules())
    assert pure["final_value"].iloc[10] == 2.0 and pure["estimation_method"].iloc[10] == "linear"


def test_without_enough_like_days_the_multi_week_average_still_applies() -> None:
    history = history_days({DAY - dt.timedelta(weeks=1): 1.5, DAY - dt.timedelta(weeks=2): 2.5})
    out = estimate(gap_day(range(24)), history, RuleSet(spike_min_value=1e9))  # default: 7 like days
    assert set(out["estimation_method"]) == {"multi_week"}
    assert out["final_value"].to_numpy() == pytest.approx(np.full(24, 2.0))


# --- DST days ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "seconds", "count"),
    [
        (dt.date(2024, 3, 10), "America/Chicago", 900, 92),
        (dt.date(2024, 11, 3), "America/Chicago", 900, 100),
        (dt.date(2024, 3, 31), "Europe/London", 1800, 46),
        (dt.date(2024, 10, 27), "Europe/London", 1800, 50),
    ],
)
def test_dst_days_get_the_profile_of_their_local_time_of_day(day, tz, seconds, count) -> None:
    shape = lambda i: 1.0 + (i * seconds // 3600) / 10  # noqa: E731  (by local hour on normal days)
    reference = [day - dt.timedelta(days=k) for k in range(1, 22)]  # six weekend days (DST days are Sundays)
    history = history_days({d: shape for d in reference}, seconds=seconds, tz=tz)
    ends = interval_ends(day, tz, seconds)
    assert len(ends) == count
    gap = range(count - 4 * 3600 // seconds - 4, count - 4)  # the evening, after the clock change
    values = {i: (None if i in gap else 5.0) for i in range(count)}
    out = estimate(values, history, rules(like_days=5), day=day, tz=tz, seconds=seconds)
    assert len(out) == count
    rows = out.iloc[list(gap)]
    assert set(rows["estimation_method"]) == {"like_day"}
    local_hour = (rows["interval_end"] - pd.Timedelta(seconds=seconds)).dt.tz_convert(tz).dt.hour
    assert rows["final_value"].to_numpy() == pytest.approx((1.0 + local_hour / 10).to_numpy())


def test_the_estimate_is_deterministic() -> None:
    days = weekdays_before(DAY, 12)
    rng = np.random.default_rng(3)
    noise = {d: 0.5 + rng.random(24) for d in days}
    history = history_days({d: noise[d].__getitem__ for d in days})
    today = gap_day(range(6, 12), lambda i: 0.7 + i / 50)
    a = estimate(today, history.sample(frac=1, random_state=1), RuleSet(spike_min_value=1e9))
    b = estimate(today, history, RuleSet(spike_min_value=1e9))
    pd.testing.assert_frame_equal(a, b)
    assert set(a["estimation_method"].iloc[6:12]) == {"like_day"}


def test_water_short_gaps_stay_linear_by_default() -> None:
    config = VeeConfig()
    assert config.for_class("water", "ami", 3600).linear_profile_weight == 0.0  # bursty use
    assert config.for_class("electric", "ami", 900).linear_profile_weight == 0.5


# --- robust aggregation: the weighted median of the reference days -------------------------------


def test_weighted_median_per_key() -> None:
    key = np.array([5, 5, 5, 2, 2, 2, 2])
    value = np.array([3.0, 1.0, 2.0, 10.0, 0.0, 5.0, 1.0])
    weight = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0])  # key 2: the value 1.0 holds 5 of 8
    out = like_day.weighted_median(key, value, weight)
    assert out.to_dict() == {2: 1.0, 5: 2.0}
    # a heavy outlier day moves the mean, not the median
    heavy = like_day.weighted_median(np.zeros(5, dtype=int), np.array([1.0, 1.1, 0.9, 1.0, 9.0]), np.ones(5))
    assert heavy.iloc[0] == 1.0


def test_median_weight_blends_mean_and_median_of_the_reference_days() -> None:
    days = weekdays_before(DAY, 5)
    # four ordinary days (1.0) and one day with the oven on all afternoon (6.0 from 12:00 to 18:00)
    oven = days[2]
    history = history_days(
        {d: ((lambda i: 6.0 if 12 <= i < 18 else 1.0) if d == oven else 1.0) for d in days}
    )
    gap = range(12, 18)
    mean_only = estimate(gap_day(gap), history, rules(like_days=5))
    assert mean_only["final_value"].iloc[12:18].to_numpy() == pytest.approx(np.full(6, 2.0))  # (4 + 6) / 5
    for w in (0.25, 1.0):
        out = estimate(gap_day(gap), history, rules(like_days=5, like_day_median_weight=w))
        rows = out.iloc[12:18]
        assert rows["final_value"].to_numpy() == pytest.approx(np.full(6, (1 - w) * 2.0 + w * 1.0))
        assert set(rows["estimation_method"]) == {"like_day"}
        assert f"median {w:.0%}" in rows["estimation_inputs"].iloc[0]
    assert "median" not in mean_only["estimation_inputs"].iloc[12]


@pytest.mark.parametrize(
    ("day", "tz", "seconds", "count"),
    [(dt.date(2024, 3, 31), "Europe/London", 1800, 46), (dt.date(2024, 10, 27), "Europe/London", 1800, 50)],
)
def test_median_profile_on_dst_days(day, tz, seconds, count) -> None:
    """46 and 50 half hours: each interval gets the median of its local time of day."""
    reference = [day - dt.timedelta(days=k) for k in range(1, 22)]  # Sundays and Saturdays of 3 weeks
    level = {d: 1.0 + (k % 3) / 10 for k, d in enumerate(reference)}  # 1.0, 1.1, 1.2 in turn
    shape = {d: (lambda i, lv=level[d]: lv + (i * seconds // 3600) / 10) for d in reference}
    history = history_days(shape, seconds=seconds, tz=tz)
    gap = range(count - 12, count - 4)
    values = {i: (None if i in gap else 5.0) for i in range(count)}
    out = estimate(
        values, history, rules(like_days=5, like_day_median_weight=1.0), day=day, tz=tz, seconds=seconds
    )
    assert len(out) == count
    rows = out.iloc[list(gap)]
    local_hour = (rows["interval_end"] - pd.Timedelta(seconds=seconds)).dt.tz_convert(tz).dt.hour
    # the 5 nearest weekend days: levels 1.0 1.0 1.1 1.1 1.2 → median 1.1 (mean 1.08)
    assert rows["final_value"].to_numpy() == pytest.approx((1.1 + local_hour / 10).to_numpy())


def test_median_blend_is_deterministic() -> None:
    days = weekdays_before(DAY, 12)
    rng = np.random.default_rng(5)
    noise = {d: rng.gamma(0.8, 0.5, 24) for d in days}  # skewed, like household load
    history = history_days({d: noise[d].__getitem__ for d in days})
    today = gap_day(range(0, 24))
    ruleset = RuleSet(spike_min_value=1e9, like_day_median_weight=0.3)
    a = estimate(today, history.sample(frac=1, random_state=2), ruleset)
    b = estimate(today, history, ruleset)
    pd.testing.assert_frame_equal(a, b)
    plain = estimate(today, history, RuleSet(spike_min_value=1e9))
    assert a["final_value"].sum() < plain["final_value"].sum()  # skewed: the median is lower
