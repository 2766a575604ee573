"""A re-close with unchanged inputs skips the dbt build (services/billing_inputs.py), and only then:
one changed interval, a tariff holiday, a build of another selection or a failed build makes the
next close build again, and its determinants are those of a full build (both backends)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from smartmdm_pipelines.services.billing_close import version_determinants
from smartmdm_pipelines.services.billing_inputs import built_fingerprint
from smartmdm_pipelines.services.dbt_runner import DbtFailed, run_dbt
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.billing import scenario as sc

TZ = "America/Chicago"
START = "2027-07-02"
NEXT = "2027-07-06"  # a second period of the cycle, without intervals


def _close(store: Store):
    return version_determinants(
        store, "C01", START, closed_by="test", threshold=0.98, estimated_share_limit=0.1
    )


def _determinants(store: Store) -> pd.DataFrame:
    frame = sc.determinants(store)
    return frame.sort_values(["account_id", "determinant", "tou_period"]).reset_index(drop=True)


def _periods(store: Store) -> list[str]:
    frame = store.read_frame("SELECT DISTINCT period_start FROM period_determinants ORDER BY 1")
    return [pd.Timestamp(p).date().isoformat() for p in frame["period_start"]]


def test_reclose_skips_the_build_only_while_inputs_are_unchanged(store: Store) -> None:
    sc.add_tariff(store, "TOU", energy_weekday=sc.peak_grid(range(16, 21)))
    sc.three_metered_accounts(store, "TOU", START, "2027-07-05")
    sc.add_cycle(store, "C01", NEXT, "2027-07-09")

    assert not run_dbt(store, "C01", START).skipped
    assert _close(store).outcome == "closed"
    first = _determinants(store)

    again = run_dbt(store, "C01", START)
    assert again.skipped  # nothing changed: the models already hold this build
    assert _close(store).new_versions == 0

    # one interval of the period changes: the re-close builds and picks it up
    sc.add_intervals(
        store,
        "M1",
        pd.DatetimeIndex([pd.Timestamp("2027-07-03 12:00", tz=TZ)]),
        2.0,
        version=2,
        status="edited",
    )
    assert not run_dbt(store, "C01", START).skipped
    result = _close(store)
    assert (result.outcome, result.new_versions, result.corrections) == ("corrected", 1, 1)
    changed = _determinants(store)
    a1 = changed[
        changed.account_id.eq("A1") & changed.determinant.eq("kwh_delivered") & changed.tou_period.isna()
    ]
    assert a1["value"].round(9).tolist() == [96.0 - 0.25 + 2.0]  # four days of 0.25 kWh quarter-hours
    assert not changed.equals(first)
    # … and what it built is exactly a full build's
    assert run_dbt(store, "C01", START).skipped
    assert not run_dbt(store, "C01", START, reuse=False).skipped
    pd.testing.assert_frame_equal(_determinants(store), changed)

    # a tariff input changes (a holiday in the period): built again
    store.bulk_insert(
        "tariff_holidays",
        pd.DataFrame(
            [{"rate_code": "TOU", "effective_from": dt.date(2000, 1, 1), "holiday": dt.date(2027, 7, 5)}]
        ),
    )
    assert not run_dbt(store, "C01", START).skipped
    assert run_dbt(store, "C01", START).skipped

    # a build of another selection (every period) replaces the models: the period builds again
    run_dbt(store, "", "")
    assert built_fingerprint(store) in (None, "")
    assert _periods(store) == [START, NEXT]
    assert not run_dbt(store, "C01", START).skipped
    assert _periods(store) == [START]  # the period of this run, not the one compiled before


def test_a_failed_build_leaves_no_fingerprint(store: Store) -> None:
    sc.add_tariff(store, "TOU", energy_weekday=sc.peak_grid(range(16, 21)))
    sc.three_metered_accounts(store, "TOU", START, "2027-07-05")
    run_dbt(store, "C01", START)
    assert built_fingerprint(store)

    # a large negative delivered interval makes a bucket negative: segment_usage's non_negative test fails
    sc.add_intervals(
        store,
        "M2",
        pd.DatetimeIndex([pd.Timestamp("2027-07-03 12:00", tz=TZ)]),
        -1000.0,
        version=2,
        status="edited",
    )
    with pytest.raises(DbtFailed):
        run_dbt(store, "C01", START)
    assert built_fingerprint(store) is None
    with pytest.raises(DbtFailed):  # and the next close does not skip it: it fails again
        run_dbt(store, "C01", START)
