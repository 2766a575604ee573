"""Runs started outside the daemon (demo, CLI) belong to code location smartmdm: the real webserver
lists them on the job's page; the sensor state they leave is the daemon's, so the real daemon
started afterwards continues from the cursor instead of validating the same days again."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import requests
from dagster._core.scheduler.instigation import TickStatus

from smartmdm_pipelines.lib.launch import repository_origin, run_job, sensor_run_tags, store_sensor_cursor
from smartmdm_pipelines.lib.resources import UtilityConfigResource
from smartmdm_pipelines_tests.defs.test_vee import load_master_data
from smartmdm_pipelines_tests.defs.test_webserver import REPO, free_port
from smartmdm_pipelines_tests.fixtures import interval_file

QUERY = """{
  pipelineOrError(params: {pipelineName: "vee_job", repositoryName: "__repository__",
                           repositoryLocationName: "smartmdm"}) {
    __typename ... on Pipeline { runs { runId } } }
  sensorOrError(sensorSelector: {sensorName: "vee_day_sensor", repositoryName: "__repository__",
                                 repositoryLocationName: "smartmdm"}) {
    __typename ... on Sensor { sensorState { typeSpecificData { ... on SensorData { lastCursor } } } } }
}"""


def launch_like_the_demo(instance: dg.DagsterInstance, landing: Path) -> tuple[str, str]:
    """Ingest a landed file and validate its day as the demo does: (vee run id, vee sensor cursor)."""
    from smartmdm_pipelines.definitions import defs

    definitions = defs()
    interval_file(landing / "ami-east_20240312.csv", ["E1"], "2024-03-12", shaped=True)
    files = definitions.resolve_sensor_def("headend_file_sensor")
    tick = files(
        dg.build_sensor_context(
            instance=instance,
            definitions=definitions,
            resources={"utility": UtilityConfigResource.from_environment()},
        )
    )
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    [request] = tick.run_requests
    tags = sensor_run_tags(files.name, request)
    assert run_job(instance, "ingest_headend_job", partition_key=request.partition_key, tags=tags).success
    store_sensor_cursor(instance, files, tick.cursor)

    vee = definitions.resolve_sensor_def("vee_day_sensor")
    vee_tick = vee(dg.build_sensor_context(instance=instance, definitions=definitions))
    [request] = vee_tick.run_requests
    run = run_job(
        instance, "vee_job", partition_key=request.partition_key, tags=sensor_run_tags(vee.name, request)
    )
    assert run.success
    store_sensor_cursor(instance, vee, vee_tick.cursor)
    return run.run_id, vee_tick.cursor


def test_launched_runs_are_on_the_job_page_and_the_daemon_continues_from_the_cursor(
    tmp_path: Path, monkeypatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    for name, value in {
        "DAGSTER_HOME": str(home),
        "SMARTMDM_DATA_DIR": str(tmp_path / "data"),
        "SMARTMDM_DATABASE_URL": url,
        "SMARTMDM_LANDING_SETTLE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    load_master_data(url, ["E1"])
    with dg.DagsterInstance.get() as instance:
        run_id, cursor = launch_like_the_demo(instance, tmp_path / "data" / "landing")
        assert instance.get_run_by_id(run_id).remote_job_origin.location_name == "smartmdm"

    port = free_port()
    bin_dir = Path(sys.executable).parent
    webserver = subprocess.Popen(
        [
            str(bin_dir / "dagster-webserver"),
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = None
    try:
        data, deadline = None, time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                reply = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=10)
                data = reply.json()["data"]
                if data["pipelineOrError"]["__typename"] == "Pipeline":
                    break
            except (requests.ConnectionError, requests.Timeout, KeyError, TypeError):
                pass
            time.sleep(2)
        assert data is not None, "webserver never answered"
        assert [r["runId"] for r in data["pipelineOrError"]["runs"]] == [run_id]  # the job page lists it
        assert data["sensorOrError"]["sensorState"]["typeSpecificData"]["lastCursor"] == cursor

        # the daemon (what `dagster dev` starts with the UI) evaluates the sensor from that cursor
        started = time.time()
        daemon = subprocess.Popen(
            [str(bin_dir / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        origin = repository_origin().get_instigator_origin("vee_day_sensor")
        with dg.DagsterInstance.get() as instance:
            ticks, deadline = [], time.monotonic() + 240
            while time.monotonic() < deadline and not ticks:
                ticks = [
                    t
                    for t in instance.get_ticks(origin.get_id(), origin.get_selector().get_id(), limit=5)
                    if t.timestamp >= started and t.status != TickStatus.STARTED  # a finished tick
                ]
                time.sleep(2)
            assert ticks, "the daemon never evaluated vee_day_sensor"
            assert ticks[-1].status == TickStatus.SKIPPED and not ticks[-1].run_ids
            assert (
                len(instance.get_run_ids(dg.RunsFilter(job_name="vee_job"))) == 1
            )  # nothing validated again
    finally:
        for proc in (daemon, webserver):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_run_job_follows_the_environment_of_each_call(tmp_path: Path, monkeypatch) -> None:
    """Two data directories and stores in one process (as in a test session): each run reads its own."""
    meters = "meter_id,kind,commodity,role,channels,unit,interval_seconds,multiplier,dials\n"
    with dg.instance_for_test() as instance:
        for n in (1, 3):
            data = tmp_path / f"data{n}"
            (data / "cis").mkdir(parents=True)
            (data / "cis" / "meters.csv").write_text(
                meters + "".join(f"M{i},ami,electric,customer,kwh_delivered,kWh,900,1,6\n" for i in range(n))
            )
            monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
            monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{tmp_path / f'store{n}.duckdb'}")
            result = run_job(instance, "cis_sync_job")
            [mat] = result.asset_materializations_for_node("cis_master_data")
            assert mat.metadata["meters_inserted"].value == n
