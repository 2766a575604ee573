"""What VEE produced, in numbers, for the Dagster assets and checks: one operating day's figures
(metadata and log line), the open exception queue, and the current intervals with the derived
columns the blocking Great Expectations suite checks. Computed here so defs/ only wraps them
(plain values, dicts and lists; the caller turns dicts and lists into JSON metadata)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.config import MAX_PER_HOUR
from smartmdm_pipelines.services.exceptions import open_queue, queue_summary
from smartmdm_pipelines.services.vee import VeeRun
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

QUEUE_ROWS = 100  # exceptions listed in a metadata table (the counts cover all of them)
FILLED = ["valid", "estimated", "edited", "verified"]  # statuses that count as data after estimation


@dataclass(frozen=True)
class DayReport:
    """One day's validated_intervals and interval_estimates figures and its open exceptions."""

    day: dt.date
    validated: dict
    estimates: dict
    queue_rows: pd.DataFrame  # the day's open exceptions, worst first (at most QUEUE_ROWS)
    summary: str  # one log line


def day_report(store: Store, day: dt.date, run: VeeRun) -> DayReport:
    """That day's numbers and that day's open exceptions (oldest = the read day of the oldest open one)."""
    s = run.estimation.stats
    n = max(s["expected_intervals"], 1)
    queue = queue_summary(store, day, day)
    rows, _ = open_queue(store, day, day, limit=QUEUE_ROWS)
    validated = {
        "dagster/row_count": s["expected_intervals"],
        "received_intervals": s["received_intervals"],
        "first_pass_valid_share": round(s["first_pass_valid_share"], 5),
        "suspect_intervals": s["suspect_intervals"],
        "missing_intervals": s["missing_intervals"],
        "awaiting_intervals": s["awaiting_intervals"],
        "exceptions_by_rule": s["exceptions_by_rule"],
        "new_versions": run.validation_versions,
        "open_exceptions": queue["open"],
        "oldest_open_exception": queue["oldest_open"] or "none",
        "open_exceptions_by_severity": queue["open_by_severity"],
        "open_exceptions_by_rule": queue["open_by_rule"],
    }
    estimates = {
        "dagster/row_count": s["estimated_intervals"],
        "estimated_share": round(s["estimated_intervals"] / n, 5),
        "awaiting_intervals": s["awaiting_intervals"],
        "completeness": round(s["completeness"], 5),
        "estimated_by_method": s["estimated_by_method"],
        "new_versions": run.estimation_versions,
    }
    summary = (
        f"{day}: {s['expected_intervals']:,} intervals, {s['suspect_intervals']:,} suspect, "
        f"{s['missing_intervals']:,} missing, {s['awaiting_intervals']:,} awaiting (re-collection window), "
        f"{s['estimated_intervals']:,} estimated; "
        f"{run.validation_versions:,}+{run.estimation_versions:,} new versions"
    )
    return DayReport(day, validated, estimates, rows, summary)


def queue_report(store: Store) -> tuple[pd.DataFrame, dict]:
    """The whole open queue: its first QUEUE_ROWS rows (worst first) and its figures."""
    rows, total = open_queue(store, limit=QUEUE_ROWS)
    summary = queue_summary(store)
    return rows, {
        "dagster/row_count": total,
        "open_exceptions": total,
        "listed": len(rows),
        "oldest_open_exception": summary["oldest_open"] or "none",
        "open_exceptions_by_severity": summary["open_by_severity"],
        "open_exceptions_by_rule": summary["open_by_rule"],
    }


def current_intervals(store: Store, first: str, last: str) -> pd.DataFrame:
    """The current intervals of the operating days ``first..last`` that the blocking GX suite checks."""
    return store.read_frame(
        current_intervals_sql(
            "read_day >= :a AND read_day <= :b",
            "meter_id, channel, interval_end, interval_seconds, value, unit, status, espi_quality, "
            "failed_rules, read_day",
        ),
        {"a": first, "b": last},
    )


def suite_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The intervals that are due (not awaited inside the re-collection window) with the derived
    columns the suite checks; and how many were awaited."""
    awaiting = frame["failed_rules"].fillna("").str.contains("awaiting_data").to_numpy()
    frame = frame[~awaiting].reset_index(drop=True)
    hours = frame["interval_seconds"].to_numpy(dtype="float64") / 3600.0
    upper = frame["unit"].map(MAX_PER_HOUR).fillna(1000.0).to_numpy() * hours
    value = frame["value"].to_numpy(dtype="float64")
    can_be_negative = frame["channel"].eq("kwh_net").to_numpy()
    within = np.isnan(value) | ((value <= upper) & ((value >= 0) | can_be_negative))
    frame = frame.assign(
        within_bounds=within,
        filled_value=np.where(frame["status"].isin(FILLED).to_numpy(), value, np.nan),
        espi_quality=frame["espi_quality"].astype("float64"),
    )
    return frame.drop(columns=["read_day"]), int(awaiting.sum())


def open_errors_by_rule(store: Store, first: str, last: str) -> dict[str, int]:
    """Open error-severity exceptions of the operating days ``first..last``, per rule."""
    rows = store.read_frame(
        "SELECT rule, count(*) AS n FROM vee_exceptions WHERE read_day >= :a AND read_day <= :b "
        "AND status = 'open' AND severity = 'error' GROUP BY rule",
        {"a": first, "b": last},
    )
    return dict(zip(rows["rule"], rows["n"].astype(int).tolist(), strict=True))
