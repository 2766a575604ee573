"""Dagster test environment: a data directory and store per test, read through environment variables."""

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest


def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
    monkeypatch.setenv("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    return data


@pytest.fixture
def mdm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str) -> Path:
    return _environment(monkeypatch, tmp_path, duckdb_url)


@pytest.fixture(params=["duckdb", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same environment on each backend (a DuckDB file, a fresh PostgreSQL database)."""
    return _environment(monkeypatch, tmp_path, request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def billing_env(store_env: Path) -> str:
    """The store URL of ``store_env``."""
    return os.environ["SMARTMDM_DATABASE_URL"]


@pytest.fixture
def definitions(mdm_env: Path) -> dg.Definitions:
    from smartmdm_pipelines.definitions import defs

    return defs()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst
