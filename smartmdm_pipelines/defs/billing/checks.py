"""Checks on billing_determinants: nothing reaches the CIS export unless the blocking ones pass; a
forced close on incomplete data is recorded as a failed (WARN) check on the asset."""

import dagster as dg

from smartmdm_pipelines.lib.partitions import BILLING_PERIODS
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services import billing_checks as bc
from smartmdm_pipelines.services.billing_close import parse_period_key


def _sample(frame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.json(frame.head(n).astype(str).to_dict(orient="records"))


def _first(frame, column: str, n: int = 5) -> str:
    values = frame[column].astype(str).head(n).tolist()
    return ", ".join(values) + (" …" if len(frame) > n else "")


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
        description=None
        if missing.empty
        else f"{len(missing)} active service point(s) with an account in the period have no determinants: "
        f"{_first(missing, 'service_point_id')}",
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
    problems = []
    if len(mismatched):
        problems.append(f"TOU buckets do not add up to the total for {_first(mismatched, 'account_id')}")
    if len(negative):
        problems.append(f"negative delivered energy or volume for {_first(negative, 'account_id')}")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
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
        description=None
        if over.empty
        else f"{len(over)} account(s) above the {limit:.0%} estimated-share limit, held for review: "
        f"{_first(over, 'account_id')}",
        metadata={"limit": limit, "flagged_for_review": len(over), "sample": _sample(over)},
    )


@dg.asset_check(
    asset="billing_determinants",
    blocking=True,
    partitions_def=BILLING_PERIODS,
    description=(
        "Data completeness of the close at or above billing.completeness_threshold. Fails (ERROR, blocks the "
        "export) when it is below; on a forced close it fails as a WARN that does not block, so billing on "
        "incomplete data is visible on the asset with who forced it and why."
    ),
)
def billing_completeness(
    context: dg.AssetCheckExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.AssetCheckResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    threshold = utility.config.billing.completeness_threshold
    close = bc.latest_close(store.get_store(), cycle_id, period_start)
    if close is None:
        return dg.AssetCheckResult(passed=False, description=f"{context.partition_key} was never closed")
    passed = close["completeness"] >= threshold
    forced = close["forced"]
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN if forced else dg.AssetCheckSeverity.ERROR,
        description=None
        if passed
        else f"billed at {close['completeness']:.2%} data completeness, below the {threshold:.2%} threshold"
        + (f": forced by {close['closed_by']} ({close['reason'] or 'no reason given'})" if forced else ""),
        metadata={
            "completeness": dg.MetadataValue.float(round(close["completeness"], 6)),
            "threshold": threshold,
            "forced": forced,
            "closed_by": close["closed_by"],
            "reason": close["reason"] or "",
        },
    )
