"""Generic CSV adapters: good rows load, bad rows are rejected with line and reason."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smartmdm_pipelines.adapters.registry import detect_format, parse_file

HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"


def write(tmp_path: Path, text: str | bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_interval_rows_load_with_units_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,412,Wh,\n"
        + "E1,kwh_delivered,2024-03-10T00:30:00-06:00,900,0.5,kWh,A\n"
        + "W1,water,2024-03-10T07:00:00+00:00,3600,1.5,CCF,\n",
    )
    parsed = parse_file(path)
    assert parsed.format == "generic_interval_csv" and parsed.status == "loaded"
    iv = parsed.intervals
    assert iv["value"].tolist() == pytest.approx([0.412, 0.5, 1122.0779], rel=1e-6)
    assert iv["unit"].tolist() == ["kWh", "kWh", "gal"]
    assert iv["source_unit"].tolist() == ["Wh", "kWh", "CCF"]
    assert iv["interval_end"].iloc[1] == pd.Timestamp("2024-03-10T06:30:00Z")
    assert iv["line"].tolist() == [2, 3, 4]


def test_no_read_placeholder_is_never_a_zero(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, HEADER + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,,kWh,\n"))
    assert np.isnan(parsed.intervals["value"].iloc[0])
    assert parsed.intervals["source_quality"].iloc[0] == "N"


def test_bad_rows_are_rejected_with_their_line_and_good_rows_still_load(tmp_path: Path) -> None:
    body = (
        HEADER
        + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\n"  # 2 ok
        + "\n"  # 3 blank: not a record
        + "E1,kwh_delivered,2024-03-10 06:30:00,900,1,kWh,\n"  # 4 naive time
        + "E1,kwh_delivered,2024-03-10T06:45:00Z,900,1\n"  # 5 too few fields
        + ",kwh_delivered,2024-03-10T07:00:00Z,900,1,kWh,\n"  # 6 no meter
        + "E1,kwh_delivered,2024-03-10T07:15:00Z,900,abc,kWh,\n"  # 7 not a number
        + "E1,steam,2024-03-10T07:30:00Z,900,1,kWh,\n"  # 8 unknown channel
        + "E1,kwh_delivered,2024-03-10T07:45:00Z,901,1,kWh,\n"  # 9 bad length
        + "E1,kwh_delivered,2024-03-10T08:00:00Z,900,1,BTU,\n"  # 10 unknown unit
        + "E1,kwh_delivered,2024-13-10T08:15:00Z,900,1,kWh,\n"  # 11 impossible date
        + "E1,kwh_delivered,2024-03-10T08:30:00Z,900,inf,kWh,\n"  # 12 not finite
        + "E1,kwh_delivered,2024-03-10T08:45:00Z,900,2,kWh,\n"  # 13 ok
    )
    parsed = parse_file(write(tmp_path, body))
    assert parsed.status == "partially loaded"
    assert parsed.intervals["line"].tolist() == [2, 13]
    reasons = dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert "no UTC offset" in reasons[4]
    assert "expected 7 fields, found 5" in reasons[5]
    assert reasons[6] == "meter_id is empty"
    assert "'abc' is not a number" in reasons[7]
    assert "channel 'steam'" in reasons[8]
    assert "interval_seconds '901'" in reasons[9]
    assert "unit 'BTU'" in reasons[10]
    assert "not a valid ISO-8601 instant" in reasons[11]
    assert "not a finite number" in reasons[12]
    assert parsed.records == len(parsed.intervals) + len(parsed.rejected)
    raw = dict(zip(parsed.rejected["line"], parsed.rejected["raw_text"], strict=True))
    assert raw[5] == "E1,kwh_delivered,2024-03-10T06:45:00Z,900,1"


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\r\n"
    parsed = parse_file(write(tmp_path, text.encode("utf-8")))
    assert parsed.status == "loaded" and len(parsed.intervals) == 1
    assert parsed.intervals["source_quality"].iloc[0] == ""


def test_wrong_encoding_rejects_the_file_with_the_line(tmp_path: Path) -> None:
    text = (
        HEADER + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\n" + "Zähler,kwh_delivered,x,900,1,kWh,\n"
    )
    parsed = parse_file(write(tmp_path, text.encode("latin-1")))
    assert parsed.status == "rejected"
    assert parsed.fatal_line == 3 and "not UTF-8" in parsed.fatal


def test_missing_header_column_rejects_the_file(tmp_path: Path) -> None:
    parsed = parse_file(
        write(tmp_path, "meter_id,channel,interval_end,value,unit,quality\n"),
        source=_source("generic_interval_csv"),
    )
    assert parsed.status == "rejected" and parsed.fatal_line == 1
    assert "interval_seconds" in parsed.fatal


def test_unrecognised_and_empty_files_are_rejected(tmp_path: Path) -> None:
    assert parse_file(write(tmp_path, "hello,world\n1,2\n")).status == "rejected"
    empty = parse_file(write(tmp_path, "", "empty.csv"))
    assert empty.status == "rejected" and "unrecognised format" in empty.fatal


def test_truncated_file_keeps_its_complete_rows(tmp_path: Path) -> None:
    full = (
        HEADER
        + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\nE1,kwh_delivered,2024-03-10T06:30:00Z,900,2,kWh,\n"
    )
    parsed = parse_file(write(tmp_path, full[:-12]))
    assert parsed.intervals["line"].tolist() == [2]
    assert parsed.rejected["line"].tolist() == [3]


def test_register_and_event_files_are_detected_and_parsed(tmp_path: Path) -> None:
    reg = write(
        tmp_path,
        "meter_id,channel,read_at,value,unit,quality\nM1,kwh_delivered,2024-03-01T15:02:11Z,48213.0,kWh,\n"
        "M1,kwh_delivered,2024-03-01T15:02:11Z,,kWh,\n",
        "r.csv",
    )
    ev = write(
        tmp_path,
        "meter_id,event_at,event_type,code\nE1,2024-03-04T11:07:00Z,outage,3.26.0.85\nE1,2024-03-04T12:00:00Z,alien,9\n",
        "e.csv",
    )
    assert detect_format(reg) == "generic_register_csv"
    assert detect_format(ev) == "generic_event_csv"
    registers = parse_file(reg)
    assert registers.registers["value"].tolist() == [48213.0]
    assert "value is empty" in registers.rejected["reason"].iloc[0]
    events = parse_file(ev)
    assert events.events["event_type"].tolist() == ["outage"]
    assert events.events["source_code"].tolist() == ["3.26.0.85"]
    assert "event_type 'alien'" in events.rejected["reason"].iloc[0]


def _source(fmt: str):
    from smartmdm_pipelines.adapters.base import SourceConfig

    return SourceConfig(format=fmt)


def test_header_only_file_loads_nothing_and_rejects_nothing(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "meter_id,event_at,event_type,code\n"))
    assert parsed.status == "loaded" and parsed.records == 0 and len(parsed.events) == 0


def test_a_quoted_field_left_open_is_rejected_on_its_own_line(tmp_path: Path) -> None:
    # pyarrow would read the open field on through the following lines, losing rows and
    # shifting every line number after it; each such line is rejected by itself instead
    body = (
        HEADER
        + "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\n"  # 2 ok
        + '"E1,kwh_delivered,2024-03-10T06:30:00Z,900,2,kWh,\n'  # 3 open quote
        + "E1,kwh_delivered,2024-03-10T06:45:00Z,900,3,kWh,\n"  # 4 ok
        + 'E1,kwh_delivered,2024-03-10T07:00:00Z,900,4,"kWh,\n'  # 5 open quote
        + 'E1,kwh_delivered,2024-03-10T07:15:00Z,900,5,kWh,5/8" dial\n'  # 6 a stray quote is text
        + 'E1,kwh_delivered,2024-03-10T07:30:00Z,900,6,"kWh",\n'  # 7 ok, quoted
        + 'E1,kwh_delivered,2024-03-10T07:45:00Z,900,7,kW"h,"E\n'  # 8 even count, still open
        + "E1,kwh_delivered,2024-03-10T08:00:00Z,900,8,kWh,\n"  # 9 ok
    )
    parsed = parse_file(write(tmp_path, body))
    assert parsed.intervals["line"].tolist() == [2, 4, 6, 7, 9]
    assert parsed.intervals["value"].tolist() == [1.0, 3.0, 5.0, 6.0, 8.0]
    assert parsed.intervals["source_quality"].tolist() == ["", "", '5/8" dial', "", ""]
    reasons = dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))
    assert reasons == {
        3: "a quoted field is not closed on this line (unbalanced double quote)",
        5: "a quoted field is not closed on this line (unbalanced double quote)",
        8: "a quoted field is not closed on this line (unbalanced double quote)",
    }
    raw = dict(zip(parsed.rejected["line"], parsed.rejected["raw_text"], strict=True))
    assert raw[5] == 'E1,kwh_delivered,2024-03-10T07:00:00Z,900,4,"kWh,'
    assert parsed.records == len(parsed.intervals) + len(parsed.rejected) == 8


def test_the_issue_repro_keeps_every_line_and_its_number(tmp_path: Path) -> None:
    from smartmdm_pipelines.adapters.csvtools import read_string_table

    data = b'a,b,c\n1,2,3\n"4,5,6\n7,8,9\n10,11,12\n13,"14,15\n16,17,18\n'
    table, lines, bad = read_string_table(data, ["a", "b", "c"])
    assert table.column("a").to_pylist() == ["1", "7", "10", "16"]
    assert lines.tolist() == [2, 4, 5, 7]
    assert [(line, text) for line, text, _ in bad] == [(3, '"4,5,6'), (6, '13,"14,15')]


def test_malformed_rows_of_a_large_file_keep_their_line_numbers(tmp_path: Path) -> None:
    # a file of several pyarrow blocks, parsed in parallel: malformed rows come back out of order
    good = "E1,kwh_delivered,2024-03-10T06:15:00Z,900,1,kWh,\n"
    lines = [good] * 120_000
    for i in (5, 40_000, 70_000, 119_990):
        lines[i] = f"E1,kwh_delivered,2024-03-10T06:15:00Z,900,{i}\n"
    parsed = parse_file(write(tmp_path, HEADER + "".join(lines)))
    assert parsed.rejected["line"].tolist() == [7, 40_002, 70_002, 119_992]
    assert parsed.rejected["raw_text"].tolist()[1] == "E1,kwh_delivered,2024-03-10T06:15:00Z,900,40000"
    assert len(parsed.intervals) == 120_000 - 4
    assert parsed.intervals["line"].iloc[-1] == 120_001
