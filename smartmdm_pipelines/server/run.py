"""``smartmdm serve``: the service in the foreground until SIGTERM (or Ctrl-C)."""

from __future__ import annotations

import dataclasses
import logging
import os

import uvicorn

from smartmdm_pipelines.config import ConfigError
from smartmdm_pipelines.server.app import create_app
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.store.busy import StoreBusy, open_store

__all__ = ["StoreBusy", "open_store", "serve", "worker_app"]


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    """The service; with ``workers`` > 1 (or ``$SMARTMDM_SERVE_WORKERS``) uvicorn runs that many
    processes on the port (PostgreSQL only). Exactly one of them — the one holding a PostgreSQL
    advisory lock — runs the background work (MQTT subscriber, VEE, dispatchers, alert
    evaluation); the others serve HTTP only (the portal API, head-end pushes: those are stored and
    validated by the one within a second). If it exits, the process uvicorn starts in its place
    takes the lock over."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env(host=host, port=port)
    workers = int(workers or os.environ.get("SMARTMDM_SERVE_WORKERS") or 1)
    if workers > 1:
        from smartmdm_pipelines.store.engine import backend_of, database_url

        if backend_of(settings.store_url or database_url()) != "postgresql":
            raise ConfigError(
                "--workers > 1 needs PostgreSQL ($SMARTMDM_DATABASE_URL): DuckDB allows one writing process"
            )
        uvicorn.run(
            "smartmdm_pipelines.server.run:worker_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=120,  # a worker imports and opens the store before it answers
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_graceful_shutdown=10,
        )
        return 0
    runtime = Runtime(settings, open_store(settings.store_url))
    app = create_app(settings, runtime)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
    return 0


BACKGROUND_LOCK = 0x534D444D  # pg advisory lock key of the process that runs the background work
_lock_conn = None  # held for the process's life: the lock goes with the connection


def worker_app():
    """One of ``serve --workers N``'s processes (uvicorn app factory)."""
    global _lock_conn
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings.from_env()
    store = open_store(settings.store_url)
    _lock_conn = store.engine.raw_connection()
    cur = _lock_conn.cursor()
    cur.execute("SELECT pg_try_advisory_lock(%s)", (BACKGROUND_LOCK,))
    primary = bool(cur.fetchone()[0])
    _lock_conn.commit()
    if not primary:
        settings = dataclasses.replace(settings, workers=False, mqtt_host=None, report_to_dagster=False)
    logging.getLogger("smartmdm.serve").info(
        "worker %d: %s", os.getpid(), "HTTP and background work" if primary else "HTTP only"
    )
    return create_app(settings, Runtime(settings, store))
