"""VEE of an operating day in meter shards (issue 14): the same work as the ``vee_day`` asset,
split into independent units that run side by side, in-process / subprocesses
(``vee_sharded_job``) or on Celery workers over RabbitMQ (``vee_celery_job``).

One run is one day (a daily-partitioned job): every shard stores its class-profile sums, then
every shard validates, estimates and writes its meters; the last step records the day's
``validated_intervals`` and ``interval_estimates`` materializations, so the asset graph and
the partition status stay those of the daily asset. Data between steps goes through the store
(no IO manager, no shared disk).
"""

import datetime as dt

import dagster as dg
from dagster_celery import celery_executor

from smartmdm_pipelines.defs.vee import checks
from smartmdm_pipelines.domain.vee.shards import Shard
from smartmdm_pipelines.lib.metadata import as_metadata
from smartmdm_pipelines.lib.partitions import read_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.lib.scale import VeeShardsResource, celery_config
from smartmdm_pipelines.services.vee_report import current_intervals
from smartmdm_pipelines.services.vee_shards import day_figures, run_shard, store_profile_parts

SHARD_TAGS = {"smartmdm/vee_sharded": "day"}  # deploy/dagster.yaml runs them one at a time, in order


def _day(context: dg.OpExecutionContext) -> dt.date:
    """The run's partition key: the operating day."""
    return dt.date.fromisoformat(context.partition_key)


def _shard(context, vee_shards: VeeShardsResource) -> Shard:
    return Shard(int(context.get_mapping_key().removeprefix("shard_")), vee_shards.count)


@dg.op(
    ins={"after": dg.In(dg.Nothing)},
    out=dg.DynamicOut(dg.Nothing),
    description="One unit per meter shard of the day (after the step it is wired after, if any).",
)
def plan_shards(vee_shards: VeeShardsResource):
    for index in range(vee_shards.count):
        yield dg.DynamicOutput(None, mapping_key=f"shard_{index}")


@dg.op(
    ins={"start": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
    description="Validate the shard's meters; store its class-profile sums (vee_profile_parts).",
)
def vee_shard_profile(
    context: dg.OpExecutionContext,
    store: StoreResource,
    utility: UtilityConfigResource,
    vee_shards: VeeShardsResource,
) -> None:
    shard = _shard(context, vee_shards)
    rows = store_profile_parts(store.get_store(), _day(context), utility.config, shard)
    context.log.info(f"{_day(context)} shard {shard.label}: {rows} class-profile rows")


@dg.op(
    ins={"start": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
    description="VEE of the shard's meters (versions, exceptions, daily totals) under the shard's lock.",
)
def vee_shard(
    context: dg.OpExecutionContext,
    store: StoreResource,
    utility: UtilityConfigResource,
    vee_shards: VeeShardsResource,
) -> None:
    shard = _shard(context, vee_shards)
    run = run_shard(store.get_store(), _day(context), utility.config, shard)
    if run is None:
        context.log.info(f"{_day(context)} shard {shard.label}: no meter")
        return
    s = run.estimation.stats
    context.log.info(
        f"{run.day} shard {shard.label}: {s['expected_intervals']:,} intervals, {s['estimated_intervals']:,} "
        f"estimated; {run.validation_versions:,}+{run.estimation_versions:,} new versions"
    )


@dg.op(
    ins={"done": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
    description="Record the day's validated_intervals and interval_estimates partitions with their figures, "
    "and evaluate the blocking interval_estimates_gx check on the day (the billing close gates on it).",
)
def record_vee_day(
    context: dg.OpExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> None:
    day = _day(context)
    key = day.isoformat()
    db = store.get_store()
    validated, estimates = day_figures(db, day)
    for asset, figures in (("validated_intervals", validated), ("interval_estimates", estimates)):
        context.log_event(
            dg.AssetMaterialization(asset_key=asset, partition=key, metadata=as_metadata(figures))
        )
    threshold = utility.config.vee_config().default.completeness_threshold
    result = checks.gx_result(current_intervals(db, key, key), key, threshold)
    context.log_event(checks.day_evaluation(context.instance, result, key))


@dg.graph(description="VEE of one operating day in meter shards: profile sums, then VEE, shard by shard.")
def vee_sharded_day():
    profiles = plan_shards.alias("plan_profile_shards")().map(vee_shard_profile).collect()
    record_vee_day(plan_shards.alias("plan_vee_shards")(profiles).map(vee_shard).collect())


vee_sharded_job = vee_sharded_day.to_job(
    name="vee_sharded_job",
    partitions_def=read_days(),
    tags=SHARD_TAGS,
    description="VEE of operating days split into meter shards (resource vee_shards), on this code "
    "location's executor. Same result as vee_job.",
)

vee_celery_job = vee_sharded_day.to_job(
    name="vee_celery_job",
    partitions_def=read_days(),
    tags=SHARD_TAGS,
    executor_def=celery_executor,
    config={"execution": {"config": celery_config()}},
    description="vee_sharded_job on Celery workers (dagster-celery over RabbitMQ: "
    "`celery -A dagster_celery.app worker`); broker from SMARTMDM_CELERY_BROKER.",
)
