"""The `smartmdm` command as an operator uses it: inspect, ingest, exceptions, db."""

import json
from pathlib import Path

import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER, interval_file

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


# -- issue 9 item 8: errors are one line, exit codes meaningful ----------------------------------------
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["inspect", "ingest", "migrate"])
def test_a_directory_or_a_missing_path_is_one_line_and_exit_2(env: Path, capsys, command: str) -> None:
    folder = env / "a folder"
    folder.mkdir()
    missing = env / "missing.csv"
    if command != "migrate":
        assert main([command, str(folder)]) == 2
        assert one_line_error(capsys) == f"error: {folder} is a directory (expected a head-end file)\n"
    else:
        assert main([command, str(interval_file(env / "one.csv", ["E1"], "2024-03-12"))]) == 2
        assert "migrate expects a folder" in one_line_error(capsys)
    assert main([command, str(missing)]) == 2
    error = one_line_error(capsys)
    assert error.startswith(f"error: {missing}: no such")


def test_ingest_goes_on_after_a_path_it_cannot_open(env: Path, capsys) -> None:
    good = interval_file(env / "ami-east_z.csv", ["E1"], "2024-03-12")
    assert main(["ingest", str(env / "nope.csv"), str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {env / 'nope.csv'}: no such file\n"
    assert json.loads(captured.out)["status"] == "loaded"


def test_a_64_mb_single_line_file_is_rejected_quoting_at_most_200_characters(env: Path, capsys) -> None:
    huge = env / "huge.csv"
    huge.write_bytes(b"MEPMD01," + b"9" * (64 << 20))
    assert main(["inspect", str(huge)]) == 1
    out = capsys.readouterr().out
    assert len(out) < 4000  # a summary, not a dump of the line
    summary = json.loads(out)
    assert summary["status"] == "rejected"
    assert all(len(e["reason"]) <= 300 for e in summary["errors"])
    assert "9" * 201 not in out
    assert main(["ingest", str(huge)]) == 1
    assert len(capsys.readouterr().out) < 4000


def test_an_oversized_field_names_its_line_and_the_rest_loads(env: Path, capsys) -> None:
    path = env / "ami-east_big.csv"
    rows = [f"E1,kwh_delivered,2024-03-12T{h:02d}:00:00Z,900,1,kWh," for h in range(10, 20)]
    big = "E1,kwh_delivered,2024-03-12T09:00:00Z,900," + "1" * (9 << 20) + ",kWh,"
    body = "\n".join(rows[:5] + [big] + rows[5:])
    path.write_text(INTERVAL_HEADER + body + "\n" + ("\n".join(rows) + "\n") * 20000)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert summary["status"] == "partially loaded" and summary["rejected_rows"] == 1
    assert summary["errors"] == [
        {
            "line": 7,
            "reason": f"a field longer than 4 MiB (the line is {len(big):,} bytes; a meter data row is a few hundred)",
        }
    ]
    assert "ArrowInvalid" not in out and "block size" not in out
    assert summary["interval_reads"] == 10 + 10 * 20000
    assert main(["ingest", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["rejected_rows"] == 1


def test_migrate_reports_rejected_files_one_line_each(env: Path, capsys) -> None:
    folder = env / "legacy"
    interval_file(folder / "2019" / "reads.csv", ["L1"], "2019-01-15")
    (folder / "2019" / "huge.csv").write_bytes(b"x" * (64 << 20))
    big = "E1,kwh_delivered,2019-01-15T09:00:00Z,900," + "1" * (9 << 20) + ",kWh,"
    ok = "E1,kwh_delivered,2019-01-15T10:00:00Z,900,1,kWh,"
    (folder / "2019" / "oversized.csv").write_text(INTERVAL_HEADER + big + "\n" + ok + "\n")
    assert main(["migrate", str(folder)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("rejected: 2019/huge.csv: unrecognised format")
    assert "Traceback" not in captured.err and len(lines[0]) < 400
    assert "ArrowInvalid" not in captured.out + captured.err
    assert "chunk: loaded 2, skipped 0, rejected 1" in captured.out  # the oversized row alone is rejected


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(
    env: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smartmdm_pipelines.services import ingestion

    def broken(*args, **kwargs):
        raise RuntimeError("something broke\nover two lines")

    monkeypatch.setattr(ingestion, "inspect_path", broken)
    path = interval_file(env / "x.csv", ["E1"], "2024-03-12")
    assert main(["inspect", str(path)]) == 3
    assert one_line_error(capsys) == (
        "error: unexpected RuntimeError: something broke over two lines (rerun with --debug for the traceback)\n"
    )
    with pytest.raises(RuntimeError):
        main(["--debug", "inspect", str(path)])


def test_a_bad_config_is_one_line_and_exit_2(env: Path, capsys) -> None:
    bad = env / "utility.yaml"
    bad.write_text("utility: {name: x, timezone: Mars/Olympus}\n")
    path = interval_file(env / "x.csv", ["E1"], "2024-03-12")
    assert main(["--config", str(bad), "inspect", str(path)]) == 2
    assert "is not an IANA time zone" in one_line_error(capsys)


@pytest.mark.parametrize("meters", ["10", "many"])
def test_generate_with_too_few_meters_is_a_usage_error_not_a_traceback(
    tmp_path: Path, capsys, meters: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--meters", meters, str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "--meters: expected a whole number >= 50" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
