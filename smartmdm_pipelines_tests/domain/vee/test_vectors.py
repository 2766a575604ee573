"""The VEE reference test vectors T1–T15 (docs/vee_rules.md §8), reproduced on small frames."""

import datetime as dt

import pandas as pd
import pytest

from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.rules import sum_check
from smartmdm_pipelines_tests.domain.vee.builders import (
    DAY,
    day_reads,
    full_day,
    history_from,
    inputs,
    meter,
    run,
)


def at(result, slots, column="final_value", day=DAY):
    frame = result.intervals
    return [frame[column].iloc[i] for i in slots]


def test_t1_linear_interpolation() -> None:
    # 00:15 = 75, 00:30..01:15 missing, 01:30 = 100
    reads = day_reads({0: 75.0, 5: 100.0})
    _, est = run(inputs([meter()], reads, rules=RuleSet(linear_max_gap_minutes=180, spike_min_value=1e9)))
    assert at(est, range(6)) == pytest.approx([75, 80, 85, 90, 95, 100])
    assert at(est, [1, 4], "estimation_method") == ["linear", "linear"]
    assert at(est, [0, 5], "final_status") == ["valid", "valid"]
    assert at(est, [1], "espi_quality") == [9]


def test_t2_gap_over_the_limit_is_passed_on() -> None:
    # 13:15–17:30 missing (4.25 h): not interpolated at a 3 h limit
    values = {i: 1.0 + (i % 4) / 10 for i in range(96)}
    for i in range(52, 70):
        values[i] = None
    sibling = full_day(lambda i: 2.0 + (i % 4) / 5, meter_id="M2")  # same class, complete
    reads = pd.concat([day_reads(values), sibling])
    _, est = run(inputs([meter(), meter("M2")], reads, rules=RuleSet(linear_max_gap_minutes=180)))
    m1 = est.intervals[est.intervals["meter_id"] == "M1"]
    methods = set(m1["estimation_method"].iloc[52:70])
    assert "linear" not in methods
    assert methods == {"class_profile"}  # no history: the chain moved on to the class shape


def test_t3_one_sided_gap_holds_flat() -> None:
    values = {i: 5.0 + (i % 3) / 10 for i in range(93)}  # the last three intervals never arrive
    values[93] = 5.0
    _, est = run(inputs([meter()], day_reads(values)))
    assert at(est, [94, 95]) == [5.0, 5.0]
    assert at(est, [94, 95], "estimation_method") == ["flat_hold", "flat_hold"]


def test_t4_power_fail_interval_is_not_an_end_point() -> None:
    reads = day_reads({0: 0.8, 1: 1.2, 4: 2.0}, quality="")
    reads.loc[reads["line"] == 3, "source_quality"] = "1.2.32"  # slot 1: power fail, kept as measured
    _, est = run(inputs([meter()], reads, rules=RuleSet(spike_min_value=1e9)))
    assert at(est, [1, 2, 3, 4]) == pytest.approx([1.2, 1.4, 1.7, 2.0])
    # the contested variant (power-fail end points allowed) is a switch
    _, alt = run(inputs([meter()], reads, rules=RuleSet(outage_is_endpoint=True, spike_min_value=1e9)))
    assert at(alt, [2, 3]) == pytest.approx([1.4667, 1.7333], abs=1e-4)


def test_t5_spike_max_vs_third_highest() -> None:
    values = {i: 0.5 + (i % 5) / 100 for i in range(96)}
    values[40], values[10], values[70] = 10.0, 2.0, 2.0
    validated, _ = run(inputs([meter()], day_reads(values)))
    frame = validated.intervals
    assert frame["status"].iloc[40] == "suspect" and "spike" in frame["failed_rules"].iloc[40]
    assert (frame["status"] == "suspect").sum() == 1
    spike = validated.exceptions[validated.exceptions["rule"] == "spike"]
    assert len(spike) == 1 and spike["intervals"].iloc[0] == 1


def test_t6_sum_check_tolerance() -> None:
    totals = pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "interval_sum": 24.0,
                "complete": True,
                "reg_start": 1000.0,
                "reg_end": 1024.5,
                "dials": 5,
                "multiplier": 1.0,
            }
        ]
    )
    assert len(sum_check(totals, RuleSet(sum_check_tolerance_pct=1.0))) == 1
    assert len(sum_check(totals, RuleSet(sum_check_tolerance_pct=3.0))) == 0


def test_t6_through_the_engine_with_hourly_data_and_registers() -> None:
    reads = full_day(lambda i: 1.0 + (0.1 if i % 2 else -0.1), seconds=3600)
    registers = pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-05T00:00Z"),
                "value": 1000.0,
            },
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-06T00:00Z"),
                "value": 1024.5,
            },
        ]
    )
    validated, _ = run(
        inputs([meter(seconds=3600)], reads, registers=registers, rules=RuleSet(sum_check_tolerance_pct=1.0))
    )
    failed = validated.exceptions[validated.exceptions["rule"] == "sum_check"]
    assert len(failed) == 1 and "2.04 %" in failed["detail"].iloc[0]


def test_t7_register_rollover_with_ct_multiplier() -> None:
    totals = pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "interval_sum": 2000.0,
                "complete": True,
                "reg_start": 99990.0,
                "reg_end": 15.0,
                "dials": 5,
                "multiplier": 80.0,
            }
        ]
    )
    assert sum_check(totals, RuleSet()).empty  # 25 dial units × 80 = 2000 kWh, no negative flag
    totals["interval_sum"] = 1000.0
    failed = sum_check(totals, RuleSet())
    assert failed["rule"].iloc[0] == "multiplier_mismatch" and "× 40" in failed["detail"].iloc[0]


def test_t8_negative_on_delivered_vs_net() -> None:
    delivered = full_day(lambda i: -0.2 if i == 10 else 0.3)
    net = full_day(lambda i: -0.2 if i == 10 else 0.3, channel="kwh_net")
    validated, _ = run(inputs([meter(channels="kwh_delivered;kwh_net")], pd.concat([delivered, net])))
    f = validated.intervals.set_index(["channel"]).loc[:, ["status", "failed_rules"]]
    frame = validated.intervals
    d = frame[(frame["channel"] == "kwh_delivered")].iloc[10]
    n = frame[(frame["channel"] == "kwh_net")].iloc[10]
    assert d["status"] == "suspect" and "negative" in d["failed_rules"]
    assert n["status"] == "valid"
    assert len(f) == 192


def test_t9_dst_completeness_and_distinct_fall_back_rows() -> None:
    for day, count in ((dt.date(2024, 3, 10), 92), (dt.date(2024, 11, 3), 100), (dt.date(2024, 11, 4), 96)):
        reads = full_day(lambda i: 0.25 + (i % 7) / 100, day=day, tz="America/Toronto")
        validated, est = run(inputs([meter()], reads, day=day, tz="America/Toronto"))
        assert len(validated.intervals) == count
        assert (validated.intervals["status"] == "valid").all()
        assert validated.intervals["interval_end"].is_unique
        assert est.stats["completeness"] == 1.0


def test_t10_zeros_with_and_without_outage() -> None:
    values = lambda i: 0.0 if 40 <= i < 48 else 0.4 + (i % 3) / 10  # noqa: E731
    events = pd.DataFrame(
        [
            {"meter_id": "M1", "event_at": pd.Timestamp("2024-03-05T09:58Z"), "event_type": "outage"},
            {"meter_id": "M1", "event_at": pd.Timestamp("2024-03-05T12:01Z"), "event_type": "restore"},
        ]
    )
    with_outage, est_a = run(inputs([meter()], full_day(values), events=events))
    rows = with_outage.intervals.iloc[40:48]
    assert (rows["status"] == "valid").all() and rows["failed_rules"].str.contains("power_outage").all()
    assert (est_a.intervals["final_value"].iloc[40:48] == 0).all()
    without, est_b = run(inputs([meter()], full_day(values)))
    assert (without.intervals["status"].iloc[40:48] == "suspect").all()
    assert (est_b.intervals["final_status"].iloc[40:48] == "estimated").all()
    assert "zero_run" in set(without.exceptions["rule"])


def test_t11_like_day_excludes_outage_days() -> None:
    # Tuesday 18:00 missing (slot 72 = interval 18:00–18:15); prior Tuesdays 1.0, 1.2, 1.4; an older one had an outage
    target = {i: 0.5 for i in range(96)}
    target[72] = None
    history = []
    for weeks, v in ((1, 1.0), (2, 1.2), (3, 1.4), (4, 9.9)):
        d = DAY - dt.timedelta(weeks=weeks)
        h = history_from(day_reads({i: (v if i == 72 else 0.5) for i in range(96)}, day=d))
        if weeks == 4:
            h.loc[h.index[10], "failed_rules"] = "power_outage"
        history.append(h)
    # Itron: the 3 nearest, equally weighted (our default weighs recent days more)
    rules = RuleSet(
        linear_max_gap_minutes=0, like_day_mode="same_weekday", like_days=3, like_day_half_life_days=0
    )
    _, est = run(inputs([meter()], day_reads(target), history=pd.concat(history), rules=rules))
    assert est.intervals["final_value"].iloc[72] == pytest.approx(1.2)
    assert est.intervals["estimation_method"].iloc[72] == "like_day"
    assert est.intervals["espi_quality"].iloc[72] == 8
    assert "2024-02-06" not in est.intervals["estimation_inputs"].iloc[72]  # the outage Tuesday


def test_t12_register_advance_spreading() -> None:
    reads = day_reads({0: 1.0, 1: 1.5}, seconds=3600)
    registers = pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-05T00:00Z"),
                "value": 100.0,
            },
            {
                "meter_id": "M1",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-05T04:00Z"),
                "value": 105.0,
            },
        ]
    )
    installs = pd.DataFrame(
        [
            {
                "meter_id": "M1",
                "service_point_id": "SP1",
                "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                "removed_at": pd.Timestamp("2024-03-05T04:00Z"),
                "multiplier": 1.0,
                "start_register": None,
                "end_register": None,
            }
        ]
    )
    _, est = run(inputs([meter(seconds=3600)], reads, registers=registers, installs=installs))
    frame = est.intervals
    assert len(frame) == 4
    assert frame["final_value"].tolist() == pytest.approx([1.0, 1.5, 1.25, 1.25])
    assert frame["final_value"].sum() == pytest.approx(5.0)


def test_t13_late_actual_replaces_estimate() -> None:
    first = day_reads({0: 1.0, 1: float("nan"), 2: 1.0}, file_id=1)
    _, est = run(inputs([meter()], first))
    assert est.intervals["final_status"].iloc[1] == "estimated"
    late = pd.concat([first, day_reads({1: 1.40}, file_id=2)])
    _, again = run(inputs([meter()], late))
    assert again.intervals["final_value"].iloc[1] == pytest.approx(1.40)
    assert again.intervals["final_status"].iloc[1] == "valid"


def test_t14_duplicate_reads_same_and_different() -> None:
    same = pd.concat([day_reads({0: 0.9}, file_id=1), day_reads({0: 0.9}, file_id=2)])
    validated, _ = run(inputs([meter()], same))
    assert validated.intervals["value"].iloc[0] == 0.9
    assert "replaced_value" not in set(validated.exceptions["rule"])
    differ = pd.concat([day_reads({0: 0.9}, file_id=1), day_reads({0: 1.1}, file_id=2)])
    validated, _ = run(inputs([meter()], differ))
    assert validated.intervals["value"].iloc[0] == 1.1  # the latest delivery wins
    assert "replaced_value" in set(validated.exceptions["rule"])


def test_t15_meter_exchange_mid_day() -> None:
    old = full_day(lambda i: 0.5 + (i % 2) / 10, meter_id="OLD")
    old = old[old["interval_end"] <= pd.Timestamp("2024-03-05T10:00Z")]
    new = full_day(lambda i: 0.5 + (i % 2) / 10, meter_id="NEW")
    new = new[new["interval_end"] > pd.Timestamp("2024-03-05T10:00Z")]
    installs = pd.DataFrame(
        [
            {
                "meter_id": "OLD",
                "service_point_id": "SP1",
                "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                "removed_at": pd.Timestamp("2024-03-05T10:00Z"),
                "multiplier": 1.0,
                "start_register": None,
                "end_register": 12345.6 + 22.0,
            },
            {
                "meter_id": "NEW",
                "service_point_id": "SP1",
                "installed_at": pd.Timestamp("2024-03-05T10:00Z"),
                "removed_at": None,
                "multiplier": 1.0,
                "start_register": 0.0,
                "end_register": None,
            },
        ]
    )
    registers = pd.DataFrame(
        [
            {
                "meter_id": "OLD",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-05T00:00Z"),
                "value": 12345.6,
            },
            {
                "meter_id": "NEW",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-06T00:00Z"),
                "value": 30.8,
            },
        ]
    )
    validated, est = run(
        inputs([meter("OLD"), meter("NEW")], pd.concat([old, new]), installs=installs, registers=registers)
    )
    frame = est.intervals
    assert len(frame) == 96  # 40 intervals on the old meter, 56 on the new
    assert frame.groupby("meter_id").size().to_dict() == {"NEW": 56, "OLD": 40}
    assert (frame["final_status"] == "valid").all()
    assert frame["final_value"].sum() == pytest.approx(52.8)  # the day total spans both meters
    rules = set(validated.exceptions["rule"])
    assert not rules & {"sum_check", "negative", "spike", "missing_interval", "multiplier_mismatch"}, rules


def test_t15_sum_check_runs_per_meter_activation() -> None:
    """The same exchange with a wrong removal register: only the old meter's activation fails."""
    old = full_day(lambda i: 0.5, meter_id="OLD")
    old = old[old["interval_end"] <= pd.Timestamp("2024-03-05T10:00Z")].assign(
        value=lambda f: f["value"] + f["line"] % 2 / 10
    )
    installs = pd.DataFrame(
        [
            {
                "meter_id": "OLD",
                "service_point_id": "SP1",
                "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                "removed_at": pd.Timestamp("2024-03-05T10:00Z"),
                "multiplier": 1.0,
                "start_register": None,
                "end_register": 12345.6 + 30.0,
            },
        ]
    )
    registers = pd.DataFrame(
        [
            {
                "meter_id": "OLD",
                "channel": "kwh_delivered",
                "read_at": pd.Timestamp("2024-03-05T00:00Z"),
                "value": 12345.6,
            },
        ]
    )
    validated, _ = run(inputs([meter("OLD")], old, installs=installs, registers=registers))
    failed = validated.exceptions[validated.exceptions["rule"] == "sum_check"]
    assert failed["meter_id"].tolist() == ["OLD"]
    assert "register advance × multiplier = 30.0" in failed["detail"].iloc[0]


