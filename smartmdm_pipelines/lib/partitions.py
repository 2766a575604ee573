"""Partition definitions shared by the defs/ modules."""

from __future__ import annotations

import re

import dagster as dg

from smartmdm_pipelines.config import default_config

HEADEND_FILES = dg.DynamicPartitionsDefinition(name="headend_files")
LEGACY_FILES = dg.DynamicPartitionsDefinition(name="legacy_files")

_UNSAFE = re.compile(r"[^A-Za-z0-9._#@+=-]")


def file_partition_key(name: str, sha256: str) -> str:
    """A head-end file's partition: its short hash and name, readable in the UI, unique per content."""
    return f"{sha256[:12]}-{_UNSAFE.sub('_', name)}"


def read_days() -> dg.DailyPartitionsDefinition:
    """Operating days in the utility's time zone."""
    cfg = default_config()
    return dg.DailyPartitionsDefinition(
        start_date=cfg.utility.partitions_start.isoformat(), timezone=cfg.utility.timezone
    )


# Billing periods: one partition per billing cycle and period, keyed ``CYCLE|YYYY-MM-DD``
# (the period's first day); added as the CIS publishes its read calendar.
BILLING_PERIODS = dg.DynamicPartitionsDefinition(name="billing_periods")
