"""Billing: reference data (tariffs, system peaks), versioned determinants per billing period,
and the batch export to the CIS."""

import dagster as dg
from pydantic import Field

from smartmdm_pipelines.lib.check_gate import INTERVAL_ESTIMATES_GX, failed_partitions
from smartmdm_pipelines.lib.partitions import BILLING_PERIODS
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.billing_close import CloseRefused, parse_period_key, version_determinants
from smartmdm_pipelines.services.billing_period import export_period, forward_estimate_period, period_days
from smartmdm_pipelines.services.billing_reference import load_billing_reference


@dg.asset(
    group_name="billing",
    kinds={"python"},
    owners=["team:billing"],
    pool="smartmdm_store",
    description=(
        "Tariffs per rate code from the utility config's URDB files (schedules and holiday calendars in long "
        "form for set-based TOU bucketing) and system-peak intervals for coincident-peak demand."
    ),
)
def billing_reference_data(store: StoreResource, utility: UtilityConfigResource) -> dg.MaterializeResult:
    counts = load_billing_reference(store.get_store(), utility.config)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts.get("tariffs", 0),
            **{f"{t}_rows": n for t, n in counts.items()},
        }
    )


class CloseConfig(dg.Config):
    """Launchpad config of a (re-)close: who closes and why are required on a manual run (the
    schedule fills them), so every close in billing_closes says who and why."""

    closed_by: str = Field(
        min_length=1, description="Who closes the period (name or user id); recorded in billing_closes."
    )
    reason: str = Field(
        min_length=1,
        description="Why it is closed now (e.g. 'monthly close', 'storm outage, bill actuals'); recorded in "
        "billing_closes and on the billing_determinants materialization.",
    )
    force: bool = Field(
        default=False,
        description="Close even when data completeness is below billing.completeness_threshold; the "
        "billing_completeness check then records a failed (WARN) check on the asset. Does not override a "
        "failed interval_estimates_gx check on a day of the period.",
    )
    forward_estimate: bool = Field(
        default=False,
        description="Project the intervals that have not arrived yet (method 'forward') before closing; "
        "late actuals supersede them through VEE.",
    )


@dg.asset(
    partitions_def=BILLING_PERIODS,
    deps=[dg.AssetKey("period_determinants"), dg.AssetKey("period_completeness")],
    group_name="billing",
    kinds={"python"},
    owners=["team:billing"],
    pool="smartmdm_store",
    description=(
        "Versioned billing determinants per account and billing period. Refuses a close while a day of the "
        "period fails the blocking interval_estimates_gx check, or when data completeness is below the "
        "threshold (unless forced or forward-estimated); writes a new version only "
        "for account-periods whose determinants changed, marked as a correction when the period was closed "
        "before; locks the estimates it billed."
    ),
)
def billing_determinants(
    context: dg.AssetExecutionContext,
    config: CloseConfig,
    store: StoreResource,
    utility: UtilityConfigResource,
) -> dg.MaterializeResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    cfg = utility.config
    db = store.get_store()
    days = period_days(db, cycle_id, period_start)
    if failed := failed_partitions(context.instance, INTERVAL_ESTIMATES_GX, days):
        raise dg.Failure(
            description=(
                f"billing cycle {cycle_id} period {period_start}: the blocking check interval_estimates_gx failed "
                f"on {len(failed)} operating day(s) of the period ({', '.join(failed[:10])}); resolve those days' "
                "exceptions and re-run VEE for them (vee_job) before closing. force does not override it."
            ),
            metadata={"failed_days": dg.MetadataValue.json(failed)},
        )
    if config.forward_estimate:
        through, summary = forward_estimate_period(
            db,
            cycle_id,
            period_start,
            cfg.utility.timezone,
            created_by=config.closed_by,
            reason=f"forward estimate for {context.partition_key}",
        )
        context.log.info(f"forward estimate through {through}: {summary}")
    try:
        result = version_determinants(
            db,
            cycle_id,
            period_start,
            closed_by=config.closed_by,
            threshold=cfg.billing.completeness_threshold,
            estimated_share_limit=cfg.billing.estimated_share_limit,
            force=config.force,
            reason=config.reason,
        )
    except CloseRefused as exc:
        raise dg.Failure(description=str(exc), metadata={"refused": True}) from exc
    return dg.MaterializeResult(
        metadata={
            "outcome": result.outcome,
            "closed_by": config.closed_by,
            "reason": config.reason,
            "forced": result.forced,
            "completeness": dg.MetadataValue.float(round(result.completeness, 6)),
            "completeness_threshold": cfg.billing.completeness_threshold,
            "accounts": result.accounts,
            "new_versions": result.new_versions,
            "corrections": result.corrections,
            "dagster/row_count": result.determinant_rows,
            "flagged_for_review": result.flagged_for_review,
        }
    )


@dg.asset(
    partitions_def=BILLING_PERIODS,
    deps=["billing_determinants"],
    group_name="billing",
    kinds={"python", "csv", "json"},
    owners=["team:billing"],
    pool="smartmdm_store",
    description=(
        "Batch file for the CIS (CSV and JSON lines, one record per account-period-version, with a manifest "
        "and checksums) in the outbox folder; every record is also an outbound_messages row, so a version is "
        "never sent twice. The batch also carries the period's interval versions no batch carried yet, read "
        "from the real-time outbox ({batch}.intervals.csv, the same message ids as the pushes)."
    ),
)
def cis_billing_export(
    context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.MaterializeResult:
    cycle_id, period_start = parse_period_key(context.partition_key)
    result = export_period(store.get_store(), cycle_id, period_start, utility.config.cis_export_dir)
    return dg.MaterializeResult(
        metadata={
            "exported_records": result.exported,
            "interval_records": result.interval_records,
            "skipped_already_sent": result.skipped,
            "corrections": result.corrections,
            "files": dg.MetadataValue.json({k: str(v) for k, v in result.files.items()}),
        }
    )
