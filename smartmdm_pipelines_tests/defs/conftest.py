"""Dagster test environment: a data directory and store per test, read through environment variables."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest


@pytest.fixture
def mdm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(data))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    monkeypatch.setenv("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    return data


@pytest.fixture
def definitions(mdm_env: Path) -> dg.Definitions:
    from smartmdm_pipelines.definitions import defs

    return defs()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst
