"""Partition definitions shared by the defs/ modules."""

from __future__ import annotations

import datetime as dt
import re

import dagster as dg
import pandas as pd

from smartmdm_pipelines.config import default_config

HEADEND_FILES = dg.DynamicPartitionsDefinition(name="headend_files")
LEGACY_FILES = dg.DynamicPartitionsDefinition(name="legacy_files")

_UNSAFE = re.compile(r"[^A-Za-z0-9._#@+=-]")


def file_partition_key(name: str, sha256: str) -> str:
    """A head-end file's partition: its short hash and name, readable in the UI, unique per content."""
    return f"{sha256[:12]}-{_UNSAFE.sub('_', name)}"


def window_days(window: dg.TimeWindow) -> list[dt.date]:
    """The operating days of a daily partition window (a backfill range runs them in order)."""
    first = pd.Timestamp(window.start).date()
    return [first + dt.timedelta(days=k) for k in range((pd.Timestamp(window.end).date() - first).days)]


def read_days() -> dg.DailyPartitionsDefinition:
    """Operating days in the utility's time zone."""
    cfg = default_config()
    return dg.DailyPartitionsDefinition(
        start_date=cfg.utility.partitions_start.isoformat(), timezone=cfg.utility.timezone
    )


# Billing periods: one partition per billing cycle and period, keyed ``CYCLE|YYYY-MM-DD``
# (the period's first day); added as the CIS publishes its read calendar.
BILLING_PERIODS = dg.DynamicPartitionsDefinition(name="billing_periods")


def ensure_partitions(
    instance: dg.DagsterInstance, partitions: dg.DynamicPartitionsDefinition, keys
) -> list[str]:
    """Add the keys ``partitions`` does not have yet (in order, once each); returns those added."""
    known = set(instance.get_dynamic_partitions(partitions.name))
    new = list(dict.fromkeys(k for k in keys if k not in known))
    if new:
        instance.add_dynamic_partitions(partitions.name, new)
    return new
