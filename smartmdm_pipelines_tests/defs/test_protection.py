"""Revenue protection through Dagster: the day's assets, the high-score warning and the launchpad
disposition job with its typed config."""

import os
from pathlib import Path

import dagster as dg
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.billing_reference import load_billing_reference
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import protection_scenario as sc


@pytest.fixture
def scenario(mdm_env: Path) -> str:
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    sc.build(store)
    load_billing_reference(store, load_config(data_dir=mdm_env))
    store.dispose()
    return os.environ["SMARTMDM_DATABASE_URL"]


def test_the_day_materializes_signals_and_ranked_cases_and_warns_on_new_high_scores(
    scenario: str, definitions: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    job = definitions.resolve_job_def("revenue_protection_job")
    run = job.execute_in_process(instance=instance, partition_key=sc.AS_OF.isoformat())
    assert run.success
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in run.asset_materializations_for_node("revenue_protection_day")
    }
    assert meta["protection_signals"]["dagster/row_count"].value == 9
    assert meta["protection_signals"]["signals_by_indicator"].value["flat_meter_zone_rise"] == 1
    cases = meta["protection_cases"]
    assert cases["opened"].value == 5 and cases["dagster/row_count"].value == 5
    assert "| 1 | PC-SP-VACUSE |" in cases["top_cases"].value
    [check] = run.get_asset_check_evaluations()
    assert check.check_name == "new_high_score_cases" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["new_high_score_cases"].value == 5

    graph = definitions.resolve_asset_graph()
    assert dg.AssetKey("interval_estimates") in graph.get(dg.AssetKey("protection_signals")).parent_keys
    assert graph.get(dg.AssetKey("protection_cases")).group_name == "revenue_protection"


def test_the_disposition_job_has_typed_config_and_audits(
    scenario: str, definitions: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    definitions.resolve_job_def("revenue_protection_job").execute_in_process(
        instance=instance, partition_key=sc.AS_OF.isoformat()
    )
    job = definitions.resolve_job_def("mark_protection_case_job")
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields["mark_protection_case"]
    config_fields = fields.config_type.fields["config"].config_type.fields
    assert set(config_fields) == {"case_id", "status", "by", "reason"}
    assert all(config_fields[name].is_required and config_fields[name].description for name in config_fields)

    def run(**config):
        return job.execute_in_process(
            instance=instance,
            run_config={"ops": {"mark_protection_case": {"config": config}}},
            raise_on_error=False,
        )

    with pytest.raises(dg.DagsterInvalidConfigError):
        run(case_id="PC-SP-REV", status="resolved", by="Ana", reason="x")
    assert not run(case_id="PC-SP-REV", status="closed", by="Ana", reason=" ").success
    assert run(case_id="PC-SP-REV", status="confirmed", by="Ana", reason="bypass cable found").success
    store = Store(scenario)
    history = store.read_frame(
        "SELECT * FROM protection_case_history WHERE case_id = 'PC-SP-REV' ORDER BY changed_at"
    )
    # the launchpad channel writes the audit log too: one row, the refused run none
    log = store.read_frame("SELECT actor, action, object_id, reason FROM audit_log")
    store.dispose()
    assert log.values.tolist() == [["Ana", "case.disposition", "PC-SP-REV", "bypass cable found"]]
    assert history["status_to"].tolist() == ["open", "confirmed"]
    assert (
        history["changed_by"].tolist()[-1] == "Ana" and history["reason"].tolist()[-1] == "bypass cable found"
    )
