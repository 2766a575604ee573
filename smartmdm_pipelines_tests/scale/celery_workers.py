"""Celery worker subprocesses for the scale-out test and benchmark: ``celery -A dagster_celery.app
worker`` on a queue of their own, started with a deadline to be ready and stopped for sure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from celery import Celery

REPO = Path(__file__).resolve().parents[2]


class WorkerError(RuntimeError):
    """A worker exited or never became ready (the message ends with the workers' logs)."""


class Workers:
    """``celery -A dagster_celery.app worker`` subprocesses on the test's own queue."""

    def __init__(self, folder: Path, env: dict[str, str], count: int, broker: str) -> None:
        self.broker = broker
        self.queue = f"smartmdm_test_{uuid.uuid4().hex[:8]}"
        self.names = [f"{self.queue}_w{i}" for i in range(count)]
        config = folder / "celery_config"
        config.mkdir(parents=True)
        # dagster_celery.app reads this module when it is importable (the worker's -y file does the same)
        (config / "dagster_celery_config.py").write_text(
            f"broker_url = {broker!r}\nresult_backend = 'rpc://'\ntask_default_queue = {self.queue!r}\n"
        )
        env = {**env, "PYTHONPATH": os.pathsep.join([str(config), str(REPO)])}
        celery = Path(sys.executable).with_name("celery")
        self.logs = [folder / f"{name}.log" for name in self.names]
        self.procs = [
            subprocess.Popen(
                [str(celery), "-A", "dagster_celery.app", "worker", "--pool=solo", "--prefetch-multiplier=1"]
                + [
                    "-Q",
                    self.queue,
                    "-n",
                    f"{name}@%h",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env=env,
                cwd=REPO,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            for name, log in zip(self.names, self.logs, strict=True)
        ]

    def wait_ready(self, seconds: float) -> None:
        app = Celery(broker=self.broker)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check_alive()
            replies = app.control.ping(timeout=1.0) or []
            up = {name.split("@")[0] for reply in replies for name in reply}
            if set(self.names) <= up:
                return
            time.sleep(1)
        raise WorkerError(f"Celery workers not ready within {seconds:.0f} s:\n{self.tail()}")

    def check_alive(self) -> None:
        dead = [n for n, p in zip(self.names, self.procs, strict=True) if p.poll() is not None]
        if dead:
            raise WorkerError(f"Celery worker(s) {dead} exited:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n" + log.read_text()[-3000:] for log in self.logs if log.exists())

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
