"""Runs the CLI and the demo start, tied to the workspace's code location, and sensor state kept
the way the daemon keeps it.

``JobDefinition.execute_in_process`` creates runs without a code-location origin: the UI lists
them under Runs but not on the job's page, and the daemon's run-key bookkeeping does not know
them. ``run_job`` creates the run the way the webserver does (the remote origin of location
``smartmdm`` in workspace.yaml, the job's Python origin), then executes it here with the job's own
executor (in-process on DuckDB, a subprocess per step on PostgreSQL). ``store_sensor_cursor``
records a sensor evaluated outside the daemon (the demo) on the instance, so the daemon started
with the UI continues from that cursor instead of requesting everything again.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)
from dagster._core.workspace.load_target import WorkspaceFileTarget

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
LOCATION_NAME = "smartmdm"
DEFINITIONS_MODULE = "smartmdm_pipelines.definitions"


@lru_cache(maxsize=1)
def repository_origin() -> RemoteRepositoryOrigin:
    """The repository of code location ``smartmdm`` as workspace.yaml declares it (what the
    webserver and the daemon load)."""
    origins = WorkspaceFileTarget(paths=[str(WORKSPACE_YAML)]).create_origins()
    [origin] = [o for o in origins if o.location_name == LOCATION_NAME]
    return RemoteRepositoryOrigin(origin, SINGLETON_REPOSITORY_NAME)


_loaded_for: dict[str, str] = {}


def _repository() -> ReconstructableRepository:
    """The definitions as the code location loads them. Dagster keeps the last job definition it
    built; the resources read SMARTMDM_* variables when they are built, so a changed environment
    (another store or data directory in the same process) builds them again."""
    environment = {k: v for k, v in os.environ.items() if k.startswith("SMARTMDM_")}
    if environment != _loaded_for:
        ReconstructableJob.get_definition.cache_clear()
        ReconstructableJob.get_repository_definition.cache_clear()
        _loaded_for.clear()
        _loaded_for.update(environment)
    return ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs", working_directory=str(REPO_ROOT))


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> ExecutionResult:
    """Create a run of ``job_name`` against the code location and execute it now, in this process
    (``partition_range``: first and last key of a backfill chunk)."""
    job = _repository().get_reconstructable_job(job_name)
    job_def = job.get_definition()
    run_tags = {**job_def.run_tags, **(tags or {})}
    if partition_key is not None:
        run_tags[PARTITION_NAME_TAG] = partition_key
    if partition_range is not None:
        run_tags[ASSET_PARTITION_RANGE_START_TAG], run_tags[ASSET_PARTITION_RANGE_END_TAG] = partition_range
    run_config = run_config or {}
    plan = create_execution_plan(job, run_config=run_config, instance_ref=instance.get_ref(), tags=run_tags)
    run = instance.create_run_for_job(
        job_def=job_def,
        execution_plan=plan,
        run_config=run_config,
        tags=run_tags,
        remote_job_origin=repository_origin().get_job_origin(job_name),
        job_code_origin=job.get_python_origin(),
    )
    return execute_run(job, run, instance)


def sensor_run_tags(sensor_name: str, request: dg.RunRequest) -> dict[str, str]:
    """The tags the daemon gives a run it launches for a sensor's request (run-key bookkeeping)."""
    tags = {**request.tags, SENSOR_NAME_TAG: sensor_name}
    if request.run_key:
        tags[RUN_KEY_TAG] = request.run_key
    return tags


def store_sensor_cursor(
    instance: dg.DagsterInstance, sensor: dg.SensorDefinition, cursor: str | None
) -> None:
    """Record a tick of ``sensor`` evaluated outside the daemon: its cursor and tick time, on the
    instigator state the daemon reads (same origin and selector as the code location's sensor)."""
    origin = repository_origin().get_instigator_origin(sensor.name)
    now = time.time()
    data = SensorInstigatorData(
        last_tick_timestamp=now,
        last_tick_start_timestamp=now,
        min_interval=sensor.minimum_interval_seconds,
        cursor=cursor,
        sensor_type=sensor.sensor_type,
    )
    state = instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())
    if state is None:
        status = (
            InstigatorStatus.DECLARED_IN_CODE
            if sensor.default_status == dg.DefaultSensorStatus.RUNNING
            else InstigatorStatus.STOPPED
        )
        instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, status, data))
    else:
        instance.update_instigator_state(state.with_data(data))
