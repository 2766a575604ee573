"""YAML-mapped CSV sources: a real AMR export's shape loads with YAML only; every mapping option;
bad rows rejected with line and reason; a bad mapping fails at config load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from smartmdm_pipelines.adapters.base import SourceConfig
from smartmdm_pipelines.adapters.csv_mapping import CsvMapping
from smartmdm_pipelines.adapters.registry import detect_format, parse_file
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.readings import UNIT_CONVERSIONS
from smartmdm_pipelines.domain.timeutil import NAT, localise_in_order
from smartmdm_pipelines_tests import amr_export as ax

GAL_PER_L = UNIT_CONVERSIONS["l"][1]
GAL_PER_M3 = UNIT_CONVERSIONS["m3"][1]
MADRID = {
    "delimiter": ";",
    "columns": {"meter": "user key", "time": "datetime", "value": "meter reading"},
    "time_format": "%d/%m/%Y %H:%M:%S",
    "value_kind": "register",
    "unit": "L",
    "channel": "water",
}


def source(mapping: dict, tz: str = ax.TZ) -> SourceConfig:
    return SourceConfig(name="amr", timezone=tz, format="mapped_csv", csv=CsvMapping(**mapping))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_a_year_of_a_real_amr_export_loads_with_yaml_only(tmp_path: Path) -> None:
    config = load_config(ax.config_file(tmp_path), data_dir=tmp_path / "data")
    export = ax.write_export(tmp_path / "lecturas_2019.csv")
    assert export.path.read_text().splitlines()[1].split(";")[2] == "4e+05"
    parsed = parse_file(export.path, config.source_for(export.path.name))
    assert (parsed.format, parsed.status, parsed.records) == ("mapped_csv", "loaded", len(export.reads))
    regs = parsed.registers
    assert len(regs) == len(export.reads) and regs["line"].tolist() == export.reads["line"].tolist()
    # naive Madrid times back to the exact UTC instants: both DST changes, the repeated hour by order
    assert (regs["read_at"].to_numpy() == export.reads["read_at"].to_numpy()).all()
    assert regs["value"].to_numpy() == pytest.approx(export.reads["litres"].to_numpy() * GAL_PER_L)
    assert regs["value"].iloc[0] == pytest.approx(400_000 * GAL_PER_L)  # 4e+05
    assert (
        set(regs["unit"]) == {"gal"}
        and set(regs["source_unit"]) == {"L"}
        and set(regs["channel"]) == {"water"}
    )
    local = regs["read_at"].dt.tz_convert(ax.TZ)
    repeated = regs[(local.dt.strftime("%Y-%m-%d %H") == f"{ax.AUTUMN_DAY} 02").to_numpy()]
    offsets = repeated["read_at"].dt.tz_convert(ax.TZ).map(lambda t: t.utcoffset().total_seconds() / 3600)
    assert offsets.groupby(repeated["meter_id"]).agg(set).to_dict() == {"12345": {1, 2}, "67890": {1, 2}}


def test_the_repeated_hour_is_resolved_by_order_at_irregular_seconds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "fallback.csv",
        "user key;datetime;meter reading;diff\n"
        "7;27/10/2019 01:00:12;100;NA\n"
        "7;27/10/2019 02:00:31;110;10\n"  # daylight time (first pass)
        "8;27/10/2019 02:30:00;5;NA\n"  # another meter, alone in the hour: daylight time
        "7;27/10/2019 02:01:02;120;10\n"  # later on the clock, yet an hour later: standard time
        "7;27/10/2019 03:00:40;130;10\n",
    )
    regs = parse_file(path, source(MADRID)).registers.set_index("line")["read_at"]
    assert regs.dt.strftime("%H:%M:%S").to_dict() == {
        2: "23:00:12",
        3: "00:00:31",
        4: "00:30:00",
        5: "01:01:02",
        6: "02:00:40",
    }


def test_local_times_split_the_repeated_hour_where_the_readings_are_most_even() -> None:
    # quarter-hours through the Madrid fall-back: 02:00 … 02:45 twice, told apart only by order
    local = pd.date_range("2019-10-27 01:30", periods=2, freq="15min").tolist()
    local += pd.date_range("2019-10-27 02:00", periods=4, freq="15min").tolist() * 2
    local += pd.date_range("2019-10-27 03:00", periods=2, freq="15min").tolist()
    naive = np.array(local, dtype="datetime64[us]").view(np.int64)
    utc, gap = localise_in_order(naive, np.zeros(len(naive), dtype=np.int64), ax.TZ)
    steps = np.diff(utc) // 1_000_000
    assert not gap.any() and (steps == 900).all()
    spring = np.array(["2019-03-31T02:30"], dtype="datetime64[us]").view(np.int64)
    utc, gap = localise_in_order(spring, np.zeros(1, dtype=np.int64), ax.TZ)
    assert gap.tolist() == [True] and utc.tolist() == [NAT]


def test_bad_rows_are_rejected_with_their_line_and_reason_and_good_rows_load(tmp_path: Path) -> None:
    mapping = MADRID | {"error_values": [99999999]}
    path = write(
        tmp_path / "bad.csv",
        "user key;datetime;meter reading;diff\n"
        "12345;03/01/2019 00:59:47;4e+05;12\n"
        ";03/01/2019 01:59:47;400010;10\n"
        "12345;03/01/2019 02:59:47;4,2;10\n"
        "12345;31/03/2019 02:30:00;400020;10\n"
        "12345;32/01/2019 03:59:47;400030;10\n"
        "12345;03/01/2019 04:59:47;-5;10\n"
        "12345;03/01/2019 05:59:47;99999999;10\n"
        "12345;03/01/2019 06:59:47;;10\n"
        "12345;03/01/2019 07:59:47;400040\n"
        '12345;"03/01/2019 08:59:47;400050;10\n'
        "\n"
        "12345;03/01/2019 09:59:47;4.0006e+05;10\n",
    )
    parsed = parse_file(path, source(mapping))
    reasons = dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))
    assert reasons == {
        3: "user key is empty (expected the meter id)",
        4: "meter reading '4,2' is not a number",
        5: "datetime '31/03/2019 02:30:00' does not exist in Europe/Madrid (it falls in the spring-forward gap)",
        6: "datetime '32/01/2019 03:59:47' does not match the time format '%d/%m/%Y %H:%M:%S'",
        7: "meter reading '-5' is negative (a register cannot be)",
        8: "meter reading '99999999' is the head-end's error value (csv.error_values), not a reading",
        9: "meter reading is empty (expected a register reading)",
        10: "expected 4 fields separated by ';' (as the header), found 3",
        11: "a quoted field is not closed on this line (unbalanced double quote)",
    }
    assert parsed.rejected["raw_text"].iloc[0] == ";03/01/2019 01:59:47;400010;10"
    assert parsed.registers["line"].tolist() == [2, 13]
    assert parsed.registers["value"].tolist() == pytest.approx([400_000 * GAL_PER_L, 400_060 * GAL_PER_L])
    assert parsed.records == len(parsed.registers) + len(parsed.rejected) == 11
    assert parsed.status == "partially loaded"


def test_interval_values_decimal_comma_quotes_latin1_and_a_preamble(tmp_path: Path) -> None:
    mapping = {
        "delimiter": ";",
        "decimal": ",",
        "thousands": ".",
        "encoding": "latin-1",
        "skip_rows": 2,
        "columns": {
            "meter": "Contador",
            "time": "Fecha",
            "value": "Consumo",
            "unit": "Unidad",
            "quality": "Calidad",
        },
        "time_format": "%d/%m/%Y %H:%M",
        "value_kind": "interval",
        "interval_minutes": 60,
        "time_marks": "start",
        "channel": "water",
    }
    path = write(
        tmp_path / "consumos.csv",
        "Exportación de consumos horarios\n"
        "Generado 2019-10-28\n"
        '"Contador";"Fecha";"Consumo";"Unidad";"Calidad";"Dirección"\n'
        '"A-1";"27/10/2019 01:00";"1.234,5";"L";"";"C/ Mayor; 3"\n'  # a delimiter inside quotes
        '"A-1";"27/10/2019 02:00";"0,5";"m3";"E";"C/ Mayor 3"\n'
        '"A-1";"27/10/2019 02:00";"";"L";"";"Calle ""Alta"""\n'  # the second 02:00: empty = no read
        '"A-1";"27/10/2019 03:00";"2,0";"kWh";"";""\n',
        encoding="latin-1",
    )
    parsed = parse_file(path, source(mapping))
    assert parsed.rejected[["line", "reason"]].values.tolist() == [
        [7, "Unidad 'kWh' does not fit channel water (it is a unit of kWh)"]
    ]
    iv = parsed.intervals.set_index("line")
    ends = iv["interval_end"].dt.strftime("%Y-%m-%dT%H:%MZ").to_dict()
    assert ends[4] == "2019-10-27T00:00Z"  # 01:00-02:00 CEST
    assert ends[5] == "2019-10-27T01:00Z" and ends[6] == "2019-10-27T02:00Z"  # the hour twice, by order
    assert iv.loc[4, "value"] == pytest.approx(1234.5 * GAL_PER_L)
    assert iv.loc[5, "value"] == pytest.approx(0.5 * GAL_PER_M3) and iv.loc[5, "source_quality"] == "E"
    assert np.isnan(iv.loc[6, "value"]) and iv.loc[6, "source_quality"] == "N"  # never a zero
    assert set(iv["interval_seconds"]) == {3600} and set(iv["channel"]) == {"water"}


