"""Checks on VEE output. The Great Expectations suite on interval_estimates blocks billing."""

import dagster as dg
import numpy as np
import pandas as pd

from smartmdm_pipelines.defs.vee.assets import READ_DAYS
from smartmdm_pipelines.domain.vee.config import MAX_PER_HOUR
from smartmdm_pipelines.lib.gx import run_suite
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource

STATUSES = ["valid", "estimated", "edited", "verified", "suspect", "missing"]
ESPI_CODES = [0, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19]
FILLED = ["valid", "estimated", "edited", "verified"]


def _days(context) -> tuple[str, str]:
    keys = context.partition_key_range
    return keys.start, keys.end


def current_intervals(store, first: str, last: str) -> pd.DataFrame:
    return store.read_frame(
        "SELECT meter_id, channel, interval_end, interval_seconds, value, unit, status, espi_quality, failed_rules "
        "FROM (SELECT i.*, row_number() OVER (PARTITION BY meter_id, channel, interval_end ORDER BY version DESC) "
        "AS rn FROM intervals i WHERE read_day >= :a AND read_day <= :b) ranked WHERE rn = 1",
        {"a": first, "b": last},
    )


@dg.asset_check(
    asset="interval_estimates",
    blocking=True,
    partitions_def=READ_DAYS,
    description=(
        "Great Expectations suite on the day's current intervals: keys unique, values within physical bounds "
        "per unit, quality codes valid, completeness after estimation above the configured threshold. "
        "Blocks everything downstream (billing) when it fails."
    ),
)
def interval_estimates_gx(
    context: dg.AssetCheckExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.AssetCheckResult:
    first, last = _days(context)
    frame = current_intervals(store.get_store(), first, last)
    # intervals still inside the re-collection window are not due yet: they do not count against completeness
    awaiting = frame["failed_rules"].fillna("").str.contains("awaiting_data").to_numpy()
    frame = frame[~awaiting].reset_index(drop=True)
    threshold = utility.config.vee_config().default.completeness_threshold
    hours = frame["interval_seconds"].to_numpy(dtype="float64") / 3600.0
    upper = frame["unit"].map(MAX_PER_HOUR).fillna(1000.0).to_numpy() * hours
    value = frame["value"].to_numpy(dtype="float64")
    can_be_negative = frame["channel"].eq("kwh_net").to_numpy()
    within = np.isnan(value) | ((value <= upper) & ((value >= 0) | can_be_negative))
    frame = frame.assign(
        within_bounds=within,
        filled_value=np.where(frame["status"].isin(FILLED).to_numpy(), value, np.nan),
        espi_quality=frame["espi_quality"].astype("float64"),
    )

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
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=result.severity,
        metadata={
            **result.metadata,
            "completeness": round(filled, 5),
            "completeness_threshold": threshold,
            "awaiting_intervals": int(awaiting.sum()),
        },
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
    rows = store.get_store().read_frame(
        "SELECT rule, count(*) AS n FROM vee_exceptions WHERE read_day >= :a AND read_day <= :b "
        "AND status = 'open' AND severity = 'error' GROUP BY rule",
        {"a": first, "b": last},
    )
    total = int(rows["n"].sum()) if len(rows) else 0
    return dg.AssetCheckResult(
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "open_errors": total,
            "by_rule": dg.MetadataValue.json(dict(zip(rows["rule"], rows["n"].astype(int), strict=True))),
        },
    )
