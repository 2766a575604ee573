"""CIS master data inbound with history, on DuckDB and PostgreSQL: frames, the simulator's CSV drop,
the REST API on loopback, bad input, and the Dagster asset."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from pytest_httpserver import HTTPServer

from smartmdm_pipelines.config import DEFAULT_CONFIG
from smartmdm_pipelines.integrations.cis_client import CisClient
from smartmdm_pipelines.services.cis_sync import MasterDataError, read_master_data, sync_master_data
from smartmdm_pipelines.simulate import SimulationSpec, generate
from smartmdm_pipelines.store.store import Store

D1 = dt.date(2024, 3, 1)
D2 = dt.date(2024, 4, 1)
D3 = dt.date(2024, 5, 1)


def service_points(**changes: dict[str, str]) -> pd.DataFrame:
    rows = {
        "SP1": {"commodity": "electric", "timezone": "America/Chicago", "rate_code": "R1", "billing_cycle": "C01",
                "route": "RT1", "zone_id": "", "customer_class": "residential", "has_solar": "false", "status": "active"},
        "SP2": {"commodity": "water", "timezone": "America/Chicago", "rate_code": "W1", "billing_cycle": "C02",
                "route": "RT2", "zone_id": "Z1", "customer_class": "residential", "has_solar": "0", "status": "active"},
    }  # fmt: skip
    for sp, change in changes.items():
        rows[sp] = {**rows[sp], **change}
    return pd.DataFrame([{"service_point_id": sp, **row} for sp, row in rows.items()])


def accounts(move_out: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "service_point_id": ["SP1", "SP2"],
            "customer_name": ["Ada", "Bob, Jr."],
            "move_in": ["2020-06-15", "2021-01-01"],
            "move_out": [move_out, ""],
        }
    )


def installs(multiplier: str = "1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter_id": ["M1", "M2"],
            "service_point_id": ["SP1", "SP2"],
            "installed_at": ["2019-02-01T15:00:00Z", "2021-01-01T06:00:00Z"],
            "removed_at": ["", ""],
            "multiplier": [multiplier, "1"],
        }
    )


def master(**kw) -> dict[str, pd.DataFrame]:
    return {
        "service_points": kw.get("service_points", service_points()),
        "accounts": kw.get("accounts", accounts()),
        "meter_installs": kw.get("meter_installs", installs()),
    }


def history(store: Store) -> pd.DataFrame:
    frame = store.read_frame(
        "SELECT service_point_id, valid_from, valid_to, rate_code, status FROM service_point_history "
        "ORDER BY service_point_id, valid_from"
    )
    for col in ("valid_from", "valid_to"):
        frame[col] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[col]]
    return frame


def test_first_sync_opens_history_at_the_earliest_move_in_or_install(store: Store) -> None:
    report = sync_master_data(store, master(), effective_date=D1)
    assert report["service_points"].inserted == 2
    assert report["service_point_history"].inserted == 2
    assert report["accounts"].inserted == 2 and report["meter_installs"].inserted == 2
    h = history(store)
    # SP1: installed 2019-02-01 before its move-in 2020-06-15; SP2: both on 2021-01-01
    assert h[["service_point_id", "valid_from", "valid_to"]].values.tolist() == [
        ["SP1", dt.date(2019, 2, 1), None],
        ["SP2", dt.date(2021, 1, 1), None],
    ]
    sp = store.read_frame("SELECT * FROM service_points ORDER BY service_point_id")
    assert sp["has_solar"].tolist() == [False, False]
    assert sp["zone_id"].isna().tolist() == [True, False]


def test_a_resync_of_the_same_data_changes_nothing(store: Store) -> None:
    sync_master_data(store, master(), effective_date=D1)
    before = {
        t: store.read_frame(f"SELECT * FROM {t}")
        for t in ("service_points", "service_point_history", "accounts", "meter_installs")
    }
    report = sync_master_data(store, master(), effective_date=D2)
    assert report.changed == 0
    assert all(c.unchanged == c.received for c in report.tables.values())
    for table, frame in before.items():
        pd.testing.assert_frame_equal(store.read_frame(f"SELECT * FROM {table}"), frame, check_like=True)


def test_a_rate_change_closes_the_open_version_and_opens_one(store: Store) -> None:
    sync_master_data(store, master(), effective_date=D1)
    report = sync_master_data(
        store, master(service_points=service_points(SP1={"rate_code": "R2"})), effective_date=D2
    )
    assert report["service_points"].updated == 1 and report["service_points"].inserted == 0
    assert (report["service_point_history"].closed, report["service_point_history"].inserted) == (1, 1)
    report = sync_master_data(
        store,
        master(service_points=service_points(SP1={"rate_code": "R2", "status": "inactive"})),
        effective_date=D3,
    )
    assert report["service_point_history"].closed == 1
    h = history(store)
    assert h.values.tolist() == [
        ["SP1", dt.date(2019, 2, 1), D2, "R1", "active"],
        ["SP1", D2, D3, "R2", "active"],
        ["SP1", D3, None, "R2", "inactive"],
        ["SP2", dt.date(2021, 1, 1), None, "W1", "active"],
    ]
    assert store.scalar("SELECT rate_code FROM service_points WHERE service_point_id = 'SP1'") == "R2"


def test_a_per_row_effective_from_wins_and_a_same_day_change_corrects_in_place(store: Store) -> None:
    sync_master_data(store, master(), effective_date=D1)
    sps = service_points(SP1={"rate_code": "R2"}, SP2={"billing_cycle": "C03"})
    sps["effective_from"] = ["2024-03-15", ""]  # SP2 falls back to the effective_date argument
    report = sync_master_data(store, {"service_points": sps}, effective_date=D2)
    assert report["service_point_history"].closed == 2
    sps = service_points(SP1={"rate_code": "R3"}, SP2={"billing_cycle": "C03"})
    sps["effective_from"] = ["2024-03-15", ""]  # the same day again: a correction of that version
    report = sync_master_data(store, {"service_points": sps}, effective_date=D2)
    assert (report["service_point_history"].updated, report["service_point_history"].closed) == (1, 0)
    h = history(store)
    assert h[["service_point_id", "valid_from", "valid_to", "rate_code"]].values.tolist() == [
        ["SP1", dt.date(2019, 2, 1), dt.date(2024, 3, 15), "R1"],
        ["SP1", dt.date(2024, 3, 15), None, "R3"],
        ["SP2", dt.date(2021, 1, 1), D2, "W1"],
        ["SP2", D2, None, "W1"],
    ]


def test_first_sight_without_move_in_or_install_uses_effective_from_or_1900(store: Store) -> None:
    sps = service_points()
    sps["effective_from"] = ["2022-02-02", ""]
    sync_master_data(store, {"service_points": sps}, effective_date=D1)
    assert history(store)["valid_from"].tolist() == [dt.date(2022, 2, 2), dt.date(1900, 1, 1)]


def test_move_out_and_multiplier_changes_update_and_nothing_is_deleted(store: Store) -> None:
    sync_master_data(store, master(), effective_date=D1)
    changed = master(accounts=accounts(move_out="2024-03-31"), meter_installs=installs(multiplier="2"))
    changed["accounts"] = changed["accounts"].iloc[:1]  # A2 absent from this snapshot
    changed["meter_installs"] = changed["meter_installs"].iloc[:1]
    report = sync_master_data(store, changed, effective_date=D2)
    assert (report["accounts"].updated, report["accounts"].inserted) == (1, 0)
    assert report["meter_installs"].updated == 1
    assert report["service_point_history"].closed == 0
    acc = store.read_frame("SELECT account_id, move_out FROM accounts ORDER BY account_id")
    assert acc["account_id"].tolist() == ["A1", "A2"]  # A2 kept
    assert pd.Timestamp(acc["move_out"].iloc[0]).date() == dt.date(2024, 3, 31)
    assert pd.isna(acc["move_out"].iloc[1])
    mult = store.read_frame("SELECT meter_id, multiplier FROM meter_installs ORDER BY meter_id")
    assert mult.values.tolist() == [["M1", 2.0], ["M2", 1.0]]
    # a new tenant is a new effective-dated row, not an overwrite
    new = pd.DataFrame(
        [
            {
                "account_id": "A3",
                "service_point_id": "SP1",
                "customer_name": "Cy",
                "move_in": "2024-04-01",
                "move_out": "",
            }
        ]
    )
    report = sync_master_data(store, {"accounts": new})
    assert report["accounts"].inserted == 1 and store.count("accounts") == 3
    assert "service_point_history" not in report.tables  # no service points in this sync


def test_only_columns_the_source_sends_are_updated(store: Store) -> None:
    sync_master_data(store, master(), effective_date=D1)
    slim = accounts().drop(columns=["customer_name"]).assign(move_out=["2024-03-31", ""])
    sync_master_data(store, {"accounts": slim})
    names = store.read_frame("SELECT customer_name FROM accounts ORDER BY account_id")["customer_name"]
    assert names.tolist() == ["Ada", "Bob, Jr."]


def test_one_bad_table_rolls_back_the_whole_sync(store: Store) -> None:
    with pytest.raises(MasterDataError):
        sync_master_data(store, {**master(), "zones": pd.DataFrame({"zone_id": ["Z1"]})})
    assert store.count("service_points") == 0 and store.count("accounts") == 0


# --- bad input --------------------------------------------------------------------------------------


def write_drop(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


@pytest.mark.parametrize(
    ("table", "frame", "expected"),
    [
        ("accounts", accounts().drop(columns=["move_in"]), r"accounts\.csv: missing column \['move_in'\]"),
        (
            "accounts",
            accounts(move_out="31/03/2024"),
            r"accounts\.csv line 2: column 'move_out' is '31/03/2024'; expected an ISO 8601 date",
        ),
        (
            "service_points",
            service_points(SP2={"has_solar": "maybe"}),
            r"service_points\.csv line 3: column 'has_solar' is 'maybe'; expected a boolean",
        ),
        (
            "meter_installs",
            installs(multiplier="x2"),
            r"meter_installs\.csv line 2: column 'multiplier' is 'x2'; expected a number",
        ),
        (
            "meter_installs",
            installs().assign(installed_at=["2019-02-01T15:00:00Z", "yesterday"]),
            r"line 3: column 'installed_at' is 'yesterday'; expected an ISO 8601 timestamp",
        ),
        (
            "service_points",
            service_points(SP1={"timezone": ""}),
            r"service_points\.csv line 2: column 'timezone' is empty",
        ),
        (
            "accounts",
            pd.concat([accounts(), accounts().iloc[:1]]),
            r"accounts\.csv: duplicate key .* on lines \[2, 4\]",
        ),
    ],
)
def test_bad_csv_input_names_file_line_and_expectation(tmp_path: Path, table, frame, expected) -> None:
    drop = write_drop(tmp_path / "cis", {table: frame})
    with pytest.raises(MasterDataError, match=expected):
        read_master_data(drop)


def test_an_empty_drop_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MasterDataError, match="no CIS master files"):
        read_master_data(tmp_path)


# --- the simulator's CSV drop and the REST API carry the same data -------------------------------------


@pytest.fixture(scope="module")
def sim_cis(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    generate(out, SimulationSpec(meters=50, start=dt.date(2024, 3, 4), days=2, seed=5, truth_values=False))
    return out / "cis"


def test_the_simulators_drop_syncs_with_history(store: Store, sim_cis: Path) -> None:
    expected = {
        t: len(pd.read_csv(sim_cis / f"{t}.csv"))
        for t in ("meters", "service_points", "accounts", "meter_installs", "billing_cycles", "zones")
    }
    report = sync_master_data(store, sim_cis, effective_date=D1)
    assert {t: report[t].inserted for t in expected} == expected
    assert store.count("service_point_history") == expected["service_points"]
    first = store.read_frame(
        "SELECT h.service_point_id, h.valid_from, min(a.move_in) AS move_in FROM service_point_history h "
        "JOIN accounts a USING (service_point_id) GROUP BY 1, 2"
    )
    assert (pd.to_datetime(first["valid_from"]) <= pd.to_datetime(first["move_in"])).all()
    assert sync_master_data(store, sim_cis).changed == 0


def serve(httpserver: HTTPServer, folder: Path, page_size: int) -> None:
    """Serve a CSV drop as the CIS REST API (JSON values, paged by next links)."""
    for table in ("meters", "service_points", "accounts", "meter_installs", "billing_cycles", "zones"):
        frame = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)
        records = frame.replace({"": None}).to_dict("records")
        if "has_solar" in frame:
            for r in records:
                r["has_solar"] = r["has_solar"] == "true"  # JSON booleans
        pages = [records[i : i + page_size] for i in range(0, len(records), page_size)] or [[]]
        for n, items in enumerate(pages):
            query = f"page_size={page_size}" + (f"&after={n}" if n else "")
            nxt = f"{table}?page_size={page_size}&after={n + 1}" if n + 1 < len(pages) else None
            httpserver.expect_request(f"/cis/{table}", query_string=query).respond_with_json(
                {"items": items, "next": nxt}
            )


def test_rest_and_csv_give_the_same_store(store: Store, sim_cis: Path, httpserver: HTTPServer) -> None:
    serve(httpserver, sim_cis, page_size=15)
    from_csv = read_master_data(sim_cis)
    with CisClient(httpserver.url_for("/cis"), page_size=15) as cis:
        from_rest = read_master_data(cis)
    for table, frame in from_csv.items():
        pd.testing.assert_frame_equal(from_rest[table], frame, check_dtype=False, obj=table)
    with CisClient(httpserver.url_for("/cis"), page_size=15) as cis:
        report = sync_master_data(store, cis, effective_date=D1)
    assert report["service_points"].inserted == 50
    assert sync_master_data(store, sim_cis).changed == 0


def test_a_bad_rest_record_names_the_page_url_and_record(store: Store, httpserver: HTTPServer) -> None:
    rows = accounts().to_dict("records")
    rows[1]["move_in"] = "not a date"
    for table in ("meters", "service_points", "meter_installs", "billing_cycles", "zones"):
        httpserver.expect_request(f"/cis/{table}").respond_with_json({"items": [], "next": None})
    httpserver.expect_request("/cis/accounts").respond_with_json({"items": rows, "next": None})
    with pytest.raises(MasterDataError) as err, CisClient(httpserver.url_for("/cis")) as cis:
        sync_master_data(store, cis)
    assert (
        f"{httpserver.url_for('/cis/accounts')}?page_size=1000 record 2: column 'move_in' is 'not a date'"
        in str(err.value)
    )


# --- the Dagster asset --------------------------------------------------------------------------------


@pytest.mark.parametrize("url_from", ["utility_yaml", "resource_config"])
def test_the_asset_syncs_from_rest_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str, httpserver: HTTPServer, url_from: str
) -> None:
    drop = write_drop(tmp_path / "drop", master())
    for table in ("meters", "billing_cycles", "zones"):
        httpserver.expect_request(f"/cis/{table}").respond_with_json({"items": [], "next": None})
    for table, frame in master().items():
        httpserver.expect_request(f"/cis/{table}").respond_with_json(
            {"items": frame.replace({"": None}).to_dict("records"), "next": None}
        )
    cfg = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    # the CIS URL from the utility YAML, or from the cis resource's run config (the YAML has none then)
    in_yaml = httpserver.url_for("/cis") if url_from == "utility_yaml" else None
    cfg["cis"] = {**cfg["cis"], "source": "rest", "base_url": in_yaml, "retries": 0}
    (tmp_path / "utility.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("SMARTMDM_CONFIG", str(tmp_path / "utility.yaml"))
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    del drop
    from smartmdm_pipelines.definitions import defs

    definitions = defs()
    with dg.instance_for_test() as instance:
        run_config = (
            {"resources": {"cis": {"config": {"base_url": httpserver.url_for("/cis")}}}}
            if url_from == "resource_config"
            else None
        )
        result = definitions.resolve_job_def("cis_sync_job").execute_in_process(
            instance=instance, run_config=run_config
        )
        assert result.success
        meta = instance.get_latest_materialization_event(
            dg.AssetKey("cis_master_data")
        ).asset_materialization.metadata
    assert meta["service_points_inserted"].value == 2
    assert meta["service_point_history_inserted"].value == 2
    assert meta["accounts_inserted"].value == 2
    assert meta["source"].value.startswith("rest: http")
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    assert store.count("service_point_history") == 2
    store.dispose()


def test_the_cis_resource_overrides_the_utility_yaml_field_by_field() -> None:
    from smartmdm_pipelines.config import CisSettings
    from smartmdm_pipelines.lib.resources import CisClientResource

    settings = CisSettings(source="rest", base_url="http://yaml.example/cis", page_size=50, retries=2)
    with CisClientResource().get_client(settings) as client:
        assert (client.base_url, client.page_size, client.retries) == ("http://yaml.example/cis/", 50, 2)
    with CisClientResource(base_url="http://override.example/api", page_size=7).get_client(
        settings
    ) as client:
        assert (client.base_url, client.page_size, client.retries) == ("http://override.example/api/", 7, 2)
        assert client.timeout_seconds == settings.timeout_seconds
