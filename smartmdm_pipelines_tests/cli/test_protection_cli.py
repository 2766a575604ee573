"""`smartmdm protection …`: ranked cases as text and JSON (the issue's keys), show, mark, run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.billing_reference import load_billing_reference
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import protection_scenario as sc


@pytest.fixture
def cli_store(store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store_url)
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    sc.build(store)
    load_billing_reference(store, load_config(data_dir=tmp_path / "data"))
    return store


def _json(capsys) -> object:
    return json.loads(capsys.readouterr().out)


def test_run_then_list_show_and_mark(cli_store: Store, capsys) -> None:
    assert main(["protection", "run", "--day", sc.AS_OF.isoformat()]) == 0
    run = _json(capsys)
    assert run["signals"] == 9 and len(run["opened"]) == 5

    assert main(["protection", "cases", "--top", "3", "--json"]) == 0
    cases = _json(capsys)
    assert [c["rank"] for c in cases] == [1, 2, 3] and cases[0]["case_id"] == "PC-SP-VACUSE"
    assert {
        "case_id",
        "service_point_id",
        "account_id",
        "status",
        "score",
        "revenue_at_stake",
        "unbilled_volume",
        "unit",
        "indicators",
        "first_signal_at",
        "evidence",
    } <= set(cases[0])
    assert cases[0]["indicators"] == ["vacant_usage"] and cases[0]["revenue_at_stake"] > 0

    assert main(["protection", "cases"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:4] == ["rank", "case", "status", "score"] and len(text) == 6
    assert "PC-SP-DROP" in "".join(text) and "tamper_event, consumption_drop" in "".join(text)

    argv = [
        "protection",
        "mark",
        "PC-SP-DROP",
        "--status",
        "confirmed",
        "--by",
        "Ana",
        "--reason",
        "magnet found",
    ]
    assert main(argv) == 0
    assert _json(capsys)["status"] == "confirmed"
    assert main(["protection", "show", "PC-SP-DROP"]) == 0
    shown = _json(capsys)
    assert [h["status_to"] for h in shown["history"]] == ["open", "confirmed"]
    assert shown["history"][1]["by"] == "Ana" and shown["history"][1]["reason"] == "magnet found"
    assert main(["protection", "cases", "--json"]) == 0
    assert "PC-SP-DROP" not in {c["case_id"] for c in _json(capsys)}  # open cases only by default
    assert main(["protection", "cases", "--status", "active", "--json"]) == 0
    assert "PC-SP-DROP" in {c["case_id"] for c in _json(capsys)}


def test_errors_are_one_line(cli_store: Store, capsys) -> None:
    assert main(["protection", "mark", "PC-nope", "--status", "closed", "--by", "A", "--reason", "r"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no case 'PC-nope'")
    with pytest.raises(SystemExit) as exit_:
        main(["protection", "mark", "PC-SP-REV", "--status", "resolved", "--by", "A", "--reason", "r"])
    assert exit_.value.code == 2
    assert main(["protection", "mark", "PC-SP-REV", "--status", "closed", "--by", "A", "--reason", " "]) == 2
