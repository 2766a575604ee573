"""Ingestion → VEE: every loaded file requests the operating days it touched, exactly those; a CIS
sync requests the days whose reads waited for the meters it brought."""

import json

import dagster as dg

from smartmdm_pipelines.defs.vee.assets import READ_DAYS, vee_job

RAW_READS = dg.AssetKey("raw_reads")
LEGACY_READS = dg.AssetKey("legacy_raw_reads")
CIS_MASTER_DATA = dg.AssetKey("cis_master_data")
WATCHED = (RAW_READS, LEGACY_READS, CIS_MASTER_DATA)


def touched_days(instance: dg.DagsterInstance, cursor: dict) -> tuple[set[str], dict]:
    """Days named (``vee_days``) by raw_reads / legacy_raw_reads / cis_master_data materializations
    since the cursor's storage ids."""
    days: set[str] = set()
    cursor = dict(cursor)
    for key in WATCHED:
        after = cursor.get(key.to_user_string())
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=1000, ascending=True
        )
        for record in result.records:
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            value = meta.get("vee_days")
            if value is not None:
                days.update(value.value if hasattr(value, "value") else value)
            cursor[key.to_user_string()] = record.storage_id
    return days, cursor


@dg.sensor(
    job=vee_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests VEE (validated_intervals + interval_estimates) for the operating days new files touched, "
        "and for the days whose reads waited for meters a CIS sync brought."
    ),
)
def vee_day_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    days, cursor = touched_days(context.instance, cursor)
    valid = set(READ_DAYS.get_partition_keys(dynamic_partitions_store=context.instance))
    wanted = sorted(d for d in days if d in valid)
    marker = "-".join(str(cursor.get(k.to_user_string(), 0)) for k in WATCHED)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=day, run_key=f"vee-{day}-{marker}") for day in wanted],
        cursor=json.dumps(cursor),
        skip_reason=None if wanted else "no new operating days to validate",
    )
