"""The audit trail of a manual exception resolution (who, when, why) cannot be altered through the
CLI afterwards: every later action on the same exception is refused, a VEE re-run keeps it, and
the interval versions it wrote carry the same name. What exists and what is missing for the other
manual actions is in docs/reliability.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.exceptions import list_exceptions
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.services.test_vee_service import day_values, master_data, reads_file

DAY = dt.date(2024, 3, 12)
AUDIT = ["status", "resolution", "resolved_by", "resolved_at"]
WHO, WHY = "o'neil; DROP TABLE vee_exceptions; --", "customer confirmed \u00e9t\u00e9 EV charging \U0001f50c"


def audit_row(store: Store, exception_id: str) -> dict:
    row = store.read_frame(
        "SELECT status, resolution, resolved_by, resolved_at FROM vee_exceptions WHERE exception_id = :e",
        {"e": exception_id},
    )
    return {k: (str(v) if v is not None else None) for k, v in row.iloc[0].to_dict().items()}


def test_a_resolution_cannot_be_altered_through_the_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    config = load_config(data_dir=tmp_path / "data")
    store = Store(url)
    try:
        master_data(store)
        values = day_values("M1")
        values[("M1", 50)] = 55.0
        ingest_file(store, reads_file(tmp_path / "d1.csv", values), config)
        run_day(store, DAY, config)
        spike = list_exceptions(store, rule="spike")["exception_id"].iloc[0]
    finally:
        store.dispose()

    assert main(["exceptions", "accept", spike, "--by", WHO, "--reason", WHY]) == 0
    capsys.readouterr()
    store = Store(url)
    try:
        first = audit_row(store, spike)
        assert first["status"] == "accepted" and first["resolved_by"] == WHO and WHY in first["resolution"]
        assert first["resolved_at"] is not None and pd.Timestamp(first["resolved_at"]) is not pd.NaT
    finally:
        store.dispose()

    attempts = [
        ["accept", spike, "--by", "mallory", "--reason", "overwrite"],
        ["edit", spike, "--by", "mallory", "--reason", "overwrite", "--value", "1"],
        ["estimate", spike, "--by", "mallory", "--reason", "overwrite", "--method", "linear"],
        ["dismiss", spike, "--by", "mallory", "--reason", "overwrite"],
        ["accept", spike, "--by", "", "--reason", ""],
    ]
    for argv in attempts:
        assert main(["exceptions", *argv]) != 0, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("not open" in err or "required" in err), err

    store = Store(url)
    try:
        run_day(store, DAY, config)  # a VEE re-run of the day keeps the decision
        assert audit_row(store, spike) == first
        writers = store.read_frame(
            "SELECT DISTINCT created_by FROM intervals WHERE meter_id = 'M1' AND version > 1"
        )["created_by"]
        assert WHO in set(writers) and "mallory" not in set(writers)
    finally:
        store.dispose()


@pytest.mark.parametrize("action", ["accept", "dismiss"])
def test_who_and_why_are_required(tmp_path: Path, monkeypatch, capsys, action: str) -> None:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{tmp_path / 'store.duckdb'}")
    with pytest.raises(SystemExit):
        main(["exceptions", action, "some-id", "--by", "x"])  # argparse: --reason is required
    assert "--reason" in capsys.readouterr().err
