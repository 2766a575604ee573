"""Checks on VEE output. The Great Expectations suite on interval_estimates blocks billing: in the
run that validates a day, and at the close, which refuses a period whose days failed it
(defs/billing/assets.py)."""

import dagster as dg
import numpy as np
import pandas as pd

from smartmdm_pipelines.defs.vee.assets import READ_DAYS
from smartmdm_pipelines.lib.gx import run_suite
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.vee_report import current_intervals, open_errors_by_rule, suite_frame

STATUSES = ["valid", "estimated", "edited", "verified", "suspect", "missing"]
ESPI_CODES = [0, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19]
# what a failed expectation means, per expectation and column (the check's description)
MEANING = {
    "expect_compound_columns_to_be_unique": "duplicate interval keys (meter, channel, interval end)",
    "meter_id": "intervals without a meter",
    "status": "unknown interval status",
    "espi_quality": "invalid ESPI quality codes",
    "within_bounds": "values outside the physical bounds of their unit",
    "filled_value": "completeness after estimation below the threshold",
}


def _days(context) -> tuple[str, str]:
    keys = context.partition_key_range
    return keys.start, keys.end


def _failure_sentence(days: str, failed: list[dict], completeness: float, threshold: float) -> str:
    parts = []
    for f in failed:
        what = MEANING.get(f["kwargs"].get("column") or f["expectation"], f["expectation"])
        if f["kwargs"].get("column") == "filled_value":
            what = f"completeness {completeness:.2%} after estimation is below the {threshold:.2%} threshold"
        elif f.get("unexpected_percent"):
            what += f" ({f['unexpected_percent']:.2f} % of the intervals)"
        parts.append(what)
    return f"{days}: " + "; ".join(parts) + ". Billing of these days is blocked until it passes."


def gx_result(frame: pd.DataFrame, days: str, threshold: float) -> dg.AssetCheckResult:
    """The suite on one frame of current intervals, with a sentence when it fails."""
    frame, awaiting = suite_frame(frame)

    def expectations(gxe):
        return [
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["meter_id", "channel", "interval_end"]),
            gxe.ExpectColumnValuesToNotBeNull(column="meter_id"),
            gxe.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),
            gxe.ExpectColumnValuesToBeInSet(column="espi_quality", value_set=ESPI_CODES),
            gxe.ExpectColumnValuesToBeInSet(column="within_bounds", value_set=[True]),
            gxe.ExpectColumnValuesToNotBeNull(column="filled_value", mostly=threshold),
        ]

    result = run_suite(frame, "interval_estimates", expectations)
    filled = float(np.mean(~np.isnan(frame["filled_value"].to_numpy()))) if len(frame) else 1.0
    failed = result.metadata["failed_expectations"].value
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=result.severity,
        description=None if result.passed else _failure_sentence(days, failed, filled, threshold),
        metadata={
            **result.metadata,
            "completeness": round(filled, 5),
            "completeness_threshold": threshold,
            "awaiting_intervals": awaiting,
        },
    )


def latest_materialization(instance: dg.DagsterInstance, day: str):
    """The day's interval_estimates materialization an evaluation is about (the run's own)."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("interval_estimates"), asset_partitions=[day]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp
    )


def day_evaluation(
    instance: dg.DagsterInstance, result: dg.AssetCheckResult, day: str
) -> dg.AssetCheckEvaluation:
    """The suite's ``result`` on one day as that day's evaluation of interval_estimates_gx (the
    evaluation the close gates on), logged by a run that validated several days or a sharded day."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("interval_estimates"),
        check_name="interval_estimates_gx",
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
        blocking=True,
        partition=day,
        target_materialization_data=latest_materialization(instance, day),
    )


@dg.asset_check(
    asset="interval_estimates",
    blocking=True,
    partitions_def=READ_DAYS,
    description=(
        "Great Expectations suite on the day's current intervals: keys unique, values within physical bounds "
        "per unit, quality codes valid, completeness after estimation above the configured threshold "
        "(intervals awaited inside the re-collection window are not due yet). Blocks everything downstream "
        "in the run, and close_billing_cycle_job refuses a period while one of its days fails it."
    ),
)
def interval_estimates_gx(
    context: dg.AssetCheckExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.AssetCheckResult:
    first, last = _days(context)
    threshold = utility.config.vee_config().default.completeness_threshold
    frame = current_intervals(store.get_store(), first, last)
    if first == last:
        return gx_result(frame, first, threshold)
    # a backfill range: one evaluation per day (what the close gates on), and the range's verdict
    day = pd.to_datetime(frame["read_day"]).dt.date.astype(str)
    failed_days = []
    for key in context.partition_keys:
        result = gx_result(frame[day.eq(key).to_numpy()], key, threshold)
        context.op_execution_context.log_event(day_evaluation(context.instance, result, key))
        if not result.passed:
            failed_days.append(key)
    return dg.AssetCheckResult(
        passed=not failed_days,
        description=f"failed on {len(failed_days)} of {len(context.partition_keys)} days: {failed_days[:10]}"
        if failed_days
        else None,
        metadata={"days": len(context.partition_keys), "failed_days": dg.MetadataValue.json(failed_days)},
    )


@dg.asset_check(
    asset="validated_intervals",
    partitions_def=READ_DAYS,
    description="Open error-severity exceptions of the day (sum check, negatives, tamper …): warns operators.",
)
def validated_intervals_open_errors(
    context: dg.AssetCheckExecutionContext, store: StoreResource
) -> dg.AssetCheckResult:
    first, last = _days(context)
    by_rule = open_errors_by_rule(store.get_store(), first, last)
    total = sum(by_rule.values())
    days = first if first == last else f"{first}..{last}"
    return dg.AssetCheckResult(
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{days}: {total} open error-severity exception(s) ("
            + ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
            + "); see the exception queue (vee_exception_queue) and resolve them"
        )
        if total
        else None,
        metadata={"open_errors": total, "by_rule": dg.MetadataValue.json(by_rule)},
    )
