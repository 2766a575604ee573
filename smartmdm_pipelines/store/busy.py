"""Opening the store when the embedded (DuckDB) file is held by another process.

DuckDB allows one writing process per file. A command started while a Dagster run, another
``smartmdm ingest`` or ``smartmdm serve`` holds the file waits a bounded time for it (the holder
may be about to finish), then stops with one line naming the file and the holder's PID — never a
driver traceback.
"""

from __future__ import annotations

import os
import re
import time

from smartmdm_pipelines.config import ConfigError
from smartmdm_pipelines.store.store import Store

WAIT_ENV = "SMARTMDM_STORE_BUSY_WAIT"  # seconds a command waits for a held DuckDB file (default 10)
DEFAULT_WAIT_SECONDS = 10.0
_HOLDER = re.compile(r"\(PID (\d+)\)")


class StoreBusy(ConfigError):
    """The embedded (DuckDB) store is held by another process."""


def is_held_elsewhere(exc: BaseException) -> bool:
    """Whether opening DuckDB failed because another process holds the file's lock."""
    text = str(exc).lower()
    return "lock" in text and "duckdb" in type(exc).__module__ + text


def open_store(
    url: str | None = None, *, wait_seconds: float | None = None, poll_seconds: float = 0.5
) -> Store:
    """``Store(url)``, retried every ``poll_seconds`` for up to ``wait_seconds`` (``$SMARTMDM_STORE_BUSY_WAIT``,
    default 10) while another process holds the DuckDB file; then :class:`StoreBusy`."""
    if wait_seconds is None:
        wait_seconds = float(os.environ.get(WAIT_ENV) or DEFAULT_WAIT_SECONDS)
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    attempts = 0
    while True:
        attempts += 1
        try:
            return Store(url)
        except Exception as exc:
            if not is_held_elsewhere(exc):
                raise
            if time.monotonic() + poll_seconds > deadline:
                holder = _HOLDER.search(str(exc))
                raise StoreBusy(
                    f"the DuckDB store is open in another process{f' (PID {holder.group(1)})' if holder else ''}"
                    f" (a Dagster run, `smartmdm ingest` or `smartmdm serve`); waited {wait_seconds:g} s"
                    f" over {attempts} attempt(s). DuckDB allows one writing process: stop it and retry,"
                    f" wait longer (${WAIT_ENV}), or use PostgreSQL ($SMARTMDM_DATABASE_URL)"
                ) from None
            time.sleep(poll_seconds)
