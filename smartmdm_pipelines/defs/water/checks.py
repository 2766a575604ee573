"""Warns the NRW team about new high-confidence loss events."""

import datetime as dt

import dagster as dg

from smartmdm_pipelines.defs.water.assets import READ_DAYS
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.loss_events import confident_events
from smartmdm_pipelines.services.nrw import day_window


@dg.asset_check(
    asset="loss_events",
    partitions_def=READ_DAYS,
    description=(
        "Loss events that started on these days with a confidence at or above the high-confidence threshold "
        "(0.8, nrw.default.high_confidence): warns and lists them (zone, start, rate, volume) for field investigation."
    ),
)
def new_high_confidence_loss_events(
    context: dg.AssetCheckExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.AssetCheckResult:
    keys = context.partition_key_range
    start, end = day_window(
        dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end), utility.config.utility.timezone
    )
    threshold = utility.config.nrw_config().default.high_confidence
    rows = confident_events(store.get_store(), start, end, threshold)
    return dg.AssetCheckResult(
        passed=rows.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "new_high_confidence_events": len(rows),
            "events": dg.MetadataValue.json(rows.head(20).astype(str).to_dict(orient="records")),
        },
    )
