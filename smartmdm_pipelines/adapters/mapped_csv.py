"""YAML-mapped CSV: any delimited AMR/AMI export read through its source's ``csv:`` mapping.

The adapter is chosen by the source's configuration (a ``csv:`` block), never by sniffing: a
semicolon export of ``user key;datetime;meter reading;diff`` looks like any other CSV. What the
mapping holds is described in ``csv_mapping.py`` and docs/mapped_csv.md. A *record* is a
non-blank line after the header: it loads whole or is rejected whole with its line and the first
problem (``line 12: meter reading '4,2,1' is not a number``), so rows in = loaded + rejected.

Decisions:

- **Reading**: the bytes are decoded with ``csv.encoding`` (UTF-8 is checked byte by byte; a BOM
  is dropped), split into lines and then into fields on ``csv.delimiter`` with Arrow. Fields
  wholly in ``csv.quote`` are unquoted (a doubled quote is a quote); the rare lines whose quoting
  is not that simple (a delimiter inside quotes) go through the csv module; a quoted field not
  closed on its line rejects that line alone. A line with another number of fields than the
  header (a trailing empty field is allowed) is rejected. Blank lines are not records.
- **Numbers**: ``csv.thousands`` is removed, a ``,`` decimal mark becomes ``.``; scientific
  notation (``4e+05``) is a number. Text, infinities and the head-end's ``csv.error_values``
  reject the row. An empty interval value is a no-read (NaN, quality ``N``, never a zero); an
  empty, negative or missing register value rejects the row.
- **Time**: ``csv.time_format`` (strptime, or ISO8601). Without an offset the time is naive local
  time of the source's ``timezone``: a local time in the spring-forward gap rejects the row, the
  repeated fall-back hour is resolved by the order of each meter's rows (``domain.timeutil.localise_in_order``).
- **Interval values** end at the time (or start there, ``csv.time_marks: start``: a sub-daily
  interval then ends ``interval_minutes`` later in absolute time, a daily one at the next local
  midnight). **Register values** are point-in-time reads at the time.
- **Units**: ``csv.unit`` or the unit column, converted to the canonical unit like every adapter
  (``domain/readings.py``: litres and m³ to US gallons, Wh to kWh …); ``source_unit`` keeps the
  source's spelling. The channel comes from ``csv.channel`` or its column and must be a channel code.
- **Quality**: the quality column, verbatim (``E…`` estimated, ``N…`` no read for VEE), else empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import (
    BOM,
    Adapter,
    FileRejected,
    ParsedFile,
    SourceConfig,
    decode_check,
)
from smartmdm_pipelines.adapters.csv_mapping import GAS_UNITS, ISO8601, CsvMapping
from smartmdm_pipelines.adapters.csvtools import UNTERMINATED_QUOTE, reparse_lines
from smartmdm_pipelines.adapters.validation import (
    OFFSET_SUFFIX,
    RowReasons,
    cast_text,
    check_rows,
    pandas_numbers,
)
from smartmdm_pipelines.domain.readings import (
    CHANNELS,
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    conform,
    normalise_units,
)
from smartmdm_pipelines.domain.timeutil import NAT, localise_in_order
from smartmdm_pipelines.domain.vee.day import CHANNEL_UNITS

NAME = "mapped_csv"
_YEAR_1900 = int(pd.Timestamp("1900-01-01").value // 1000)
_YEAR_2200 = int(pd.Timestamp("2200-01-01").value // 1000)
_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Lines:
    """The records of a file: their text, 1-based line numbers and fields."""

    text: pa.Array  # string, one per record
    numbers: np.ndarray  # int64 line numbers
    fields: pa.ListArray  # the fields of each record (unquoted)
    unbalanced: np.ndarray  # bool: a quoted field is not closed on the line

    @property
    def lengths(self) -> np.ndarray:
        return pc.list_value_length(self.fields).to_numpy(zero_copy_only=False).astype(np.int64)

    def field(self, j: int) -> pd.Series:
        """Field ``j`` (0-based) of every record, trimmed ('' where the record is shorter)."""
        present = self.lengths > j
        if not present.any():
            return pd.Series("", index=range(len(present)), dtype="str")
        offsets = self.fields.offsets.to_numpy()[:-1]
        value = self.fields.values.take(pa.array(np.where(present, offsets + j, offsets[present][0] + j)))
        out = pc.utf8_trim_whitespace(value).to_pandas()  # Arrow-backed strings, no Python objects
        return out.where(present, "") if not present.all() else out


@dataclass(frozen=True)
class MappedCsvAdapter(Adapter):
    """Any delimited export, read through the source's ``csv:`` mapping (module docstring)."""

    name: str = NAME

    def sniff(self, head: bytes, path: Path) -> bool:
        return False  # chosen by the source's configuration, never by content

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        mapping = source.csv
        if mapping is None:
            raise FileRejected(
                f"source {source.name!r} has no csv: mapping (the mapped-CSV adapter needs one)"
            )
        # the source's time zone was checked with the configuration; the mapping names the encoding
        lines, positions = read_lines(path.read_bytes(), mapping)
        result.records = len(lines.numbers)
        reasons = RowReasons(len(lines.numbers))
        reasons.check(lines.unbalanced, UNTERMINATED_QUOTE)
        _check_field_count(lines, positions, reasons, mapping)
        reads = _Rows(lines, positions, mapping, reasons, source).frame()
        bad = reasons.bad
        result.rejected = conform(
            pd.DataFrame(
                {
                    "line": lines.numbers[bad],
                    "raw_text": lines.text.filter(pa.array(bad)).to_numpy(zero_copy_only=False),
                    "reason": reasons.reasons[bad],
                }
            ),
            REJECTED_COLUMNS,
        )
        good = reads.loc[~bad]
        if mapping.value_kind == "interval":
            result.intervals = conform(good, INTERVAL_READ_COLUMNS)
        else:
            result.registers = conform(good.rename(columns={"time": "read_at"}), REGISTER_READ_COLUMNS)


