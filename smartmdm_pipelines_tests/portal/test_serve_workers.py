"""``smartmdm serve --workers 2`` on PostgreSQL: two HTTP processes on one port, exactly one of
them running the background work (the advisory lock); DuckDB refuses more than one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.portal.helpers import KEY, seed, token

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_one_runs_the_background_work(postgres_url: str, tmp_path: Path) -> None:
    store = Store(postgres_url)
    seed(store, with_tariffs=False)
    store.dispose()
    port = _port()
    env = os.environ | {
        "SMARTMDM_DATABASE_URL": postgres_url,
        "SMARTMDM_API_SIGNING_KEY": KEY,
        "SMARTMDM_API_RATE_LIMIT": "0",
        "SMARTMDM_MQTT": "off",
        "SMARTMDM_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path),
    }
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartmdm_pipelines.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        roles: list[str] = []
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            roles = [
                line.rsplit(": ", 1)[-1] for line in text.splitlines() if "smartmdm.serve: worker" in line
            ]
            if len(roles) == 2 and "Application startup complete" in text:
                break
            assert proc.poll() is None, text
            time.sleep(0.5)
        assert sorted(roles) == ["HTTP and background work", "HTTP only"], log.read_text()
        headers = token("customer", "A1")
        url = f"http://127.0.0.1:{port}/v1/accounts/A1/usage?from=2024-11-03&to=2024-11-03&resolution=hour"
        for _ in range(6):  # several connections: both processes answer the same
            with httpx.Client(timeout=60) as c:
                r = c.get(url, headers=headers)
            assert r.status_code == 200 and len(r.json()["items"]) == 25
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_duckdb_refuses_several_workers(duckdb_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    monkeypatch.setenv("SMARTMDM_MQTT", "off")
    assert main(["serve", "--workers", "2"]) != 0
    assert "PostgreSQL" in capsys.readouterr().err
