"""Warns the revenue-protection team about new high-score cases."""

import dagster as dg

from smartmdm_pipelines.defs.protection.assets import READ_DAYS
from smartmdm_pipelines.domain.protection.params import ProtectionParams
from smartmdm_pipelines.lib.resources import StoreResource
from smartmdm_pipelines.services.protection import high_score_cases_opened


@dg.asset_check(
    asset="protection_cases",
    partitions_def=READ_DAYS,
    description=(
        "Cases opened or reopened by the evaluation of these days with a score at or above the high-score "
        "threshold (0.8) and still open: warns, and lists them with their revenue at stake."
    ),
)
def new_high_score_cases(context: dg.AssetCheckExecutionContext, store: StoreResource) -> dg.AssetCheckResult:
    keys = context.partition_key_range
    rows = high_score_cases_opened(store.get_store(), keys.start, keys.end, ProtectionParams().high_score)
    return dg.AssetCheckResult(
        passed=rows.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "new_high_score_cases": len(rows),
            "cases": dg.MetadataValue.json(rows.head(20).astype(str).to_dict(orient="records")),
        },
    )
