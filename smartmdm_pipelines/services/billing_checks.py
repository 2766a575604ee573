"""Checks on a closed billing period, in front of the CIS export (each a query, no loops)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from smartmdm_pipelines.services.billing_close import LATEST_VERSIONS
from smartmdm_pipelines.store.store import Store

_LATEST = (
    f"SELECT d.* FROM billing_determinants d JOIN ({LATEST_VERSIONS}) l "
    "ON l.account_id = d.account_id AND l.service_point_id = d.service_point_id AND l.version = d.version "
    "WHERE d.cycle_id = :c AND d.period_start = :p"
)


def _params(cycle_id: str, period_start: str) -> dict:
    return {"c": cycle_id, "p": dt.date.fromisoformat(period_start)}


def latest_determinants(store: Store, cycle_id: str, period_start: str) -> pd.DataFrame:
    return store.read_frame(_LATEST, _params(cycle_id, period_start))


def service_points_without_determinants(store: Store, cycle_id: str, period_start: str) -> pd.DataFrame:
    """Active service points of the cycle with an account in the period but no determinants."""
    return store.read_frame(
        "SELECT DISTINCT h.service_point_id, h.rate_code FROM billing_cycles p "
        "JOIN service_point_history h ON h.billing_cycle = p.cycle_id AND h.status = 'active' "
        "AND h.valid_from <= p.period_end AND (h.valid_to IS NULL OR h.valid_to > p.period_start) "
        "JOIN accounts a ON a.service_point_id = h.service_point_id AND a.move_in <= p.period_end "
        "AND (a.move_out IS NULL OR a.move_out > p.period_start) "
        "WHERE p.cycle_id = :c AND p.period_start = :p AND NOT EXISTS ("
        " SELECT 1 FROM billing_determinants d WHERE d.cycle_id = p.cycle_id AND d.period_start = p.period_start"
        " AND d.service_point_id = h.service_point_id) ORDER BY h.service_point_id",
        _params(cycle_id, period_start),
    )


def tou_mismatches(latest: pd.DataFrame, tolerance: float = 1e-6) -> pd.DataFrame:
    """Segments whose TOU buckets do not add up to the total (interval-metered energy)."""
    energy = latest[latest["determinant"].isin(["kwh_delivered", "volume"]) & latest["source"].eq("interval")]
    key = ["account_id", "service_point_id", "segment_start", "determinant"]
    total = energy[energy["tou_period"].isna()].groupby(key)["value"].sum()
    buckets = energy[energy["tou_period"].notna()].groupby(key)["value"].sum()
    both = pd.concat({"total": total, "buckets": buckets}, axis=1).dropna()
    bad = (both["total"] - both["buckets"]).abs() > tolerance * both["total"].abs().clip(lower=1.0)
    return both[bad].reset_index()


def negative_delivered(latest: pd.DataFrame) -> pd.DataFrame:
    sel = latest["determinant"].isin(["kwh_delivered", "volume"]) & (latest["value"] < 0)
    return latest.loc[sel, ["account_id", "service_point_id", "determinant", "tou_period", "value"]]


def over_estimated(latest: pd.DataFrame, limit: float) -> pd.DataFrame:
    est = latest[latest["determinant"].eq("share_estimated")]
    return est.loc[est["value"] > limit, ["account_id", "service_point_id", "value"]]


def latest_close(store: Store, cycle_id: str, period_start: str) -> dict | None:
    """The period's latest close that went through (not a refusal): outcome, who, why, forced,
    completeness; None when it was never closed."""
    rows = store.read_frame(
        "SELECT outcome, closed_by, reason, forced, completeness, closed_at FROM billing_closes "
        "WHERE cycle_id = :c AND period_start = :p AND outcome <> 'refused' ORDER BY closed_at DESC LIMIT 1",
        _params(cycle_id, period_start),
    )
    if rows.empty:
        return None
    row = rows.iloc[0].to_dict()
    row["forced"] = bool(row["forced"])
    row["completeness"] = float(row["completeness"]) if pd.notna(row["completeness"]) else 1.0
    return row