def test_previous_days_intervals_are_end_points_across_midnight() -> None:
    today = {i: 1.0 + (i % 3) / 10 for i in range(96)}
    today[0] = None  # 00:00–00:15 never arrived
    yesterday = history_from(
        day_reads({i: 0.5 + (i % 2) / 10 for i in range(96)}, day=DAY - dt.timedelta(days=1))
    )
    _, est = run(inputs([meter()], day_reads(today), history=yesterday))
    first = est.intervals.iloc[0]
    assert first["estimation_method"] == "linear"
    # between yesterday's last interval (0.6) and today's second (1.1)
    assert first["final_value"] == pytest.approx((0.6 + 1.1) / 2)


def test_daily_intervals_on_dst_days_keep_their_local_day_and_slot() -> None:
    from smartmdm_pipelines.domain.vee.history import slots

    ends = pd.Series(
        pd.to_datetime(["2024-03-11T05:00:00Z", "2024-11-04T06:00:00Z", "2024-03-12T05:15:00Z"], utc=True)
    )
    start, slot = slots(ends, [86400, 86400, 900], "America/Chicago")
    assert start.dt.date.tolist()[:2] == [dt.date(2024, 3, 10), dt.date(2024, 11, 3)]
    assert slot.tolist() == [0, 0, 0]  # the 15-minute interval 00:00–00:15 is slot 0 too


def _registers(start: float, end: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"meter_id": "M1", "channel": "kwh_delivered", "read_at": pd.Timestamp(t), "value": v}
            for t, v in (("2024-03-05T00:00Z", start), ("2024-03-06T00:00Z", end))
        ]
    )


def _gap_day(start: float, end: float, multiplier: float = 1.0):
    """24 hourly intervals of 1.0 with slots 10 and 11 missing, registers bracketing the day."""
    reads = day_reads({i: 1.0 for i in range(24) if i not in (10, 11)}, seconds=3600)
    return run(inputs([meter(seconds=3600, multiplier=multiplier)], reads, registers=_registers(start, end)))


def test_a_good_register_advance_scales_the_estimates() -> None:
    validated, est = _gap_day(1000.0, 1025.0)  # 22 measured + 3 in the gap
    assert not set(validated.exceptions["rule"]) & {"sum_check", "multiplier_mismatch"}
    assert at(est, [10, 11]) == pytest.approx([1.5, 1.5])
    assert at(est, [10], "estimation_method") == ["linear+scaled"]
    assert est.intervals["final_value"].sum() == pytest.approx(25.0)


def test_a_bad_register_advance_on_a_day_with_a_gap_is_not_scaled_to() -> None:
    validated, est = _gap_day(1000.0, 1100.0)  # the gap would need 39 kWh per hour
    failed = validated.exceptions[validated.exceptions["rule"] == "sum_check"]
    assert len(failed) == 1 and "2 unmeasured interval(s)" in failed["detail"].iloc[0]
    assert at(est, [10, 11]) == pytest.approx([1.0, 1.0])  # the linear estimate, unscaled
    assert at(est, [10], "estimation_method") == ["linear"]
    reason = at(est, [10], "estimation_inputs")[0]
    assert "not scaled: the register advance failed sum_check" in reason


def test_a_wrong_multiplier_on_a_day_with_a_gap_is_reported_and_not_scaled_to() -> None:
    # intervals in kWh, 24 dial units of advance, but the master data says CT ratio 80
    validated, est = _gap_day(1000.0, 1024.0, multiplier=80.0)
    rules = validated.exceptions.set_index("rule")
    assert "multiplier_mismatch" in rules.index and "sum_check" not in rules.index
    assert "× 1" in rules.loc["multiplier_mismatch", "detail"]
    assert at(est, [10, 11]) == pytest.approx([1.0, 1.0])
    assert "failed multiplier_mismatch" in at(est, [11], "estimation_inputs")[0]


def test_a_measured_part_above_the_advance_fails_the_sum_check_on_a_gap_day() -> None:
    validated, est = _gap_day(1000.0, 1010.0)  # 22 kWh measured, 10 kWh on the register
    assert "sum_check" in set(validated.exceptions["rule"])
    assert at(est, [10], "estimation_method") == ["linear"]
