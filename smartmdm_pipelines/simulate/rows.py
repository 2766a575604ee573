"""Rows as parallel numpy arrays (codes, not strings) and their conversion to canonical Arrow tables.

A file's rows are ordered by (meter index, channel, instant). Blocks of rows arrive per segment
and channel, each already ordered by (meter, instant); a stable sort on meter * 8 + channel
merges them into file order without touching the instant order, so the result is the same
whichever chunk a meter was generated in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import catalog as c

_TS = pa.timestamp("s", tz="UTC")
_CHANNELS = pa.array(c.CHANNELS)
_UNITS = pa.array(c.UNITS)
_QUALITIES = pa.array(c.QUALITIES)
_EVENT_TYPES = pa.array(c.EVENT_TYPES)
_EVENT_CODES = pa.array([c.EVENT_CODES[t] for t in c.EVENT_TYPES])


@dataclass
class Rows:
    """Interval or register rows: one entry per row in every array."""

    meter: np.ndarray  # int32 meter index
    channel: np.ndarray  # int8 channel code
    t: np.ndarray  # int64 epoch seconds (interval end or read instant)
    step: np.ndarray  # int32 interval seconds (0 for registers)
    value: np.ndarray  # float64, NaN = empty
    unit: np.ndarray  # int8 unit code
    quality: np.ndarray  # int8 quality code

    def __len__(self) -> int:
        return len(self.meter)

    def take(self, index: np.ndarray) -> Rows:
        return Rows(*(getattr(self, f)[index] for f in _FIELDS))


_FIELDS = ("meter", "channel", "t", "step", "value", "unit", "quality")


def concat_sorted(parts: list[Rows], by_time: bool = False) -> Rows | None:
    """Concatenate and put in file order (meter, channel[, instant]); None if empty."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    rows = (
        parts[0]
        if len(parts) == 1
        else Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
    )
    key = rows.meter.astype(np.int64) * 8 + rows.channel
    if by_time:
        order = np.lexsort((rows.t, key))
    else:
        if len(key) < 2 or bool(np.all(key[1:] >= key[:-1])):
            return rows  # already in order (e.g. one block, or blocks of consecutive meters)
        order = np.argsort(key, kind="stable")
    return rows.take(order)


def meter_dictionary(meter: np.ndarray, meter_ids: np.ndarray) -> pa.DictionaryArray:
    """Dictionary array of meter ids for rows ordered by meter (a small per-table dictionary)."""
    if len(meter) == 0:
        return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string()))
    change = np.empty(len(meter), dtype=bool)
    change[0] = True
    np.not_equal(meter[1:], meter[:-1], out=change[1:])
    if np.all(meter[1:] >= meter[:-1]):
        codes = np.cumsum(change, dtype=np.int32) - 1
        uniques = meter[change]
    else:
        uniques, codes = np.unique(meter, return_inverse=True)
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(meter_ids[uniques]))


def _codes(values: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32)), dictionary)


def interval_table(rows: Rows, meter_ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "meter_id": meter_dictionary(rows.meter, meter_ids),
            "channel": _codes(rows.channel, _CHANNELS),
            "interval_end": pa.array(rows.t, _TS),
            "interval_seconds": pa.array(rows.step.astype(np.int32)),
            "value": pa.array(rows.value, pa.float64(), from_pandas=True),
            "unit": _codes(rows.unit, _UNITS),
            "quality": _codes(rows.quality, _QUALITIES),
        }
    )


def register_table(rows: Rows, meter_ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "meter_id": meter_dictionary(rows.meter, meter_ids),
            "channel": _codes(rows.channel, _CHANNELS),
            "read_at": pa.array(rows.t, _TS),
            "value": pa.array(rows.value, pa.float64(), from_pandas=True),
            "unit": _codes(rows.unit, _UNITS),
            "quality": _codes(rows.quality, _QUALITIES),
        }
    )


def event_table(meter: np.ndarray, t: np.ndarray, event_type: np.ndarray, meter_ids: np.ndarray) -> pa.Table:
    """Events ordered by (meter, instant, type)."""
    order = np.lexsort((event_type, t, meter))
    meter, t, event_type = meter[order], t[order], event_type[order]
    return pa.table(
        {
            "meter_id": meter_dictionary(meter, meter_ids),
            "event_at": pa.array(t.astype(np.int64), _TS),
            "event_type": _codes(event_type, _EVENT_TYPES),
            "code": _codes(event_type, _EVENT_CODES),
        }
    )


def truth_table(rows: Rows, meter_ids: np.ndarray) -> pa.Table:
    """Clean values for ground_truth/truth_intervals.parquet (plain strings, not dictionaries)."""
    return pa.table(
        {
            "meter_id": meter_dictionary(rows.meter, meter_ids).cast(pa.string()),
            "channel": _codes(rows.channel, _CHANNELS).cast(pa.string()),
            "interval_end": pa.array(rows.t, _TS),
            "interval_seconds": pa.array(rows.step.astype(np.int32)),
            "value": pa.array(rows.value, pa.float64()),
            "unit": _codes(rows.unit, _UNITS).cast(pa.string()),
        }
    )
