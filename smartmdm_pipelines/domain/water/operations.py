"""Loss events explained by known operational events (flushing, tank filling, valve work).

An event whose start falls inside an operation window of its zone (or of every zone) is not a
loss: the water left on purpose. Such events are set aside, with the operation that explains them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from smartmdm_pipelines.domain.water.params import Operation


def split_explained(
    events: pd.DataFrame, operations: Sequence[Operation]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, explained): ``explained`` holds the events starting inside an operation of their
    zone, with its ``reason``; ``kept`` the rest. Vectorised over events, one pass per operation."""
    if events.empty or not operations:
        return events, events.iloc[0:0].assign(reason=pd.Series(dtype="object"))
    starts = pd.to_datetime(events["start_at"], utc=True)
    reason = pd.Series(None, index=events.index, dtype="object")
    for op in operations:
        inside = (starts >= pd.Timestamp(op.start)) & (starts <= pd.Timestamp(op.end))
        if op.zone_id is not None:
            inside &= events["zone_id"].astype(str) == op.zone_id
        reason = reason.where(~(inside & reason.isna()), op.reason)
    explained = reason.notna()
    return events[~explained], events[explained].assign(reason=reason[explained])
