"""AEMO NEM12 adapter: channels, 400 quality ranges, interval lengths, units, line-precise rejects."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartmdm_pipelines.adapters.base import SourceConfig
from smartmdm_pipelines.adapters.nem12 import ADAPTER
from smartmdm_pipelines.adapters.registry import detect_format, parse_file
from smartmdm_pipelines.domain.readings import normalise_units
from smartmdm_pipelines.simulate.writers.base import SCHEMAS, Delivery
from smartmdm_pipelines.simulate.writers.nem12 import Nem12Writer

HEADER = "100,NEM12,202404020930,MDPX,RETAILER\n"
END = "900\n"
TRAILER = ",,,20240402093000,20240402093500"


# -- fixture builders (from the MDFF layout, not copied from any sample file) ----------------------
def r200(nmi="4102335210", suffix="E1", serial="M1234", uom="kWh", minutes=30, config="E1B1Q1K1") -> str:
    return f"200,{nmi},{config},{suffix},{suffix},N1,{serial},{uom},{minutes},20240501\n"


def r300(date="20240401", values=None, quality="A", minutes=30, trailer=TRAILER) -> str:
    values = values if values is not None else [f"{0.1 * (i + 1):.3f}" for i in range(1440 // minutes)]
    return f"300,{date},{','.join(str(v) for v in values)},{quality}{trailer}\n"


def write(tmp_path: Path, text: str | bytes, name: str = "nem12.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def parse(path: Path, **source: object):
    return ADAPTER.parse(path, SourceConfig(**source))


def reasons(parsed) -> dict[int, str]:
    return dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# -- the records -----------------------------------------------------------------------------------
def test_a_day_of_30_minute_reads_in_nem_time(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + r200() + r300() + END)
    assert detect_format(path) == "nem12"
    parsed = parse(path)
    assert parsed.status == "loaded" and parsed.records == 48
    iv = parsed.intervals
    assert iv["meter_id"].unique().tolist() == ["4102335210-M1234"]
    assert iv["channel"].unique().tolist() == ["kwh_delivered"]
    assert iv["interval_seconds"].unique().tolist() == [1800]
    # interval 1 of 2024-04-01 ends 00:30 AEST (UTC+10, no DST) = 2024-03-31T14:30Z
    assert iv["interval_end"].iloc[0] == utc("2024-03-31T14:30")
    assert iv["interval_end"].iloc[-1] == utc("2024-04-01T14:00")
    assert iv["value"].tolist() == pytest.approx([0.1 * (i + 1) for i in range(48)])
    assert iv["unit"].unique().tolist() == ["kWh"] and iv["source_quality"].unique().tolist() == ["A"]
    assert iv["line"].unique().tolist() == [3]


def test_nem_time_whatever_the_source_zone_unless_the_source_overrides_it(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + r200() + r300() + END)
    for zone in ("UTC", "America/Chicago", "Australia/Perth"):  # the zone of naive timestamps: not NEM12's
        assert parse(path, timezone=zone).intervals["interval_end"].iloc[0] == utc("2024-03-31T14:30")
    assert parse(path, nem12_timezone="Australia/Brisbane").intervals["interval_end"].iloc[0] == utc(
        "2024-03-31T14:30"
    )
    assert parse(path, nem12_timezone="Australia/Perth").intervals["interval_end"].iloc[0] == utc(
        "2024-03-31T16:30"
    )
    bad = parse(path, nem12_timezone="Mars/Olympus")
    assert bad.status == "rejected" and "not a known IANA zone" in bad.fatal


def test_four_channels_over_a_us_dst_change_all_load_in_nem_time(tmp_path: Path) -> None:
    """Issue 9 item 1: a utility in America/Chicago receives a 4-day, 4-channel file whose days
    include the US spring-forward (2024-03-10): NEM days are 24 h, nothing is rejected."""
    days = ["20240309", "20240310", "20240311", "20240312"]
    text = HEADER
    for suffix, uom in (("E1", "kWh"), ("B1", "kWh"), ("Q1", "kVArh"), ("K1", "kVArh")):
        text += r200(suffix=suffix, uom=uom) + "".join(r300(d) for d in days)
    parsed = parse(write(tmp_path, text + END), name="ami-south", timezone="America/Chicago")
    assert parsed.status == "loaded" and len(parsed.rejected) == 0
    iv = parsed.intervals
    assert len(iv) == 768 and parsed.records == 768
    assert iv.groupby("channel").size().to_dict() == {
        "kvarh": 192,
        "kvarh_received": 192,
        "kwh_delivered": 192,
        "kwh_received": 192,
    }
    day = iv[iv["channel"] == "kwh_delivered"]["interval_end"]
    assert day.iloc[0] == utc("2024-03-08T14:30") and day.iloc[-1] == utc("2024-03-12T14:00")
    assert day.diff().dropna().eq(pd.Timedelta(minutes=30)).all()  # no hour lost at the US change


def test_a_dst_day_in_a_dst_zone_is_rejected(tmp_path: Path) -> None:
    # Sydney leaves DST on 2024-04-07: that local day has 25 hours, a 300 record always 24
    text = HEADER + r200() + r300("20240406") + r300("20240407") + END
    parsed = parse(write(tmp_path, text), nem12_timezone="Australia/Sydney")
    assert parsed.intervals["line"].unique().tolist() == [3]
    assert reasons(parsed) == {
        4: "line 4: day 2024-04-07 is not 1,440 minutes long in time zone Australia/Sydney (NEM12 days always "
        "are; set the source's nem12_timezone to a fixed-offset zone, or leave it out for NEM time, Etc/GMT-10)"
    }


def test_several_channels_per_nmi_and_a_second_element(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200(suffix="E1", uom="KWH")
        + r300(values=[1] * 48)
        + r200(suffix="B1", uom="kwh")
        + r300(values=[2] * 48)
        + r200(suffix="Q1", uom="KVARH")
        + r300(values=[3] * 48)
        + r200(suffix="K1", uom="kVArh")
        + r300(values=[4] * 48)
        + r200(suffix="E2", uom="kWh")
        + r300(values=[5] * 48)
        + r200(nmi="4102335211", suffix="E1", serial="", uom="kWh")
        + r300(values=[6] * 48)
        + END
    )
    iv = parse(write(tmp_path, text)).intervals
    streams = iv.groupby(["meter_id", "channel", "unit", "source_unit"], sort=False)["value"].agg(
        ["size", "first"]
    )
    assert streams.reset_index().values.tolist() == [
        ["4102335210-M1234", "kwh_delivered", "kWh", "KWH", 48, 1.0],
        ["4102335210-M1234", "kwh_received", "kWh", "kwh", 48, 2.0],
        ["4102335210-M1234", "kvarh", "kVARh", "KVARH", 48, 3.0],
        ["4102335210-M1234", "kvarh_received", "kVARh", "kVArh", 48, 4.0],
        ["4102335210-M1234:2", "kwh_delivered", "kWh", "kWh", 48, 5.0],
        ["4102335211", "kwh_delivered", "kWh", "kWh", 48, 6.0],
    ]


def test_wh_and_lower_case_units_are_normalised(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200(uom="Wh")
        + r300(values=[1500] * 48)
        + r200(uom="wh", suffix="B1")
        + r300(values=[250] * 48)
        + END
    )
    iv = parse(write(tmp_path, text)).intervals
    assert iv.groupby("channel", sort=False)["value"].first().tolist() == [1.5, 0.25]
    assert iv["unit"].unique().tolist() == ["kWh"]
    assert iv["source_unit"].unique().tolist() == ["Wh", "wh"]


def test_interval_length_changes_between_200_blocks(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200(minutes=30)
        + r300("20240401", minutes=30)
        + r200(minutes=15)
        + r300("20240402", minutes=15)
        + r200(minutes=5)
        + r300("20240403", minutes=5)
        + END
    )
    iv = parse(write(tmp_path, text)).intervals
    assert iv.groupby("interval_seconds", sort=False).size().to_dict() == {1800: 48, 900: 96, 300: 288}
    five = iv[iv["interval_seconds"] == 300]
    assert five["interval_end"].iloc[0] == utc("2024-04-02T14:05")
    assert five["interval_end"].iloc[-1] == utc("2024-04-03T14:00")


def test_400_records_override_quality_and_null_is_never_zero(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200()
        + r300("20240401", values=[1] * 48, quality="V")
        + "400,1,20,A,,\n"
        + "400,21,30,N,79,Meter fault\n"
        + "400,31,48,E52,,\n"
        + r300("20240402", values=[2] * 48, quality="A")
        + "400,48,48,S14,32,\n"  # a 400 under a non-V record still overrides its intervals
        + r300("20240403", values=[0] * 47 + [""], quality="N")  # null day: zeros (and a blank) are no reads
        + END
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "loaded" and parsed.records == 144
    day1, day2, day3 = (parsed.intervals.iloc[i * 48 : (i + 1) * 48] for i in range(3))
    assert day1["source_quality"].tolist() == ["A"] * 20 + ["N"] * 10 + ["E52"] * 18
    assert day1["value"].isna().tolist() == [False] * 20 + [True] * 10 + [False] * 18
    assert day2["source_quality"].tolist() == ["A"] * 47 + ["S14"]
    assert day3["value"].isna().all() and day3["source_quality"].unique().tolist() == ["N"]


def test_bad_400_records_reject_themselves_and_their_300_record(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200()
        + r300("20240401", values=[1] * 48, quality="V")  # 3
        + "400,1,40,A,,\n"  # 4: intervals 41-48 uncovered
        + r300("20240402", values=[1] * 48, quality="A")  # 5
        + "400,30,50,N,,\n"  # 6: beyond 48
        + r300("20240403", values=[1] * 48, quality="A")  # 7
        + "400,x,5,N,,\n"  # 8
        + r300("20240404", values=[1] * 48, quality="A")  # 9
        + "400,1,5,V,,\n"  # 10: V is not a 400 quality
        + r200()  # 11
        + "400,1,5,A,,\n"  # 12: follows a 200
        + r300("20240405")  # 13: fine
        + END
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.intervals["line"].unique().tolist() == [13]
    assert reasons(parsed) == {
        3: "line 3: 300 record has quality method V but interval 41 is not covered by a 400 record (V needs a 400 "
        "record for every interval)",
        5: "line 5: 300 record rejected because its 400 record at line 6 is invalid",
        6: "line 6: 400 record interval range 30-50 is outside 1-48 of the 300 record at line 5",
        7: "line 7: 300 record rejected because its 400 record at line 8 is invalid",
        8: "line 8: 400 record start/end interval is not a whole number",
        9: "line 9: 300 record rejected because its 400 record at line 10 is invalid",
        10: "line 10: 400 record quality method 'V' is not A, E.., F.., N or S..",
        12: "line 12: 400 record does not follow a 300 record",
    }
    assert parsed.records == 48 + 8


def test_300_records_with_the_wrong_number_of_values_are_rejected_with_the_line(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200()
        + r300("20240401")  # 3 ok
        + r300("20240402", values=[1] * 45)  # 4
        + "300,20240403\n"  # 5: no values at all
        + "300,20240404,A"
        + TRAILER
        + "\n"  # 6: no values, quality present
        + r300("20240405", values=[1] * 49)  # 7
        + "300,20240406,"
        + ",".join(["1"] * 48)
        + "\n"  # 8: values but nothing after them
        + r300("20240407", values=[1] * 47 + ["abc"])  # 9
        + r300("2024-04-08")  # 10
        + r300("20240231")  # 11
        + r300("20240409", quality="Z9")  # 12
        + r300("20240410", values=[1] * 47 + [""])  # 13: empty value under quality A
        + r300("20240411", values=[1] * 47 + ["inf"])  # 14
        + r300("20240412", trailer=",")  # 15: the trailer is cut short
        + r200(minutes=15)  # 16
        + r300("20240413", minutes=30)  # 17: 48 values under a 15-minute stream
        + END
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.intervals["line"].unique().tolist() == [3]
    assert reasons(parsed) == {
        4: "line 4: 300 record has 45 interval values, expected 48 for a 30-minute interval length",
        5: "line 5: 300 record has no interval values, expected 48 for a 30-minute interval length",
        6: "line 6: 300 record has no interval values, expected 48 for a 30-minute interval length",
        7: "line 7: 300 record has 49 interval values, expected 48 for a 30-minute interval length",
        8: "line 8: 300 record has its 48 interval values but nothing after them (expected quality method, "
        "reason code, reason description, update time[, MSATS load time])",
        9: "line 9: interval value 48 'abc' is not a number",
        10: "line 10: interval date '2024-04-08' is not a valid CCYYMMDD date",
        11: "line 11: interval date '20240231' is not a valid CCYYMMDD date",
        12: "line 12: quality method 'Z9' after the 48 interval values is not A, E.., F.., N, S.. or V",
        13: "line 13: interval value 48 is empty (quality A)",
        14: "line 14: interval value 48 'inf' is not a number",
        15: "line 15: 300 record has 52 fields, expected 54 or 55: record indicator, date, 48 interval values, "
        "quality method, reason code, reason description, update time[, MSATS load time]",
        17: "line 17: 300 record has 48 interval values, expected 96 for a 15-minute interval length",
    }
    raw = dict(zip(parsed.rejected["line"], parsed.rejected["raw_text"], strict=True))
    assert raw[5] == "300,20240403"
    assert parsed.records == 48 + 13


def test_invalid_200_records_reject_the_300_records_under_them(tmp_path: Path) -> None:
    text = (
        HEADER
        + r300()  # 2: before any 200
        + r200(suffix="X1")  # 3
        + r300()  # 4
        + r200(uom="kVA")  # 5
        + r300()  # 6
        + r200(suffix="Q1", uom="kWh")  # 7
        + r300()  # 8
        + r200(minutes=20)  # 9
        + r300()  # 10
        + r200(nmi="")  # 11
        + r300()  # 12
        + "200,4102335210,E1,E1,E1\n"  # 13
        + r300()  # 14
        + r200()  # 15
        + r300()  # 16 ok
        + "250,4102335210,E1\n"  # 17: NEM13 record
        + END
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.intervals["line"].unique().tolist() == [16]
    got = reasons(parsed)
    assert got[2] == "line 2: 300 record before any 200 record"
    assert got[4].startswith("line 4: 300 record under the invalid 200 record at line 3: NMI suffix 'X1'")
    assert got[6].endswith("UOM 'kVA' is not an energy unit (expected kWh, Wh, MWh, kVArh or VArh)")
    assert got[8].endswith("UOM 'kWh' does not fit NMI suffix Q1, which holds reactive energy (kVArh, VArh)")
    assert got[10].endswith("interval length '20' is not 5, 15 or 30 minutes")
    assert got[12].endswith("200 record has an empty NMI")
    assert "200 record has 5 fields, expected 10" in got[14]
    assert got[17] == "line 17: record indicator '250' is not a NEM12 record (100, 200, 300, 400, 500 or 900)"
    assert sorted(got) == [2, 4, 6, 8, 10, 12, 14, 17]


# -- file-level problems ---------------------------------------------------------------------------
def test_missing_header_rejects_the_file_at_line_1(tmp_path: Path) -> None:
    path = write(tmp_path, r200() + r300() + END)
    assert detect_format(path) == "nem12"  # recognised as a header-less NEM12 body
    parsed = parse_file(path)
    assert parsed.status == "rejected" and parsed.fatal_line == 1
    assert parsed.fatal.startswith("the file does not start with a 100 header record (found '200,4102335210")
    nem13 = parse(write(tmp_path, "100,NEM13,202404020930,A,B\n" + END, "13.csv"))
    assert nem13.fatal_line == 1 and "'NEM13'; only NEM12" in nem13.fatal
    empty = parse(write(tmp_path, "\n\n", "empty.csv"))
    assert empty.status == "rejected" and "empty" in empty.fatal


def test_truncated_file_keeps_complete_records_and_reports_the_missing_end(tmp_path: Path) -> None:
    full = HEADER + r200() + r300("20240401") + r300("20240402") + END
    cut = full[: full.index("300,20240402") + 100]
    parsed = parse(write(tmp_path, cut))
    assert parsed.status == "partially loaded"
    assert parsed.intervals["line"].unique().tolist() == [3]
    assert reasons(parsed) == {
        4: "line 4: 300 record has 15 interval values and no quality method, expected 48 for a 30-minute "
        "interval length",
        5: "line 5: no 900 end-of-data record after the last record (line 4): the file may be truncated",
    }
    assert parsed.records == 48 + 2
    whole_lines = parse(write(tmp_path, HEADER + r200() + r300(), "no900.csv"))
    assert whole_lines.intervals["line"].nunique() == 1
    assert whole_lines.rejected["reason"].tolist() == [
        "line 4: no 900 end-of-data record after the last record (line 3): the file may be truncated"
    ]


def test_records_after_the_end_and_a_second_header_are_rejected(tmp_path: Path) -> None:
    text = (
        HEADER
        + r200()
        + r300()
        + "100,NEM12,202404020930,A,B\n"
        + "500,O,S01009,20240402093000,\n"
        + END
        + r300()
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.intervals["line"].unique().tolist() == [3]
    assert reasons(parsed) == {
        4: "line 4: a second 100 header record (the header is line 1)",
        7: "line 7: record after the 900 end-of-data record at line 6",
    }


def test_bom_crlf_and_blank_lines_are_fine_and_wrong_encoding_is_fatal(tmp_path: Path) -> None:
    text = (HEADER + "\n" + r200() + r300() + "\n" + END).replace("\n", "\r\n")
    parsed = parse(write(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    assert parsed.status == "loaded" and parsed.intervals["line"].unique().tolist() == [4]
    latin = (HEADER + r200(serial="Zähler") + r300() + END).encode("latin-1")
    bad = parse(write(tmp_path, latin, "latin.csv"))
    assert bad.status == "rejected" and bad.fatal_line == 2 and "not UTF-8" in bad.fatal


# -- writer ----------------------------------------------------------------------------------------
CHANNELS = {"kwh_delivered": "kWh", "kwh_received": "kWh", "kvarh": "kVARh", "kvarh_received": "kVARh"}
DAY0 = 1711893600  # 2024-03-31T14:00:00Z = 2024-04-01T00:00 AEST


@st.composite
def nem_days(draw: st.DrawFn) -> pd.DataFrame:
    """Whole NEM days of several streams (a 300 record always holds a whole day)."""
    streams = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["4102335210", "NMI0000002", "E-7"]), st.sampled_from(sorted(CHANNELS))
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    frames = []
    for meter, channel in streams:
        seconds = draw(st.sampled_from([300, 900, 1800, 3600]))
        days = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True))
        n = 86400 // seconds
        for day in days:
            values = draw(
                st.lists(
                    st.none() | st.floats(0, 5000, allow_nan=False).map(lambda v: round(v, 3)),
                    min_size=n,
                    max_size=n,
                )
            )
            quality = draw(st.lists(st.sampled_from(["", "E", "F52", "S14"]), min_size=n, max_size=n))
            ends = DAY0 + day * 86400 + seconds * np.arange(1, n + 1)
            frames.append(
                pd.DataFrame(
                    {
                        "meter_id": meter,
                        "channel": channel,
                        "t": ends,
                        "interval_seconds": seconds,
                        "value": values,
                        "unit": CHANNELS[channel],
                        "quality": quality,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "meter_id": frame["meter_id"].tolist(),
            "channel": frame["channel"].tolist(),
            "interval_end": pa.array(frame["t"].to_numpy(np.int64), pa.timestamp("s", tz="UTC")),
            "interval_seconds": pa.array(frame["interval_seconds"].to_numpy(np.int32)),
            "value": pa.array(frame["value"].tolist(), pa.float64()),
            "unit": frame["unit"].tolist(),
            "quality": frame["quality"].tolist(),
        }
    ).cast(SCHEMAS["intervals"])


def _write(tmp: Path, *tables: pa.Table, record: str = "intervals") -> Path:
    writer = Nem12Writer(tmp)
    delivery = Delivery("ami-east", record, "20240401")
    writer.open(delivery)
    for table in tables:
        writer.write(delivery, table)
    (path,) = writer.close()
    return tmp / path


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=nem_days(), first=st.sets(st.sampled_from(["4102335210", "NMI0000002", "E-7"])))
def test_writer_round_trip(frame: pd.DataFrame, first: set[str]) -> None:
    # appends hold whole meters, as the simulator's meter chunks do (a NEM day is never split)
    chunk = frame["meter_id"].isin(first)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), _table(frame[chunk]), _table(frame[~chunk]))
        parsed = ADAPTER.parse(path, SourceConfig())
    assert parsed.status == "loaded", parsed.rejected.head()
    iv = parsed.intervals
    keys = ["meter_id", "channel", "t"]
    got = pd.DataFrame(
        {
            "meter_id": iv["meter_id"],
            "channel": iv["channel"],
            "t": iv["interval_end"].astype("int64") // 10**6,
            "seconds": iv["interval_seconds"],
            "value": iv["value"],
            "unit": iv["unit"],
            "quality": iv["source_quality"],
        }
    ).sort_values(keys, ignore_index=True)
    value, unit, _ = normalise_units(frame["value"].astype("float64"), frame["unit"], frame["channel"])
    quality = frame["quality"].replace("", "A").where(frame["value"].notna(), "N")
    want = pd.DataFrame(
        {
            "meter_id": frame["meter_id"],
            "channel": frame["channel"],
            "t": frame["t"],
            "seconds": frame["interval_seconds"],
            "value": value,
            "unit": unit,
            "quality": quality,
        }
    ).sort_values(keys, ignore_index=True)
    assert (
        got[keys + ["seconds", "unit", "quality"]]
        .astype(str)
        .equals(want[keys + ["seconds", "unit", "quality"]].astype(str))
    )
    assert got["value"].isna().tolist() == want["value"].isna().tolist()
    np.testing.assert_allclose(got["value"].fillna(0), want["value"].fillna(0), rtol=0, atol=1e-9)


def test_writer_pads_partial_days_drops_what_nem12_cannot_say_and_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Nem12Writer, "max_open_files", 1)
    frame = pd.DataFrame(
        {
            "meter_id": ["M1", "M1", "W1", "M1"],
            "channel": ["kwh_delivered", "kwh_delivered", "water", "kwh_net"],
            "t": [DAY0 + 1800, DAY0 + 3600, DAY0 + 3600, DAY0 + 1800],
            "interval_seconds": [1800, 1800, 3600, 1800],
            "value": [1.25, 0.5, 10.0, 1.0],
            "unit": ["kWh", "kWh", "gal", "kWh"],
            "quality": ["", "E", "", ""],
        }
    )
    writer = Nem12Writer(tmp_path)
    intervals = Delivery("ami-east", "intervals", "20240401")
    registers = Delivery("ami-east", "registers", "20240401")
    writer.write(intervals, _table(frame.iloc[:1]))
    writer.open(registers)
    writer.write(intervals, _table(frame.iloc[1:]))  # reopened for append: a second 200 block
    paths = writer.close()
    text = (tmp_path / paths[0]).read_text()
    assert text.splitlines()[0] == "100,NEM12,202404010000,AMIEAST,SMARTMDM"
    assert [line[:3] for line in text.splitlines()] == [
        "100",
        "200",
        "300",
        "400",
        "400",
        "200",
        "300",
        "400",
        "400",
        "400",
        "900",
    ]
    parsed = parse(tmp_path / paths[0])
    iv = parsed.intervals
    assert parsed.status == "loaded" and len(iv) == 96  # two 300 records, each a whole day
    real = iv.dropna(subset=["value"])
    assert real["value"].tolist() == [1.25, 0.5] and real["source_quality"].tolist() == ["A", "E"]
    assert iv["value"].isna().sum() == 94 and set(iv.loc[iv["value"].isna(), "source_quality"]) == {"N"}
    assert (tmp_path / paths[1]).read_text() == "100,NEM12,202404010000,AMIEAST,SMARTMDM\n900\n"
    assert parse(tmp_path / paths[1]).status == "loaded"


def test_implausible_dates_are_rejected(tmp_path: Path) -> None:
    text = HEADER + r200() + r300("19691231") + r300("99991231") + r300("21991231") + END
    parsed = parse(write(tmp_path, text))
    assert parsed.intervals["line"].unique().tolist() == [5]
    assert reasons(parsed) == {
        3: "line 3: interval date '19691231' is not between 1970 and 2199",
        4: "line 4: interval date '99991231' is not between 1970 and 2199",
    }