# ------------------------------------------------------------------ lines and fields
def read_lines(data: bytes, mapping: CsvMapping) -> tuple[Lines, dict[str, int]]:
    """The records of ``data`` and the 0-based field position of every mapped role."""
    text = _decode(data, mapping.encoding)
    raw = pc.utf8_rtrim(pa.array(text.split("\n"), pa.string()), characters="\r")
    number = np.arange(1, len(raw) + 1, dtype=np.int64)
    blank = ~pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(raw)), 0).to_numpy(zero_copy_only=False)
    blank[: mapping.skip_rows] = True  # the preamble is not records
    rows = np.flatnonzero(~blank)
    head_names: list[str] | None = None
    if mapping.header:
        if len(rows) == 0:
            raise FileRejected("the file is empty (expected a header row)")
        head_line = int(rows[0])
        head = _split(pa.array([raw[head_line].as_py()], pa.string()), mapping)
        if head[1][0]:
            raise FileRejected("the header has an unbalanced quote", head_line + 1)
        head_names = [h.strip() for h in head[0][0].as_py()]
        rows = rows[1:]
    try:
        positions = _positions(mapping, head_names)
    except FileRejected as exc:  # the header is what is wrong: say on which line it is
        raise FileRejected(exc.reason, exc.line or (head_line + 1 if mapping.header else None)) from None
    records = raw.take(pa.array(rows, pa.int64()))
    fields, unbalanced = _split(records, mapping)
    return Lines(records, number[rows], fields, unbalanced), positions


def _decode(data: bytes, encoding: str) -> str:
    if encoding == "utf-8":
        return decode_check(data).decode("utf-8")
    try:
        return data.removeprefix(BOM).decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileRejected(
            f"not {encoding} text: byte 0x{data[exc.start]:02x} at offset {exc.start} (csv.encoding)", line
        ) from None


