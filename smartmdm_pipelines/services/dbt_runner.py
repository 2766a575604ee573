"""Run the dbt billing models outside Dagster (CLI, tests, benchmarks) on the store's database.

Dagster runs the same project through ``DbtCliResource`` (defs/billing/dbt_assets.py); both
release the store's connections first, because DuckDB allows one process to hold the file.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

import pandas as pd

from smartmdm_pipelines.lib.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, dbt_vars
from smartmdm_pipelines.store.store import Store


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
