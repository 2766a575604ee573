"""A PostgreSQL cluster of a test's own (initdb + pg_ctl on a free port), so the test may restart
or stop the server without touching the shared one other tests use."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("SMARTMDM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """One cluster in a temporary folder, trust authentication, listening on 127.0.0.1 only.
    initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            message = f"initdb not found in {PG_BIN} (SMARTMDM_TEST_PG_BIN)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message + " (CI=true: the PostgreSQL restart test must run)")
            pytest.skip(message)
        self.root = Path(tempfile.mkdtemp(prefix="smartmdm-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args) -> None:
        done = subprocess.run([*self._as, *map(str, args)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {done.stdout}{done.stderr}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            PG_BIN / "pg_ctl",
            action,
            "-D",
            self.data,
            "-w",
            "-t",
            "60",
            "-l",
            self.root / "log",
            "-o",
            options,
            *extra,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: every session is terminated, open transactions roll back) and start again."""
        self._ctl("restart", "-m", mode)

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
