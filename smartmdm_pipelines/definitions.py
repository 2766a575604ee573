"""The one entry point: everything under defs/ plus the executor.

With DuckDB (one writing process at a time) steps run in-process; with PostgreSQL
they run in parallel subprocesses.
"""

from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.secrets import load_secrets
from smartmdm_pipelines.store.engine import backend_of, database_url


def executor() -> dg.ExecutorDefinition:
    if backend_of(database_url()) == "duckdb":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({"max_concurrent": 4})


@dg.definitions
def defs() -> dg.Definitions:
    load_secrets()  # secrets files (0600) into this process's environment; resources use EnvVar
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=executor()),
    )
