"""VEE per operating day: validation (first pass + exception queue) and estimation; the open
exception queue as an asset operators read in the UI."""

import datetime as dt

import dagster as dg
import pandas as pd

from smartmdm_pipelines.lib.metadata import table
from smartmdm_pipelines.lib.partitions import read_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.exceptions import open_queue, queue_summary
from smartmdm_pipelines.services.vee import run_day

READ_DAYS = read_days()
QUEUE_ROWS = 100  # exceptions listed in a metadata table (the counts cover all of them)
QUEUE_COLUMNS = {
    "exception_id": "resolve it with resolve_exception_job (launchpad) or `smartmdm exceptions`",
    "read_day": "operating day of the reads",
    "meter_id": "meter",
    "channel": "channel",
    "rule": "the validation rule that fired",
    "severity": "error | warning | info",
    "detail": "what happened, in a sentence",
}


def queue_table(rows) -> dg.TableMetadataValue:
    """The open exceptions as a table (id, day, meter, channel, rule, severity, sentence)."""
    return table(rows[list(QUEUE_COLUMNS)], QUEUE_COLUMNS)


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
    for offset in range(days):  # a backfill range runs its days in order; each day gets its own metadata
        day = first + dt.timedelta(days=offset)
        run = run_day(db, day, cfg)
        s = run.estimation.stats
        context.log.info(
            f"{day}: {s['expected_intervals']:,} intervals, {s['suspect_intervals']:,} suspect, "
            f"{s['missing_intervals']:,} missing, {s['awaiting_intervals']:,} awaiting (re-collection window), "
            f"{s['estimated_intervals']:,} estimated; "
            f"{run.validation_versions:,}+{run.estimation_versions:,} new versions"
        )
        validated, estimates = day_metadata(db, day, run)
        key = day.isoformat()
        context.add_asset_metadata(validated, asset_key="validated_intervals", partition_key=key)
        context.add_asset_metadata(estimates, asset_key="interval_estimates", partition_key=key)
    yield dg.MaterializeResult(asset_key="validated_intervals")
    yield dg.MaterializeResult(asset_key="interval_estimates")


def day_metadata(db, day: dt.date, run) -> tuple[dict, dict]:
    """Metadata of one operating day's validated_intervals and interval_estimates: that day's
    numbers and that day's open exceptions (oldest = the read day of the oldest open one)."""
    s = run.estimation.stats
    n = max(s["expected_intervals"], 1)
    queue = queue_summary(db, day, day)
    rows, _ = open_queue(db, day, day, limit=QUEUE_ROWS)
    validated = {
        "dagster/row_count": s["expected_intervals"],
        "received_intervals": s["received_intervals"],
        "first_pass_valid_share": round(s["first_pass_valid_share"], 5),
        "suspect_intervals": s["suspect_intervals"],
        "missing_intervals": s["missing_intervals"],
        "awaiting_intervals": s["awaiting_intervals"],
        "exceptions_by_rule": dg.MetadataValue.json(s["exceptions_by_rule"]),
        "new_versions": run.validation_versions,
        "open_exceptions": queue["open"],
        "open_exceptions_table": queue_table(rows),
        "oldest_open_exception": queue["oldest_open"] or "none",
        "open_exceptions_by_severity": dg.MetadataValue.json(queue["open_by_severity"]),
        "open_exceptions_by_rule": dg.MetadataValue.json(queue["open_by_rule"]),
    }
    estimates = {
        "dagster/row_count": s["estimated_intervals"],
        "estimated_share": round(s["estimated_intervals"] / n, 5),
        "awaiting_intervals": s["awaiting_intervals"],
        "completeness": round(s["completeness"], 5),
        "estimated_by_method": dg.MetadataValue.json(s["estimated_by_method"]),
        "new_versions": run.estimation_versions,
    }
    return validated, estimates


vee_job = dg.define_asset_job(
    "vee_job",
    selection=dg.AssetSelection.assets("validated_intervals", "interval_estimates"),
    description="Validate and estimate operating days (requested by ingestion for the days it touched).",
)


@dg.asset(
    deps=["validated_intervals"],
    group_name="vee",
    kinds={"python"},
    owners=["team:mdm-operations"],
    description=(
        "The open VEE exception queue, worst first (error, warning, info; oldest day first): id, day, meter, "
        "rule, severity and a sentence per exception, as a table in this asset's metadata. Materialize it to "
        "refresh; resolve an exception with resolve_exception_job from the launchpad."
    ),
    pool="smartmdm_store",
)
def vee_exception_queue(store: StoreResource) -> dg.MaterializeResult:
    db = store.get_store()
    rows, total = open_queue(db, limit=QUEUE_ROWS)
    summary = queue_summary(db)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "open_exceptions": total,
            "queue": queue_table(rows),
            "listed": len(rows),
            "oldest_open_exception": summary["oldest_open"] or "none",
            "open_exceptions_by_severity": dg.MetadataValue.json(summary["open_by_severity"]),
            "open_exceptions_by_rule": dg.MetadataValue.json(summary["open_by_rule"]),
        }
    )


exception_queue_job = dg.define_asset_job(
    "exception_queue_job",
    selection=dg.AssetSelection.assets("vee_exception_queue"),
    description="Refresh the open exception queue (the vee_exception_queue asset's table).",
)
