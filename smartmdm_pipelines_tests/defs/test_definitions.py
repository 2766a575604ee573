"""The definitions load, and the graph has what operators expect."""

import dagster as dg


def test_definitions_load_with_expected_assets_jobs_and_sensors(definitions: dg.Definitions) -> None:
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_reads", "cis_master_data"} <= keys
    assert {
        "billing_reference_data",
        "period_determinants",
        "billing_determinants",
        "cis_billing_export",
    } <= keys
    assert definitions.resolve_job_def("close_billing_cycle_job") is not None
    assert definitions.resolve_schedule_def("billing_close_schedule") is not None
    assert definitions.resolve_job_def("ingest_headend_job") is not None
    assert definitions.resolve_job_def("cis_sync_job") is not None
    sensor = definitions.resolve_sensor_def("headend_file_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    dg.Definitions.validate_loadable(definitions)


def test_every_store_writing_asset_takes_the_store_pool(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:  # store tables declared for lineage (written by another asset)
            continue
        assert node.pools == {"smartmdm_store"}, key


def test_executor_follows_the_backend(monkeypatch) -> None:
    from smartmdm_pipelines.definitions import executor

    monkeypatch.setenv("SMARTMDM_DATABASE_URL", "duckdb:///x.duckdb")
    assert executor().name == "in_process"
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", "postgresql://u@h/db")
    assert executor().name == "multiprocess"


def test_billing_lineage_is_one_graph(definitions: dg.Definitions) -> None:
    """dbt sources map to the Python assets that write them: ingestion → VEE → dbt → close → export."""
    graph = definitions.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey("billing_ready_usage")).parent_keys
    # billing reads the estimated intervals (behind their blocking check), downstream of validation,
    # through their staging view (models read sources only through stg_* views)
    assert dg.AssetKey("stg_intervals") in upstream
    assert dg.AssetKey("interval_estimates") in graph.get(dg.AssetKey("stg_intervals")).parent_keys
    assert dg.AssetKey("validated_intervals") in graph.get(dg.AssetKey("interval_estimates")).parent_keys
    assert dg.AssetKey("cis_master_data") in graph.get(dg.AssetKey(["store", "accounts"])).parent_keys
    assert dg.AssetKey("period_determinants") in graph.get(dg.AssetKey("billing_determinants")).parent_keys
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("period_determinants")}
    assert any(name.startswith("tou_buckets_add_up") for name in checks)  # a dbt test as an asset check


def test_dbt_assets_show_the_store_backend_as_their_kind(monkeypatch, tmp_path) -> None:
    """The kind comes from SMARTMDM_DATABASE_URL when the definitions load (one store per process),
    not from the target that parsed the manifest."""
    import json

    from smartmdm_pipelines.defs.billing.dbt_assets import BillingTranslator
    from smartmdm_pipelines.lib.dbt import smartmdm_dbt

    manifest = json.loads(smartmdm_dbt.manifest_path.read_text())
    [model] = [k for k in manifest["nodes"] if k.startswith("model.") and k.endswith(".period_determinants")]
    for url, kind in (
        (f"duckdb:///{tmp_path / 'x.duckdb'}", "duckdb"),
        ("postgresql+psycopg2://u@127.0.0.1:5432/db", "postgres"),  # nothing connects: definitions only
    ):
        monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
        spec = BillingTranslator().get_asset_spec(manifest, model, smartmdm_dbt)
        assert spec.kinds == {"dbt", kind}
        assert spec.metadata["dagster/storage_kind"] == kind
