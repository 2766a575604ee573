"""CMEP record layout: the constants of a MEPMD01 line, its fields, and the validated line
header (meter, channel, units, interval, count) of every line (see cmep.py for the format)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.csvtools import reparse_lines
from smartmdm_pipelines.adapters.validation import (
    RowReasons,
)
from smartmdm_pipelines.domain.readings import (
    INTERVAL_SECONDS,
)
from smartmdm_pipelines.domain.timeutil import DAY

RECORD_TYPE = "MEPMD01"
KNOWN_RECORD_TYPES = ("MEPMD01", "MEPMD02", "MEPAD01", "MEPAD02", "MLA01")
HEADER_FIELDS = 14
LOADED_PURPOSES = ("OK", "RESEND", "HISTORY", "PROFILE", "")
QUALITY_CLASSES = ("R", "E", "A", "N")

ENERGY_UNITS = ("WH", "KWH", "MWH")
REACTIVE_UNITS = ("VARH", "KVARH")
WATER_UNITS = ("GAL", "USGAL", "KGAL", "CF", "FT3", "CUFT", "CCF", "HCF", "M3", "CUM", "L")
GAS_UNITS = ("THERM", "THERMS", "CF", "FT3", "CUFT", "CCF", "HCF", "MCF", "M3", "CUM")
# CMEP spelling -> key of domain.readings.normalise_units
UNIT_KEYS = {"USGAL": "gal", "CUFT": "ft3", "CUM": "m3"}


def _channel_table() -> dict[str, str]:
    """``commodity|unit`` -> channel (an empty commodity is inferred from the unit)."""
    table: dict[str, str] = {}
    for unit in ENERGY_UNITS:
        table[f"E|{unit}"] = table[f"|{unit}"] = "kwh_delivered"
    for unit in REACTIVE_UNITS:
        table[f"E|{unit}"] = table[f"|{unit}"] = "kvarh"
    for unit in WATER_UNITS:
        table[f"W|{unit}"] = table[f"|{unit}"] = "water"
    for unit in GAS_UNITS:
        table[f"G|{unit}"] = "gas"
    table["|THERM"] = table["|THERMS"] = "gas"
    return table


CHANNEL_BY_COMMODITY_UNIT = _channel_table()
ALL_UNITS = frozenset(ENERGY_UNITS + REACTIVE_UNITS + WATER_UNITS + GAS_UNITS)


def split_fields(lines: pa.Array) -> tuple[pa.ListArray, np.ndarray]:
    """Fields of every line; lines with double quotes go through the csv module (rare)."""
    quoted = pc.match_substring(lines, '"').to_numpy(zero_copy_only=False)
    split = pc.split_pattern(lines, ",")
    if not quoted.any():
        return split, np.zeros(len(lines), dtype=bool)
    return reparse_lines(split, lines, np.flatnonzero(quoted))


class Fields:
    """Flattened fields with per-line offsets: field j of line i is ``flat[starts[i] + j]``."""

    def __init__(self, flat: pa.Array, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.flat, self.starts, self.lengths = flat, starts, lengths

    def header(self, j: int) -> pd.Series:
        """Field ``j`` (0-based) of every line ('' where the line is shorter)."""
        present = self.lengths > j
        idx = np.where(present, self.starts + j, 0)
        out = self.flat.take(pa.array(idx)).to_numpy(zero_copy_only=False).astype(object)
        out[~present] = ""
        return pd.Series(out, dtype="str")

    def take(self, idx: np.ndarray) -> pa.Array:
        return self.flat.take(pa.array(idx))

    def last_is_empty(self) -> np.ndarray:
        """Whether each line ends with an empty field (a trailing comma)."""
        idx = np.maximum(self.starts + self.lengths - 1, 0)
        last = self.flat.take(pa.array(idx)).to_numpy(zero_copy_only=False).astype(object)
        return (last == "") & (self.lengths > 0)


# ------------------------------------------------------------------ line header
@dataclass
class LineHeader:
    meter: np.ndarray  # object
    channel: np.ndarray  # object
    source_unit: np.ndarray  # object
    unit_key: np.ndarray  # object: normalise_units key
    is_register: np.ndarray  # bool
    constant: np.ndarray  # float64
    count: np.ndarray  # int64
    step: np.ndarray  # int64 seconds of a sub-daily (absolute) interval, 0 if calendar/none
    cal_days: np.ndarray  # int64 days of a calendar interval
    cal_months: np.ndarray  # int64 months of a calendar interval
    interval_seconds: np.ndarray  # int32 canonical interval length of interval lines

    @property
    def calendar(self) -> np.ndarray:
        return (self.cal_days > 0) | (self.cal_months > 0)

    @classmethod
    def validate(
        cls, fields: Fields, lengths: np.ndarray, reasons: RowReasons, prefix: str | None
    ) -> LineHeader:
        n_fields = pd.Series(lengths).astype("str")
        reasons.check(
            lengths < HEADER_FIELDS,
            "record has "
            + n_fields
            + f" fields; a {RECORD_TYPE} record needs {HEADER_FIELDS} header fields plus 3 per reading",
        )
        count_text = fields.header(13)
        count_ok = count_text.str.fullmatch(r"[0-9]{1,6}").to_numpy(dtype=bool)
        reasons.check(~count_ok, "count (field 14) '" + clip(count_text) + "' is not a whole number")
        count = pd.to_numeric(count_text.where(count_ok, "0")).to_numpy().astype(np.int64)
        expected = HEADER_FIELDS + 3 * count
        trailing_empty = (lengths == expected + 1) & fields.last_is_empty()
        reasons.check(
            (lengths != expected) & ~trailing_empty,
            "count (field 14) announces "
            + pd.Series(count).astype("str")
            + " readings, which take "
            + pd.Series(expected).astype("str")
            + " fields, but the record has "
            + n_fields
            + " (truncated or mis-counted record)",
        )
        meter = fields.header(7)
        reasons.check(meter.eq(""), "meter id (field 8) is empty")
        if prefix:
            meter = meter.where(meter.eq("") | meter.str.startswith(prefix), prefix + meter)
        purpose = fields.header(8)
        reasons.check(
            ~purpose.str.upper().isin(LOADED_PURPOSES),
            "purpose (field 9) '"
            + clip(purpose)
            + "' is not loaded (expected OK, RESEND, HISTORY or PROFILE)",
        )
        commodity = fields.header(9).str.upper()
        reasons.check(
            ~commodity.isin(["E", "G", "W", ""]),
            "commodity (field 10) '" + clip(commodity) + "' is not supported (expected E, G or W)",
        )
        units_raw = fields.header(10)
        units = units_raw.str.upper()
        is_register = (units.str.endswith("REG") & units.str.len().gt(3)).to_numpy(dtype=bool)
        base = units.where(~is_register, units.str.slice(0, -3))
        source_unit = units_raw.where(~is_register, units_raw.str.slice(0, -3))
        reasons.check(
            ~base.isin(ALL_UNITS),
            "units (field 11) '"
            + clip(units_raw)
            + "' is not a supported energy or volume unit (KWH, KVARH, GAL, CF, CCF, THERM, … with an "
            "optional REG suffix for register reads)",
        )
        channel = (commodity + "|" + base).map(CHANNEL_BY_COMMODITY_UNIT)
        reasons.check(
            channel.isna(),
            "units (field 11) '" + clip(units_raw) + "' do not fit commodity (field 10) '" + commodity + "'",
        )
        unit_key = base.map(lambda u: UNIT_KEYS.get(u, u.lower()))

        const_text = fields.header(11)
        constant = pd.to_numeric(const_text.where(const_text.ne(""), "1"), errors="coerce")
        constant = constant.to_numpy(dtype="float64", na_value=np.nan)
        reasons.check(
            ~(np.isfinite(constant) & (constant > 0)),
            "calculation constant (field 12) '" + clip(const_text) + "' is not a positive number",
        )
        step, cal_days, cal_months, interval_seconds = _intervals(fields.header(12), is_register, reasons)
        return cls(
            meter=meter.to_numpy(dtype=object),
            channel=channel.fillna("").to_numpy(dtype=object),
            source_unit=source_unit.to_numpy(dtype=object),
            unit_key=unit_key.to_numpy(dtype=object),
            is_register=is_register,
            constant=np.where(np.isfinite(constant), constant, 1.0),
            count=np.where(reasons.bad, 0, count),
            step=step,
            cal_days=cal_days,
            cal_months=cal_months,
            interval_seconds=interval_seconds,
        )


def _intervals(
    text: pd.Series, is_register: np.ndarray, reasons: RowReasons
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode MMDDHHMM / DDHHMM: (absolute step s, calendar days, calendar months, canonical s)."""
    s = text
    well_formed = s.str.fullmatch(r"[0-9]{6}|[0-9]{8}").to_numpy(dtype=bool)
    empty = s.eq("").to_numpy(dtype=bool)
    padded = s.where(s.str.len() != 6, "00" + s).where(well_formed, "00000000")
    months = padded.str.slice(0, 2).astype("int64").to_numpy()
    days = padded.str.slice(2, 4).astype("int64").to_numpy()
    hours = padded.str.slice(4, 6).astype("int64").to_numpy()
    minutes = padded.str.slice(6, 8).astype("int64").to_numpy()
    reasons.check(
        ~well_formed & ~empty,
        "interval (field 13) '" + clip(text) + "' is not MMDDHHMM (8 digits) or DDHHMM (6 digits)",
    )
    calendar = (months > 0) | ((days > 0) & (hours == 0) & (minutes == 0))
    seconds = days * DAY + hours * 3600 + minutes * 60
    interval_line = ~is_register
    reasons.check(
        interval_line & (empty | (well_formed & (months == 0) & (seconds == 0))),
        "interval (field 13) is empty or zero; an interval record needs its interval length",
    )
    canonical = np.where(months > 0, -1, seconds)
    reasons.check(
        interval_line & well_formed & ~np.isin(canonical, sorted(INTERVAL_SECONDS)),
        "interval (field 13) '"
        + clip(text)
        + "' is not a supported interval length (1, 5, 10, 15, 30, 60 minutes or 1 day)",
    )
    step = np.where(calendar, 0, seconds).astype(np.int64)
    cal_days = np.where(calendar, days, 0).astype(np.int64)
    cal_months = np.where(calendar, months, 0).astype(np.int64)
    return step, cal_days, cal_months, np.where(canonical > 0, canonical, 0).astype(np.int32)


def clip(values: np.ndarray | pd.Series) -> pd.Series:
    """Text for a reason: at most 40 characters (index reset so it aligns with other parts)."""
    return pd.Series(np.asarray(values, dtype=object), dtype="str").str.slice(0, 40)
