"""VEE per operating day: validation (first pass + exception queue) and estimation; the open
exception queue as an asset operators read in the UI."""

import dagster as dg

from smartmdm_pipelines.lib.metadata import as_metadata, table
from smartmdm_pipelines.lib.partitions import read_days, window_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.vee_chunks import run_day_auto
from smartmdm_pipelines.services.vee_report import day_report, queue_report

READ_DAYS = read_days()
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
    db = store.get_store()
    for day in window_days(context.partition_time_window):  # a backfill range: in order, metadata per day
        # in meter chunks above SMARTMDM_VEE_CHUNK_METERS meters (services/vee_chunks.py)
        report = day_report(db, day, run_day_auto(db, day, utility.config))
        context.log.info(report.summary)
        key = day.isoformat()
        validated = {**as_metadata(report.validated), "open_exceptions_table": queue_table(report.queue_rows)}
        context.add_asset_metadata(validated, asset_key="validated_intervals", partition_key=key)
        context.add_asset_metadata(
            as_metadata(report.estimates), asset_key="interval_estimates", partition_key=key
        )
    yield dg.MaterializeResult(asset_key="validated_intervals")
    yield dg.MaterializeResult(asset_key="interval_estimates")


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
    rows, figures = queue_report(store.get_store())
    return dg.MaterializeResult(metadata={**as_metadata(figures), "queue": queue_table(rows)})


exception_queue_job = dg.define_asset_job(
    "exception_queue_job",
    selection=dg.AssetSelection.assets("vee_exception_queue"),
    description="Refresh the open exception queue (the vee_exception_queue asset's table).",
)
