"""Vectorised helpers over series sorted by (meter, channel, interval_end)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_starts(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """True where a new (meter, channel) series begins."""
    start = np.zeros(len(frame), dtype=bool)
    if len(frame):
        start[0] = True
        for key in keys:
            col = frame[key].to_numpy()
            start[1:] |= col[1:] != col[:-1]
    return start


def run_lengths(condition: np.ndarray, new_group: np.ndarray) -> np.ndarray:
    """For each row, the length of the run of equal ``condition`` values it belongs to (within a series)."""
    n = len(condition)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    boundary = new_group.copy()
    boundary[1:] |= condition[1:] != condition[:-1]
    run_id = np.cumsum(boundary)
    sizes = np.bincount(run_id)
    return sizes[run_id]


def equal_value_runs(values: np.ndarray, new_group: np.ndarray) -> np.ndarray:
    """Length of the run of identical consecutive values each row belongs to (NaN never equal)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    boundary = new_group.copy()
    same = np.zeros(n, dtype=bool)
    same[1:] = values[1:] == values[:-1]
    boundary |= ~same
    run_id = np.cumsum(boundary)
    return np.bincount(run_id)[run_id]
