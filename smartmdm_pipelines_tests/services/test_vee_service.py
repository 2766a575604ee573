"""VEE against the store on both backends: versions, re-runs, late actuals, billed locks,
operator resolutions and traceability from file to current value."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.exceptions import (
    ExceptionError,
    Resolution,
    days_waiting_for_master_data,
    list_exceptions,
    resolve,
)
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER

DAY = dt.date(2024, 3, 12)  # a Tuesday in America/Chicago (UTC-5)


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def master_data(store: Store) -> None:
    meters = pd.DataFrame(
        [
            {
                "meter_id": m,
                "kind": "ami",
                "commodity": "electric",
                "role": "customer",
                "channels": "kwh_delivered",
                "unit": "kWh",
                "interval_seconds": 900,
                "multiplier": 1.0,
                "dials": 6,
            }
            for m in ("M1", "M2")
        ]
    )
    store.bulk_insert("meters", meters)
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            [
                {
                    "service_point_id": f"SP{i}",
                    "commodity": "electric",
                    "timezone": "America/Chicago",
                    "status": "active",
                    "customer_class": "residential",
                    "has_solar": False,
                }
                for i in (1, 2)
            ]
        ),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            [
                {
                    "meter_id": f"M{i}",
                    "service_point_id": f"SP{i}",
                    "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                    "multiplier": 1.0,
                }
                for i in (1, 2)
            ]
        ),
    )


def reads_file(path: Path, rows: dict[tuple[str, int], float | None]) -> Path:
    """One Chicago day of 15-minute reads; rows maps (meter, slot) -> value (None = absent)."""
    start = pd.Timestamp("2024-03-12T05:00Z")
    lines = []
    for (meter, slot), value in sorted(rows.items()):
        if value is None:
            continue
        end = start + pd.Timedelta(minutes=15 * (slot + 1))
        lines.append(f"{meter},kwh_delivered,{end.strftime('%Y-%m-%dT%H:%M:%SZ')},900,{value},kWh,")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(INTERVAL_HEADER + "\n".join(lines) + "\n")
    return path


def day_values(meter: str, gap: range = range(0)) -> dict:
    return {(meter, s): (None if s in gap else round(0.3 + 0.1 * (s % 4) + s / 1000, 3)) for s in range(96)}


def current(store: Store, meter: str, slot: int) -> dict:
    end = pd.Timestamp("2024-03-12T05:00Z") + pd.Timedelta(minutes=15 * (slot + 1))
    rows = store.read_frame(
        "SELECT * FROM intervals WHERE meter_id = :m AND interval_end = :e ORDER BY version",
        {"m": meter, "e": end},
    )
    return rows


def test_vee_writes_versions_once_and_late_actuals_supersede(store: Store, config, tmp_path: Path) -> None:
    master_data(store)
    ingest_file(
        store,
        reads_file(tmp_path / "d1.csv", {**day_values("M1", gap=range(40, 44)), **day_values("M2")}),
        config,
    )
    first = run_day(store, DAY, config)
    assert first.validation_versions == 192 and first.estimation_versions == 4
    gap = current(store, "M1", 41)
    assert gap["status"].tolist() == ["missing", "estimated"]
    assert gap["estimation_method"].iloc[-1] == "linear" and gap["espi_quality"].iloc[-1] == 9
    assert "between" in gap["reason"].iloc[-1]
    assert set(list_exceptions(store)["rule"]) == {"missing_interval"}

    again = run_day(store, DAY, config)  # unchanged data: nothing new
    assert (again.validation_versions, again.estimation_versions) == (0, 0)
    assert store.count("intervals") == 196

    late = reads_file(tmp_path / "late.csv", {("M1", s): 1.11 for s in range(40, 44)})
    ingest_file(store, late, config)
    third = run_day(store, DAY, config)
    assert third.validation_versions == 4 and third.estimation_versions == 0
    trail = current(store, "M1", 41)
    assert trail["status"].tolist() == ["missing", "estimated", "valid"]
    assert trail["value"].iloc[-1] == pytest.approx(1.11)
    assert trail["previous_value"].iloc[-1] == pytest.approx(
        trail["value"].iloc[1]
    )  # the estimate it replaced
    # traceability: the current value names its file and line
    files = store.read_frame("SELECT file_id, name FROM headend_files")
    assert (
        dict(zip(files["file_id"], files["name"], strict=True))[int(trail["source_file_id"].iloc[-1])]
        == "late.csv"
    )
    raw = store.read_frame(
        "SELECT value FROM raw_reads WHERE file_id = :f AND line = :l",
        {"f": int(trail["source_file_id"].iloc[-1]), "l": int(trail["source_line"].iloc[-1])},
    )
    assert raw["value"].iloc[0] == pytest.approx(1.11)
    # the missing-interval exception is resolved automatically once the data arrived
    statuses = store.read_frame("SELECT rule, status FROM vee_exceptions WHERE meter_id = 'M1'")
    assert statuses.set_index("rule")["status"]["missing_interval"] == "resolved"


def test_a_billed_estimate_is_locked_and_its_replacement_asks_for_restatement(
    store: Store, config, tmp_path
) -> None:
    master_data(store)
    ingest_file(store, reads_file(tmp_path / "d1.csv", day_values("M1", gap=range(40, 42))), config)
    run_day(store, DAY, config)
    store.execute("UPDATE intervals SET billed = TRUE WHERE status = 'estimated'")
    ingest_file(store, reads_file(tmp_path / "late.csv", {("M1", 40): 0.9, ("M1", 41): 0.95}), config)
    run_day(store, DAY, config)
    restate = store.read_frame("SELECT * FROM vee_exceptions WHERE rule = 'billed_estimate_replaced'")
    assert len(restate) == 1 and restate["intervals"].iloc[0] == 2 and restate["severity"].iloc[0] == "error"
    assert current(store, "M1", 40)["status"].iloc[-1] == "valid"


def test_operator_edit_stays_current_and_is_audited(store: Store, config, tmp_path) -> None:
    master_data(store)
    values = day_values("M1")
    values[("M1", 50)] = 55.0  # a spike
    ingest_file(store, reads_file(tmp_path / "d1.csv", values), config)
    run_day(store, DAY, config)
    spike = list_exceptions(store, rule="spike")
    assert len(spike) == 1
    with pytest.raises(ExceptionError, match="who"):
        resolve(store, config, Resolution(spike["exception_id"].iloc[0], "edit", by="", reason="", value=0.5))
    outcome = resolve(
        store,
        config,
        Resolution(spike["exception_id"].iloc[0], "edit", by="jdoe", reason="meter test", value=0.52),
    )
    assert outcome == {"exception_id": spike["exception_id"].iloc[0], "status": "edited", "new_versions": 1}
    trail = current(store, "M1", 50)
    last = trail.iloc[-1]
    assert (last["status"], last["value"], last["created_by"], last["espi_quality"]) == (
        "edited",
        0.52,
        "jdoe",
        7,
    )
    assert last["previous_value"] == pytest.approx(trail["value"].iloc[-2]) and "meter test" in last["reason"]
    run_day(store, DAY, config)  # re-validation does not undo the edit
    assert current(store, "M1", 50)["status"].iloc[-1] == "edited"
    row = store.read_frame("SELECT status, resolved_by FROM vee_exceptions WHERE rule = 'spike'").iloc[0]
    assert (row["status"], row["resolved_by"]) == ("edited", "jdoe")
    with pytest.raises(ExceptionError, match="not open"):
        resolve(
            store, config, Resolution(spike["exception_id"].iloc[0], "dismiss", by="jdoe", reason="again")
        )


def test_accept_marks_the_received_value_verified(store: Store, config, tmp_path) -> None:
    master_data(store)
    values = day_values("M1")
    values[("M1", 50)] = 55.0
    ingest_file(store, reads_file(tmp_path / "d1.csv", values), config)
    run_day(store, DAY, config)
    spike = list_exceptions(store, rule="spike")["exception_id"].iloc[0]
    resolve(store, config, Resolution(spike, "accept", by="ops", reason="customer confirmed EV charging"))
    last = current(store, "M1", 50).iloc[-1]
    assert (last["status"], last["value"], last["espi_quality"]) == ("verified", 55.0, 18)


def test_requested_estimation_method(store: Store, config, tmp_path) -> None:
    master_data(store)
    values = day_values("M1")
    values[("M1", 50)] = 55.0
    ingest_file(store, reads_file(tmp_path / "d1.csv", {**values, **day_values("M2")}), config)
    run_day(store, DAY, config)
    spike = list_exceptions(store, rule="spike")["exception_id"].iloc[0]
    resolve(store, config, Resolution(spike, "estimate", by="ops", reason="spike", method="linear"))
    last = current(store, "M1", 50).iloc[-1]
    neighbours = (values[("M1", 49)] + values[("M1", 51)]) / 2
    assert last["status"] == "estimated" and last["estimation_method"] == "linear"
    assert last["value"] == pytest.approx(neighbours)


def test_reads_of_unregistered_meters_wait_for_the_cis_sync(store: Store, config, tmp_path) -> None:
    """A day whose meters the master data does not know yet: VEE completes, the reads wait as one
    unregistered_meter exception per meter-channel-day, and a re-run after the sync validates them."""
    ingest_file(store, reads_file(tmp_path / "d1.csv", {**day_values("M1"), **day_values("M2")}), config)
    first = run_day(store, DAY, config)
    assert first.validation.stats["expected_intervals"] == 0 and store.count("intervals") == 0
    waiting = list_exceptions(store)
    assert sorted(waiting["meter_id"]) == ["M1", "M2"] and set(waiting["rule"]) == {"unregistered_meter"}
    assert set(waiting["severity"]) == {"warning"}
    assert "96 read(s) of a meter the master data does not know yet" in waiting["detail"].iloc[0]
    assert days_waiting_for_master_data(store) == []  # the meters are still unknown

    master_data(store)  # the CIS sync brings M1 and M2
    assert days_waiting_for_master_data(store) == [DAY.isoformat()]
    again = run_day(store, DAY, config)
    assert again.validation_versions == 192 and again.validation.stats["first_pass_valid_share"] == 1.0
    rows = store.read_frame("SELECT status, resolution FROM vee_exceptions WHERE rule = 'unregistered_meter'")
    assert set(rows["status"]) == {"resolved"} and "in the master data now" in rows["resolution"].iloc[0]
    assert days_waiting_for_master_data(store) == [] and list_exceptions(store).empty


def test_an_unknown_meter_next_to_known_ones_is_unregistered_not_inactive(
    store: Store, config, tmp_path
) -> None:
    master_data(store)
    ingest_file(store, reads_file(tmp_path / "d1.csv", {**day_values("M1"), **day_values("M9")}), config)
    run_day(store, DAY, config)
    queue = list_exceptions(store)  # (M2 sent nothing yet: awaited, no exception)
    assert queue.set_index("meter_id")["rule"].to_dict() == {"M9": "unregistered_meter"}
    assert store.scalar("SELECT count(DISTINCT meter_id) FROM intervals") == 2  # M1 and M2, never M9
