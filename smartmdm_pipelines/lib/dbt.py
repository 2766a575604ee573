"""The dbt project on the store: one profile, two targets chosen from SMARTMDM_DATABASE_URL.

``dbt_environment(url)`` gives the variables ``dbt_project/profiles.yml`` reads, so dbt runs
on exactly the database the Python assets write (a DuckDB file, or a PostgreSQL database).
The manifest is prepared on import when it is missing or older than the project's files
(``dbt parse``, a few seconds), so a fresh clone or an edited model loads without a separate step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from dagster_dbt import DbtProject

from smartmdm_pipelines.store.engine import backend_of, normalise_url

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


def dbt_executable() -> str:
    """The dbt next to this interpreter (the venv's), so nothing depends on PATH."""
    return str(Path(sys.executable).with_name("dbt"))


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
