"""Issue 15, concurrency: a command started while another process holds the DuckDB file waits a
bounded time for it, then stops with one line (exit 2) — never a traceback; if the holder lets go
within the wait, the command simply runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartmdm_pipelines_tests.fixtures import interval_file

pytestmark = pytest.mark.reliability


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    """Another process with ``path`` open (DuckDB's exclusive file lock) for ``seconds``."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep({seconds})\n"
            "c.close(); print('released', flush=True)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _cli(args: list[str], db: Path, wait: float, data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SMARTMDM_DATABASE_URL": f"duckdb:///{db}",
        "SMARTMDM_STORE_BUSY_WAIT": str(wait),
        "SMARTMDM_DATA_DIR": str(data_dir),
    }
    env.pop("SMARTMDM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "smartmdm_pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda f, d: ["ingest", str(f), "--no-archive"], id="ingest"),
        pytest.param(lambda f, d: ["vee", "run", "--from", "2024-03-11", "--to", "2024-03-11"], id="vee-run"),
        pytest.param(lambda f, d: ["exceptions", "list"], id="exceptions-list"),
    ],
)
def test_a_held_store_is_one_line_and_exit_2_after_a_bounded_wait(tmp_path, command) -> None:
    db = tmp_path / "held.duckdb"
    path = interval_file(tmp_path / "drop" / "ami-east_20240311.csv", ["E1"], "2024-03-11")
    holder = _hold(db, 120)
    try:
        result = _cli(command(path, tmp_path / "data"), db, 1, tmp_path / "data")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "DuckDB store is open in another process" in result.stderr
    assert f"(PID {holder.pid})" in result.stderr  # names the holder
    assert "waited 1 s" in result.stderr and "attempt(s)" in result.stderr


def test_ingest_waits_for_a_holder_that_lets_go_and_then_loads(tmp_path) -> None:
    db = tmp_path / "held.duckdb"
    path = interval_file(tmp_path / "drop" / "ami-east_20240311.csv", ["E1", "E2"], "2024-03-11")
    holder = _hold(db, 2)
    try:
        result = _cli(["ingest", str(path), "--no-archive"], db, 120, tmp_path / "data")
    finally:
        holder.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw_reads").fetchone()[0] == 2 * 96
