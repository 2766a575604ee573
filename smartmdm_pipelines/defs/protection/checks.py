"""Warns the revenue-protection team about new high-score cases."""

import dagster as dg

from smartmdm_pipelines.defs.protection.assets import READ_DAYS
from smartmdm_pipelines.domain.protection.params import ProtectionParams
from smartmdm_pipelines.lib.resources import StoreResource


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
    rows = store.get_store().read_frame(
        "SELECT case_id, service_point_id, score, revenue_at_stake, indicators FROM protection_cases "
        "WHERE status = 'open' AND opened_as_of >= :a AND opened_as_of <= :b AND score >= :s "
        "ORDER BY score * coalesce(revenue_at_stake, 0) DESC",
        {"a": keys.start, "b": keys.end, "s": ProtectionParams().high_score},
    )
    return dg.AssetCheckResult(
        passed=rows.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "new_high_score_cases": len(rows),
            "cases": dg.MetadataValue.json(rows.head(20).astype(str).to_dict(orient="records")),
        },
    )
