"""Issue 9 item 4 on both backends: meter identities stay apart across customers, and a source's
meter map turns head-end ids into CIS meter ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smartmdm_pipelines.config import DEFAULT_CONFIG, load_config
from smartmdm_pipelines.services.ingestion import ingest_file, inspect_path
from smartmdm_pipelines.services.meter_ids import MeterMapError
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import cmep_line, green_button_feed

R = "https://utility.example/DataCustodian/espi/1_1/resource"
T0 = 1710050400  # 2024-03-10T06:00:00Z


def config_with(tmp_path: Path, **gas: object):
    """The bundled config plus a Green Button source ``gb_*`` (with ``gas`` settings)."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["sources"].insert(0, {"name": "gb", "pattern": "gb_*", "timezone": "America/Chicago", **gas})
    raw.pop("billing")  # its tariff paths are relative to the bundled folder
    path = tmp_path / "utility.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path, tmp_path / "data")


def test_two_customers_usage_point_1_are_two_meters_in_one_store(store: Store, tmp_path: Path) -> None:
    config = config_with(tmp_path)
    five = tmp_path / "gb_customer5.xml"
    one = tmp_path / "gb_customer1.xml"
    five.write_text(green_button_feed(f"{R}/RetailCustomer/5/UsagePoint/1", T0, [1000, 2000]))
    one.write_text(green_button_feed(f"{R}/RetailCustomer/1/UsagePoint/1", T0, [3000, 4000]))
    assert ingest_file(store, five, config).status == "loaded"
    assert ingest_file(store, one, config).status == "loaded"
    meters = store.read_frame(
        "SELECT meter_id, sum(value) AS kwh FROM raw_reads GROUP BY meter_id ORDER BY 1"
    )
    assert meters.to_dict("records") == [
        {"meter_id": "RetailCustomer/1/UsagePoint/1", "kwh": 7.0},
        {"meter_id": "RetailCustomer/5/UsagePoint/1", "kwh": 3.0},
    ]


def test_a_meter_map_gives_cis_meter_ids_and_lists_what_it_lacks(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "maps" / "gb.csv"
    mapping.parent.mkdir()
    mapping.write_text(
        "external_id,meter_id\nRetailCustomer/5/UsagePoint/1,G000005\nRetailCustomer/1/UsagePoint/1,G000001\n"
    )
    config = config_with(tmp_path, meter_map="maps/gb.csv")  # relative to the config folder
    for customer, values in ((5, [1000, 2000]), (1, [3000, 4000]), (9, [500])):
        path = tmp_path / f"gb_customer{customer}.xml"
        path.write_text(green_button_feed(f"{R}/RetailCustomer/{customer}/UsagePoint/1", T0, values))
        (inspected,) = inspect_path(path, config)
        summary = ingest_file(store, path, config)
        assert summary.unmapped_meters == inspected.unmapped_meters
    assert summary.unmapped_meters == ["RetailCustomer/9/UsagePoint/1"]  # kept as sent, and said so
    meters = store.read_frame(
        "SELECT meter_id, sum(value) AS kwh FROM raw_reads GROUP BY meter_id ORDER BY 1"
    )
    assert meters.to_dict("records") == [
        {"meter_id": "G000001", "kwh": 7.0},
        {"meter_id": "G000005", "kwh": 3.0},
        {"meter_id": "RetailCustomer/9/UsagePoint/1", "kwh": 0.5},
    ]


def test_a_meter_map_applies_to_every_adapter(store: Store, tmp_path: Path) -> None:
    """CMEP sends the head-end's own meter number; the map renames reads and keeps their lines."""
    mapping = tmp_path / "east.csv"
    mapping.write_text("external_id,meter_id\n74741489,B74741489\n")
    config = config_with(tmp_path)
    config.sources[1].meter_map = mapping  # ami-east
    path = tmp_path / "ami-east_20240309.txt"
    path.write_text(cmep_line("74741489", "202403090015", ["R0"] * 4, ["1", "2", "3", "4"]))
    summary = ingest_file(store, path, config)
    assert summary.status == "loaded" and summary.unmapped_meters == []
    rows = store.read_frame("SELECT DISTINCT meter_id, line FROM raw_reads")
    assert rows.to_dict("records") == [{"meter_id": "B74741489", "line": 1}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot be read"),
        ("id,meter\nA,B\n", "header is missing column(s) ['external_id', 'meter_id']"),
        ("external_id,meter_id\nA,B\nC,\n", "line 3 has an empty external_id or meter_id"),
        ("external_id,meter_id\nA,B\nA,C\n", "external id 'A' maps to more than one meter id (lines [2, 3])"),
    ],
)
def test_a_bad_meter_map_is_a_one_line_configuration_error(
    tmp_path: Path, text: str | None, message: str
) -> None:
    mapping = tmp_path / "map.csv"
    if text is not None:
        mapping.write_text(text)
    config = config_with(tmp_path, meter_map=str(mapping))
    path = tmp_path / "gb_x.xml"
    path.write_text(green_button_feed(f"{R}/RetailCustomer/5/UsagePoint/1", T0, [1]))
    with pytest.raises(
        MeterMapError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        inspect_path(path, config)
