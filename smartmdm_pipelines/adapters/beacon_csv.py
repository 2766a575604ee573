"""Badger Meter BEACON AMA style head-end export (docs/formats.md §1.4): one quoted CSV row per meter
and reading time carrying an interval flow *and* a register read.

Columns used (the export has ~48 more, ignored; any order)::

    "Meter_ID","Flow","Flow_Time","Flow_Unit","Read","Read_Time","Read_Unit","Raw_Read",
    "Dials","Register_Resolution","Estimated_Flag"

A row yields an interval read (``Flow`` over the interval ending at ``Flow_Time``, e.g. in
``Gallons``) and a register read (``Read`` at ``Read_Time``, e.g. in ``CCF``), both on channel
``water``. A *record* is a row: it loads whole (one or two reads) or is rejected whole.

Decisions:

- **Meter id**: ``Meter_ID`` verbatim (trimmed); the endpoint/radio (``Endpoint_SN``) is not a
  meter id.
- **Time**: ``YYYY-MM-DD HH:MM`` (``:SS`` allowed) naive local time in ``SourceConfig.timezone``.
  BEACON stamps the reading that closes a period with the period's *last minute*: hourly reads
  come as ``00:59``, ``01:59`` … (ami-connect's reference file). So a time one minute before a
  boundary of the meter's interval (``hh:59`` for hourly, ``23:59`` for daily) means the
  boundary: the flow's interval *ends* at ``Flow_Time + 1 min`` and the register instant is
  ``Read_Time + 1 min`` (so registers and intervals reconcile). A ``Flow_Time`` on the boundary
  itself is taken as the end; any other ``Flow_Time`` is rejected. A register at another time
  (e.g. ``10:07``) is kept as stated. On the fall-back day the repeated local times of a meter
  are placed from the meter's unambiguous neighbouring rows (file order, the meter's interval
  apart), else by file order (once the meter's clock went back, e.g. a second ``01:59`` or
  ``01:14`` after ``01:59``, standard time; before, daylight time); a local time in the
  spring-forward gap rejects the row.
- **Interval length**: per meter, the smallest positive step between its consecutive local
  ``Flow_Time`` values in file order (local clock: a daily meter stays 1 day across a DST
  change; the step back at the fall-back change is ignored) when that is a supported length
  (1, 5, 10, 15, 30, 60 min, 1 day); otherwise (a single row, only irregular gaps)
  ``default_interval_seconds`` (3600, the BEACON "hourly" resolution; configurable per adapter
  instance).
- **Dials / resolution**: ``Read`` is the scaled register (``Raw_Read`` ``022760`` × resolution
  0.01 = ``227.6``). When ``Raw_Read`` and ``Read`` are both present they must agree to half a
  resolution step, with ``Register_Resolution`` when given, else with the power of ten implied
  by the two; ``Raw_Read`` must be digits and not longer than ``Dials``. The loaded register
  value is ``Read``.
- **Quality**: ``Estimated_Flag`` 1 -> ``source_quality`` ``E``, 0 or empty -> ``""`` (actual).
  An empty ``Flow`` (or ``Read``) with its time present is a no-read: value NaN, quality ``N``.
- **Errors**: ``ERROR`` and other non-numeric text, and the magic numbers in
  ``ERROR_SENTINELS`` (2**32-1, 2**32-2, 2**31-1, …) in Flow/Read reject the row; so does a
  negative register.
- **Units**: ``Gallons``/``GAL``, ``CCF``/``HCF``, ``CF``/``Cubic Feet``, ``KGAL``, ``M3``; empty
  unit falls back to ``SourceConfig.default_unit``. Everything is normalised to gallons.
- **File**: UTF-8 (a BOM is fine), RFC 4180 quoting, so quoted inches (5/8" arrives with its
  quote doubled) are a value; so is an unescaped 5/8" in an unquoted field. A line whose quoted
  field is not closed on the line is rejected on its own (it would otherwise swallow the
  following lines and shift every line number after it). A header-only file is a valid empty
  export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from smartmdm_pipelines.adapters.base import BOM, Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.csvtools import header_line, read_string_table
from smartmdm_pipelines.adapters.validation import RowReasons
from smartmdm_pipelines.adapters.validation import check_rows as _check
from smartmdm_pipelines.domain.readings import (
    INTERVAL_READ_COLUMNS,
    INTERVAL_SECONDS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    conform,
    normalise_units,
)
from smartmdm_pipelines.domain.timeutil import NAT, localise_sequences

REQUIRED = ("Meter_ID", "Flow", "Flow_Time", "Flow_Unit", "Read", "Read_Time", "Read_Unit", "Estimated_Flag")
OPTIONAL = ("Raw_Read", "Dials", "Register_Resolution")
SNIFF_COLUMNS = set(REQUIRED)
DEFAULT_INTERVAL_SECONDS = 3600
ERROR_SENTINELS = (4294967295.0, 4294967294.0, 2147483647.0, -2147483648.0, 999999999.0, -999999999.0)
# BEACON spelling (lower case) -> key of domain.readings.normalise_units
UNIT_ALIASES = {
    "gallons": "gal",
    "gallon": "gal",
    "gal": "gal",
    "kgal": "kgal",
    "cubic feet": "ft3",
    "cubic foot": "ft3",
    "cf": "ft3",
    "ft3": "ft3",
    "ccf": "ccf",
    "hcf": "ccf",
    "cubic meters": "m3",
    "cubic meter": "m3",
    "m3": "m3",
}
TIME_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2})?"
MINUTE = 60


@dataclass(frozen=True)
class BeaconCsvAdapter(Adapter):
    """BEACON-style export (see the module docstring)."""

    name: str = "beacon_csv"
    default_interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    zone_in_source: ClassVar[bool] = True

    def sniff(self, head: bytes, path: Path) -> bool:
        try:
            _, line = header_line(head.removeprefix(BOM))
        except FileRejected:
            return False
        names = {h.strip().strip('"').strip() for h in line.decode("utf-8", "replace").split(",")}
        return names >= SNIFF_COLUMNS

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        data = self.text(path)
        _, head = header_line(data[: 1 << 20])
        names = [h.strip().strip('"').strip() for h in head.decode("utf-8").split(",")]
        columns = list(REQUIRED) + [c for c in OPTIONAL if c in names]
        try:
            table, lines, malformed = read_string_table(data, columns)
        except pa.ArrowInvalid as exc:  # defensive: pyarrow refused the CSV structure
            raise FileRejected(f"the CSV structure cannot be read: {exc}") from None
        frame = table.to_pandas(use_threads=False, split_blocks=True)  # wrapped, not copied: faster
        for column in columns:
            frame[column] = frame[column].astype("str").str.strip()
        frame["line"] = lines
        reasons = RowReasons(len(frame))
        intervals, registers = self._validate(frame, reasons, source)
        bad = reasons.bad
        bad_lines = frame["line"].to_numpy()[bad]
        rejected = pd.DataFrame(
            {"line": bad_lines, "raw_text": _line_texts(data, bad_lines), "reason": reasons.reasons[bad]}
        )
        if malformed:  # wrong number of fields, or a quoted field not closed on its line
            rejected = pd.concat([rejected, pd.DataFrame(malformed, columns=["line", "raw_text", "reason"])])
        result.rejected = conform(rejected.sort_values("line", kind="stable"), REJECTED_COLUMNS)
        result.records = len(frame) + len(malformed)
        result.intervals = conform(intervals.loc[~bad[intervals.index]], INTERVAL_READ_COLUMNS)
        result.registers = conform(registers.loc[~bad[registers.index]], REGISTER_READ_COLUMNS)

    # ------------------------------------------------------------------ rows
    def _validate(
        self, frame: pd.DataFrame, reasons: RowReasons, source: SourceConfig
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        tz = source.timezone
        meter = frame["Meter_ID"]
        _check(reasons, meter.eq(""), "Meter_ID is empty")
        has_flow = frame["Flow_Time"].ne("")
        has_read = frame["Read_Time"].ne("")
        _check(
            reasons, ~has_flow & ~has_read, "neither Flow_Time nor Read_Time holds a time (nothing to load)"
        )
        _check(reasons, ~has_flow & frame["Flow"].ne(""), "Flow '", frame["Flow"], "' has no Flow_Time")
        _check(reasons, ~has_read & frame["Read"].ne(""), "Read '", frame["Read"], "' has no Read_Time")
        flag = frame["Estimated_Flag"]
        _check(
            reasons, ~flag.isin(["", "0", "1"]), "Estimated_Flag '", flag, "' is not 0 or 1 (1 = estimated)"
        )
        quality = pd.Series(np.where(flag.eq("1"), "E", ""), index=frame.index, dtype="str")

        flow_local = _naive_times(frame["Flow_Time"], "Flow_Time", reasons)
        read_local = _naive_times(frame["Read_Time"], "Read_Time", reasons)
        seconds = self._interval_seconds(meter, flow_local)
        flow_utc = _localise(flow_local, meter, seconds, "Flow_Time", frame["Flow_Time"], reasons, tz)
        read_utc = _localise(read_local, meter, seconds, "Read_Time", frame["Read_Time"], reasons, tz)

        flow = _value(frame["Flow"], "Flow", reasons)
        flow_unit = _unit(frame["Flow_Unit"], "Flow_Unit", has_flow & frame["Flow"].ne(""), reasons, source)
        # a flow is stamped one minute before its interval end, or on it
        minute_of_day = (flow_local.dt.hour * 60 + flow_local.dt.minute).to_numpy(dtype="float64", na_value=0)
        whole_minute = flow_local.dt.second.to_numpy(dtype="float64", na_value=0) == 0
        span = np.minimum(seconds, 86400) // MINUTE
        before_end = whole_minute & ((minute_of_day + 1) % span == 0)
        on_end = whole_minute & (minute_of_day % span == 0)
        _check(
            reasons,
            has_flow & flow_utc.notna() & ~before_end & ~on_end,
            "Flow_Time '",
            frame["Flow_Time"],
            "' is neither an interval end nor the minute before one (interval ",
            seconds,
            " s)",
        )
        interval_end = flow_utc + pd.to_timedelta(np.where(before_end, MINUTE, 0), unit="s")

        read = _value(frame["Read"], "Read", reasons)
        read_unit = _unit(frame["Read_Unit"], "Read_Unit", has_read & frame["Read"].ne(""), reasons, source)
        _check(reasons, read < 0, "Read '", frame["Read"], "' is negative (a register cannot be)")
        self._check_dials(frame, read, reasons)
        read_minute = (read_local.dt.hour * 60 + read_local.dt.minute).to_numpy(dtype="float64", na_value=0)
        read_whole = read_local.dt.second.to_numpy(dtype="float64", na_value=0) == 0
        read_before = read_whole & ((read_minute + 1) % span == 0)
        read_at = read_utc + pd.to_timedelta(np.where(read_before, MINUTE, 0), unit="s")

        water = pd.Series("water", index=frame.index, dtype="str")
        flow_value, flow_canon, _ = normalise_units(flow, flow_unit.str.lower().map(UNIT_ALIASES), water)
        read_value, read_canon, _ = normalise_units(read, read_unit.str.lower().map(UNIT_ALIASES), water)
        base = {"line": frame["line"], "meter_id": meter, "channel": water}
        intervals = pd.DataFrame(
            base
            | {
                "interval_end": interval_end,
                "interval_seconds": seconds,
                "value": flow_value,
                "unit": flow_canon,
                "source_unit": flow_unit,
                "source_quality": quality.where(flow.notna(), "N"),
            }
        ).loc[has_flow]
        registers = pd.DataFrame(
            base
            | {
                "read_at": read_at,
                "value": read_value,
                "unit": read_canon,
                "source_unit": read_unit,
                "source_quality": quality.where(read.notna(), "N"),
            }
        ).loc[has_read]
        return intervals, registers

    def _interval_seconds(self, meter: pd.Series, flow_local: pd.Series) -> np.ndarray:
        """Per meter: the smallest positive step between its consecutive local flow times in file
        order if supported, else the default. Local clock steps keep a daily meter at 86400 s
        across DST days; the step back at the fall-back change is not positive and is ignored."""
        seconds = np.full(len(meter), self.default_interval_seconds, dtype=np.int64)
        known = flow_local.notna().to_numpy()
        if known.sum() < 2:
            return seconds
        times = pd.DataFrame({"meter": meter[known], "t": flow_local[known]})
        gap = times.groupby("meter", sort=False)["t"].diff().dt.total_seconds()
        smallest = gap[gap > 0].groupby(times["meter"]).min()
        smallest = smallest[smallest.isin(sorted(INTERVAL_SECONDS))]
        per_row = meter.map(smallest).to_numpy(dtype="float64", na_value=np.nan)
        return np.where(np.isnan(per_row), seconds, per_row).astype(np.int64)

    @staticmethod
    def _check_dials(frame: pd.DataFrame, read: pd.Series, reasons: RowReasons) -> None:
        if "Raw_Read" not in frame:
            return
        raw_text = frame["Raw_Read"]
        present = raw_text.ne("") & read.notna()
        digits = raw_text.str.fullmatch(r"[0-9]{1,15}")
        _check(
            reasons,
            raw_text.ne("") & ~digits,
            "Raw_Read '",
            raw_text,
            "' is not a dial reading (digits only); head-end error marker",
        )
        if "Dials" in frame:
            dials = pd.to_numeric(frame["Dials"].where(frame["Dials"].ne("")), errors="coerce")
            _check(
                reasons, frame["Dials"].ne("") & dials.isna(), "Dials '", frame["Dials"], "' is not a number"
            )
            _check(
                reasons,
                digits & dials.notna() & (raw_text.str.len() > dials),
                "Raw_Read '",
                raw_text,
                "' has more digits than the register's ",
                frame["Dials"],
                " dials",
            )
        raw = pd.to_numeric(raw_text.where(digits), errors="coerce")
        given = pd.Series(np.nan, index=frame.index)
        if "Register_Resolution" in frame:
            text = frame["Register_Resolution"]
            given = pd.to_numeric(text.where(text.ne("")), errors="coerce")
            _check(
                reasons,
                text.ne("") & ~(given > 0),
                "Register_Resolution '",
                text,
                "' is not a positive number",
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = 10.0 ** np.round(np.log10(read / raw))
        resolution = given.where(given > 0, implied)
        expected = raw * resolution
        tolerance = resolution / 2 + 1e-9 * np.maximum(read.abs(), 1.0)
        zero_raw = raw.eq(0) & given.isna()
        disagree = present & digits & ((read - expected).abs() > tolerance) & ~zero_raw
        disagree |= present & digits & zero_raw & read.ne(0)
        _check(
            reasons,
            disagree,
            "Read '",
            frame["Read"],
            "' disagrees with Raw_Read '",
            raw_text,
            "' × resolution ",
            resolution,
            " = ",
            expected,
        )


def _naive_times(text: pd.Series, column: str, reasons: RowReasons) -> pd.Series:
    well_formed = text.str.fullmatch(TIME_PATTERN)
    parsed = pd.to_datetime(text.where(well_formed).str.replace("T", " "), format="ISO8601", errors="coerce")
    _check(
        reasons, text.ne("") & parsed.isna(), f"{column} '", text, "' is not a local time YYYY-MM-DD HH:MM"
    )
    return parsed.astype("datetime64[s]")


def _localise(
    naive: pd.Series,
    meter: pd.Series,
    seconds: np.ndarray,
    column: str,
    text: pd.Series,
    reasons: RowReasons,
    tz: str,
) -> pd.Series:
    """Local -> UTC per meter in file order: a repeated fall-back local time is placed from its
    unambiguous neighbours at the meter's interval, else by order (first = daylight time)."""
    valid = np.flatnonzero(naive.notna().to_numpy())
    utc = np.full(len(naive), NAT, dtype=np.int64)
    if len(valid):
        codes = pd.factorize(meter.to_numpy()[valid])[0]
        order = valid[np.argsort(codes, kind="stable")]
        group = pd.factorize(meter.to_numpy()[order])[0]
        pos = pd.Series(group).groupby(group).cumcount().to_numpy().astype(np.int64)
        step = np.where(seconds[order] < 86400, seconds[order], 0).astype(np.int64)
        local = naive.to_numpy(dtype="datetime64[s]")[order].view(np.int64)
        got, gap = localise_sequences(local, group, pos, step, tz)
        utc[order] = got
        failed = np.zeros(len(naive), dtype=bool)
        failed[order[gap]] = True
        _check(
            reasons,
            failed,
            f"{column} '",
            text,
            f"' does not exist in {tz} (it falls in the spring-forward gap)",
        )
    return (
        pd.Series(utc.view("datetime64[s]"), index=naive.index)
        .dt.tz_localize("UTC")
        .astype("datetime64[us, UTC]")
    )


