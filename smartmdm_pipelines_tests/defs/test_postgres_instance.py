"""Production wiring: a Dagster instance on PostgreSQL (dagster.yaml) runs the ingestion job
against a PostgreSQL store."""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.conftest import PG_HOST, PG_PORT, PG_USER
from smartmdm_pipelines_tests.defs.test_ingest import run_requests, sensor_tick
from smartmdm_pipelines_tests.fixtures import interval_file

REPO = Path(__file__).resolve().parents[2]


def test_repository_dagster_yaml_uses_postgres_with_psycopg2() -> None:
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert db["hostname"] == {"env": "DAGSTER_PG_HOST"}
    assert config["telemetry"]["enabled"] is False


def test_ingestion_job_runs_on_a_postgres_backed_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", postgres_url)
    monkeypatch.setenv("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    db_name = sa.engine.make_url(postgres_url).database
    # the repository's dagster.yaml (storage, run queue, run retries …), with the values resolved
    deploy = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    deploy.pop("telemetry")
    storage = deploy["storage"]
    storage["postgres"]["postgres_db"].update(
        hostname=PG_HOST, port=PG_PORT, username=PG_USER, password="", db_name=db_name
    )
    from smartmdm_pipelines.definitions import defs

    definitions = defs()
    with dg.instance_for_test(overrides=deploy) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # a run whose worker died is launched again; a step that failed on its own is not
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        interval_file(data / "landing" / "ami-east_20241103.csv", ["E1", "E2", "E3"], "2024-11-03")
        [run] = run_requests(definitions, instance, sensor_tick(definitions, instance))
        assert run.success
        stored = instance.get_run_by_id(run.run_id)
        assert stored.status == dg.DagsterRunStatus.SUCCESS
    store = Store(postgres_url)
    assert store.count("raw_reads") == 3 * 100  # fall-back day: 100 quarter-hours per meter
    store.dispose()
