"""The `smartmdm` command as an operator uses it: inspect, ingest, exceptions, db."""

import json
from pathlib import Path

import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines_tests.fixtures import interval_file

KEYS = {
    "format",
    "status",
    "interval_reads",
    "register_reads",
    "events",
    "rejected_rows",
    "meters",
    "channels",
    "first_interval_end",
    "last_interval_end",
    "errors",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", f"duckdb:///{tmp_path / 'cli.duckdb'}")
    return tmp_path


def test_inspect_prints_the_summary_without_loading(env: Path, capsys) -> None:
    path = interval_file(
        env / "ami-east_x.csv", ["E1", "E2"], "2024-11-03", bad_lines=["E9,kwh_delivered,x,900,1,kWh,"]
    )
    assert main(["inspect", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert out["format"] == "generic_interval_csv" and out["status"] == "partially loaded"
    assert out["interval_reads"] == 200 and out["rejected_rows"] == 1 and out["meters"] == 2
    assert out["channels"] == ["kwh_delivered"]
    assert out["errors"] == [{"line": 202, "reason": out["errors"][0]["reason"]}]
    assert "interval_end 'x'" in out["errors"][0]["reason"]
    assert path.exists()


def test_inspect_exits_non_zero_for_a_rejected_file(env: Path, capsys) -> None:
    junk = env / "junk.csv"
    junk.write_text("not,a,head-end,file\n")
    assert main(["inspect", str(junk)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "rejected" and out["errors"][0]["line"] == 1


def test_ingest_loads_through_the_same_path_and_reports_duplicates(env: Path, capsys) -> None:
    path = interval_file(env / "ami-east_y.csv", ["E1"], "2024-03-12")
    copy = env / "again.csv"
    copy.write_bytes(path.read_bytes())
    assert main(["ingest", "--no-archive", str(path), str(copy)]) == 0
    text = capsys.readouterr().out
    first, second = (json.loads(chunk) for chunk in text.replace("}\n{", "}\n\x00{").split("\x00"))
    assert first["status"] == "loaded" and first["interval_reads"] == 96 and first["file_id"] == 1
    assert second["status"] == "duplicate" and second["duplicate_of"] == 1
    assert main(["db", "current"]) == 0
    db = json.loads(capsys.readouterr().out)
    assert db["current"] == db["head"]


def test_exceptions_cli_refuses_unknown_ids(env: Path, capsys) -> None:
    assert main(["exceptions", "list"]) == 0
    assert "no exceptions match" in capsys.readouterr().out
    code = main(["exceptions", "dismiss", "nope", "--by", "me", "--reason", "test"])
    assert code == 2 and "no exception 'nope'" in capsys.readouterr().err