def _positions(mapping: CsvMapping, names: list[str] | None) -> dict[str, int]:
    """role -> 0-based field position; a named column missing from the header is fatal."""
    out: dict[str, int] = {}
    for role, column in mapping.columns.roles().items():
        if isinstance(column, int):
            out[role] = column - 1
            continue
        assert names is not None  # the mapping's validation: names need a header
        if column not in names:
            raise FileRejected(
                f"the header has no column {column!r} (csv.columns.{role}); it has {_shown(names)}", None
            )
        out[role] = names.index(column)
    if names is not None:
        too_far = {role: p + 1 for role, p in out.items() if p >= len(names)}
        if too_far:
            raise FileRejected(f"the header has {len(names)} columns, the mapping wants {too_far}")
    out["_width"] = len(names) if names is not None else max(out.values()) + 1
    return out


def _shown(names: list[str], limit: int = 200) -> str:
    """The header's names for a message, at most ``limit`` characters of them."""
    text = repr(names)
    return text if len(text) <= limit else text[:limit] + "…"


def _split(lines: pa.Array, mapping: CsvMapping) -> tuple[pa.ListArray, np.ndarray]:
    """Fields of every line, unquoted; lines whose quoting is not simple go through the csv module."""
    delimiter, quote = mapping.delimiter, mapping.quote
    split = pc.split_pattern(lines, delimiter)
    unbalanced = np.zeros(len(lines), dtype=bool)
    if quote is None or len(lines) == 0 or not pc.any(pc.match_substring(lines, quote)).as_py():
        return split, unbalanced
    flat = split.flatten()
    lengths = pc.list_value_length(split).to_numpy(zero_copy_only=False)
    parent = np.repeat(np.arange(len(lines)), lengths)
    has_quote = pc.match_substring(flat, quote).to_numpy(zero_copy_only=False)
    stripped = pc.utf8_trim_whitespace(flat)
    wrapped = (
        pc.starts_with(stripped, quote).to_numpy(zero_copy_only=False)
        & pc.ends_with(stripped, quote).to_numpy(zero_copy_only=False)
        & (pc.utf8_length(stripped).to_numpy(zero_copy_only=False) >= 2)
    )
    inner = pc.utf8_slice_codeunits(stripped, 1, -1)
    # a wrapped field is simple when its inner quotes all come in pairs (an escaped quote)
    lone = pc.match_substring(pc.replace_substring(inner, quote * 2, ""), quote).to_numpy(
        zero_copy_only=False
    )
    simple_field = ~has_quote | (wrapped & ~lone)
    messy = np.zeros(len(lines), dtype=bool)
    messy[parent[~simple_field]] = True
    unquoted = pc.if_else(pa.array(wrapped & ~lone), pc.replace_substring(inner, quote * 2, quote), flat)
    split = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lengths)], pa.int32()), unquoted)
    if not messy.any():
        return split, unbalanced
    # rare: a delimiter inside quotes, or a broken quote
    return reparse_lines(split, lines, np.flatnonzero(messy), delimiter, quote)


def _check_field_count(
    lines: Lines, positions: dict[str, int], reasons: RowReasons, mapping: CsvMapping
) -> None:
    lengths = lines.lengths
    width = positions["_width"]
    shown = "'\\t'" if mapping.delimiter == "\t" else repr(mapping.delimiter)
    if mapping.header:
        last_empty = lines.field(width).eq("").to_numpy() if len(lengths) else np.zeros(0, dtype=bool)
        wrong = (lengths != width) & ~((lengths == width + 1) & last_empty)
        expected = f"expected {width} fields separated by {shown} (as the header), found "
    else:
        wrong = lengths < width
        expected = f"expected at least {width} fields separated by {shown}, found "
    reasons.check(wrong, expected + pd.Series(lengths).astype("str"))


