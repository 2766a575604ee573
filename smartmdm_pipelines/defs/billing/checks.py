"""Blocking checks on billing_determinants: nothing reaches the CIS export unless they pass."""

import dagster as dg

from smartmdm_pipelines.lib.partitions import BILLING_PERIODS
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services import billing_checks as bc
from smartmdm_pipelines.services.billing_close import parse_period_key


def _sample(frame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.json(frame.head(n).astype(str).to_dict(orient="records"))


@dg.asset_check(
    asset="billing_determinants",
    blocking=True,
    partitions_def=BILLING_PERIODS,
    description="Every active service point of the cycle with an account in the period has determinants.",
)
def every_service_point_billed(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    missing = bc.service_points_without_determinants(store.get_store(), cycle_id, period_start)
    return dg.AssetCheckResult(
        passed=missing.empty,
        metadata={"service_points_without_determinants": len(missing), "sample": _sample(missing)},
    )


@dg.asset_check(
    asset="billing_determinants",
    blocking=True,
    partitions_def=BILLING_PERIODS,
    description="TOU energy buckets add up to the total; no negative delivered energy or volume.",
)
def determinants_consistent(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    latest = bc.latest_determinants(store.get_store(), cycle_id, period_start)
    mismatched = bc.tou_mismatches(latest)
    negative = bc.negative_delivered(latest)
    return dg.AssetCheckResult(
        passed=mismatched.empty and negative.empty,
        metadata={
            "tou_mismatches": len(mismatched),
            "negative_delivered": len(negative),
            "sample_tou": _sample(mismatched),
            "sample_negative": _sample(negative),
        },
    )


@dg.asset_check(
    asset="billing_determinants",
    blocking=True,
    partitions_def=BILLING_PERIODS,
    description=(
        "Estimated share of each account-period within the configured limit; accounts above it are flagged "
        "for review (a WARN that lists them, so billing can hold those bills while the rest go out)."
    ),
)
def estimated_share_within_limit(
    context: dg.AssetCheckExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.AssetCheckResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    limit = utility.config.billing.estimated_share_limit
    latest = bc.latest_determinants(store.get_store(), cycle_id, period_start)
    over = bc.over_estimated(latest, limit)
    return dg.AssetCheckResult(
        passed=over.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"limit": limit, "flagged_for_review": len(over), "sample": _sample(over)},
    )
