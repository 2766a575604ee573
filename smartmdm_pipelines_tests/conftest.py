"""Shared fixtures: a fresh store on each backend (DuckDB file, PostgreSQL database).

PostgreSQL is reused from 127.0.0.1:5432 (``SMARTMDM_TEST_PG_*`` to change it); each test
gets its own database through pytest-postgresql's janitor. When CI=true and the server
is unreachable the PostgreSQL tests fail instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from hypothesis import settings
from pytest_postgresql.janitor import DatabaseJanitor

from smartmdm_pipelines.store.store import Store

PG_HOST = os.environ.get("SMARTMDM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SMARTMDM_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SMARTMDM_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("SMARTMDM_TEST_PG_PASSWORD", "")

# Property tests are reproducible: the same examples on every run (CI must not be a lottery);
# HYPOTHESIS_PROFILE=explore searches new examples locally.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def _postgres_reachable() -> str | None:
    try:
        psycopg2.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg2.OperationalError as exc:
        return str(exc).strip()
    return None


def require_postgres() -> None:
    problem = _postgres_reachable()
    if problem is None:
        return
    message = f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {problem}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    require_postgres()
    name = f"smartmdm_test_{uuid.uuid4().hex[:10]}"
    janitor = DatabaseJanitor(
        user=PG_USER, host=PG_HOST, port=PG_PORT, dbname=name, version="15", password=PG_PASSWORD or None
    )
    janitor.init()
    try:
        auth = f"{PG_USER}:{PG_PASSWORD}@" if PG_PASSWORD else f"{PG_USER}@"
        yield f"postgresql+psycopg2://{auth}{PG_HOST}:{PG_PORT}/{name}"
    finally:
        janitor.drop()


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'store.duckdb'}"


@pytest.fixture(params=["duckdb", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Both backends: the same test runs on DuckDB and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.dispose()
