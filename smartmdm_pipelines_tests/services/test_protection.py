"""Revenue protection against the store on both backends: the scenario's thefts become ranked cases,
their look-alikes do not, re-runs never duplicate, dispositions are audited, closed cases stay closed
until new evidence appears."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.domain.protection.cases import CaseError
from smartmdm_pipelines.services import protection as prot
from smartmdm_pipelines.services.billing_reference import load_billing_reference
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import protection_scenario as sc

NOW = pd.Timestamp("2024-04-02T10:00Z")


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


@pytest.fixture
def utility(store: Store, config) -> Store:
    sc.build(store)
    load_billing_reference(store, config)
    return store


def test_thefts_become_cases_and_look_alikes_do_not(utility: Store, config) -> None:
    run = prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    cases = prot.list_cases(utility, status="all").set_index("service_point_id")
    assert set(cases.index) == {sc.DROP, sc.VACANT_USE, sc.REVERSE, sc.STOPPED, sc.AWAY}
    assert sorted(run.opened) == sorted(f"PC-{sp}" for sp in cases.index) and run.reopened == []
    ind = cases["indicators"]
    assert ind[sc.DROP] == "tamper_event;consumption_drop"
    assert ind[sc.VACANT_USE] == "vacant_usage" and ind[sc.REVERSE] == "reverse_flow"
    assert "flat_meter_zone_rise" in ind[sc.STOPPED] and "flat_meter_zone_rise" not in ind[sc.AWAY]
    assert cases.loc[sc.STOPPED, "score"] > cases.loc[sc.AWAY, "score"]
    # the tamper event dates the drop; the vacancy starts the day after the move-out
    assert pd.Timestamp(cases.loc[sc.DROP, "first_signal_at"]) == pd.Timestamp(f"{sc.day(15)}T15:10Z")
    assert pd.Timestamp(cases.loc[sc.VACANT_USE, "first_signal_at"]) == pd.Timestamp(f"{sc.day(10)}T05:00Z")
    # 18 vacant days at ~20 kWh; 3 days x 6.5 kWh received
    assert 300 < cases.loc[sc.VACANT_USE, "unbilled_volume"] < 420
    assert cases.loc[sc.REVERSE, "unbilled_volume"] == pytest.approx(19.5)
    assert (cases["revenue_at_stake"] > 0).all() and (cases["status"] == "open").all()
    assert cases.loc[sc.DROP, "account_id"] == "A-DROP" and cases.loc[sc.DROP, "rate_code"] == "E-RES"
    evidence = json.loads(cases.loc[sc.DROP, "evidence"])["signals"]
    drop = next(s for s in evidence if s["indicator"] == "consumption_drop")
    assert drop["dated_by"] == "tamper_event" and drop["own_ratio"] < 0.4 and len(drop["series"]) == 14
    flags = utility.read_frame("SELECT * FROM protection_flags")
    assert set(flags["case_id"].dropna()) == {f"PC-{sp}" for sp in cases.index}
    assert (pd.to_datetime(flags["read_day"]).dt.date == sc.AS_OF).all()


def test_cases_rank_by_revenue_at_stake_weighted_by_score(utility: Store, config) -> None:
    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    ranked = prot.list_cases(utility)
    weight = (ranked["score"] * ranked["revenue_at_stake"]).tolist()
    assert weight == sorted(weight, reverse=True) and ranked["rank"].tolist() == list(range(1, 6))
    assert ranked["service_point_id"].iloc[0] == sc.VACANT_USE  # a whole premise's use, unbilled
    assert len(prot.list_cases(utility, top=2)) == 2


def test_reruns_update_and_never_duplicate(utility: Store, config) -> None:
    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    before = utility.read_frame("SELECT * FROM protection_cases ORDER BY case_id")
    again = prot.evaluate_day(utility, config, sc.AS_OF, now=NOW + pd.Timedelta(hours=1))
    after = utility.read_frame("SELECT * FROM protection_cases ORDER BY case_id")
    assert again.opened == [] and again.updated == len(before) == len(after)
    assert after["score"].tolist() == before["score"].tolist()
    assert utility.count("protection_case_history") == len(before)  # one 'opened' row each
    assert utility.count("protection_flags") == again.signals


def test_dispositions_are_audited_and_closed_cases_reopen_only_on_new_evidence(
    utility: Store, config
) -> None:
    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    case = f"PC-{sc.REVERSE}"
    out = prot.mark_case(utility, case, "closed", "Ana Ruiz", "meter reversed at install; fixed", now=NOW)
    assert out == {"case_id": case, "status_from": "open", "status": "closed", "by": "Ana Ruiz"}
    prot.mark_case(utility, f"PC-{sc.AWAY}", "false_positive", "Bo", "customer on vacation", now=NOW)
    with pytest.raises(CaseError, match="no case"):
        prot.mark_case(utility, "PC-nope", "closed", "Ana", "x")

    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW + pd.Timedelta(days=1))  # the same evidence
    status = prot.list_cases(utility, status="all").set_index("case_id")["status"]
    assert status[case] == "closed" and status[f"PC-{sc.AWAY}"] == "false_positive"

    # new evidence: a tamper event on the meter, an indicator the case did not have when it was closed
    utility.bulk_insert(
        "meter_events",
        pd.DataFrame(
            [
                {
                    "file_id": 9,
                    "line": 2,
                    "meter_id": "M-REV",
                    "event_at": pd.Timestamp(f"{sc.AS_OF}T18:00Z"),
                    "event_type": "tamper",
                    "read_day": sc.AS_OF,
                }
            ]
        ),
    )
    run = prot.evaluate_day(utility, config, sc.AS_OF, now=NOW + pd.Timedelta(days=2))
    assert run.reopened == [case]
    row = prot.get_case(utility, case)
    assert row["status"] == "open" and row["reopened"] == 1 and row["disposition_by"] == "Ana Ruiz"
    history = prot.case_history(utility, case)
    assert history["status_to"].tolist() == ["open", "closed", "open"]
    assert history["changed_by"].tolist() == ["system:protection", "Ana Ruiz", "system:protection"]
    assert history["reason"].iloc[1] == "meter reversed at install; fixed"
    assert history["reason"].iloc[2].startswith("reopened on new evidence")


def test_an_open_case_no_signal_supports_any_more_is_withdrawn_and_comes_back(utility: Store, config) -> None:
    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    # the received energy turns out to be a data error: the head-end's corrected data has none
    utility.execute("DELETE FROM daily_usage WHERE meter_id = 'M-REV' AND channel = 'kwh_received'")
    run = prot.evaluate_day(utility, config, sc.AS_OF, now=NOW + pd.Timedelta(hours=1))
    assert run.withdrawn == [f"PC-{sc.REVERSE}"] and run.reopened == []
    assert f"PC-{sc.REVERSE}" not in set(prot.list_cases(utility)["case_id"])
    assert prot.get_case(utility, f"PC-{sc.REVERSE}")["status"] == "withdrawn"
    sc.build_received(utility)  # the energy is back: supported again, no analyst decision needed
    run = prot.evaluate_day(utility, config, sc.AS_OF, now=NOW + pd.Timedelta(hours=2))
    assert run.reopened == [f"PC-{sc.REVERSE}"]
    history = prot.case_history(utility, f"PC-{sc.REVERSE}")
    assert history["status_to"].tolist() == ["open", "withdrawn", "open"]
    assert history["reason"].iloc[2].startswith("supported again")


def test_received_energy_of_a_meter_without_the_channel_comes_from_raw_reads(utility: Store, config) -> None:
    """VEE does not validate a received channel the meter is not configured with; the energy is still
    evidence: one value per interval, the latest delivery's."""
    ends = pd.date_range(f"{sc.day(25)}T15:15Z", periods=4, freq="15min")
    raw = pd.DataFrame(
        {
            "file_id": [1] * 4 + [2] * 4,
            "line": range(2, 10),
            "meter_id": "M-E03",
            "channel": "kwh_received",
            "interval_end": list(ends) * 2,
            "interval_seconds": 900,
            "value": [9.0] * 4 + [0.5] * 4,  # the re-delivery (file 2) wins
            "unit": "kWh",
            "source_unit": "kWh",
            "read_day": sc.day(25),
        }
    )
    utility.bulk_insert("raw_reads", raw)
    prot.evaluate_day(utility, config, sc.AS_OF, now=NOW)
    case = prot.get_case(utility, "PC-SP-E03")
    assert case["indicators"] == "reverse_flow" and case["unbilled_volume"] == pytest.approx(2.0)
