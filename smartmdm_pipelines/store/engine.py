"""Engine creation: one URL (``SMARTMDM_DATABASE_URL``) selects DuckDB or PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

DEFAULT_DATA_DIR = Path(os.environ.get("SMARTMDM_DATA_DIR", "data"))


def default_database_url() -> str:
    """A DuckDB file under the data directory: the embedded default, no server needed."""
    path = (Path(os.environ.get("SMARTMDM_DATA_DIR", "data")) / "smartmdm.duckdb").resolve()
    return f"duckdb:///{path}"


def database_url() -> str:
    return os.environ.get("SMARTMDM_DATABASE_URL") or default_database_url()


def normalise_url(url: str) -> str:
    """Accept the URL forms people paste; PostgreSQL always goes through psycopg2.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3, which we do not install.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def backend_of(url: str) -> str:
    name = sa.engine.make_url(normalise_url(url)).get_backend_name()
    if name not in ("duckdb", "postgresql"):
        raise ValueError(f"SMARTMDM_DATABASE_URL must be a duckdb:/// or postgresql:// URL, got {url!r}")
    return name


def create_store_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if backend_of(url) == "duckdb":
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _utc(dbapi_connection, _record) -> None:  # every session reads and writes UTC
            dbapi_connection.execute("SET TimeZone = 'UTC'")

    else:
        engine = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"}, pool_pre_ping=True)
    return engine
