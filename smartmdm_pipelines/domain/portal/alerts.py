"""Customer usage alerts: the rule kinds, their conditions on a service point's hourly usage,
quiet hours and cool-downs. An alert is an *episode* (a condition that holds from one evaluation
to the next is the same alert), identified by its rule and an episode key, so evaluating the same
reads again, or after a restart, finds the same episode and notifies nobody twice."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = {
    "daily_usage_above": "a local day's usage above threshold (unit of the meter)",
    "period_usage_above": "the billing period's usage to date above threshold",
    "projected_bill_above": "the projected bill of the period above threshold (currency)",
    "continuous_flow": "usage in every one of the last `hours` hours (a leak)",
    "vacant_usage": "usage above threshold (default 0) on a premise with no account",
    "usage_vs_last_year": "the last 7 days' usage `percent` % above the same days last year",
}


@dataclass(frozen=True)
class Rule:
    rule_id: str
    service_point_id: str
    kind: str
    threshold: float | None = None
    hours: int | None = None
    percent: float | None = None
    quiet_start: int | None = None  # local hour quiet hours start (inclusive)
    quiet_end: int | None = None  # local hour they end (exclusive); may wrap midnight
    cooldown_hours: float = 24.0


@dataclass(frozen=True)
class Finding:
    """A condition that holds now: the episode it belongs to and what was measured."""

    episode_key: str
    value: float
    threshold: float
    detail: str


def alert_id(rule_id: str, episode_key: str) -> str:
    return hashlib.sha256(f"{rule_id}|{episode_key}".encode()).hexdigest()[:32]


def in_quiet_hours(rule: Rule, now: pd.Timestamp, tz: str) -> bool:
    if rule.quiet_start is None or rule.quiet_end is None or rule.quiet_start == rule.quiet_end:
        return False
    hour = now.tz_convert(tz).hour
    if rule.quiet_start < rule.quiet_end:
        return rule.quiet_start <= hour < rule.quiet_end
    return hour >= rule.quiet_start or hour < rule.quiet_end


def cooling_down(rule: Rule, last_notified: pd.Timestamp | None, now: pd.Timestamp) -> bool:
    return last_notified is not None and now - last_notified < pd.Timedelta(hours=rule.cooldown_hours)


def daily_above(rule: Rule, days: pd.Series) -> list[Finding]:
    """``days``: local date -> total. One episode per day over the threshold."""
    t = float(rule.threshold or 0.0)
    return [
        Finding(str(d), float(v), t, f"usage on {d} is {v:.3f}, above {t:g}")
        for d, v in days.items()
        if np.isfinite(v) and v > t
    ]


def continuous_flow(rule: Rule, hourly: pd.DataFrame, tz: str) -> list[Finding]:
    """``hourly``: ``start`` (UTC) and ``value`` of consecutive hours up to the latest read. The
    episode is the run of hours with flow that ends at the latest hour, keyed by its first hour."""
    n = int(rule.hours or 0)
    if n <= 0 or hourly.empty:
        return []
    h = hourly.dropna(subset=["value"]).sort_values("start")
    flow = h["value"].to_numpy(dtype="float64") > float(rule.threshold or 0.0)
    starts = pd.to_datetime(h["start"], utc=True).reset_index(drop=True)
    run = 0
    for i in range(len(flow) - 1, -1, -1):
        gap = i < len(flow) - 1 and starts[i + 1] - starts[i] != pd.Timedelta(hours=1)
        if not flow[i] or gap:
            break
        run += 1
    if run < n:
        return []
    first = starts[len(flow) - run]
    lowest = float(h["value"].to_numpy()[len(flow) - run :].min())
    local = first.tz_convert(tz).isoformat()
    return [
        Finding(
            first.isoformat(),
            float(run),
            float(n),
            f"usage in each of the {run} hours since {local} (lowest {lowest:.3f}/h): possible leak",
        )
    ]


def above(rule: Rule, key: str, value: float, what: str) -> list[Finding]:
    t = float(rule.threshold or 0.0)
    if value is None or not np.isfinite(value) or value <= t:
        return []
    return [Finding(key, float(value), t, f"{what} is {value:.2f}, above {t:g}")]


def vs_last_year(rule: Rule, key: str, current: float, baseline: float) -> list[Finding]:
    pct = float(rule.percent if rule.percent is not None else 25.0)
    if not baseline or baseline <= 0 or not np.isfinite(current):
        return []
    change = 100.0 * (current - baseline) / baseline
    if change <= pct:
        return []
    return [
        Finding(
            key,
            round(change, 2),
            pct,
            f"usage of the last 7 days {current:.3f} is {change:.1f}% above the same days last year ({baseline:.3f})",
        )
    ]


def week_key(day: dt.date) -> str:
    monday = day - dt.timedelta(days=day.weekday())
    return f"week-of-{monday.isoformat()}"
