"""The local Dagster instance used by the demo and `smartmdm ui` (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_INSTANCE_YAML = """\
# Local Dagster instance of the Smart MDM demo (written by smartmdm; SQLite storage in this folder).
# For production, use deploy/dagster.yaml (PostgreSQL storage).
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
"""


def ensure_local_instance(data_dir: Path) -> Path:
    """Point DAGSTER_HOME at ``data_dir/dagster_home`` (unless set) and give it a dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or (Path(data_dir) / "dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


# run_config for in-process runs launched from the CLI: the console shows warnings only
# (the full event log is still in the instance, visible in the UI).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
