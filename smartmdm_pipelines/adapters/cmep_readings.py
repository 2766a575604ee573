"""CMEP readings: the (time, quality, value) triplets of every line as UTC instants and values,
with the reasons of the readings that fail (see cmep.py for the format)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.cmep_lines import HEADER_FIELDS, QUALITY_CLASSES, Fields, LineHeader, clip
from smartmdm_pipelines.adapters.validation import (
    RowReasons,
    SparseReasons,
    cast_text,
    pandas_numbers,
)
from smartmdm_pipelines.domain.readings import (
    CANONICAL_UNITS,
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    conform,
    unit_conversion,
)
from smartmdm_pipelines.domain.timeutil import NAT, add_calendar, localise_sequences


# ------------------------------------------------------------------ triplets
@dataclass
class Triplets:
    line: np.ndarray  # index of the line
    pos: np.ndarray  # 0-based position in the line
    utc: np.ndarray  # int64 epoch seconds (NAT when unknown)
    quality: pa.Array  # protocol text (source_quality)
    value: np.ndarray  # float64, NaN = no read

    @classmethod
    def explode(cls, fields: Fields, head: LineHeader, reasons: RowReasons, tz: str) -> Triplets | None:
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
                _where(pos[i], 1) + "protocol text '" + clip(_texts(quality, i)) + "' is not R…, E…, A… or N…"
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
                _where(pos[i], 2) + "value '" + clip(_texts(value_text, i)) + "' is not a finite number"
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
        self, ok: np.ndarray, head: LineHeader, line_no: np.ndarray
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
        head: LineHeader,
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
    ts_text: pa.Array, line: np.ndarray, pos: np.ndarray, head: LineHeader, trip: SparseReasons, tz: str
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
    well_formed = pc.match_substring_regex(texts, r"^[0-9]{12}$").to_numpy(zero_copy_only=False)
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
        lambda i: _where(pos[i], 0) + "timestamp '" + clip(text[i]) + "' is not a valid CCYYMMDDHHMM time",
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
            + clip(text[i])
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
            + clip(text[i])
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