# ------------------------------------------------------------------ rows
class _Rows:
    """The mapped fields of every record, validated; ``frame()`` gives the canonical reads."""

    def __init__(
        self,
        lines: Lines,
        positions: dict[str, int],
        mapping: CsvMapping,
        reasons: RowReasons,
        source: SourceConfig,
    ) -> None:
        self.lines, self.mapping, self.reasons, self.source = lines, mapping, reasons, source
        self.names = {role: _column_name(mapping, role) for role in mapping.columns.roles()}
        self.raw = {role: lines.field(p) for role, p in positions.items() if not role.startswith("_")}

    def frame(self) -> pd.DataFrame:
        m, n = self.mapping, len(self.lines.numbers)
        meter = self.raw["meter"]
        self._check(meter.eq(""), f"{self.names['meter']} is empty (expected the meter id)")
        channel = self.raw.get("channel", pd.Series(m.channel, index=range(n), dtype="str"))
        if "channel" in self.raw:
            self._check(
                ~channel.isin(sorted(CHANNELS)),
                *self._quoted("channel", channel),
                f" is not a channel code (one of {sorted(CHANNELS)})",
            )
        unit = self.raw.get("unit", pd.Series(m.unit, index=range(n), dtype="str"))
        value = self._numbers()
        canonical, canon_unit, unknown = normalise_units(value, unit, channel)
        self._check(unknown, *self._quoted("unit", unit), " is not a known unit")
        fits = canon_unit.eq(channel.map(CHANNEL_UNITS)) | (channel.eq("gas") & canon_unit.isin(GAS_UNITS))
        self._check(
            ~fits,
            *self._quoted("unit", unit),
            " does not fit channel ",
            channel,
            " (it is a unit of ",
            canon_unit,
            ")",
        )
        quality = self.raw.get("quality", pd.Series("", index=range(n), dtype="str"))
        time = self._times(meter, channel)
        frame = pd.DataFrame(
            {
                "line": self.lines.numbers,
                "meter_id": meter,
                "channel": channel,
                "value": canonical,
                "unit": canon_unit,
                "source_unit": unit,
                "source_quality": quality,
            }
        )
        if m.value_kind == "register":
            self._check(value.isna(), f"{self.names['value']} is empty (expected a register reading)")
            self._check(
                value < 0, *self._quoted("value", self.raw["value"]), " is negative (a register cannot be)"
            )
            return frame.assign(time=time)
        seconds = int(m.interval_minutes) * 60
        frame["source_quality"] = quality.where(value.notna(), quality.where(quality.ne(""), "N"))
        return frame.assign(interval_end=self._interval_ends(time, seconds), interval_seconds=seconds)

    # -- values
    def _numbers(self) -> pd.Series:
        """float64 of the value column: Arrow's cast, pandas for what it refuses (NaN where empty)."""
        m, text = self.mapping, self.raw["value"]
        clean = text
        if m.thousands is not None:
            clean = clean.str.replace(m.thousands, "", regex=False)
        if m.decimal == ",":
            clean = clean.str.replace(",", ".", regex=False)
        empty = clean.eq("").to_numpy()
        number = pd.Series(
            cast_text(pa.chunked_array([pa.array(clean)]), empty, pa.float64(), pandas_numbers)
        )
        number = number.astype("float64")
        quoted = self._quoted("value", text)
        self._check(~empty & number.isna(), *quoted, " is not a number")
        self._check(~np.isfinite(number) & number.notna(), *quoted, " is not a finite number")
        if m.error_values:
            self._check(
                number.isin(list(m.error_values)),
                *quoted,
                " is the head-end's error value (csv.error_values), not a reading",
            )
        return number.where(np.isfinite(number))

    # -- times
    def _times(self, meter: pd.Series, channel: pd.Series) -> pd.Series:
        """UTC instants of the time column; naive local times resolved per meter-channel in order."""
        m, text = self.mapping, self.raw["time"]
        column = self.names["time"]
        self._check(text.eq(""), f"{column} is empty (expected a time like {_example(m.time_format)})")
        nat = np.full(len(text), NAT, dtype=np.int64)
        if m.time_format == ISO8601:
            aware = text.str.contains(OFFSET_SUFFIX, regex=True).to_numpy(dtype=bool)
            naive = _us(_parse(text.where(~aware), ISO8601, utc=False))
            instants = _us(_parse(text.where(aware), ISO8601, utc=True))
        elif m.aware:
            aware = np.ones(len(text), dtype=bool)
            naive, instants = nat, _us(_parse(text, m.time_format, True))
        else:
            aware = np.zeros(len(text), dtype=bool)
            naive, instants = _naive_us(text, m.time_format), nat
        parsed = np.where(aware, instants, naive)
        self._check(
            text.ne("") & (parsed == NAT),
            *self._quoted("time", text),
            f" does not match the time format {m.time_format!r}",
        )
        local = np.where(aware, NAT, parsed)
        if (local != NAT).any():
            parsed = np.where(aware, parsed, self._localise(local, meter, channel, text))
        return pd.Series(parsed.view("datetime64[us]")).dt.tz_localize("UTC")

    def _localise(
        self, local: np.ndarray, meter: pd.Series, channel: pd.Series, text: pd.Series
    ) -> np.ndarray:
        keys = pd.factorize(meter + "\x1f" + channel)[0]
        order = np.argsort(keys, kind="stable")  # each meter-channel in file order
        utc_sorted, gap_sorted = localise_in_order(local[order], keys[order], self.source.timezone)
        utc = np.empty_like(utc_sorted)
        utc[order] = utc_sorted
        gap = np.zeros(len(local), dtype=bool)
        gap[order] = gap_sorted
        self._check(
            gap,
            *self._quoted("time", text),
            f" does not exist in {self.source.timezone} (it falls in the spring-forward gap)",
        )
        return utc

    def _interval_ends(self, time: pd.Series, seconds: int) -> pd.Series:
        if self.mapping.time_marks == "end":
            return time
        if seconds < 86400:
            return time + pd.Timedelta(seconds=seconds)
        # a daily interval starting at local midnight ends at the next local midnight (23/25 h on DST days)
        tz = self.source.timezone
        local_next = time.dt.tz_convert(tz).dt.tz_localize(None) + pd.Timedelta(days=1)
        return local_next.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")

    # -- reasons (texts built for the failing rows only)
    def _check(self, failed: pd.Series | np.ndarray, *parts: str | pd.Series) -> None:
        check_rows(self.reasons, np.asarray(failed, dtype=bool), *parts)

    def _quoted(self, role: str, values: pd.Series) -> tuple[str, pd.Series, str]:
        return self.names.get(role, f"csv.{role}") + " '", values, "'"


def _column_name(mapping: CsvMapping, role: str) -> str:
    column = mapping.columns.roles()[role]
    return f"column {column}" if isinstance(column, int) else column


def _parse(text: pd.Series, time_format: str, utc: bool) -> pd.Series:
    fmt = "ISO8601" if time_format == ISO8601 else time_format
    return pd.to_datetime(text, format=fmt, errors="coerce", utc=utc)


def _naive_us(text: pd.Series, time_format: str) -> np.ndarray:
    """Epoch microseconds of naive times: Arrow's strptime (C++), pandas for the texts it refuses
    or reads as an implausible year (Arrow takes '19' for year 0019 under %Y)."""
    parsed = pc.strptime(pa.array(text), format=time_format, unit="us", error_is_null=True)
    us = pc.fill_null(parsed.cast(pa.int64()), NAT).to_numpy(zero_copy_only=False).copy()
    odd = ((us == NAT) | (us < _YEAR_1900) | (us >= _YEAR_2200)) & text.ne("").to_numpy()
    rows = np.flatnonzero(odd)
    if len(rows):
        us[rows] = _us(_parse(text.iloc[rows], time_format, utc=False))
    return us


def _us(times: pd.Series) -> np.ndarray:
    """Epoch microseconds of naive or UTC times (NaT -> NAT)."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.to_numpy(dtype="datetime64[us]").view(np.int64)


def _example(time_format: str) -> str:
    if time_format == ISO8601:
        return "2019-01-03T00:59:47"
    return pd.Timestamp("2019-01-03 00:59:47").strftime(time_format.replace("%z", "+0100"))


ADAPTER = MappedCsvAdapter()
