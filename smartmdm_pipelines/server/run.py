"""``smartmdm serve``: the service in the foreground until SIGTERM (or Ctrl-C)."""

from __future__ import annotations

import logging

import uvicorn

from smartmdm_pipelines.config import ConfigError
from smartmdm_pipelines.server.app import create_app
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.store.store import Store


class StoreBusy(ConfigError):
    """The embedded (DuckDB) store is held by another process."""


def open_store(url: str | None = None) -> Store:
    try:
        return Store(url)
    except Exception as exc:
        text = str(exc)
        if "lock" in text.lower() and "duckdb" in type(exc).__module__ + text.lower():
            raise StoreBusy(
                "the DuckDB store is open in another process (a Dagster run, `smartmdm ingest` or another "
                "`smartmdm serve`): DuckDB allows one writing process. Stop it, or use PostgreSQL "
                "($SMARTMDM_DATABASE_URL) to run the service beside Dagster runs"
            ) from None
        raise


def serve(host: str | None = None, port: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env(host=host, port=port)
    runtime = Runtime(settings, open_store(settings.store_url))
    app = create_app(settings, runtime)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
    return 0
