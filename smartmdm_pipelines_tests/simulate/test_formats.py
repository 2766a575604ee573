"""Head-ends in several formats (``SimulationSpec.formats``): every format written, every file
recognised and loaded whole by the adapters, and nothing lost between simulator and adapters."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from smartmdm_pipelines.adapters.base import ParsedFile
from smartmdm_pipelines.adapters.registry import parse_file
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.simulate import GenerationSummary, SimulationSpec, generate
from smartmdm_pipelines.simulate.spec import FORMAT_PRESETS
from smartmdm_pipelines.simulate.writers import REGISTRY
from smartmdm_pipelines.simulate.writers.base import SCHEMAS, Delivery
from smartmdm_pipelines.simulate.writers.mixed import MixedWriter

SPEC = SimulationSpec(meters=200, start=dt.date(2024, 3, 8), days=7, seed=42, formats="mix")
FALL_BACK = SimulationSpec(meters=80, start=dt.date(2024, 11, 1), days=4, seed=3, formats="mix")
# writer format -> names of the adapters that may read its files
ADAPTERS = {
    "generic_csv": {"generic_interval_csv", "generic_register_csv", "generic_event_csv"},
    "cmep": {"cmep"},
    "beacon_csv": {"beacon_csv"},
    "green_button": {"green_button"},
    "nem12": {"nem12"},
}
CONFIG = load_config()


def parse_all(out: Path, summary: GenerationSummary) -> dict[str, ParsedFile]:
    """Every head-end file parsed as the MDM would (source of the bundled utility config)."""
    assert sorted(summary.file_formats) == summary.files
    return {name: parse_file(out / name, CONFIG.source_for(Path(name).name)) for name in summary.files}


def union(parsed: dict[str, ParsedFile], kind: str) -> pd.DataFrame:
    frames = [getattr(p, kind).assign(file=name) for name, p in parsed.items() if len(getattr(p, kind))]
    return pd.concat(frames, ignore_index=True)


def quality_class(values: pd.Series, quality: pd.Series) -> pd.Series:
    """Formats spell quality differently (R0, A, '' / E0, E, ESPI 8 / N32, N, no element): the
    class is what must survive. An empty value is a no-read whatever the code."""
    first = quality.fillna("").astype(str).str.strip().str[:1].str.upper()
    cls = first.map({"": "", "R": "", "A": "", "0": "", "E": "E", "8": "E", "N": "N"}).fillna(first)
    return cls.where(values.notna(), "N")


def multiset(frame: pd.DataFrame, key: list[str], decimals: int = 6) -> pd.Series:
    """Rows counted per key (values rounded to ``decimals``, NaN kept)."""
    frame = frame.assign(v=frame["value"].round(decimals)) if "value" in frame else frame
    if "source_quality" in frame:
        frame = frame.assign(q=quality_class(frame["value"], frame["source_quality"]))
    return frame.groupby(key, dropna=False).size().sort_index()


def run_pair(tmp: Path, spec: SimulationSpec) -> dict:
    mixed, generic = tmp / "mixed", tmp / "generic"
    summary = generate(mixed, spec)
    reference = generate(generic, SimulationSpec(**{**spec.__dict__, "formats": None}))
    return {
        "out": mixed,
        "summary": summary,
        "parsed": parse_all(mixed, summary),
        "reference": parse_all(generic, reference),
    }


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_pair(tmp_path_factory.mktemp("mix"), SPEC)


@pytest.fixture(scope="module")
def fall_back(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_pair(tmp_path_factory.mktemp("fall"), FALL_BACK)


# --- spec ----------------------------------------------------------------------------------------
def test_formats_spec_and_preset() -> None:
    assert SPEC.formats == FORMAT_PRESETS["mix"]
    assert set(FORMAT_PRESETS["mix"].values()) | {"generic_csv"} == set(REGISTRY)
    assert SPEC.format_of("ami-east") == "cmep" and SPEC.format_of("handheld") == "generic_csv"
    assert SPEC.south and not SimulationSpec().south
    assert SPEC.to_dict()["formats"] == FORMAT_PRESETS["mix"]
    with pytest.raises(ValueError, match="preset"):
        SimulationSpec(formats="all")
    with pytest.raises(ValueError, match="format"):
        SimulationSpec(formats={"ami-east": "csv"})
    with pytest.raises(ValueError, match="head-end"):
        SimulationSpec(formats={"ami-west": "cmep"})
    with pytest.raises(ValueError, match="format"):
        SimulationSpec(output_format="xml")


# --- files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["mix", "fall_back"])
def test_every_file_is_detected_as_its_format_and_loads_whole(
    run: str, request: pytest.FixtureRequest
) -> None:
    r = request.getfixturevalue(run)
    formats = r["summary"].file_formats
    if run == "mix":
        assert set(formats.values()) == set(REGISTRY)  # every format appears
    problems = [
        (name, formats[name], p.format, p.fatal, p.rejected["reason"].head(2).tolist())
        for name, p in r["parsed"].items()
        if p.format not in ADAPTERS[formats[name]] or p.fatal or len(p.rejected)
    ]
    assert problems == []
    by_headend = {}
    for name, fmt in formats.items():
        by_headend.setdefault(Path(name).name.split("_")[0], set()).add(fmt)
    assert by_headend == {
        "ami-east": {"cmep", "generic_csv"},  # kwh_received and events in generic CSV
        "ami-south": {"nem12", "generic_csv"},  # partial NEM days, registers and events in generic CSV
        "ami-water": {"beacon_csv", "generic_csv"},  # events (and clock drift) in generic CSV
        "gas-amr": {"green_button", "generic_csv"},  # events in generic CSV
        "handheld": {"generic_csv"},
    }


def test_what_a_format_cannot_carry_is_in_generic_csv_of_the_same_delivery(mix: dict) -> None:
    out, formats = mix["out"], mix["summary"].file_formats
    received = [
        n for n in formats if n.startswith("headend/ami-east_") and n.endswith("_intervals_generic.csv")
    ]
    assert len(received) == SPEC.days
    for name in received:
        assert (out / name.replace("_generic.csv", ".txt")).is_file()
        rows = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        assert "kwh_received" in set(rows["channel"])
        other = rows[rows["channel"] != "kwh_received"]  # clock drift off the minute: CMEP has minutes
        assert (other["interval_end"].str[-3:] != ":00").all()
        assert "kwh_received" not in set(
            mix["parsed"][name.replace("_generic.csv", ".txt")].intervals["channel"]
        )
    assert formats["headend/ami-east_20240308_events.csv"] == "generic_csv"
    assert formats["headend/ami-south_20240308_registers.csv"] == "generic_csv"
    assert formats["headend/ami-south_20240308_intervals.csv"] == "nem12"
    # NEM12 files hold NEM days (NEM time, UTC+10): the US spring-forward day is an ordinary NEM day
    nem_day = mix["parsed"]["headend/ami-south_20240310_intervals.csv"].intervals
    delivered = nem_day[nem_day["channel"] == "kwh_delivered"]
    assert delivered["interval_end"].min() == pd.Timestamp("2024-03-09T14:15Z")
    assert delivered["interval_end"].max() == pd.Timestamp("2024-03-10T14:00Z")
    assert delivered.groupby("meter_id").size().isin([96, 24]).all()  # 24 h of 15- or 60-minute reads
    # the window starts and ends inside NEM days: those parts are in generic CSV
    for edge in ("20240308", "20240315"):
        assert formats[f"headend/ami-south_{edge}_intervals_generic.csv"] == "generic_csv"


# --- nothing lost --------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["mix", "fall_back"])
def test_adapters_read_back_exactly_what_was_generated(run: str, request: pytest.FixtureRequest) -> None:
    """The union of every file as the adapters read it equals the canonical reads (the same spec in
    generic CSV): the same rows per meter, channel and instant, with value (to 1e-6), interval
    length, unit and quality class, duplicates and re-deliveries included."""
    r = request.getfixturevalue(run)
    mixed, reference = r["parsed"], r["reference"]
    key = ["meter_id", "channel", "interval_end", "interval_seconds", "unit", "v", "q"]
    got, want = multiset(union(mixed, "intervals"), key), multiset(union(reference, "intervals"), key)
    assert want.sum() > 20_000
    assert got.equals(want)
    per_meter = ["meter_id", "channel"]
    assert (
        union(mixed, "intervals")
        .groupby(per_meter)
        .size()
        .equals(union(reference, "intervals").groupby(per_meter).size())
    )
    key = ["meter_id", "channel", "read_at", "unit", "v"]
    assert multiset(union(mixed, "registers"), key).equals(multiset(union(reference, "registers"), key))
    key = ["meter_id", "event_at", "event_type", "source_code"]
    assert multiset(union(mixed, "events"), key).equals(multiset(union(reference, "events"), key))


def test_same_spec_same_bytes_whatever_the_chunk_size(mix: dict, tmp_path: Path) -> None:
    again = tmp_path / "chunked"
    generate(again, SimulationSpec(**{**SPEC.__dict__, "chunk_meters": 23}))
    first = {str(p.relative_to(mix["out"])): p.read_bytes() for p in mix["out"].rglob("*") if p.is_file()}
    second = {str(p.relative_to(again)): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [n for n in first if n != "manifest.json" and first[n] != second[n]] == []


# --- ground truth --------------------------------------------------------------------------------
def test_fault_files_name_the_file_the_fault_is_in(mix: dict) -> None:
    out, parsed = mix["out"], mix["parsed"]
    faults = pd.read_csv(out / "ground_truth" / "faults.csv", dtype=str, keep_default_na=False)
    faults["d"] = faults["detail"].map(json.loads)
    meters = pd.read_csv(out / "cis" / "meters.csv", dtype=str, keep_default_na=False).set_index("meter_id")
    checked = set()
    for _, f in faults[faults["file"] != ""].iterrows():
        assert f["file"] in parsed, f["file"]
        if f["fault_type"] == "duplicate_file":
            for name in f["d"].get("files", [f["file"]]):
                assert (out / name).read_bytes() == (out / name.replace("_resend", "")).read_bytes()
            continue
        files = [f["file"]] + ([f["d"]["original_file"]] if "original_file" in f["d"] else [])
        step = pd.Timedelta(seconds=int(meters.loc[f["meter_id"], "interval_seconds"] or 86400))
        for name in files:
            p = parsed[name]
            rows = pd.concat(
                [
                    p.intervals[["meter_id", "channel", "interval_end"]].set_axis(["m", "c", "t"], axis=1),
                    p.registers[["meter_id", "channel", "read_at"]].set_axis(["m", "c", "t"], axis=1),
                ]
            )
            mine = rows[(rows["m"] == f["meter_id"]) & (rows["c"] == f["channel"])]
            assert len(mine), (f["fault_type"], name)
            if f["fault_type"] in ("gap_short", "gap_long", "multiplier_change"):
                continue  # a gap has no rows; a multiplier change shows in the next day's register
            t0, t1 = pd.Timestamp(f["start"]) - step, pd.Timestamp(f["end"]) + step
            assert mine["t"].between(t0, t1).any(), (f["fault_type"], name)
        checked.add(mix["summary"].file_formats[f["file"]])
    assert checked >= {"cmep", "generic_csv", "beacon_csv"}
    reverse = faults[faults["fault_type"] == "reverse_flow"]
    assert all(name.endswith("_generic.csv") for name in reverse["file"])  # CMEP has no kwh_received


# --- the writer on its own -----------------------------------------------------------------------
def test_mixed_writer_splits_rows_and_never_leaves_an_unreadable_file(tmp_path: Path) -> None:
    writer = MixedWriter(
        tmp_path, {"ami-east": "cmep", "gas-amr": "green_button"}, timezone="America/Chicago"
    )
    day = Delivery("ami-east", "intervals", "20240401")
    t = pd.Timestamp("2024-04-01T06:15:00Z").value // 10**9
    rows = pa.table(
        {
            "meter_id": pa.array(["M1", "M1", "M1", "M2"]).dictionary_encode(),
            "channel": pa.array(
                ["kwh_delivered", "kwh_delivered", "kwh_received", "kwh_delivered"]
            ).dictionary_encode(),
            "interval_end": pa.array([t, t + 900, t, t + 907], pa.timestamp("s", tz="UTC")),
            "interval_seconds": pa.array([900] * 4, pa.int32()),
            "value": pa.array([1.5, None, 0.25, 2.0]),
            "unit": pa.array(["kWh"] * 4).dictionary_encode(),
            "quality": pa.array(["", "N", "", ""]).dictionary_encode(),
        },
        schema=SCHEMAS["intervals"],
    )
    writer.open(day)
    writer.write(day, rows)
    empty = Delivery("gas-amr", "intervals", "20240401")  # no rows: no empty (unrecognisable) feed
    writer.open(empty)
    events = Delivery("ami-east", "events", "20240401")
    writer.open(events)
    assert writer.path_for(day) == "headend/ami-east_20240401_intervals.txt"
    files = writer.close()
    assert writer.file_formats == {
        "headend/ami-east_20240401_intervals.txt": "cmep",
        "headend/ami-east_20240401_intervals_generic.csv": "generic_csv",  # received; 7 s past the minute
        "headend/ami-east_20240401_events.csv": "generic_csv",
        "headend/gas-amr_20240401_intervals.csv": "generic_csv",  # header only
    }
    assert sorted(writer.file_formats) == files
    complement = pd.read_csv(tmp_path / "headend/ami-east_20240401_intervals_generic.csv", dtype=str)
    assert complement["channel"].tolist() == ["kwh_received", "kwh_delivered"]
    assert complement["interval_end"].tolist() == ["2024-04-01T06:15:00Z", "2024-04-01T06:30:07Z"]
    cmep_rows = parse_file(
        tmp_path / "headend/ami-east_20240401_intervals.txt", CONFIG.source_for("ami-east_x")
    )
    assert cmep_rows.intervals["value"].isna().tolist() == [False, True] and len(cmep_rows.rejected) == 0
    assert np.isclose(cmep_rows.intervals["value"].iloc[0], 1.5)
