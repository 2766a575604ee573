"""One billing period's close steps around the versioning: its operating days, the forward
estimate before closing (project the intervals not received yet, then rebuild the dbt
determinants on them), and the batch export of its determinants to the CIS."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartmdm_pipelines.services.billing_close import period_end
from smartmdm_pipelines.services.cis_export import ExportResult, IntervalScope, export_determinants
from smartmdm_pipelines.services.dbt_runner import run_dbt
from smartmdm_pipelines.services.forward_estimate import ForwardSummary, forward_estimate
from smartmdm_pipelines.store.store import Store


def period_days(store: Store, cycle_id: str, period_start: str) -> list[str]:
    """The operating days (ISO dates) of a billing period, first to last."""
    end = period_end(store, cycle_id, pd.Timestamp(period_start).date())
    return [d.date().isoformat() for d in pd.date_range(period_start, end)]


def period_through(store: Store, cycle_id: str, period_start: str, timezone: str) -> pd.Timestamp:
    """The end of the period's last local day in the utility's zone, in UTC."""
    end = period_end(store, cycle_id, pd.Timestamp(period_start).date())
    return (pd.Timestamp(end) + pd.Timedelta(days=1)).tz_localize(timezone).tz_convert("UTC")


def forward_estimate_period(
    store: Store, cycle_id: str, period_start: str, timezone: str, *, created_by: str, reason: str
) -> tuple[pd.Timestamp, ForwardSummary]:
    """Forward-estimate every series through the period's end, then rebuild the period's dbt
    determinants on the projected intervals. Returns the instant estimated through and the summary."""
    through = period_through(store, cycle_id, period_start, timezone)
    summary = forward_estimate(store, None, through, created_by=created_by, reason=reason)
    run_dbt(store, cycle_id, period_start)
    return through, summary


def export_period(store: Store, cycle_id: str, period_start: str, export_dir: Path) -> ExportResult:
    """Export the period's determinant versions not sent yet as one timestamped batch, with the
    interval versions of its meters no batch carried yet (read from the real-time outbox)."""
    start = pd.Timestamp(period_start).date()
    rows = store.read_frame(
        "SELECT * FROM billing_determinants WHERE cycle_id = :c AND period_start = :p",
        {"c": cycle_id, "p": start},
    )
    scope = IntervalScope(cycle_id, start, period_end(store, cycle_id, start))
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    return export_determinants(
        store, rows, export_dir, f"determinants_{cycle_id}_{period_start}_{stamp}", intervals=scope
    )
