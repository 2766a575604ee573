"""The definitions load, and the graph has what operators expect."""

import dagster as dg


def test_definitions_load_with_expected_assets_jobs_and_sensors(definitions: dg.Definitions) -> None:
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_reads", "cis_master_data"} <= keys
    assert definitions.resolve_job_def("ingest_headend_job") is not None
    assert definitions.resolve_job_def("cis_sync_job") is not None
    sensor = definitions.resolve_sensor_def("headend_file_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    dg.Definitions.validate_loadable(definitions)


def test_every_store_writing_asset_takes_the_store_pool(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.pools == {"smartmdm_store"}, key


def test_executor_follows_the_backend(monkeypatch) -> None:
    from smartmdm_pipelines.definitions import executor

    monkeypatch.setenv("SMARTMDM_DATABASE_URL", "duckdb:///x.duckdb")
    assert executor().name == "in_process"
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", "postgresql://u@h/db")
    assert executor().name == "multiprocess"
