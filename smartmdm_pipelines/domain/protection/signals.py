"""The signal frame every indicator returns, and its builder.

A signal: one indicator on one service point, with when it started (and ended), its strength
on its own (0..1), the unbilled volume it implies in the channel's unit, and the evidence an
analyst reads (numbers and a series excerpt).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SIGNAL_COLUMNS = [
    "service_point_id",
    "meter_id",
    "indicator",
    "start_at",
    "end_at",
    "strength",
    "volume",
    "unit",
    "evidence",
]


def empty_signals() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SIGNAL_COLUMNS})
    frame["start_at"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["end_at"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["strength"] = pd.Series(dtype="float64")
    frame["volume"] = pd.Series(dtype="float64")
    return frame


def signal_frame(
    indicator: str,
    service_point_id: Sequence,
    meter_id: Sequence,
    start_at: Sequence,
    end_at: Sequence,
    strength: Sequence | float,
    volume: Sequence | float,
    unit: Sequence | str,
    evidence: Sequence[dict],
) -> pd.DataFrame:
    """Signals of one indicator from parallel arrays (one element per service point)."""
    n = len(service_point_id)
    if n == 0:
        return empty_signals()
    return pd.DataFrame(
        {
            "service_point_id": list(service_point_id),
            "meter_id": list(meter_id),
            "indicator": indicator,
            "start_at": pd.DatetimeIndex(pd.to_datetime(list(start_at), utc=True)),
            "end_at": pd.DatetimeIndex(pd.to_datetime(list(end_at), utc=True)),
            "strength": np.broadcast_to(np.asarray(strength, dtype="float64"), n).copy(),
            "volume": np.broadcast_to(np.asarray(volume, dtype="float64"), n).copy(),
            "unit": list(np.broadcast_to(np.asarray(unit, dtype=object), n)),
            "evidence": list(evidence),
        }
    )


def rounded(value: float, digits: int = 3) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)
