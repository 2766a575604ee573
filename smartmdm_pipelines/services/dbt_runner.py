"""Run the dbt billing models outside Dagster (CLI, tests, benchmarks) on the store's database.

This module imports nothing of Dagster (lib/dbt.py builds the Dagster project on these helpers).
Dagster runs the same project through ``DbtCliResource`` (defs/billing/dbt_assets.py); both
release the store's connections first, because DuckDB allows one process to hold the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.store.engine import backend_of, normalise_url
from smartmdm_pipelines.store.store import Store

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


def dbt_environment(database_url: str) -> dict[str, str]:
    """Environment variables that point dbt's profile at the store."""
    url = sa.engine.make_url(normalise_url(database_url))
    if backend_of(database_url) == "duckdb":
        return {"DBT_TARGET": "duckdb", "SMARTMDM_DUCKDB_PATH": str(Path(url.database).resolve())}
    return {
        "DBT_TARGET": "postgres",
        "SMARTMDM_PG_HOST": url.host or "127.0.0.1",
        "SMARTMDM_PG_PORT": str(url.port or 5432),
        "SMARTMDM_PG_USER": url.username or "postgres",
        "SMARTMDM_PG_PASSWORD": url.password or "",
        "SMARTMDM_PG_DATABASE": url.database or "postgres",
        "SMARTMDM_PG_SCHEMA": os.environ.get("SMARTMDM_PG_SCHEMA", "public"),
    }


def dbt_vars(cycle_id: str, period_start: str) -> str:
    """The --vars of a billing-period run."""
    return json.dumps({"cycle_id": cycle_id, "period_start": period_start})


def dbt_executable() -> str:
    """The dbt next to this interpreter (the venv's), so nothing depends on PATH."""
    return str(Path(sys.executable).with_name("dbt"))


class DbtFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class DbtRun:
    command: list[str]
    output: str


def run_dbt(store: Store, cycle_id: str, period_start: str, command: str = "build") -> DbtRun:
    """``dbt build`` (models and their tests) of the billing models for one billing period."""
    store.dispose()
    argv = [
        dbt_executable(),
        command,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--vars",
        dbt_vars(cycle_id, period_start),
        "--quiet" if command == "build" else "--no-quiet",
    ]
    env = {**os.environ, **dbt_environment(store.url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(argv, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise DbtFailed(f"dbt {command} failed for {cycle_id} {period_start}:\n{output[-4000:]}")
    return DbtRun(argv, output)


def dbt_show(store: Store, inline_sql: str) -> pd.DataFrame:
    """Every row of an inline dbt query (Jinja, macros, ``source()``/``ref()``) on the store's database."""
    store.dispose()
    argv = [
        dbt_executable(),
        "show",
        "--inline",
        inline_sql,
        "--limit",
        "-1",
        "--output",
        "json",
        "--quiet",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    env = {**os.environ, **dbt_environment(store.url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(argv, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DbtFailed(f"dbt show failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return pd.DataFrame(json.loads(proc.stdout)["show"])
