"""The contract every registered adapter keeps, parametrised over ``registry.ADAPTERS``: a valid
file loads whole, and a corrupted one never crashes the parser — the file is rejected with a
one-line reason, or each record is loaded or rejected (with its line and a reason), never both.

A new format is held to it by adding its sample file to ``SAMPLES``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartmdm_pipelines.adapters.base import ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.csv_mapping import CsvMapping
from smartmdm_pipelines.adapters.registry import ADAPTERS
from smartmdm_pipelines.simulate.writers import REGISTRY, SCHEMAS, Delivery

TZ = "America/Chicago"
FALL_BACK = pd.Timestamp("2024-11-03T05:00Z")  # local midnight of the fall-back day


def _table(record: str, rows: dict[str, list]) -> pa.Table:
    columns = {}
    for field in SCHEMAS[record]:
        values = rows[field.name]
        if pa.types.is_timestamp(field.type):
            columns[field.name] = pa.array(pd.DatetimeIndex(values).as_unit("s"), field.type)
        elif pa.types.is_dictionary(field.type):
            columns[field.name] = pa.array([str(v) for v in values]).dictionary_encode()
        else:
            columns[field.name] = pa.array(values, field.type, from_pandas=True)
    return pa.table(columns).cast(SCHEMAS[record])


def _intervals(meter: str, channel: str, unit: str, seconds: int, start: pd.Timestamp, n: int) -> pa.Table:
    """``n`` intervals across the repeated local hour, with a no-read and a head-end estimate."""
    return _table(
        "intervals",
        {
            "meter_id": [meter] * n,
            "channel": [channel] * n,
            "interval_end": [start + pd.Timedelta(seconds=seconds * (i + 1)) for i in range(n)],
            "interval_seconds": [seconds] * n,
            "value": [None if i == 2 else round(0.25 + 0.5 * i, 2) for i in range(n)],
            "unit": [unit] * n,
            "quality": ["N" if i == 2 else "E" if i == 4 else "" for i in range(n)],
        },
    )


def _registers(meter: str, channel: str, unit: str) -> pa.Table:
    reads = [FALL_BACK + pd.Timedelta(hours=h) for h in range(5)]
    return _table(
        "registers",
        {
            "meter_id": [meter] * 5,
            "channel": [channel] * 5,
            "read_at": reads,
            "value": [100.0 + 1.5 * h for h in range(5)],
            "unit": [unit] * 5,
            "quality": [""] * 5,
        },
    )


def _events() -> pa.Table:
    return _table(
        "events",
        {
            "meter_id": ["E1", "E1", "W1"],
            "event_at": [FALL_BACK + pd.Timedelta(minutes=m) for m in (70, 130, 200)],
            "event_type": ["outage", "restore", "tamper"],
            "code": ["3.26.0.85", "3.26.0.216", ""],
        },
    )


def _written(fmt: str, *tables: pa.Table, **options: object) -> bytes:
    """The file a simulated head-end of format ``fmt`` writes for ``tables`` (one record type)."""
    record = {schema.names[2]: name for name, schema in SCHEMAS.items()}[tables[0].schema.names[2]]
    with tempfile.TemporaryDirectory() as out:
        writer = REGISTRY[fmt](Path(out), **options)
        delivery = Delivery("contract", record, "20241103")
        for table in tables:
            writer.write(delivery, table)
        (path,) = writer.close()
        return (Path(out) / path).read_bytes()


ELECTRIC = _intervals("E1", "kwh_delivered", "kWh", 900, FALL_BACK, 12)
WATER = _intervals("W1", "water", "gal", 3600, FALL_BACK, 6)
NEM_DAY = _intervals("4102335210", "kwh_delivered", "kWh", 1800, pd.Timestamp("2024-11-02T14:00Z"), 48)
MAPPED = CsvMapping(
    delimiter=";",
    columns={"meter": "user key", "time": "datetime", "value": "meter reading"},
    time_format="%d/%m/%Y %H:%M:%S",
    value_kind="register",
    unit="L",
    channel="water",
)
MAPPED_TEXT = "user key;datetime;meter reading\n" + "".join(
    f"W1;03/11/2024 0{h}:{m:02d}:00;{1000 + 37 * (h * 60 + m) // 30}\n" for h in range(4) for m in (0, 30)
)


@dataclass(frozen=True)
class Sample:
    """A valid file of the format and the source it comes from; ``records`` states how the
    format counts records: ``lines`` (every data line is one record, loaded or rejected),
    ``lines_or_empty`` (as ``lines``, but a valid line may hold no reading) or ``rows`` (every
    reading is one record)."""

    data: Callable[[], bytes]
    source: SourceConfig
    records: str = "lines"
    also: Callable[[bytes, ParsedFile], None] | None = None  # what the format promises beyond this


def reasons_start_with_their_line(data: bytes, parsed: ParsedFile) -> None:
    assert all(r.startswith("line ") for r in parsed.rejected["reason"])


def every_non_blank_line_is_a_record(data: bytes, parsed: ParsedFile) -> None:
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    assert parsed.records == sum(1 for line in text.split("\n") if line.strip())


SAMPLES: dict[str, Sample] = {
    "generic_interval_csv": Sample(lambda: _written("generic_csv", ELECTRIC, WATER), SourceConfig()),
    "generic_register_csv": Sample(
        lambda: _written("generic_csv", _registers("W1", "water", "CCF")), SourceConfig()
    ),
    "generic_event_csv": Sample(lambda: _written("generic_csv", _events()), SourceConfig()),
    "green_button": Sample(
        lambda: _written("green_button", ELECTRIC), SourceConfig(), "rows", reasons_start_with_their_line
    ),
    "nem12": Sample(
        lambda: _written("nem12", NEM_DAY), SourceConfig(), "rows", reasons_start_with_their_line
    ),
    "cmep": Sample(
        lambda: _written("cmep", ELECTRIC, WATER, timezone=TZ),
        SourceConfig(timezone=TZ),
        "lines_or_empty",
        every_non_blank_line_is_a_record,
    ),
    "beacon_csv": Sample(lambda: _written("beacon_csv", WATER, timezone=TZ), SourceConfig(timezone=TZ)),
    "mapped_csv": Sample(
        lambda: MAPPED_TEXT.encode(), SourceConfig(name="amr", timezone=TZ, format="mapped_csv", csv=MAPPED)
    ),
}
_DATA: dict[str, bytes] = {}


def sample_data(name: str) -> bytes:
    if name not in _DATA:
        _DATA[name] = SAMPLES[name].data()
    return _DATA[name]


def parse(name: str, data: bytes) -> ParsedFile:
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "delivery.dat"
        path.write_bytes(data)
        return ADAPTERS[name].parse(path, SAMPLES[name].source)


def test_every_registered_adapter_has_a_sample() -> None:
    assert set(SAMPLES) == set(ADAPTERS)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_valid_file_loads_whole(name: str) -> None:
    parsed = parse(name, sample_data(name))
    assert parsed.fatal is None and parsed.status == "loaded", (parsed.fatal, parsed.rejected)
    assert len(parsed.intervals) + len(parsed.registers) + len(parsed.events) > 0
    assert_accounted(name, parsed, sample_data(name))


@st.composite
def corruption(draw: st.DrawFn, data: bytes) -> bytes:
    """One to four edits: a flipped byte, a truncation, inserted bytes, a line deleted or doubled."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete_line", "duplicate_line"]))
        if kind == "flip":
            at = draw(st.integers(0, len(out) - 1))
            out[at] = draw(st.sampled_from([0x0A, 0x2C, 0x3B, 0x22, 0x30, 0x39, 0x3C, 0x20, 0xFF, 0x00]))
        elif kind == "truncate":
            del out[draw(st.integers(0, len(out) - 1)) :]
        elif kind == "insert":
            at = draw(st.integers(0, len(out)))
            out[at:at] = draw(st.binary(min_size=1, max_size=5))
        else:
            lines = bytes(out).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "delete_line":
                del lines[i]
            else:
                lines.insert(i, lines[i])
            out = bytearray(b"\n".join(lines))
    return bytes(out)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_corrupted_file_never_crashes_the_parser(name: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(corruption(sample_data(name)))
    def check(data: bytes) -> None:
        parsed = parse(name, data)
        if parsed.fatal is not None:
            assert parsed.fatal.strip() and "\n" not in parsed.fatal and parsed.status == "rejected"
            assert parsed.fatal_line is None or parsed.fatal_line >= 1
            return
        assert_accounted(name, parsed, data)

    check()


def assert_accounted(name: str, parsed: ParsedFile, data: bytes) -> None:
    """Every rejected record has its line and a reason; no line is both loaded and rejected;
    loaded and rejected records add up to the records read."""
    rejected = parsed.rejected
    assert rejected["line"].ge(1).all()
    assert rejected["reason"].map(lambda r: isinstance(r, str) and r.strip() != "" and "\n" not in r).all()
    frames = [parsed.intervals, parsed.registers, parsed.events]
    loaded_lines = set().union(*(set(f["line"]) for f in frames))
    assert not loaded_lines & set(rejected["line"])
    sample = SAMPLES[name]
    if sample.records == "rows":
        assert parsed.records == sum(len(f) for f in frames) + len(rejected)
    else:
        assert rejected["line"].is_unique
        if sample.records == "lines":
            assert parsed.records == len(loaded_lines) + len(rejected)
        else:
            assert len(loaded_lines) + len(rejected) <= parsed.records
    if sample.also is not None:
        sample.also(data, parsed)
