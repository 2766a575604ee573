"""Which billing periods are due for closing: read date plus the grace period has passed,
and the period has not been closed yet (a refusal does not count as closed)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from smartmdm_pipelines.store.store import Store


def periods_due(store: Store, today: dt.date, grace_days: int) -> pd.DataFrame:
    return store.read_frame(
        "SELECT c.cycle_id, c.period_start, c.period_end, c.read_date FROM billing_cycles c "
        "WHERE c.read_date <= :cutoff AND NOT EXISTS (SELECT 1 FROM billing_closes b "
        " WHERE b.cycle_id = c.cycle_id AND b.period_start = c.period_start "
        " AND b.outcome IN ('closed', 'corrected', 'unchanged')) ORDER BY c.read_date, c.cycle_id",
        {"cutoff": today - dt.timedelta(days=grace_days)},
    )


def all_periods(store: Store) -> pd.DataFrame:
    return store.read_frame(
        "SELECT cycle_id, period_start FROM billing_cycles ORDER BY period_start, cycle_id"
    )
