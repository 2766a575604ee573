"""VEE per operating day: validation (first pass + exception queue) and estimation."""

import datetime as dt

import dagster as dg
import pandas as pd

from smartmdm_pipelines.lib.partitions import read_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.exceptions import queue_summary
from smartmdm_pipelines.services.vee import run_day

READ_DAYS = read_days()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "validated_intervals",
            deps=[dg.AssetDep("raw_reads", partition_mapping=dg.AllPartitionMapping())],
            group_name="vee",
            kinds={"python"},
            owners=["team:mdm-operations"],
            description=(
                "First-pass validation of every expected interval of the operating day (DST-aware grid per "
                "meter activation): status valid | suspect | missing, the rules that failed, and the exception "
                "queue (one row per meter-channel-day-rule). New interval versions only where something changed."
            ),
        ),
        dg.AssetSpec(
            "interval_estimates",
            deps=["validated_intervals"],
            group_name="vee",
            kinds={"python"},
            owners=["team:mdm-operations"],
            description=(
                "Estimates for suspect and missing intervals through the configured chain (linear ≤ 2 h, like "
                "days, multi-week, class profile, register scaling, average daily load), as new versions with "
                "method, inputs and ESPI/IEC quality. Billing reads current_intervals after the blocking checks."
            ),
        ),
    ],
    partitions_def=READ_DAYS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    pool="smartmdm_store",
)
def vee_day(context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource):
    cfg = utility.config
    db = store.get_store()
    window = context.partition_time_window
    first = pd.Timestamp(window.start).date()
    days = (pd.Timestamp(window.end).date() - first).days
    totals = {
        "validation_versions": 0,
        "estimation_versions": 0,
        "expected": 0,
        "valid": 0,
        "estimated": 0,
        "filled": 0,
    }
    by_rule: dict[str, int] = {}
    by_method: dict[str, int] = {}
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        run = run_day(db, day, cfg)
        s = run.estimation.stats
        totals["validation_versions"] += run.validation_versions
        totals["estimation_versions"] += run.estimation_versions
        totals["expected"] += s["expected_intervals"]
        totals["valid"] += round(s["first_pass_valid_share"] * s["expected_intervals"])
        totals["estimated"] += s["estimated_intervals"]
        totals["filled"] += round(s["completeness"] * s["expected_intervals"])
        for rule, n in s["exceptions_by_rule"].items():
            by_rule[rule] = by_rule.get(rule, 0) + n
        for method, n in s["estimated_by_method"].items():
            by_method[method] = by_method.get(method, 0) + n
        context.log.info(
            f"{day}: {s['expected_intervals']:,} intervals, {s['suspect_intervals']:,} suspect, "
            f"{s['missing_intervals']:,} missing, {s['estimated_intervals']:,} estimated; "
            f"{run.validation_versions:,}+{run.estimation_versions:,} new versions"
        )
    n = max(totals["expected"], 1)
    queue = queue_summary(db)
    yield dg.MaterializeResult(
        asset_key="validated_intervals",
        metadata={
            "dagster/row_count": totals["expected"],
            "first_pass_valid_share": round(totals["valid"] / n, 5),
            "exceptions_by_rule": dg.MetadataValue.json(by_rule),
            "new_versions": totals["validation_versions"],
            "open_exceptions_by_rule": dg.MetadataValue.json(queue["open_by_rule"]),
            "open_exceptions_by_severity": dg.MetadataValue.json(queue["open_by_severity"]),
            "oldest_open_exception": queue["oldest_open"] or "none",
            "open_exceptions": queue["open"],
        },
    )
    yield dg.MaterializeResult(
        asset_key="interval_estimates",
        metadata={
            "dagster/row_count": totals["estimated"],
            "estimated_share": round(totals["estimated"] / n, 5),
            "completeness": round(totals["filled"] / n, 5),
            "estimated_by_method": dg.MetadataValue.json(by_method),
            "new_versions": totals["estimation_versions"],
        },
    )


vee_job = dg.define_asset_job(
    "vee_job",
    selection=dg.AssetSelection.assets("validated_intervals", "interval_estimates"),
    description="Validate and estimate operating days (requested by ingestion for the days it touched).",
)
