"""Meter shards: a day's VEE split into independent work units by a stable hash of the meter id.

Every interval, exception and daily total belongs to one meter, so units over disjoint meter
sets write disjoint rows. The hash is pandas' SipHash with its fixed key: the same meter falls
in the same shard in every process, on every machine (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 ≤ index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a shard count is at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is outside 0..{self.count - 1}")

    @property
    def label(self) -> str:
        """``index/count``, e.g. ``0/4`` (lock names, logs, step keys)."""
        return f"{self.index}/{self.count}"


def shard_of(meter_ids: Sequence[str], count: int) -> np.ndarray:
    """The shard index (0 … count − 1) of each meter id."""
    if count < 1:
        raise ValueError(f"a shard count is at least 1, got {count}")
    ids = np.asarray([str(m) for m in meter_ids], dtype=object)
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    return (pd.util.hash_array(ids) % np.uint64(count)).astype(np.int64)


def meters_in(meter_ids: Sequence[str], shard: Shard) -> list[str]:
    """The distinct meter ids of ``meter_ids`` that fall in ``shard``, sorted."""
    ids = np.unique(np.asarray([str(m) for m in meter_ids], dtype=object))
    return ids[shard_of(ids, shard.count) == shard.index].tolist()