def test_a_headerless_tab_separated_file_by_position_with_offsets(tmp_path: Path) -> None:
    mapping = {
        "delimiter": "\\t",
        "header": False,
        "columns": {"meter": 2, "time": 1, "value": 4, "channel": 3},
        "time_format": "ISO8601",
        "value_kind": "interval",
        "interval_minutes": 15,
        "unit": "Wh",
    }
    path = write(
        tmp_path / "feed.tsv",
        "2024-03-10T08:15:00Z\tE1\tkwh_delivered\t250\textra\n"
        "2024-03-10T03:30:00-06:00\tE1\tkwh_received\t1.5e3\n"
        "2024-03-10 02:30\tE1\tkwh_delivered\t10\n"  # naive: local time of the source (spring gap)
        "2024-03-10T08:45:00Z\tE1\tsteam\t1\n"
        "2024-03-10T09:00:00Z\tE1\n",
    )
    parsed = parse_file(path, source(mapping, tz="America/Chicago"))
    assert parsed.intervals["interval_end"].dt.strftime("%H:%MZ").tolist() == ["08:15Z", "09:30Z"]
    assert parsed.intervals["value"].tolist() == pytest.approx([0.25, 1.5])
    assert parsed.intervals["unit"].tolist() == ["kWh", "kWh"]
    assert dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True)) == {
        3: "column 1 '2024-03-10 02:30' does not exist in America/Chicago (it falls in the spring-forward gap)",
        4: "column 3 'steam' is not a channel code (one of ['gas', 'kvarh', 'kvarh_received', 'kwh_delivered', "
        "'kwh_net', 'kwh_received', 'water'])",
        5: "expected at least 4 fields separated by '\\t', found 2",
    }


