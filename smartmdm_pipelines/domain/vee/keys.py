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
        values = pa.chunked_array(
            [pa.array(np.asarray(c, dtype=object), pa.string()) for c in meter_columns if len(c)]
        )
        self.meters = pc.unique(values).sort() if len(values) else pa.array([], pa.string())

    @property
    def size(self) -> int:
        return len(self.meters) * N_CHANNELS

    def meter_codes(self, meter_id: pd.Series) -> np.ndarray:
        codes = pc.index_in(pa.array(np.asarray(meter_id, dtype=object), pa.string()), value_set=self.meters)
        return codes.to_numpy(zero_copy_only=False).astype("float64")

    def sid(self, meter_id: pd.Series, channel: pd.Series) -> np.ndarray:
        """int64 series ids; -1 for unknown meters or channels."""
        m = self.meter_codes(meter_id)
        c = pc.index_in(pa.array(np.asarray(channel, dtype=object), pa.string()), value_set=_CHANNEL_SET)
        c = c.to_numpy(zero_copy_only=False).astype("float64")
        sid = m * N_CHANNELS + c
        return np.where(np.isnan(sid), -1, sid).astype("int64")

    def meter_of(self, sid: np.ndarray) -> np.ndarray:
        return np.asarray(self.meters.to_numpy(zero_copy_only=False), dtype=object)[sid // N_CHANNELS]

    @staticmethod
    def channel_of(sid: np.ndarray) -> np.ndarray:
        return np.asarray(CHANNEL_ORDER, dtype=object)[sid % N_CHANNELS]


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
