"""The landing-folder sensor: each new file becomes a partition and an ingestion run."""

import os
import shutil
import time

import dagster as dg

from smartmdm_pipelines.lib.partitions import HEADEND_FILES, file_partition_key
from smartmdm_pipelines.lib.resources import UtilityConfigResource
from smartmdm_pipelines.services.ingestion import landing_key

ingest_headend_job = dg.define_asset_job(
    "ingest_headend_job",
    selection=dg.AssetSelection.assets("raw_reads"),
    description="Load one head-end file (a headend_files partition) into the store.",
)


def settle_seconds() -> float:
    """Files younger than this may still be being written; they wait for the next tick."""
    return float(os.environ.get("SMARTMDM_LANDING_SETTLE_SECONDS", "10"))


@dg.sensor(
    job=ingest_headend_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing folder; run key = sha256 (of source, name and bytes for an empty delivery), so "
        "the same delivery is never loaded twice. A .zip or .gz file is one run that loads each member."
    ),
)
def headend_file_sensor(
    context: dg.SensorEvaluationContext, utility: UtilityConfigResource
) -> dg.SensorResult:
    cfg = utility.config
    landing = cfg.landing_dir
    if not landing.exists():
        return dg.SensorResult(skip_reason=f"landing folder {landing} does not exist")
    now = time.time()
    requests: list[dg.RunRequest] = []
    new_keys: list[str] = []
    duplicates: list[str] = []
    for path in sorted(p for p in landing.iterdir() if p.is_file() and not p.name.startswith(".")):
        if now - path.stat().st_mtime < settle_seconds():
            continue
        sha = landing_key(path, cfg)
        key = file_partition_key(path.name, sha)
        if _already_requested(context, sha, key):
            target = cfg.archive_dir / "duplicates"
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target / f"{sha[:12]}_{path.name}")
            duplicates.append(path.name)
            continue
        if not context.instance.has_dynamic_partition(HEADEND_FILES.name, key):
            new_keys.append(key)
        requests.append(
            dg.RunRequest(
                run_key=sha,
                partition_key=key,
                tags={"smartmdm/file": path.name, "smartmdm/sha256": sha},
            )
        )
    if duplicates:
        context.log.info(f"re-delivered identical files moved to archive/duplicates: {duplicates}")
    if not requests:
        return dg.SensorResult(skip_reason="no new head-end files")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[HEADEND_FILES.build_add_request(new_keys)] if new_keys else [],
    )


def _already_requested(context: dg.SensorEvaluationContext, sha: str, key: str) -> bool:
    """The same delivery already went through a run (the run key is taken): under another name, or
    under this one by a run that succeeded (the file was delivered again after it was archived)."""
    runs = context.instance.get_run_records(filters=dg.RunsFilter(tags={"smartmdm/sha256": sha}), limit=5)
    return any(
        r.dagster_run.tags.get("dagster/partition") != key
        or r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        for r in runs
    )
