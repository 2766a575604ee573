"""`smartmdm cis sync` and `smartmdm vee run --from --to` on both backends: master data and a
range of operating days through their Dagster jobs, in chunks, with progress, on the instance in
$DAGSTER_HOME, as runs of code location smartmdm."""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file


@pytest.fixture(params=["duckdb", "postgres"])
def env(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = request.getfixturevalue("duckdb_url" if request.param == "duckdb" else "postgres_url")
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


def test_cis_sync_then_vee_run_over_a_range_in_chunks(env: Path, capsys) -> None:
    cis = env / "data" / "cis"
    cis.mkdir(parents=True)
    (cis / "meters.csv").write_text(
        "meter_id,kind,commodity,role,channels,unit,interval_seconds,multiplier,dials\n"
        "E1,ami,electric,customer,kwh_delivered,kWh,900,1,6\nE2,ami,electric,customer,kwh_delivered,kWh,900,1,6\n"
    )
    assert main(["cis", "sync"]) == 0
    out = capsys.readouterr().out
    assert "meters                   2 received, 2 inserted, 0 updated, 0 closed" in out

    files = [
        str(interval_file(env / f"ami-east_{day}.csv", ["E1", "E2"], day, shaped=True))
        for day in ("2024-03-10", "2024-03-11", "2024-03-12")
    ]
    assert main(["ingest", "--no-archive", *files]) == 0
    capsys.readouterr()
    assert main(["vee", "run", "--from", "2024-03-10", "--to", "2024-03-12", "--chunk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "VEE of 3 operating days 2024-03-10..2024-03-12 in 2 run(s) of up to 2 days"
    # 2024-03-10 is a spring-forward day: 92 quarter-hours
    assert lines[1].startswith("2/3 days  376 reads  ") and lines[1].endswith(
        "run 2024-03-10..2024-03-11: ok"
    )
    assert lines[2].startswith("3/3 days  568 reads  ") and lines[2].endswith(
        "run 2024-03-12..2024-03-12: ok"
    )
    assert "reads/s" in lines[1]

    store = Store()
    assert store.scalar("SELECT count(DISTINCT interval_end) FROM intervals WHERE meter_id = 'E1'") == 284
    store.dispose()
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            dg.RunsFilter(job_name="vee_job", tags={REPOSITORY_LABEL_TAG: "__repository__@smartmdm"})
        )
        assert sorted(
            r.tags.get("dagster/asset_partition_range_start", r.tags.get("dagster/partition")) for r in runs
        ) == [
            "2024-03-10",
            "2024-03-12",
        ]


def test_vee_run_refuses_days_outside_the_partitions(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert main(["vee", "run", "--from", "2019-12-31", "--to", "2020-01-02"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --from 2019-12-31 is before the first operating-day partition 2020-01-01 "
        "(utility.partitions_start in the utility YAML)"
    )
    assert main(["vee", "run", "--from", "2024-03-12", "--to", "2024-03-10"]) == 2
    assert "is after --to" in capsys.readouterr().err
