"""`smartmdm ingest` on a YAML-mapped register export: the configuration is all it takes."""

import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests import amr_export as ax


def test_ingest_a_mapped_register_export_with_yaml_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
    store = Store(url)
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            [
                {"meter_id": m, "kind": "ami", "commodity": "water", "channels": "water", "unit": "gal"}
                | {"interval_seconds": 3600, "dials": ax.DIALS}
                for m in ("12345", "67890")
            ]
        ),
    )
    store.dispose()
    config = ax.config_file(tmp_path / "config")
    reads = ax.register_reads()
    export = ax.write_export(tmp_path / "lecturas_2019-03.csv", reads[reads["read_at"].dt.month == 3])
    args = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "ingest", "--no-archive"]
    assert main([*args, str(export.path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["format"], out["status"], out["rejected_rows"]) == ("mapped_csv", "loaded", 0)
    assert out["register_reads"] == out["records"] == len(export.reads) and out["interval_reads"] == 0
    assert out["meters"] == 2 and out["channels"] == ["water"]
    assert out["vee_days"][0] == "2019-03-01" and "2019-03-31" in out["vee_days"]  # the DST day too
