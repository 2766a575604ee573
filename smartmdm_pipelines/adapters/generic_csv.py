"""The Smart MDM generic CSV formats (docs/generic_csv.md): interval reads, register reads, events.

Fully columnar: pyarrow parses and validates every row at once (pyarrow.compute on the Arrow
table, no Python per row and no object columns); a bad row is rejected with its line and
reason, built for the failing rows only, while the good rows load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.csvtools import drop_rows, header_line, read_string_table
from smartmdm_pipelines.adapters.validation import (
    SparseReasons,
    arrow_numbers,
    arrow_utc_instants,
    constant,
    is_empty,
    message,
    trim,
)
from smartmdm_pipelines.domain.readings import (
    CANONICAL_UNITS,
    CHANNELS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    INTERVAL_READ_COLUMNS,
    INTERVAL_SECONDS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    conform,
    unit_conversion,
)

INTERVAL_HEADER = ["meter_id", "channel", "interval_end", "interval_seconds", "value", "unit", "quality"]
REGISTER_HEADER = ["meter_id", "channel", "read_at", "value", "unit", "quality"]
EVENT_HEADER = ["meter_id", "event_at", "event_type", "code"]


@dataclass(frozen=True)
class GenericCsvAdapter(Adapter):
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

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        table, lines, malformed = read_string_table(self.text(path), list(self.header))
        raw = {name: table[name] for name in self.header}
        text = {name: trim(col) for name, col in raw.items()}
        reasons = SparseReasons(table.num_rows)
        good = self._validate(text, reasons)
        rows, why = reasons.failures()
        rejected = pd.DataFrame(
            {"line": lines[rows], "raw_text": _raw_text(raw, self.header, rows), "reason": why}
        )
        if malformed:
            rejected = pd.concat(
                [rejected, pd.DataFrame(malformed, columns=["line", "raw_text", "reason"])], ignore_index=True
            )
        result.rejected = conform(rejected.sort_values("line", kind="stable"), REJECTED_COLUMNS)
        result.records = table.num_rows + len(malformed)
        good["line"] = pa.array(lines)
        kept = drop_rows(pa.table(good), reasons.bad, max_slices=20_000)  # chunks cost little from here
        # no threads, no block consolidation: every column is wrapped, not copied (several times faster)
        frame = kept.to_pandas(use_threads=False, split_blocks=True)
        if self.name == "generic_interval_csv":
            result.intervals = conform(frame, INTERVAL_READ_COLUMNS)
        elif self.name == "generic_register_csv":
            result.registers = conform(frame, REGISTER_READ_COLUMNS)
        else:
            result.events = conform(frame, EVENT_COLUMNS)

    def _validate(self, text: dict[str, pa.ChunkedArray], reasons: SparseReasons) -> dict[str, object]:
        """The canonical columns (Arrow) of every row; failing rows get their first reason."""
        meter = text["meter_id"]
        reasons.fail(is_empty(meter), "meter_id is empty")
        out: dict[str, object] = {"meter_id": meter}
        if self.name == "generic_event_csv":
            event_type = pc.utf8_lower(text["event_type"])
            reasons.fail(
                _not_in(event_type, EVENT_TYPES),
                message("event_type '", event_type, f"' is not one of {sorted(EVENT_TYPES)}"),
            )
            out["event_at"] = arrow_utc_instants(text["event_at"], "event_at", reasons)
            out["event_type"] = event_type
            out["source_code"] = text["code"]
            return out
        channel = text["channel"]
        only_channel = constant(channel)
        reasons.fail(
            _not_in(channel, CHANNELS, only_channel),
            message("channel '", channel, f"' is not one of {sorted(CHANNELS)}"),
        )
        out["channel"] = channel
        out[self.time_column] = arrow_utc_instants(text[self.time_column], self.time_column, reasons)
        is_interval = self.time_column == "interval_end"
        raw_value = arrow_numbers(text["value"], "value", reasons, allow_empty=is_interval)
        source_unit = text["unit"]
        factor, out["unit"] = _convert_units(source_unit, channel, only_channel)
        unknown = np.isnan(factor)
        reasons.fail(unknown, message("unit '", source_unit, "' is not a known unit"))
        out["value"] = raw_value * np.where(unknown, 1.0, factor)
        out["source_unit"] = source_unit
        quality = text["quality"]
        if is_interval:
            seconds = arrow_numbers(
                text["interval_seconds"], "interval_seconds", reasons, allow_empty=False, few=True
            )
            supported = np.isin(seconds, sorted(INTERVAL_SECONDS))
            reasons.fail(
                ~supported & ~np.isnan(seconds),
                message(
                    "interval_seconds '",
                    text["interval_seconds"],
                    f"' is not a supported interval length {sorted(INTERVAL_SECONDS)}",
                ),
            )
            out["interval_seconds"] = np.where(supported, seconds, 0).astype(np.int32)
            # an empty value is a no-read placeholder: kept as NaN, never a zero
            quality = _mark_no_reads(quality, np.isnan(raw_value))
        out["source_quality"] = quality
        return out


def _not_in(
    text: pa.ChunkedArray, allowed: frozenset[str], value: str | None = None
) -> np.ndarray | pa.ChunkedArray | None:
    """Rows whose value is not one of ``allowed`` (None: every row is fine). ``value``: the value
    of every row, when known to be constant."""
    value = value if value is not None else constant(text)
    if value is not None:
        return None if value in allowed else np.ones(len(text), dtype=bool)
    return pc.invert(pc.is_in(text, value_set=pa.array(sorted(allowed), text.type)))


def _convert_units(
    unit: pa.ChunkedArray, channel: pa.ChunkedArray, only: str | None
) -> tuple[np.ndarray, pa.Array]:
    """Per row: the factor to the canonical unit (NaN = unknown unit) and the canonical unit
    ('' if unknown). The conversion is worked out per distinct unit (a file holds a handful).
    ``only``: the channel of every row, if they share one."""
    n = len(unit)
    names = pa.array(CANONICAL_UNITS, unit.type)
    value = constant(unit)
    if value is not None and only is not None:  # one unit, one channel: the usual file
        factor, canon = unit_conversion(np.zeros(1, np.int8), pa.array([value]), np.array([only == "gas"]))
        return np.broadcast_to(factor, n), pa.repeat(names[int(canon[0])], n)
    if value is not None:
        codes, uniques = np.zeros(n, dtype=np.int8), pa.array([value])
    else:
        encoded = pc.dictionary_encode(unit.combine_chunks())
        codes, uniques = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary
    if only is not None:
        is_gas = np.ones(n, dtype=bool) if only == "gas" else None
    else:
        is_gas = pc.equal(channel, pa.scalar("gas", channel.type)).to_numpy(zero_copy_only=False)
    factor, canon = unit_conversion(codes, uniques, is_gas)
    return factor, pc.take(names, pa.array(canon))


def _mark_no_reads(quality: pa.ChunkedArray, no_read: np.ndarray) -> pa.ChunkedArray:
    """Quality 'N' for the no-read rows that carry no quality of their own."""
    unmarked = no_read & is_empty(quality)
    if not unmarked.any():
        return quality
    return pc.if_else(pa.array(unmarked), pa.scalar("N", quality.type), quality)


def _raw_text(raw: dict[str, pa.ChunkedArray], header: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """The failing rows' fields as read (untrimmed), joined with commas in header order."""
    if len(rows) == 0:
        return np.zeros(0, dtype=object)
    index = pa.array(rows)
    fields = (raw[name].take(index).cast(pa.large_string()) for name in header)
    joined = pc.binary_join_element_wise(*fields, pa.scalar(",", pa.large_string()))
    return joined.to_numpy(zero_copy_only=False)


# one module, three formats (the registry lists each)
ADAPTERS = (
    GenericCsvAdapter("generic_interval_csv", tuple(INTERVAL_HEADER), "interval_end"),
    GenericCsvAdapter("generic_register_csv", tuple(REGISTER_HEADER), "read_at"),
    GenericCsvAdapter("generic_event_csv", tuple(EVENT_HEADER), "event_at"),
)