def test_the_mapping_chooses_the_adapter_never_the_content(tmp_path: Path) -> None:
    path = ax.write_export(tmp_path / "lecturas.csv", ax.register_reads().head(3)).path
    with pytest.raises(Exception, match="unrecognised format"):
        detect_format(path)
    unmapped = parse_file(path, SourceConfig(name="x", timezone=ax.TZ))
    assert unmapped.status == "rejected" and "unrecognised format" in unmapped.fatal
    missing = write(tmp_path / "other.csv", "meter;when;reading\n1;03/01/2019 00:59:47;3\n")
    result = parse_file(missing, source(MADRID))
    assert result.status == "rejected"
    assert (
        result.fatal
        == "the header has no column 'user key' (csv.columns.meter); it has ['meter', 'when', 'reading']"
    )


def config_with(tmp_path: Path, mapping: dict, **source_keys) -> Path:
    raw = yaml.safe_load(ax.YAML)
    raw["sources"][0]["csv"] = mapping
    raw["sources"][0].update(source_keys)
    path = tmp_path / "utility.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"delimiter": ",", "decimal": ","}, "csv.decimal ',' cannot also be the delimiter"),
        ({"decimal": ";"}, "csv.decimal must be '.' or ','"),
        ({"unit": "kWh"}, "csv.unit 'kWh' does not fit csv.channel 'water' (expected a unit of gal)"),
        ({"delimiter": "ab"}, "csv.delimiter must be one character"),
        ({"unit": "litros"}, "csv.unit 'litros' is not a known unit"),
        ({"unit": None}, "give either csv.unit"),
        ({"channel": "agua"}, "csv.channel 'agua' is not a channel code"),
        ({"time_format": "%d/%m/%Y"}, "does not carry a full date and hour"),
        ({"time_format": "%d/%m/%Y %H:%M:%Q"}, "is not a strptime format"),
        (
            {"header": False},
            "csv.header is false, so columns ['meter', 'time', 'value'] must be 1-based positions",
        ),
        ({"value_kind": "interval"}, "csv.interval_minutes must be one of"),
        ({"interval_minutes": 60}, "csv.interval_minutes applies to interval values only"),
        ({"value_kind": "cumulative"}, "value_kind"),
        ({"columns": {"meter": "user key", "time": "user key", "value": "meter reading"}}, "both map column"),
        ({"columns": {"meter": 0, "time": 2, "value": 3}}, "a column position counts from 1"),
        ({"encoding": "klingon"}, "csv.encoding 'klingon' is not a known text encoding"),
        ({"max_gap_hours": 0}, "csv.max_gap_hours must be positive"),
        ({"dialect": "excel"}, "dialect"),
    ],
)
def test_a_bad_mapping_fails_at_config_load_with_the_field(
    tmp_path: Path, change: dict, message: str
) -> None:
    mapping = {k: v for k, v in (MADRID | change).items() if v is not None}
    with pytest.raises(ValueError) as error:
        load_config(config_with(tmp_path, mapping), data_dir=tmp_path)
    text = str(error.value)
    assert "invalid utility config" in text and "sources.0.csv" in text and message in text


