"""CMEP MEPMD01 (California Metering Exchange Protocol, interval data), formats.md §1.1.

Headerless CSV. One line = one meter x one ``Units`` x N readings::

    MEPMD01,20080501,SENSUS,STAHO:1,13169370,B74741489,202411040815,B74741489,OK,W,CF,1.0,00000100,3,
    202411030100,R0,12,,R0,10,,N32,0

Fields 1-14 are the record header (type, version, sender, sender customer, receiver, receiver
customer, creation time, meter id, purpose, commodity, units, calculation constant, interval
``MMDDHHMM``, count), then ``count`` triplets (timestamp ``CCYYMMDDHHMM``, protocol text, value).

A *record* is a line: a line loads whole or is rejected whole (one rejected row naming the first
problem, e.g. ``reading 5 (field 27): value 'abc' is not a number``), so rows in = rows loaded +
rows rejected per file. Lines are split with Arrow and the triplets exploded with numpy; the
only per-line Python is the CSV fallback for the rare lines that carry double quotes.

Decisions (see also the tests):

- **Record types**: only ``MEPMD01`` loads. ``MEPMD02`` (TOU), ``MEPAD0x`` (admin) and ``MLA01``
  (alarms) lines are rejected with a reason. A file with no CMEP record at all is fatal.
- **Purpose**: ``OK``, ``RESEND``, ``HISTORY``, ``PROFILE`` (or empty) load; ``SUMMARY`` and
  ``TEMPLATE`` are rejected (not interval data).
- **Meter id**: field 8, kept verbatim (trimmed). Some feeds drop a prefix on a few meters
  (``74741489`` next to ``B74741489``); the adapter cannot know the prefix, so by default both
  spellings load as sent and the difference surfaces as an unknown meter downstream.
  ``CmepAdapter(meter_id_prefix="B")`` adds the prefix to ids that lack it.
- **Units and channel**: a ``REG`` suffix (``KWHREG``, ``CFREG``) makes the line a *register*
  line (cumulative reads -> ``registers``); otherwise the values are interval deltas. ``WH``/
  ``KWH``/``MWH`` -> kwh_delivered, ``VARH``/``KVARH`` -> kvarh, volume units (``GAL``, ``KGAL``,
  ``CF``, ``FT3``, ``CUFT``, ``CCF``, ``HCF``, ``M3``, ``L``) -> water, or gas when the commodity
  is ``G`` (``THERM`` is always gas). A unit that contradicts the commodity (``KWH`` on ``W``),
  demand units (``KW``) and steam are rejected. ``source_unit`` is the unit without ``REG``.
- **Calculation constant** (field 12) multiplies every value of the line (empty = 1).
- **Interval** ``MMDDHHMM`` (6 digits = ``DDHHMM``). An interval line needs a supported length
  (1, 5, 10, 15, 30, 60 minutes or 1 day); register lines may omit it.
- **Time**: triplet times are interval *ends* in local prevailing time of
  ``SourceConfig.timezone``. A blank time after the first triplet is "previous + interval":
  added in absolute time for sub-daily intervals (so a blank chain crosses DST correctly) and
  on the local calendar for day/month intervals (so a daily read stays at local midnight).
  A local time that does not exist (spring-forward gap) rejects the line. A local time that
  occurs twice (fall-back) is resolved so that the line stays a regular sequence at its
  interval (from the nearest unambiguous reading before or after it); without such evidence
  a time at or before an earlier repeated-hour time of the line (the clock went back: the
  second 01:00) takes standard time, the others daylight time. The resolved times of a line
  must strictly increase, otherwise the line is rejected.
- **Quality**: the protocol text is kept verbatim as ``source_quality``; its first letter is
  the class: ``R`` read, ``E`` estimated, ``A`` adjusted/actual, ``N`` no read (any flag
  digits may follow, e.g. ``R0``, ``N32``). An ``N`` reading loads as value NaN (never the
  ``0`` placeholder the head-end writes); an empty value also loads as NaN (quality ``N`` if
  the protocol text is empty). Any other class rejects the line.
- **Duplicates and catch-up rows**: lines re-delivering earlier windows load as they are,
  each reading with its own line; the newest-file-wins dedupe happens downstream. Registers
  arriving before their interval line need nothing special.
- An empty file (no records) is not an error: 0 records, nothing loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import BOM, Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.csvtools import UNTERMINATED_QUOTE, reparse_lines
from smartmdm_pipelines.adapters.validation import (
    RowReasons,
    SparseReasons,
    cast_text,
    may_have_space,
    pandas_numbers,
)
from smartmdm_pipelines.domain.readings import (
    CANONICAL_UNITS,
    INTERVAL_READ_COLUMNS,
    INTERVAL_SECONDS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    conform,
    unit_conversion,
)
from smartmdm_pipelines.domain.timeutil import DAY, NAT, add_calendar, localise_sequences

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


@dataclass(frozen=True)
class CmepAdapter(Adapter):
    """CMEP MEPMD01 interval and register lines (see the module docstring)."""

    name: str = "cmep"
    meter_id_prefix: str | None = None
    zone_in_source: ClassVar[bool] = True

    def sniff(self, head: bytes, path: Path) -> bool:
        text = head.removeprefix(BOM).decode("utf-8", "replace")
        for line in text.split("\n", 64)[:64]:
            if line.strip():
                first = line.split(",", 1)[0].strip().strip('"').strip().upper()
                return first in KNOWN_RECORD_TYPES
        return False

    # ------------------------------------------------------------------ lines and fields
    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        raw = pa.array(self.text(path).decode("utf-8").split("\n"), pa.string())
        raw = pc.utf8_rtrim(raw, characters="\r")
        keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(raw)), 0).to_numpy(zero_copy_only=False)
        line_no = np.flatnonzero(keep).astype(np.int64) + 1
        lines = raw.filter(pa.array(keep))
        n = len(lines)
        result.records = n
        if n == 0:
            return
        split, unbalanced = _split_fields(lines)
        lengths = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = split.flatten()
        if may_have_space(flat):  # most exports hold no whitespace to trim
            flat = pc.utf8_trim_whitespace(flat)
        fields = _Fields(flat, starts, lengths)

        rtype = fields.header(0)
        upper_type = rtype.str.upper()
        if not upper_type.isin(KNOWN_RECORD_TYPES).any():
            raise FileRejected(
                f"no CMEP record in the file: the first line starts with '{rtype.iloc[0][:20]}' "
                f"(expected {RECORD_TYPE} records, one meter and channel per line)",
                int(line_no[0]),
            )
        reasons = RowReasons(n)
        reasons.check(unbalanced, UNTERMINATED_QUOTE)
        reasons.check(
            upper_type.ne(RECORD_TYPE),
            "record type '"
            + _clip(rtype)
            + f"' is not loaded (only {RECORD_TYPE} interval data; MEPMD02 TOU, MEPAD admin and MLA01 "
            "alarm records are not supported)",
        )
        line = _LineHeader.validate(fields, lengths, reasons, self.meter_id_prefix)
        triplets = _Triplets.explode(fields, line, reasons, source.timezone)
        bad = reasons.bad
        result.rejected = conform(
            pd.DataFrame(
                {
                    "line": line_no[bad],
                    "raw_text": lines.filter(pa.array(bad)).to_numpy(zero_copy_only=False),
                    "reason": reasons.reasons[bad],
                }
            ),
            REJECTED_COLUMNS,
        )
        if triplets is None:
            return
        ok = ~bad[triplets.line]
        result.intervals, result.registers = triplets.frames(ok, line, line_no)


def _split_fields(lines: pa.Array) -> tuple[pa.ListArray, np.ndarray]:
    """Fields of every line; lines with double quotes go through the csv module (rare)."""
    quoted = pc.match_substring(lines, '"').to_numpy(zero_copy_only=False)
    split = pc.split_pattern(lines, ",")
    if not quoted.any():
        return split, np.zeros(len(lines), dtype=bool)
    return reparse_lines(split, lines, np.flatnonzero(quoted))


class _Fields:
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
class _LineHeader:
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
        cls, fields: _Fields, lengths: np.ndarray, reasons: RowReasons, prefix: str | None
    ) -> _LineHeader:
        n_fields = pd.Series(lengths).astype("str")
        reasons.check(
            lengths < HEADER_FIELDS,
            "record has "
            + n_fields
            + f" fields; a {RECORD_TYPE} record needs {HEADER_FIELDS} header fields plus 3 per reading",
        )
        count_text = fields.header(13)
        count_ok = count_text.str.fullmatch(r"\d{1,6}").to_numpy(dtype=bool)
        reasons.check(~count_ok, "count (field 14) '" + _clip(count_text) + "' is not a whole number")
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
            + _clip(purpose)
            + "' is not loaded (expected OK, RESEND, HISTORY or PROFILE)",
        )
        commodity = fields.header(9).str.upper()
        reasons.check(
            ~commodity.isin(["E", "G", "W", ""]),
            "commodity (field 10) '" + _clip(commodity) + "' is not supported (expected E, G or W)",
        )
        units_raw = fields.header(10)
        units = units_raw.str.upper()
        is_register = (units.str.endswith("REG") & units.str.len().gt(3)).to_numpy(dtype=bool)
        base = units.where(~is_register, units.str.slice(0, -3))
        source_unit = units_raw.where(~is_register, units_raw.str.slice(0, -3))
        reasons.check(
            ~base.isin(ALL_UNITS),
            "units (field 11) '"
            + _clip(units_raw)
            + "' is not a supported energy or volume unit (KWH, KVARH, GAL, CF, CCF, THERM, … with an "
            "optional REG suffix for register reads)",
        )
        channel = (commodity + "|" + base).map(CHANNEL_BY_COMMODITY_UNIT)
        reasons.check(
            channel.isna(),
            "units (field 11) '" + _clip(units_raw) + "' do not fit commodity (field 10) '" + commodity + "'",
        )
        unit_key = base.map(lambda u: UNIT_KEYS.get(u, u.lower()))

        const_text = fields.header(11)
        constant = pd.to_numeric(const_text.where(const_text.ne(""), "1"), errors="coerce")
        constant = constant.to_numpy(dtype="float64", na_value=np.nan)
        reasons.check(
            ~(np.isfinite(constant) & (constant > 0)),
            "calculation constant (field 12) '" + _clip(const_text) + "' is not a positive number",
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
    well_formed = s.str.fullmatch(r"\d{6}|\d{8}").to_numpy(dtype=bool)
    empty = s.eq("").to_numpy(dtype=bool)
    padded = s.where(s.str.len() != 6, "00" + s).where(well_formed, "00000000")
    months = padded.str.slice(0, 2).astype("int64").to_numpy()
    days = padded.str.slice(2, 4).astype("int64").to_numpy()
    hours = padded.str.slice(4, 6).astype("int64").to_numpy()
    minutes = padded.str.slice(6, 8).astype("int64").to_numpy()
    reasons.check(
        ~well_formed & ~empty,
        "interval (field 13) '" + _clip(text) + "' is not MMDDHHMM (8 digits) or DDHHMM (6 digits)",
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
        + _clip(text)
        + "' is not a supported interval length (1, 5, 10, 15, 30, 60 minutes or 1 day)",
    )
    step = np.where(calendar, 0, seconds).astype(np.int64)
    cal_days = np.where(calendar, days, 0).astype(np.int64)
    cal_months = np.where(calendar, months, 0).astype(np.int64)
    return step, cal_days, cal_months, np.where(canonical > 0, canonical, 0).astype(np.int32)


def _clip(values: np.ndarray | pd.Series) -> pd.Series:
    """Text for a reason: at most 40 characters (index reset so it aligns with other parts)."""
    return pd.Series(np.asarray(values, dtype=object), dtype="str").str.slice(0, 40)


# ------------------------------------------------------------------ triplets
@dataclass
class _Triplets:
    line: np.ndarray  # index of the line
    pos: np.ndarray  # 0-based position in the line
    utc: np.ndarray  # int64 epoch seconds (NAT when unknown)
    quality: pa.Array  # protocol text (source_quality)
    value: np.ndarray  # float64, NaN = no read

    @classmethod
    def explode(cls, fields: _Fields, head: _LineHeader, reasons: RowReasons, tz: str) -> _Triplets | None:
        count = head.count
        total = int(count.sum())
        if total == 0:
            return None
        line = np.repeat(np.arange(len(count)), count)
        first = np.repeat(np.cumsum(count) - count, count)
        pos = np.arange(total, dtype=np.int64) - first
        at = np.repeat(fields.starts, count) + HEADER_FIELDS + 3 * pos
        ts_text = fields.take(at)
        quality = fields.take(at + 1)
        value_text = fields.take(at + 2)
        trip = SparseReasons(total)
        utc = _times(ts_text, line, pos, head, trip, tz)

        # a file holds a handful of protocol texts: each is classified once
        encoded = pc.dictionary_encode(quality)
        code = encoded.indices.to_numpy(zero_copy_only=False)
        texts = encoded.dictionary
        klass = pc.utf8_upper(pc.utf8_slice_codeunits(texts, 0, 1)).to_numpy(zero_copy_only=False)
        no_text = pc.equal(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)
        trip.fail(
            (~no_text & ~np.isin(klass.astype(object), QUALITY_CLASSES))[code],
            lambda i: (
                _where(pos[i], 1)
                + "protocol text '"
                + _clip(_texts(quality, i))
                + "' is not R…, E…, A… or N…"
            ),
        )
        empty_value = pc.equal(pc.binary_length(value_text), 0).to_numpy(zero_copy_only=False)
        value = cast_text(
            pa.chunked_array([value_text]), empty_value, pa.float64(), pandas_numbers
        ).to_numpy()
        no_read = (klass == "N")[code]
        bad_value = ~no_read & ~empty_value & ~np.isfinite(value)
        trip.fail(
            bad_value,
            lambda i: (
                _where(pos[i], 2) + "value '" + _clip(_texts(value_text, i)) + "' is not a finite number"
            ),
        )
        value = np.where(no_read | empty_value | bad_value, np.nan, value)
        unmarked = empty_value & no_text[code]
        if unmarked.any():  # an empty value without protocol text is a no-read
            quality = pc.if_else(pa.array(unmarked), pa.scalar("N", quality.type), quality)
        # the first failing reading names the line's reason
        failed, why = trip.failures()
        if len(failed):
            lines_failed, first_idx = np.unique(line[failed], return_index=True)
            mask = np.zeros(len(count), dtype=bool)
            mask[lines_failed] = True
            by_line = np.full(len(count), None, dtype=object)
            by_line[lines_failed] = why[first_idx]
            reasons.check(mask, pd.Series(by_line))
        return cls(line=line, pos=pos, utc=utc, quality=quality, value=value)

    def frames(
        self, ok: np.ndarray, head: _LineHeader, line_no: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The loaded readings (of lines ``ok``): interval and register frames."""
        rows = np.flatnonzero(ok)
        register = head.is_register[self.line[rows]]
        # units per line (as normalise_units does per reading), then the factor of each reading
        codes, uniques = pd.factorize(pd.Series(head.unit_key, dtype="str"))
        units = unit_conversion(codes, uniques, head.channel == "gas")
        intervals = self._frame(rows[~register], head, line_no, units, "interval_end")
        registers = self._frame(rows[register], head, line_no, units, "read_at")
        return conform(intervals, INTERVAL_READ_COLUMNS), conform(registers, REGISTER_READ_COLUMNS)

    def _frame(
        self,
        rows: np.ndarray,
        head: _LineHeader,
        line_no: np.ndarray,
        units: tuple[np.ndarray, np.ndarray],
        time_column: str,
    ) -> pd.DataFrame:
        """The readings ``rows``: per-line columns are worked out per line, then taken per reading."""
        every = len(rows) == len(self.line)  # the usual file: every reading loads, no copy
        line = self.line if every else self.line[rows]
        take = pa.array(line)
        factor = units[0][line]
        value = (self.value if every else self.value[rows]) * head.constant[line]
        value = value * np.where(np.isnan(factor), 1.0, factor)
        utc = self.utc if every else self.utc[rows]
        text = pa.large_string()
        columns = {
            "line": line_no[line],
            "meter_id": pa.array(head.meter, text).take(take),
            "channel": pa.array(head.channel, text).take(take),
            "value": value,
            "unit": pa.array(CANONICAL_UNITS, text).take(pa.array(units[1][line])),
            "source_unit": pa.array(head.source_unit, text).take(take),
            "source_quality": (self.quality if every else self.quality.take(pa.array(rows))).cast(text),
            time_column: pa.array(utc.view("datetime64[s]").astype("datetime64[us]"), from_pandas=True).cast(
                pa.timestamp("us", "UTC")
            ),
        }
        if time_column == "interval_end":
            columns["interval_seconds"] = head.interval_seconds[line]
        return pa.table(columns).to_pandas(use_threads=False, split_blocks=True)


