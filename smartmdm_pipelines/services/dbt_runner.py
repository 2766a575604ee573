"""Run the dbt billing models outside Dagster (CLI, tests, benchmarks) on the store's database.

This module imports nothing of Dagster (lib/dbt.py builds the Dagster project on these helpers).
Dagster runs the same project through ``DbtCliResource`` (defs/billing/dbt_assets.py); both
release the store's connections first, because DuckDB allows one process to hold the file.

``run_dbt`` runs dbt in this process (``dbtRunner``) on a manifest parsed once per store and
project version: a close pays neither dbt's start-up nor its parse again. The billing period
reaches the models through the environment (``SMARTMDM_CLOSE_CYCLE``/``SMARTMDM_CLOSE_PERIOD``,
read by the ``period_filter`` macro when the SQL is compiled), not through ``--vars``: a change of
``--vars`` makes dbt parse the whole project again, a changed environment variable only the one
model that reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.store.engine import backend_of, normalise_url
from smartmdm_pipelines.store.store import Store

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
# the billing period a run builds (empty: every period in billing_cycles); dbt_project's period_filter
PERIOD_ENV = ("SMARTMDM_CLOSE_CYCLE", "SMARTMDM_CLOSE_PERIOD")
INPUTS_ENV = "SMARTMDM_CLOSE_INPUTS"  # the fingerprint of the period's inputs (model close_inputs)


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
    """The --vars of a billing-period run by hand (``dbt build --vars ...``; they take precedence
    over PERIOD_ENV). The runners pass the period in the environment instead (period_environment)."""
    return json.dumps({"cycle_id": cycle_id, "period_start": period_start})


def dbt_executable() -> str:
    """The dbt next to this interpreter (the venv's), so nothing depends on PATH."""
    return str(Path(sys.executable).with_name("dbt"))


class DbtFailed(RuntimeError):
    pass


def period_environment(cycle_id: str, period_start: str) -> dict[str, str]:
    """The environment variables that select the billing period a dbt run builds."""
    return dict(zip(PERIOD_ENV, (cycle_id, period_start), strict=True))


def project_version() -> float:
    """The newest modification time of the project's models, macros, seeds and YAML."""
    return max(
        p.stat().st_mtime
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".csv") and "target" not in p.parts
    )


_LOCK = threading.Lock()  # dbt in-process: one invocation at a time
_MANIFESTS: dict[tuple, object] = {}  # (store's dbt environment, project version) -> parsed Manifest


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _project_args() -> list[str]:
    return [
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]


def _invoke(args: list[str], manifest=None):
    """One in-process dbt invocation; returns its result and the text of its info+ events."""
    from dbt.cli.main import dbtRunner

    lines: list[str] = []

    def collect(event) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            lines.append(str(event.info.msg))

    result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(args)
    _release_duckdb()
    return result, "\n".join(lines)


def _release_duckdb() -> None:
    """dbt-duckdb keeps its database open for the process: close it, so the store (with its own
    connection settings) can open the file again."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None and hasattr(env, "close"):
            env.close()


def _manifest(environment: dict[str, str]):
    """The project parsed for this store (relations carry the database name), once per project version."""
    key = (tuple(sorted(environment.items())), project_version())
    if key not in _MANIFESTS:
        result, output = _invoke(["parse", *_project_args(), "--quiet"])
        if not result.success:
            raise DbtFailed(f"dbt parse failed:\n{output[-4000:]}\n{result.exception or ''}")
        _MANIFESTS.clear()
        _MANIFESTS[key] = result.result
    return _MANIFESTS[key]


@dataclass(frozen=True)
class DbtRun:
    command: list[str]
    output: str
    skipped: bool = False  # the period's inputs were those of the models' last complete build


def run_dbt(
    store: Store, cycle_id: str, period_start: str, command: str = "build", *, reuse: bool = True
) -> DbtRun:
    """``dbt build`` (models and their tests) of the billing models for one billing period.

    In this process, on the cached manifest; the period goes in the environment (PERIOD_ENV).
    ``reuse``: when the models already hold this period built from inputs with the same
    fingerprint (services/billing_inputs.py), build nothing: they would come out identical."""
    from smartmdm_pipelines.services.billing_inputs import built_fingerprint, period_fingerprint

    fingerprint = None
    if command == "build" and cycle_id:
        fingerprint = period_fingerprint(store, cycle_id, period_start, DBT_PROJECT_DIR)
        if reuse and fingerprint is not None and built_fingerprint(store) == fingerprint:
            store.dispose()
            return DbtRun(["dbt", command], "inputs unchanged since the last build: nothing to build", True)
    store.dispose()
    environment = dbt_environment(store.url)
    args = [command, *_project_args(), "--quiet" if command == "build" else "--no-quiet"]
    run_env = {**environment, **period_environment(cycle_id, period_start), INPUTS_ENV: fingerprint or ""}
    with _LOCK, _environ(run_env):
        # a run compiles its nodes into the manifest it is given: each run gets its own copy
        manifest = _manifest(environment).deepcopy()
        manifest.build_parent_and_child_maps()
        result, output = _invoke(args, manifest)
    if not result.success:
        raise DbtFailed(
            f"dbt {command} failed for {cycle_id} {period_start}:\n{output[-4000:]}\n{result.exception or ''}"
        )
    return DbtRun(["dbt", *args], output)


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
