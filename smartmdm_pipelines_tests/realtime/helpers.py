"""Master data, delivery bodies and a ``smartmdm serve`` subprocess for the real-time tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import requests

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER

DAY_START = pd.Timestamp("2024-03-12T05:00Z")  # 2024-03-12 00:00 in America/Chicago
ROOT = Path(__file__).resolve().parents[2]


def master_data(store: Store, meters: list[str]) -> None:
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            {
                "meter_id": meters,
                "kind": "ami",
                "commodity": "electric",
                "role": "customer",
                "channels": "kwh_delivered",
                "unit": "kWh",
                "interval_seconds": 900,
                "multiplier": 1.0,
                "dials": 6,
            }
        ),
    )
    sps = [f"SP-{m}" for m in meters]
    store.bulk_insert(
        "service_points",
        pd.DataFrame(
            {
                "service_point_id": sps,
                "commodity": "electric",
                "timezone": "America/Chicago",
                "status": "active",
                "customer_class": "residential",
                "has_solar": False,
            }
        ),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            {
                "meter_id": meters,
                "service_point_id": sps,
                "installed_at": pd.Timestamp("2020-01-01T00:00Z"),
                "multiplier": 1.0,
            }
        ),
    )
    store.bulk_insert(
        "accounts",
        pd.DataFrame(
            {
                "account_id": [f"A-{m}" for m in meters],
                "service_point_id": sps,
                "move_in": pd.Timestamp("2020-01-01"),
            }
        ),
    )


def utility_yaml(data_dir: Path, realtime: dict) -> Path:
    """The default utility YAML with a ``realtime`` block (its relative paths made absolute)."""
    import yaml

    from smartmdm_pipelines.config import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["realtime"] = raw.get("realtime", {}) | realtime
    for tariff in raw.get("billing", {}).get("tariffs", []):
        tariff["file"] = str((DEFAULT_CONFIG.parent / tariff["file"]).resolve())
    for source in raw.get("sources", []):
        if source.get("meter_map"):
            source["meter_map"] = str((DEFAULT_CONFIG.parent / source["meter_map"]).resolve())
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "utility.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def value(meter: str, slot: int) -> float:
    return round(0.3 + 0.1 * (slot % 4) + slot / 1000 + (sum(map(ord, meter)) % 7) / 100, 3)


def body(meters: list[str], slots: range | list[int], override: dict | None = None) -> bytes:
    """A generic interval CSV of the given quarter-hours (0..95) of 2024-03-12, Chicago."""
    override = override or {}
    lines = []
    for meter in meters:
        for slot in slots:
            end = (DAY_START + pd.Timedelta(minutes=15 * (slot + 1))).strftime("%Y-%m-%dT%H:%M:%SZ")
            v = override.get((meter, slot), value(meter, slot))
            lines.append(f"{meter},kwh_delivered,{end},900,{v},kWh,")
    return (INTERVAL_HEADER + "\n".join(lines) + "\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``smartmdm serve`` as a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Service:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartmdm_pipelines.cli", "serve", "--port", str(self.port)],
            env={**os.environ, **self.env},
            stdout=open(self.log, "ab"),  # noqa: SIM115 (the child owns it)
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"smartmdm serve exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                if requests.get(f"{self.url}/v1/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"smartmdm serve did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else 0

    def post(self, source: str, data: bytes, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.url}/v1/headend/{source}/reads", data=data, headers=headers, timeout=30)


def wait_until(predicate, timeout: float = 60.0, every: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