def _texts(values: pa.Array, rows: np.ndarray) -> np.ndarray:
    """The texts of ``values`` at ``rows`` (a few failing rows)."""
    return values.take(pa.array(rows)).to_numpy(zero_copy_only=False)


def _times(
    ts_text: pa.Array, line: np.ndarray, pos: np.ndarray, head: _LineHeader, trip: SparseReasons, tz: str
) -> np.ndarray:
    """UTC epoch seconds of every triplet (NAT where it cannot be known; the reason is recorded)."""
    n = len(line)
    idx = np.arange(n)
    # the readings of a file share few distinct times (every meter reads at the same instants):
    # each distinct text is parsed once
    encoded = pc.dictionary_encode(ts_text)
    code = encoded.indices.to_numpy(zero_copy_only=False)
    texts = encoded.dictionary
    explicit = pc.greater(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False)[code]
    well_formed = pc.match_substring_regex(texts, r"^\d{12}$").to_numpy(zero_copy_only=False)
    parsed = pc.strptime(texts, format="%Y%m%d%H%M", unit="s", error_is_null=True)
    # strptime rolls impossible dates over (Feb 30 -> Mar 1): it must format back to the text
    exact = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y%m%d%H%M"), texts), False)
    naive = pc.fill_null(parsed.cast(pa.int64()), NAT).to_numpy(zero_copy_only=False)
    naive = np.where(well_formed & exact.to_numpy(zero_copy_only=False), naive, NAT).astype(np.int64)[code]
    text = _TimeTexts(ts_text)

    step = head.step[line]
    calendar = head.calendar[line]
    trip.fail(
        (pos == 0) & ~explicit,
        lambda i: _where(pos[i], 0) + "no timestamp; the first reading of a record must carry one",
    )
    trip.fail(
        ~explicit & (pos > 0) & (step == 0) & ~calendar,
        lambda i: (
            _where(pos[i], 0)
            + "no timestamp, and the record has no interval (field 13) to add to the previous one"
        ),
    )
    trip.fail(
        explicit & (naive == NAT),
        lambda i: _where(pos[i], 0) + "timestamp '" + _clip(text[i]) + "' is not a valid CCYYMMDDHHMM time",
    )
    # the last reading carrying a time (or the line's first reading) of each reading
    anchor = np.maximum.accumulate(np.where(explicit | (pos == 0), idx, 0))
    steps = pos - pos[anchor]

    # blank times of day/month intervals: previous + interval on the local calendar
    cal_blank = ~explicit & calendar & (pos > 0) & (naive[anchor] != NAT)
    if cal_blank.any():
        i = np.flatnonzero(cal_blank)
        naive[i] = add_calendar(
            naive[anchor[i]], steps[i] * head.cal_months[line[i]], steps[i] * head.cal_days[line[i]]
        )
        text.replace(
            i, pd.Series(naive[i].view("datetime64[s]")).dt.strftime("%Y%m%d%H%M").to_numpy(dtype=object)
        )

    utc, gap = localise_sequences(naive, line, pos, step, tz)
    trip.fail(
        gap,
        lambda i: (
            _where(pos[i], 0)
            + "local time "
            + _clip(text[i])
            + f" does not exist in {tz} (it falls in the spring-forward gap)"
        ),
    )

    # blank times of sub-daily intervals: previous + interval in absolute time
    blank = ~explicit & ~calendar & (pos > 0) & (step > 0)
    base = utc[anchor]
    utc = np.where(blank, np.where(base != NAT, base + steps * step, NAT), utc)

    # the readings of a line must be in time order
    later = np.zeros(n, dtype=bool)
    later[1:] = (pos[1:] > 0) & (utc[1:] != NAT) & (utc[:-1] != NAT) & (utc[1:] <= utc[:-1])
    trip.fail(
        later,
        lambda i: (
            _where(pos[i], 0)
            + "time "
            + _clip(text[i])
            + " is not later than the reading before it (the readings of a record must be in time order)"
        ),
    )
    return utc


class _TimeTexts:
    """The time text of each reading, for the reasons of the few failing ones (the computed time
    where a blank one was filled in on the calendar)."""

    def __init__(self, texts: pa.Array) -> None:
        self.texts = texts
        self.filled = np.zeros(0, dtype=np.int64)
        self.filled_texts = np.zeros(0, dtype=object)

    def replace(self, rows: np.ndarray, texts: np.ndarray) -> None:
        self.filled, self.filled_texts = rows, texts

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        out = self.texts.take(pa.array(rows)).to_numpy(zero_copy_only=False).astype(object)
        if len(self.filled):
            at = np.minimum(np.searchsorted(self.filled, rows), len(self.filled) - 1)
            hit = self.filled[at] == rows
            out[hit] = self.filled_texts[at[hit]]
        return out


def _where(pos: np.ndarray, offset: int) -> pd.Series:
    """'reading 3 (field 21): ' for 0-based positions; offset 0 time, 1 protocol text, 2 value."""
    reading = pd.Series(pos + 1).astype("str")
    field = pd.Series(HEADER_FIELDS + 1 + 3 * pos + offset).astype("str")
    return "reading " + reading + " (field " + field + "): "


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[idx] = True
    return out


ADAPTER = CmepAdapter()
