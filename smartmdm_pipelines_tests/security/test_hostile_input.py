"""Hostile ids and names: stored and read back verbatim (every query is parameterised), and
delivery file names that can never leave the folders they are written to."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_path
from smartmdm_pipelines.services.realtime import ingest_body
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER

HOSTILE_IDS = [
    "O'Brien",
    'quote"d',
    "x'; DROP TABLE raw_reads; --",
    "a;b;c",
    "\u00e9t\u00e9-\u20ac-\U0001f4a7-\u0663",
    "back\\slash %_ wildcard",
    "M" * 10_000,  # a 10 kB id
]
HOSTILE_NAMES = [
    "../../../etc/passwd",
    "../escape.csv",
    "/abs/olute.csv",
    "..",
    ".",
    "a\x00b.csv",
    "C:\\windows\\x.csv",
    "n" * 10_000 + ".csv",
    "'; DROP TABLE headend_files; --",
]


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def hostile_csv() -> bytes:
    rows = [
        f"{csv_cell(meter)},kwh_delivered,2024-03-10T{h:02d}:00:00Z,3600,{i + h / 10},kWh,"
        for i, meter in enumerate(HOSTILE_IDS)
        for h in (1, 2)
    ]
    return (INTERVAL_HEADER + "\n".join(rows) + "\n").encode()


def files_under(folder: Path) -> set[Path]:
    return {p.resolve() for p in folder.rglob("*") if p.is_file()}


def test_hostile_meter_ids_in_a_csv_are_stored_and_read_back_verbatim(store_url: str, tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path / "data")
    store = Store(store_url)
    try:
        path = tmp_path / "hostile.csv"
        path.write_bytes(hostile_csv())
        (summary,) = ingest_path(store, path, config, archive=False)
        assert summary.status == "loaded", summary.errors
        stored = store.read_frame("SELECT DISTINCT meter_id FROM raw_reads")["meter_id"]
        assert sorted(stored) == sorted(HOSTILE_IDS)
        for meter in HOSTILE_IDS:  # each one as a bound parameter, matched exactly
            found = store.read_frame("SELECT count(*) AS n FROM raw_reads WHERE meter_id = :m", {"m": meter})
            assert int(found["n"].iloc[0]) == 2
        assert store.count("headend_files") == 1
    finally:
        store.dispose()


def test_hostile_ids_through_the_cli_come_back_verbatim(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(hostile_csv())
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{tmp_path / 'store.duckdb'}")
    assert main(["inspect", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["meters"] == len(HOSTILE_IDS) and summary["status"] == "loaded"
    assert main(["ingest", "--no-archive", str(path)]) == 0
    capsys.readouterr()
    store = Store(os.environ["SMARTMDM_DATABASE_URL"])
    try:
        assert sorted(store.read_frame("SELECT DISTINCT meter_id FROM raw_reads")["meter_id"]) == sorted(
            HOSTILE_IDS
        )
    finally:
        store.dispose()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_pushed_delivery_name_cannot_leave_the_spool(name: str, duckdb_url: str, tmp_path: Path) -> None:
    """The head-end push API's ``X-Filename`` (and a pull cursor) become the delivery's name."""
    data = tmp_path / "data"
    config = load_config(data_dir=data)
    store = Store(duckdb_url)
    outside = tmp_path / "outside"
    outside.mkdir()
    try:
        before = files_under(tmp_path)
        summary = ingest_body(store, config, "ami-east", hostile_csv(), "http", name)
        assert summary.status == "loaded", summary.errors
        created = files_under(tmp_path) - before
        assert all(p.is_relative_to(data.resolve()) for p in created), created
        assert not any(outside.iterdir()) and not Path("/abs/olute.csv").exists()
        (stored,) = store.read_frame("SELECT name FROM headend_files")["name"]
        assert "/" not in stored and "\x00" not in stored and not stored.startswith(".")
        assert len(stored) <= 200
    finally:
        store.dispose()


def test_zip_member_names_cannot_leave_the_archive_or_quarantine(duckdb_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = load_config(data_dir=data)
    landing = config.landing_dir
    landing.mkdir(parents=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, name in enumerate(HOSTILE_NAMES):
            archive.writestr(name, hostile_csv().replace(b"2024-03-10", f"2024-03-{i + 1:02d}".encode()))
        archive.writestr("fine.csv", hostile_csv().replace(b"2024-03-10", b"2024-04-01"))
    (landing / "delivery.zip").write_bytes(buffer.getvalue())
    store = Store(duckdb_url)
    try:
        before = files_under(tmp_path)
        summaries = ingest_path(store, landing / "delivery.zip", config)
        created = files_under(tmp_path) - before
    finally:
        store.dispose()
    statuses = {s.file.split("delivery.zip!", 1)[1]: s.status for s in summaries}
    assert statuses["fine.csv"] == "loaded" and statuses["'; DROP TABLE headend_files; --"] == "loaded"
    for bad in ("../../../etc/passwd", "../escape.csv", "/abs/olute.csv", "C:\\windows\\x.csv", ".."):
        assert statuses[bad] == "rejected", statuses
    # the container went to the archive (or quarantine) folder and nothing else was written anywhere
    folders = (config.archive_dir.resolve(), config.quarantine_dir.resolve())
    assert created and all(
        any(p.is_relative_to(f) for f in folders)
        for p in created
        if p.suffix != ".duckdb" and "store" not in p.name
    ), created
    assert not (tmp_path / "etc").exists() and not Path("/abs/olute.csv").exists()


API_IDS = [i for i in HOSTILE_IDS if len(i) < 5_000] + ["A1' OR '1'='1", "A1%", "A1;--", "M" * 10_000]


def test_hostile_account_ids_through_the_api_are_never_a_5xx_nor_a_bypass(store: Store, monkeypatch) -> None:
    from urllib.parse import quote

    from smartmdm_pipelines_tests.portal.helpers import client, seed, token

    seed(store, with_tariffs=False)
    c = client(store, monkeypatch)
    ok = c.get(
        "/v1/accounts/A1/usage?from=2024-11-03&to=2024-11-03&resolution=day", headers=token("customer", "A1")
    )
    assert ok.status_code == 200
    for account in API_IDS:
        path = f"/v1/accounts/{quote(account, safe='')}/usage?from=2024-11-03&to=2024-11-03&resolution=day"
        # a customer whose token holds the hostile id itself: no such account, never A1's data
        own = c.get(path, headers=token("customer", account))
        assert own.status_code in (404, 422), (account[:40], own.status_code, own.text[:200])
        # a customer of A1 asking for the hostile id: forbidden, whatever it says
        other = c.get(path, headers=token("customer", "A1"))
        assert other.status_code in (403, 404, 422), (account[:40], other.status_code)
        ops = c.get(path, headers=token("ops"))
        assert ops.status_code in (404, 422), (account[:40], ops.status_code, ops.text[:200])
