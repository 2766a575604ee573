"""The Smart MDM generic CSV formats (docs/generic_csv.md): interval reads, register reads, events.

Fully columnar: pyarrow parses, pandas validates every row at once; a bad row is
rejected with its line and reason while the good rows load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.adapters.base import FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.csvtools import decode_check, header_line, read_string_table
from smartmdm_pipelines.adapters.validation import RowReasons, parse_numbers, parse_utc_instants
from smartmdm_pipelines.domain.readings import (
    CHANNELS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    INTERVAL_READ_COLUMNS,
    INTERVAL_SECONDS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    conform,
    normalise_units,
)

INTERVAL_HEADER = ["meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality"]
REGISTER_HEADER = ["meter_id", "channel", "read_at", "value", "unit", "quality"]
EVENT_HEADER = ["meter_id", "event_at", "event_type", "code"]


@dataclass(frozen=True)
class GenericCsv:
    """One of the three generic CSV kinds, recognised by its header's time column."""

    name: str
    header: tuple[str, ...]
    time_column: str

    def sniff(self, head: bytes, path: Path) -> bool:
        try:
            _, line = header_line(head.removeprefix(b"\xef\xbb\xbf"))
        except FileRejected:
            return False
        names = {h.strip().strip('"') for h in line.decode("utf-8", "replace").split(",")}
        return set(self.header) <= names

    def parse(self, path: Path, source: SourceConfig) -> ParsedFile:
        result = ParsedFile(format=self.name)
        try:
            data = decode_check(Path(path).read_bytes())
            table, lines, malformed = read_string_table(data, list(self.header))
        except FileRejected as exc:
            result.fatal, result.fatal_line = exc.reason, exc.line
            return result
        frame = table.to_pandas()
        frame["line"] = lines
        raw_text = _raw_text(frame, self.header)
        reasons = RowReasons(len(frame))
        good = self._validate(frame, reasons, result)
        bad = reasons.bad
        rejected = pd.DataFrame(
            {"line": frame["line"].to_numpy()[bad], "raw_text": raw_text[bad], "reason": reasons.reasons[bad]}
        )
        if malformed:
            rejected = pd.concat(
                [rejected, pd.DataFrame(malformed, columns=["line", "raw_text", "reason"])], ignore_index=True
            )
        result.rejected = conform(rejected.sort_values("line", kind="stable"), REJECTED_COLUMNS)
        result.records = len(frame) + len(malformed)
        kept = good.loc[~bad]
        if self.name == "generic_interval_csv":
            result.intervals = conform(kept, INTERVAL_READ_COLUMNS)
        elif self.name == "generic_register_csv":
            result.registers = conform(kept, REGISTER_READ_COLUMNS)
        else:
            result.events = conform(kept, EVENT_COLUMNS)
        return result

    def _validate(self, frame: pd.DataFrame, reasons: RowReasons, result: ParsedFile) -> pd.DataFrame:
        meter = frame["meter_id"].str.strip()
        reasons.check(meter.eq(""), "meter_id is empty")
        out = pd.DataFrame({"line": frame["line"], "meter_id": meter})
        if self.name == "generic_event_csv":
            event_type = frame["event_type"].str.strip().str.lower()
            reasons.check(
                ~event_type.isin(EVENT_TYPES),
                "event_type '" + event_type + f"' is not one of {sorted(EVENT_TYPES)}",
            )
            out["event_at"] = parse_utc_instants(frame["event_at"], "event_at", reasons)
            out["event_type"] = event_type
            out["source_code"] = frame["code"].str.strip()
            return out
        channel = frame["channel"].str.strip()
        reasons.check(~channel.isin(CHANNELS), "channel '" + channel + f"' is not one of {sorted(CHANNELS)}")
        out["channel"] = channel
        out[self.time_column] = parse_utc_instants(frame[self.time_column], self.time_column, reasons)
        raw_value = parse_numbers(
            frame["value"], "value", reasons, allow_empty=self.time_column == "interval_end"
        )
        source_unit = frame["unit"].str.strip()
        value, unit, unknown = normalise_units(raw_value, source_unit, channel)
        reasons.check(unknown, "unit '" + source_unit + "' is not a known unit")
        out["value"], out["unit"], out["source_unit"] = value, unit, source_unit
        out["source_quality"] = frame["quality"].str.strip()
        if self.time_column == "interval_end":
            seconds = parse_numbers(frame["interval_seconds"], "interval_seconds", reasons, allow_empty=False)
            reasons.check(
                ~seconds.isin(list(INTERVAL_SECONDS)) & seconds.notna(),
                "interval_seconds '"
                + frame["interval_seconds"].str.strip()
                + f"' is not a supported interval length {sorted(INTERVAL_SECONDS)}",
            )
            out["interval_seconds"] = seconds.fillna(0).astype("int32")
            # an empty value is a no-read placeholder: kept as NaN, never a zero
            out.loc[raw_value.isna(), "source_quality"] = out["source_quality"].where(
                out["source_quality"].ne(""), "N"
            )
        return out


def _raw_text(frame: pd.DataFrame, header: tuple[str, ...]) -> np.ndarray:
    text = frame[header[0]]
    for col in header[1:]:
        text = text + "," + frame[col]
    return text.to_numpy(dtype=object)


INTERVALS = GenericCsv("generic_interval_csv", tuple(INTERVAL_HEADER), "interval_end")
REGISTERS = GenericCsv("generic_register_csv", tuple(REGISTER_HEADER), "read_at")
EVENTS = GenericCsv("generic_event_csv", tuple(EVENT_HEADER), "event_at")
