"""A block: one channel of a group of meters that share segment, time zone and interval grid.

It holds the (meters x intervals) matrices of the three layers of the simulation:

- ``clean``: the consumption without any fault (the ground-truth values);
- ``metered``: what the meter really measured, after *physical* faults (outage, tamper,
  leak, ...); registers and zone balances are computed from it;
- the *delivered* data: ``value`` (NaN = empty value), ``count`` (rows per cell: 0 absent,
  1, 2 duplicated), ``quality`` codes and interval-end ``shifts`` (clock drift), after
  data-path faults.

Layers share memory until a fault writes to them (copy on first write), so a block without
faults costs one matrix. ``day_rows`` flattens one local day into file rows, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import catalog as c
from .rows import Rows
from .time_grid import TimeGrid


@dataclass(eq=False)
class Block:
    segment: c.Segment
    channel: int
    grid: TimeGrid
    meters: np.ndarray  # int32 meter indices, ascending
    units: np.ndarray  # int8 unit code per meter
    clean: np.ndarray  # (m, n), rounded to 3 decimals
    first_col: np.ndarray  # first column inside the meter's install period
    last_col: np.ndarray  # last column inside it (inclusive; -1 if none)
    truth: bool = True  # part of the clean ground truth (False for channels made by a fault)
    metered: np.ndarray | None = None
    value: np.ndarray | None = None
    count: np.ndarray | None = None
    quality: np.ndarray | None = None
    shifts: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row, c0, c1, seconds)

    def __post_init__(self) -> None:
        if self.metered is None:
            self.metered = self.clean
        n = self.grid.n
        self.all_active = bool(np.all(self.first_col <= 0) and np.all(self.last_col >= n - 1))

    # --- copy on write -------------------------------------------------------------------------
    def active_mask(self) -> np.ndarray:
        cols = np.arange(self.grid.n)
        return (cols[None, :] >= self.first_col[:, None]) & (cols[None, :] <= self.last_col[:, None])

    def own_metered(self) -> np.ndarray:
        if self.metered is self.clean:
            self.metered = self.clean.copy()
        return self.metered

    def own_value(self) -> np.ndarray:
        if self.value is None:
            self.value = self.metered.copy()
        return self.value

    def own_count(self) -> np.ndarray:
        if self.count is None:
            self.count = (
                np.ones(self.clean.shape, dtype=np.int8)
                if self.all_active
                else self.active_mask().astype(np.int8)
            )
        return self.count

    def own_quality(self) -> np.ndarray:
        if self.quality is None:
            self.quality = np.zeros(self.clean.shape, dtype=np.int8)
        return self.quality

    def delivered(self) -> np.ndarray:
        return self.metered if self.value is None else self.value

    def metered_active(self) -> np.ndarray:
        """Metered values with cells outside the install period set to 0."""
        if self.all_active:
            return self.metered
        return np.where(self.active_mask(), self.metered, 0.0)

    # --- rows ----------------------------------------------------------------------------------
    def _rows(self, values: np.ndarray, c0: int, c1: int, counts: np.ndarray | None, quality: bool) -> Rows:
        k = c1 - c0
        m = len(self.meters)
        ends = self.grid.ends[c0:c1]
        sub = values[:, c0:c1]
        if counts is None:
            meter = np.repeat(self.meters, k)
            t = np.tile(ends, m)
            value = sub.ravel()
            unit = np.repeat(self.units, k)
            q = self.quality[:, c0:c1].ravel() if quality and self.quality is not None else None
            cells = None
        else:
            per_cell = counts[:, c0:c1].ravel()
            cells = np.repeat(np.arange(m * k, dtype=np.int64), per_cell)
            r = cells // k
            col = cells - r * k
            meter = self.meters[r]
            t = ends[col]
            value = sub.ravel()[cells]
            unit = self.units[r]
            q = self.quality[:, c0:c1].ravel()[cells] if quality and self.quality is not None else None
        n = len(meter)
        if q is None:
            q = np.zeros(n, dtype=np.int8)
        rows = Rows(
            meter=meter.astype(np.int32, copy=False),
            channel=np.full(n, self.channel, dtype=np.int8),
            t=t.astype(np.int64, copy=True),
            step=np.full(n, self.grid.step, dtype=np.int32),
            value=value,
            unit=unit.astype(np.int8, copy=False),
            quality=q,
        )
        if quality:
            for row, s0, s1, seconds in self.shifts:
                lo_col, hi_col = max(s0, c0), min(s1, c1 - 1)
                if lo_col > hi_col:
                    continue
                first, last = row * k + lo_col - c0, row * k + hi_col - c0
                if cells is not None:
                    first, last = np.searchsorted(cells, [first, last + 1])
                    last -= 1
                rows.t[first : last + 1] += seconds
        return rows

    def day_rows(self, day: int) -> Rows | None:
        """Delivered rows of local day ``day`` (ordered by meter, then instant)."""
        return self.rows_between(int(self.grid.day_cols[day]), int(self.grid.day_cols[day + 1]))

    def rows_between(self, c0: int, c1: int) -> Rows | None:
        """Delivered rows of columns ``c0`` .. ``c1 - 1`` (ordered by meter, then instant)."""
        if c1 <= c0 or len(self.meters) == 0:
            return None
        counts = self.count if self.count is not None else (None if self.all_active else self.own_count())
        return self._rows(self.delivered(), c0, c1, counts, quality=True)

    def truth_rows(self) -> Rows | None:
        """Clean rows of the whole window inside the install periods."""
        if not self.truth or len(self.meters) == 0:
            return None
        counts = None if self.all_active else self.active_mask().astype(np.int8)
        return self._rows(self.clean, 0, self.grid.n, counts, quality=False)
