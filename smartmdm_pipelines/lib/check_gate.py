"""Blocking checks of a daily upstream as a gate for a run on another partitioning.

A blocking check stops what runs after it in the same run. A billing period is closed in its own
run (``billing_periods`` partitions), long after its operating days were validated (daily
partitions), so the close asks the instance for the latest evaluation of the check on each day of
the period: a day whose latest evaluation failed holds the period back.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

INTERVAL_ESTIMATES_GX = dg.AssetCheckKey(dg.AssetKey("interval_estimates"), "interval_estimates_gx")


def failed_partitions(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey, partition_keys: Sequence[str]
) -> list[str]:
    """The partitions among ``partition_keys`` whose latest evaluation of ``check`` failed (days
    never checked do not count: nothing was validated there)."""
    infos = instance.event_log_storage.get_asset_check_partition_info(
        [check], partition_keys=list(partition_keys)
    )
    return sorted(
        i.partition_key
        for i in infos
        if i.partition_key is not None and i.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED
    )
