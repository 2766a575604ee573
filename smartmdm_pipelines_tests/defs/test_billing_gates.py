"""What holds a billing close back, through Dagster on both backends: a day of the period failing
the blocking interval_estimates_gx check refuses the close (even forced) until the day passes; a
forced close on incomplete data goes out but is recorded as a failed check with who and why."""

from pathlib import Path

import dagster as dg
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.billing import scenario as sc
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER, interval_file

TZ = "America/Chicago"
KEY = "C01|2024-07-02"  # a past period: its operating days are vee_job partitions


def build(url: str, *, first_day_from_files: bool = False, hours_missing: int = 0) -> None:
    """Three metered accounts, period 2024-07-02..05. With ``first_day_from_files`` the first day
    has no intervals yet (its reads come through ingestion and VEE), nothing before it."""
    store = Store(url)
    sc.add_tariff(store, "FLAT", energy_weekday=sc.peak_grid(range(0)))
    sc.three_metered_accounts(
        store,
        "FLAT",
        "2024-07-02",
        "2024-07-05",
        intervals_from="2024-07-03" if first_day_from_files else None,
        hours_missing=hours_missing,
    )
    store.dispose()


def close(definitions, instance, **config) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("billing_periods", [KEY])
    run_config = {
        "ops": {"billing_determinants": {"config": {"closed_by": "ana", "reason": "monthly", **config}}}
    }
    return definitions.resolve_job_def("close_billing_cycle_job").execute_in_process(
        instance=instance, partition_key=KEY, run_config=run_config, raise_on_error=False
    )


def validate_first_day(definitions, instance, url: str, path: Path, hole: bool) -> dg.ExecuteInProcessResult:
    """Ingest a file of 2024-07-02 for M0..M2 (with a 12.5-hour hole nobody can estimate, or
    complete) and run vee_job on that day."""
    if hole:
        rows = [
            f"M{i},kwh_delivered,{e.strftime('%Y-%m-%dT%H:%M:%SZ')},900,{0.25 + s / 1000},kWh,"
            for i in range(3)
            for s, e in enumerate(sc.local_range("2024-07-02", "2024-07-03", TZ, 900))
            if s < 10 or s >= 60
        ]
        path.write_text(INTERVAL_HEADER + "\n".join(rows) + "\n")
    else:
        interval_file(path, ["M0", "M1", "M2"], "2024-07-02", shaped=True)
    store = Store(url)
    ingest_file(store, path, load_config(), archive=False)
    store.dispose()
    return definitions.resolve_job_def("vee_job").execute_in_process(
        instance=instance, partition_key="2024-07-02", raise_on_error=False
    )


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_a_day_failing_the_gx_check_blocks_the_close_until_it_passes(
    billing_env: str, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env, first_day_from_files=True)
    definitions = defs()
    vee = validate_first_day(definitions, instance, billing_env, tmp_path / "holey.csv", hole=True)
    [gx] = [e for e in vee.get_asset_check_evaluations() if e.check_name == "interval_estimates_gx"]
    assert not gx.passed and gx.description.startswith("2024-07-02: completeness")

    refused = close(definitions, instance, force=True, reason="bill it anyway")
    assert not refused.success
    text = step_failure(refused)
    assert "interval_estimates_gx failed on 1 operating day(s) of the period (2024-07-02)" in text
    assert "billing_determinants" not in materialized(refused)
    assert "cis_billing_export" not in materialized(refused)
    store = Store(billing_env)
    assert store.count("billing_determinants") == 0 and store.count("outbound_messages") == 0
    store.dispose()

    # the complete delivery arrives; the day is validated again and passes: the close goes through
    vee = validate_first_day(definitions, instance, billing_env, tmp_path / "complete.csv", hole=False)
    assert vee.success
    closed = close(definitions, instance)
    assert closed.success, step_failure(closed)
    assert {"billing_determinants", "cis_billing_export"} <= materialized(closed)


def test_a_forced_close_on_incomplete_data_is_visible(billing_env: str, instance: dg.DagsterInstance) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env, hours_missing=30)  # SP0 lacks its last 30 hours
    definitions = defs()
    forced = close(definitions, instance, force=True, reason="storm outage, bill actuals")
    assert forced.success  # a WARN check does not block the export
    [check] = [e for e in forced.get_asset_check_evaluations() if e.check_name == "billing_completeness"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "below the 98.00% threshold: forced by ana (storm outage, bill actuals)" in check.description
    [mat] = [
        m for m in forced.get_asset_materialization_events() if m.asset_key.path == ["billing_determinants"]
    ]
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    assert (meta["closed_by"], meta["reason"], meta["forced"]) == ("ana", "storm outage, bill actuals", True)
    assert meta["completeness"] == pytest.approx(1 - 120 / (3 * 384), abs=1e-6)
    assert "cis_billing_export" in materialized(forced)


def test_manual_closes_say_who_and_why_and_every_field_is_described() -> None:
    from smartmdm_pipelines.defs.billing.assets import CloseConfig
    from smartmdm_pipelines.defs.vee.operations import ResolveExceptionConfig

    for config, required in (
        (CloseConfig, {"closed_by", "reason"}),
        (ResolveExceptionConfig, {"exception_id", "action", "by", "reason"}),
    ):
        fields = config.to_fields_dict()
        assert {name for name, f in fields.items() if f.is_required} == required
        assert all(f.description for f in fields.values()), config
    assert ResolveExceptionConfig.to_fields_dict()["action"].config_type.given_name == "Action"
    with pytest.raises(ValueError, match="at least 1 character"):
        CloseConfig(closed_by="", reason="x")
