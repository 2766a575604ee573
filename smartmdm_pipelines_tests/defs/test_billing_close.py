"""Billing-cycle close through Dagster on both backends: dbt models and tests, completeness
refusal, versioned determinants (no new version on an unchanged re-close, exactly one
correction when one interval of a closed period changes), blocking checks, CIS export."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.billing import scenario as sc

TZ = "America/Chicago"
KEY = "C01|2027-07-02"


def build(url: str, *, hours_missing: int = 0) -> None:
    store = Store(url)
    sc.add_tariff(store, "TOU", energy_weekday=sc.peak_grid(range(16, 21)), holidays=[dt.date(2027, 7, 5)])
    sc.three_metered_accounts(store, "TOU", "2027-07-02", "2027-07-05", hours_missing=hours_missing)
    store.dispose()


def close(definitions, instance, **config) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("billing_periods", [KEY])
    job = definitions.resolve_job_def("close_billing_cycle_job")
    close_config = {"closed_by": "test", "reason": "monthly close", **config}  # both required
    run_config = {"ops": {"billing_determinants": {"config": close_config}}}
    return job.execute_in_process(
        instance=instance, partition_key=KEY, run_config=run_config, raise_on_error=False
    )


def test_close_reclose_and_correction(billing_env: str, instance: dg.DagsterInstance) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env)
    definitions = defs()
    first = close(definitions, instance)
    assert first.success
    checks = first.get_asset_check_evaluations()
    assert {c.check_name for c in checks} >= {"every_service_point_billed", "determinants_consistent"}
    assert all(c.passed for c in checks if c.check_name != "estimated_share_within_limit")

    store = Store(billing_env)
    dets = store.read_frame("SELECT * FROM billing_determinants")
    assert set(dets["version"]) == {1} and set(dets["account_id"]) == {"A0", "A1", "A2"}
    a0 = dets[dets.account_id.eq("A0") & dets.determinant.eq("kwh_delivered")]
    # TV-12 on interval data: 96 kWh over four days, 5 on-peak hours (holiday Monday is off-peak)
    assert sorted(a0["value"].round(9).tolist()) == [5.0, 91.0, 96.0]

    # the export: CSV + JSONL + manifest, one record per account-period-version
    from smartmdm_pipelines.config import load_config

    export_dir = load_config().cis_export_dir
    manifests = sorted(export_dir.glob("*.manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["record_count"] == 3
    # … and the period's interval versions, read from the outbox (docs/cis.md)
    intervals = pd.read_csv(str(manifests[0]).replace(".manifest.json", ".intervals.csv"))
    current = store.scalar(
        f"SELECT count(*) FROM ({current_intervals_sql('read_day BETWEEN :a AND :b')}) c WHERE status <> 'missing'",
        {"a": dt.date(2027, 7, 2), "b": dt.date(2027, 7, 5)},
    )
    assert len(intervals) == current > 0 and intervals["message_id"].is_unique
    assert json.loads(manifests[0].read_text())["interval_records"] == current

    # re-close with unchanged data: no new version, nothing exported again
    store.dispose()
    again = close(definitions, instance)
    assert again.success
    assert store.scalar("SELECT max(version) FROM billing_determinants") == 1
    assert store.scalar("SELECT count(*) FROM outbound_messages") == 3

    # one interval of the closed period changes: exactly one correction
    sc.add_intervals(
        store,
        "M1",
        pd.DatetimeIndex([pd.Timestamp("2027-07-03 12:00", tz=TZ)]),
        2.0,
        version=2,
        status="edited",
    )
    store.dispose()
    third = close(definitions, instance)
    assert third.success
    versions = store.read_frame(
        "SELECT account_id, version, is_correction FROM billing_determinants GROUP BY 1, 2, 3 ORDER BY 1, 2"
    )
    assert versions.to_dict(orient="records") == [
        {"account_id": "A0", "version": 1, "is_correction": False},
        {"account_id": "A1", "version": 1, "is_correction": False},
        {"account_id": "A1", "version": 2, "is_correction": True},
        {"account_id": "A2", "version": 1, "is_correction": False},
    ]
    assert store.scalar("SELECT count(*) FROM outbound_messages") == 4
    # the re-close's batch carries the one new interval version, with a new message id
    latest = sorted(export_dir.glob("*.intervals.csv"))[-1]
    changed = pd.read_csv(latest)
    assert changed[["meter_id", "version", "status"]].values.tolist() == [["M1", 2, "edited"]]
    assert changed["message_id"].iloc[0] not in set(intervals["message_id"])
    outcomes = store.read_frame("SELECT outcome FROM billing_closes ORDER BY closed_at")["outcome"].tolist()
    assert outcomes == ["closed", "unchanged", "corrected"]
    store.dispose()


def test_incomplete_period_is_refused_unless_forced(billing_env: str, instance: dg.DagsterInstance) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env, hours_missing=12)  # SP0 lacks its last 12 hours: 87.5 % of its intervals
    definitions = defs()
    refused = close(definitions, instance)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    text = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert "completeness 95.83%" in text and "below the 98.00% threshold" in text and "SP0 87.5%" in text
    store = Store(billing_env)
    assert store.count("billing_determinants") == 0
    assert store.read_frame("SELECT outcome FROM billing_closes")["outcome"].tolist() == ["refused"]
    store.dispose()

    forced = close(definitions, instance, force=True, reason="storm outage, bill actuals")
    assert forced.success
    assert store.scalar("SELECT count(DISTINCT account_id) FROM billing_determinants") == 3
    assert store.scalar("SELECT forced FROM billing_closes WHERE outcome = 'closed'") in (True, 1)
    # the forced close (a manual action) is in the audit log, once; the refused one is not
    log = store.read_frame("SELECT actor, action, object_id, reason, details FROM audit_log")
    assert log[["actor", "action", "object_id", "reason"]].values.tolist() == [
        ["test", "billing.force_close", KEY, "storm outage, bill actuals"]
    ]
    assert json.loads(log["details"].iloc[0])["completeness"] == pytest.approx(0.958333, abs=1e-6)
    store.dispose()


def test_forward_estimate_fills_what_has_not_arrived(billing_env: str, instance: dg.DagsterInstance) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env, hours_missing=12)
    definitions = defs()
    result = close(definitions, instance, forward_estimate=True, reason="month end, reads late")
    assert result.success
    store = Store(billing_env)
    forward = store.scalar(
        "SELECT count(*) FROM intervals WHERE meter_id = 'M0' AND estimation_method = 'forward' AND status = 'estimated'"
    )
    assert forward == 48  # the 12 missing hours of quarter-hours, up to the end of the period
    share = store.scalar(
        "SELECT value FROM billing_determinants WHERE account_id = 'A0' AND determinant = 'share_estimated'"
    )
    assert share == pytest.approx(48 / 384)
    assert store.read_frame("SELECT outcome, forced FROM billing_closes")["outcome"].tolist() == ["closed"]
    store.dispose()


def test_schedule_closes_due_periods_after_the_grace_days(
    billing_env: str, instance: dg.DagsterInstance
) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env)  # period 2027-07-02..05, read date 07-05; grace 3 days
    definitions = defs()
    schedule = definitions.resolve_schedule_def("billing_close_schedule")

    def tick(day: str):
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=pd.Timestamp(f"{day} 06:00", tz=TZ).to_pydatetime(),
            repository_def=definitions.get_repository_def(),
            resources={
                "store": StoreResource.from_environment(),
                "utility": UtilityConfigResource.from_environment(),
            },
        ) as context:
            return schedule.evaluate_tick(context)

    early = tick("2027-07-07")
    assert not early.run_requests and "no billing period due" in (early.skip_message or "")
    due = tick("2027-07-08")
    assert [r.partition_key for r in due.run_requests] == [KEY]
    # a scheduled close says who and why, like a manual one
    close_config = due.run_requests[0].run_config["ops"]["billing_determinants"]["config"]
    assert (
        close_config["closed_by"] == "billing_close_schedule"
        and "grace days passed" in close_config["reason"]
    )
    assert KEY in instance.get_dynamic_partitions("billing_periods")
    close(definitions, instance)
    assert not tick("2027-07-09").run_requests  # closed periods are not closed again by the schedule
