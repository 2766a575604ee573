"""The dbt project on the store: one profile, two targets chosen from SMARTMDM_DATABASE_URL.

``dbt_environment(url)`` gives the variables ``dbt_project/profiles.yml`` reads, so dbt runs
on exactly the database the Python assets write (a DuckDB file, or a PostgreSQL database).
(Those helpers live in services/dbt_runner.py, which runs dbt without Dagster.) The Dagster
``DbtProject``'s manifest is prepared on import when it is missing or older than the project's files
(``dbt parse``, a few seconds), so a fresh clone or an edited model loads without a separate step.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dagster_dbt import DbtProject

from smartmdm_pipelines.services.dbt_runner import (  # re-exported: defs/ import them from here
    DBT_PROJECT_DIR,
    dbt_environment,
    dbt_executable,
    dbt_vars,
)

__all__ = ["DBT_PROJECT_DIR", "dbt_environment", "dbt_executable", "dbt_vars", "smartmdm_dbt"]


def _stale(manifest: Path) -> bool:
    """No manifest, or a model, macro, seed or YAML file newer than it."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = (
        p
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".csv") and "target" not in p.parts
    )
    return any(p.stat().st_mtime > built for p in sources)


def _project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, target=os.environ.get("DBT_TARGET", "duckdb"))
    if _stale(project.manifest_path):
        _parse()
    return project


def _parse() -> None:
    argv = [
        dbt_executable(),
        "parse",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run([*argv, "--quiet"], cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"dbt parse of {DBT_PROJECT_DIR} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )


smartmdm_dbt = _project()
