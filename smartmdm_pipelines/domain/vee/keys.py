"""Integer keys for the hot paths: a series id per (meter, channel) and epoch seconds per instant.

String keys (meter ids) are looked up once with Arrow's hash kernels; every later sort, join,
group and lookup works on integers. Series ids follow the sorted meter catalogue and the sorted
channel codes, so ordering by (sid, t) is ordering by (meter_id, channel, interval_end).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.domain.readings import CHANNELS

CHANNEL_ORDER = sorted(CHANNELS)
N_CHANNELS = len(CHANNEL_ORDER)
_CHANNEL_SET = pa.array(CHANNEL_ORDER)
_EPOCH = pd.Timestamp(0, tz="UTC")


class Catalog:
    """The meters a day knows about; series ids are meter position × channels + channel position."""

    def __init__(self, *meter_columns: pd.Series) -> None:
        parts = [_strings(c) for c in meter_columns if len(c)]
        values = pa.chunked_array([c for part in parts for c in part.chunks], pa.string())
        self.meters = pc.unique(values).sort() if len(values) else pa.array([], pa.string())

    @property
    def size(self) -> int:
        return len(self.meters) * N_CHANNELS

    def meter_codes(self, meter_id: pd.Series) -> np.ndarray:
        return _index_in(meter_id, self.meters)

    def sid(self, meter_id: pd.Series, channel: pd.Series) -> np.ndarray:
        """int64 series ids; -1 for unknown meters or channels."""
        m = self.meter_codes(meter_id)
        c = _index_in(channel, _CHANNEL_SET)
        sid = m * N_CHANNELS + c
        return np.where(np.isnan(sid), -1, sid).astype("int64")

    def meter_of(self, sid: np.ndarray) -> np.ndarray:
        return np.asarray(self.meters.to_numpy(zero_copy_only=False), dtype=object)[sid // N_CHANNELS]

    @staticmethod
    def channel_of(sid: np.ndarray) -> np.ndarray:
        return np.asarray(CHANNEL_ORDER, dtype=object)[sid % N_CHANNELS]


def _strings(values) -> pa.ChunkedArray:
    """A string column as an Arrow chunked array: zero-copy for Arrow-backed columns, decoded for
    categoricals, converted otherwise."""
    if isinstance(values, pa.ChunkedArray):
        return values.cast(pa.string())
    if isinstance(values, pa.Array):
        return pa.chunked_array([values.cast(pa.string())])
    if isinstance(values, pd.Series | pd.Index):
        values = values.array
    if isinstance(values, pd.Categorical):
        cats = _strings(pd.Index(values.categories))
        codes = values.codes
        return pa.chunked_array([pc.take(cats, pa.array(codes, mask=codes < 0))])
    if hasattr(values, "__arrow_array__") and isinstance(getattr(values, "dtype", None), pd.StringDtype):
        arr = values.__arrow_array__()
        arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
        return arr.cast(pa.string())
    return pa.chunked_array([pa.array(np.asarray(values, dtype=object), pa.string(), from_pandas=True)])


def _index_in(values, value_set: pa.Array) -> np.ndarray:
    """Position of each value in ``value_set`` as float64 (NaN where absent or null); a categorical
    is looked up once per category."""
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.CategoricalDtype):
        cats = _index_in(pd.Index(values.cat.categories), value_set)
        codes = np.asarray(values.cat.codes)
        out = np.full(len(codes), np.nan)
        ok = codes >= 0
        out[ok] = cats[codes[ok]]
        return out
    codes = pc.index_in(_strings(values), value_set=value_set).cast(pa.float64())
    return pc.fill_null(codes, np.nan).to_numpy()


def epoch(instants: pd.Series) -> np.ndarray:
    return ((instants - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")


def lookup(keys: np.ndarray, table_keys: np.ndarray, table_values: np.ndarray, fill=np.nan) -> np.ndarray:
    """Vectorised dictionary lookup on integer keys (table keys unique)."""
    out = np.full(
        len(keys), fill, dtype=np.result_type(np.asarray(table_values).dtype, np.asarray(fill).dtype)
    )
    if len(table_keys) == 0 or len(keys) == 0:
        return out
    table_keys = np.asarray(table_keys)
    keys = np.asarray(keys)
    low, high = int(table_keys.min()), int(table_keys.max())
    if low >= 0 and high < max(4 * len(keys), 1 << 20):  # dense ids (meter codes, series ids): index directly
        dense = np.full(high + 1, fill, dtype=out.dtype)
        dense[table_keys] = table_values
        inside = (keys >= 0) & (keys <= high)
        out[inside] = dense[keys[inside]]
        return out
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = np.asarray(table_keys)[order]
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.clip(pos, 0, len(sorted_keys) - 1)
    hit = sorted_keys[pos] == keys
    out[hit] = np.asarray(table_values)[order][pos[hit]]
    return out


def group_bounds(sorted_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique ids, start offsets) of a sorted id array."""
    if len(sorted_ids) == 0:
        return sorted_ids, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return sorted_ids[starts], starts