def test_a_csv_mapping_and_another_format_conflict(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a csv mapping reads files as 'mapped_csv', not 'cmep'"):
        load_config(config_with(tmp_path, MADRID, format="cmep"), data_dir=tmp_path)
    raw = yaml.safe_load(ax.YAML)
    del raw["sources"][0]["csv"]
    raw["sources"][0]["format"] = "mapped_csv"
    (tmp_path / "u.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="needs a csv: block"):
        load_config(tmp_path / "u.yaml", data_dir=tmp_path)
    config = load_config(config_with(tmp_path, MADRID), data_dir=tmp_path)
    assert config.source_for("lecturas_x.csv").format == "mapped_csv"
    assert config.source_for("lecturas_x.csv").csv.derives


def test_a_header_without_the_mapped_column_is_rejected_on_its_line_with_a_short_reason(
    tmp_path: Path,
) -> None:
    """Found by the fuzzer: a 200 kB header field was quoted whole in the reason, without its line."""
    huge = "9" * 200_000
    path = write(
        tmp_path / "x.csv", f"# exported\n\n{huge};datetime;meter reading\nW1;03/11/2024 00:00:00;5\n"
    )
    parsed = parse_file(path, source({**MADRID, "skip_rows": 1}))
    assert parsed.status == "rejected"
    assert "no column 'user key'" in parsed.fatal and len(parsed.fatal) < 400
    assert parsed.fatal_line == 3