def _value(text: pd.Series, column: str, reasons: RowReasons) -> pd.Series:
    """A decimal or empty (no read, NaN); ERROR, other text and magic numbers are rejected."""
    numbers = pd.to_numeric(text.where(text.ne("")), errors="coerce").astype("float64")
    _check(
        reasons,
        text.str.upper().str.contains("ERR", regex=False),
        f"{column} '",
        text,
        "' is a head-end error marker, not a reading",
    )
    _check(reasons, text.ne("") & numbers.isna(), f"{column} '", text, "' is not a number")
    _check(reasons, ~np.isfinite(numbers) & numbers.notna(), f"{column} '", text, "' is not finite")
    _check(
        reasons,
        numbers.isin(ERROR_SENTINELS),
        f"{column} ",
        text,
        " is a head-end error sentinel (a magic number), not a reading",
    )
    return numbers.where(np.isfinite(numbers))


def _unit(
    text: pd.Series, column: str, needed: pd.Series, reasons: RowReasons, source: SourceConfig
) -> pd.Series:
    unit = text.where(text.ne(""), source.default_unit or "")
    _check(reasons, needed & unit.eq(""), f"{column} is empty and the source has no default unit")
    known = unit.str.lower().isin(list(UNIT_ALIASES))
    _check(
        reasons,
        needed & unit.ne("") & ~known,
        f"{column} '",
        unit,
        "' is not a known water unit (Gallons, CCF, CF, KGAL, M3)",
    )
    return unit


def _line_texts(data: bytes, line_numbers: np.ndarray) -> np.ndarray:
    """The physical text of the given 1-based lines."""
    if len(line_numbers) == 0:
        return np.array([], dtype=object)
    lines = data.split(b"\n")
    return np.array([lines[i - 1].decode("utf-8").rstrip("\r") for i in line_numbers.tolist()], dtype=object)


ADAPTER = BeaconCsvAdapter()
