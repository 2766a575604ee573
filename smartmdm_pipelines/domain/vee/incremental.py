"""Real-time VEE: which intervals of a validated meter-day a pass must compare and write.

The real-time path validates the meter-days a delivery touched with the daily engine
(``validate_day`` with ``DayInputs.through_last_read``: each series up to its latest read, no day
rules) and then writes versions only where the result can differ from what is stored, so the
version comparison and the writes cost about the new reads, not the day:

- the intervals whose winning read came with the new deliveries;
- the intervals the first pass does not find clean (suspect, missing before the series' latest
  read, or with an informational flag): a new read can extend a zero or flat run backwards,
  raise the day's third-highest value under an earlier spike, or turn an awaited interval into
  a gap;
- the intervals whose stored validation version was suspect (``stored_flagged``): a new read
  can clear an earlier flag (a spike the day's later values explain). A stored gap needs no
  entry: the read that fills it is new.

Every other interval is received, unchanged since the pass that wrote it, and was and is clean:
its stored version is already the one the daily run computes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.keys import Catalog, epoch


def _keys(sid: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(sid, dtype="int64") * (1 << 34) + np.asarray(t, dtype="int64")


def rows_to_write(
    frame: pd.DataFrame, new_files: Iterable[int], stored_flagged: pd.DataFrame, catalog: Catalog
) -> np.ndarray:
    """Mask over ``frame`` (validated, with ``sid``, ``t``, ``file_id``, ``status``,
    ``failed_rules``): the rows a real-time pass compares with the store and may version.
    ``stored_flagged``: meter_id, channel, interval_end of stored suspect validation versions."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    new = np.isin(frame["file_id"].to_numpy(dtype="float64"), np.asarray(list(new_files), dtype="float64"))
    not_clean = frame["status"].astype(str).ne("valid").to_numpy() | frame["failed_rules"].notna().to_numpy()
    mask = new | not_clean
    if len(stored_flagged):
        sid = catalog.sid(stored_flagged["meter_id"], stored_flagged["channel"])
        known = sid >= 0
        ends = epoch(pd.to_datetime(stored_flagged["interval_end"], utc=True))
        stored = _keys(sid[known], ends[known])
        mask |= np.isin(_keys(frame["sid"].to_numpy(), frame["t"].to_numpy()), stored)
    return mask
