"""The real-time pass validates each series only up to its latest read (``through_last_read``) and
builds the expected grid only that far: every kept interval gets the same status and flags as
in the whole day's validation, and the intervals it drops are exactly those after each series'
latest received read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends
from smartmdm_pipelines.domain.vee.validation import validate_day
from smartmdm_pipelines_tests.domain.vee.builders import DAY, day_reads, inputs, meter

ENDS = interval_ends(DAY, "UTC", 900)


def _day() -> tuple[list[dict], pd.DataFrame]:
    rng = np.random.default_rng(3)
    base = {i: float(v) for i, v in enumerate(rng.gamma(2.0, 0.2, 96).round(3) + 0.05)}
    reads = [
        day_reads({i: base[i] for i in range(30)} | {5: 9.0}, "S1"),  # a spike early, read to slot 29
        day_reads(
            {i: base[i] for i in range(40)} | {i: 0.0 for i in range(30, 40)}, "Z1"
        ),  # a zero run at the end
        day_reads(
            {i: base[i] for i in range(50) if i not in (10, 11, 12)}, "G1"
        ),  # a gap before its latest read
        day_reads({i: base[i] for i in range(20)} | {15: -0.4}, "N1"),  # a negative read
        day_reads({0: base[0]}, "F1"),  # the day's first read only
        day_reads({i: base[i] for i in range(8)}, "X9"),  # a meter not in the master data
        # a second channel of S1 read further than its first; a read off the grid by 7 minutes
        day_reads({i: base[i] for i in range(60)}, "S1", channel="kwh_received"),
        pd.DataFrame(
            [
                {
                    "meter_id": "G1",
                    "channel": "kwh_delivered",
                    "interval_end": ENDS[70] + pd.Timedelta(minutes=7),
                    "interval_seconds": 900,
                    "value": 0.3,
                    "source_quality": "",
                    "file_id": 2,
                    "line": 2,
                }
            ]
        ),
    ]
    meters = [
        meter("S1", channels="kwh_delivered;kwh_received"),
        meter("Z1"),
        meter("G1"),
        meter("N1"),
        meter("F1"),
        meter("Q1"),  # nothing received: not in a real-time pass
    ]
    return meters, pd.concat(reads, ignore_index=True)


def test_the_cut_grid_gives_every_kept_interval_the_whole_days_result() -> None:
    meters, reads = _day()
    whole = validate_day(inputs(meters, reads)).intervals
    partial_inputs = inputs(meters, reads)
    partial_inputs.through_last_read = True
    partial = validate_day(partial_inputs).intervals

    key = ["meter_id", "channel", "interval_end"]
    whole = whole.assign(meter_id=whole["meter_id"].astype(str), channel=whole["channel"].astype(str))
    partial = partial.assign(meter_id=partial["meter_id"].astype(str), channel=partial["channel"].astype(str))
    last = whole[whole["received"]].groupby(["meter_id", "channel"])["interval_end"].max().rename("last")
    expected = whole.join(last, on=["meter_id", "channel"], how="inner")
    expected = expected[expected["interval_end"] <= expected["last"]]
    cols = [*key, "value", "status", "failed_rules"]
    got = partial[cols].sort_values(key).reset_index(drop=True)
    want = expected[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_categorical=False)

    # the cut is where the reads end: S1 to slot 29 and 59 (its two channels), G1 to 49 (not the
    # off-grid read), F1 its first interval, Q1 (nothing received) and X9 (unknown) not at all
    ends = got.groupby(["meter_id", "channel"])["interval_end"].max()
    assert ends[("S1", "kwh_delivered")] == ENDS[29] and ends[("S1", "kwh_received")] == ENDS[59]
    assert ends[("G1", "kwh_delivered")] == ENDS[49] and len(got[got["meter_id"] == "F1"]) == 1
    assert not got["meter_id"].isin(["Q1", "X9"]).any()
    # and the flags the new reads raise are there
    flagged = got.set_index(["meter_id", "interval_end"])
    assert "spike" in str(flagged.loc[("S1", ENDS[5]), "failed_rules"].iloc[0])
    assert "zero_run" in str(flagged.loc[("Z1", ENDS[30]), "failed_rules"])
    assert flagged.loc[("G1", ENDS[11]), "status"] == "missing"
    assert flagged.loc[("N1", ENDS[15]), "status"] == "suspect"
