"""Monthly partitions of raw_reads and intervals (migration 0010, store/partitions.py) and
partition-wise retention (``smartmdm retention``): PostgreSQL, with DuckDB's retention alongside."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.cli_retention import run_retention
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import audit
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store import migrate, partitions
from smartmdm_pipelines.store.intervals import INTERVAL_COLUMNS
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.services.test_vee_service import day_values, master_data, reads_file

NOW = pd.Timestamp("2024-04-02 06:00", tz="UTC")


def reads(days: list[dt.date], meters: int = 3, per_day: int = 4, file_id: int = 1) -> pd.DataFrame:
    rows = []
    for day in days:
        for m in range(meters):
            for k in range(per_day):
                end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(minutes=15 * (k + 1))
                rows.append((file_id, len(rows) + 1, f"M{m}", "kwh", end, 900, float(m + k), day))
    frame = pd.DataFrame(
        rows,
        columns=[
            "file_id",
            "line",
            "meter_id",
            "channel",
            "interval_end",
            "interval_seconds",
            "value",
            "read_day",
        ],
    )
    frame["unit"] = "kWh"
    frame["source_unit"] = "Wh"
    frame["source_quality"] = None
    return frame


def versions(frame: pd.DataFrame, version: int = 1, billed: bool = False, value_shift: float = 0.0):
    out = frame[["meter_id", "channel", "interval_end", "interval_seconds", "read_day"]].copy()
    out["version"] = version
    out["value"] = frame["value"] + value_shift
    out["unit"] = "kWh"
    out["status"] = "valid" if version == 1 else "edited"
    out["source_file_id"] = frame["file_id"]
    out["source_line"] = frame["line"]
    out["created_by"] = "test"
    out["created_at"] = NOW + pd.Timedelta(seconds=version)
    out["billed"] = billed
    return out


def contents(store: Store, sql: str) -> pd.DataFrame:
    frame = store.read_frame(sql)
    for column in frame.columns:
        if column == "read_day":
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def where_rows_live(store: Store, table: str) -> dict[str, int]:
    frame = store.read_frame(
        f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM {table} GROUP BY 1"
    )
    return dict(zip(frame["part"], frame["n"].astype(int), strict=True))


DAYS = [dt.date(2024, 1, 31), dt.date(2024, 2, 1), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]
INTERVALS_SQL = "SELECT " + ", ".join(INTERVAL_COLUMNS) + " FROM intervals"
CURRENT_SQL = "SELECT * FROM current_intervals"


def fill(store: Store, days: list[dt.date] = DAYS, billed_days: tuple[dt.date, ...] = ()) -> None:
    frame = reads(days)
    store.bulk_insert("raw_reads", frame)
    store.bulk_insert("intervals", versions(frame))
    edited = frame[frame["read_day"].isin(days[1:3])]  # a second version of some intervals
    store.bulk_insert("intervals", versions(edited, version=2, value_shift=0.5))
    if billed_days:
        with store.begin() as conn:
            conn.execute(
                sa.text("UPDATE intervals SET billed = true WHERE read_day IN (SELECT unnest(:d))"),
                {"d": list(billed_days)},
            )


@pytest.mark.postgres
def test_upgrade_moves_every_row_into_its_month_and_keeps_current_intervals(postgres_url: str) -> None:
    old = Store(postgres_url)
    migrate.downgrade(old.engine, "0009")
    assert old.scalar("SELECT relkind FROM pg_class WHERE relname = 'intervals'") == "r"
    fill(old)
    before = {
        "raw_reads": contents(old, "SELECT * FROM raw_reads"),
        "intervals": contents(old, INTERVALS_SQL),
        "current": contents(old, CURRENT_SQL),
    }
    old.dispose()

    store = Store(postgres_url)  # opening the store runs 0010
    assert migrate.current_revision(store.engine) == "0010"
    for table in partitions.PARTITIONED:
        assert store.scalar(f"SELECT relkind FROM pg_class WHERE relname = '{table}'") == "p"
    pd.testing.assert_frame_equal(contents(store, "SELECT * FROM raw_reads"), before["raw_reads"])
    pd.testing.assert_frame_equal(contents(store, INTERVALS_SQL), before["intervals"])
    pd.testing.assert_frame_equal(contents(store, CURRENT_SQL), before["current"])
    assert where_rows_live(store, "intervals") == {
        "intervals_2024_01": 12,
        "intervals_2024_02": 24 + 24,  # both versions of Feb 1 and Feb 29
        "intervals_2024_03": 12,
    }
    assert where_rows_live(store, "raw_reads") == {
        "raw_reads_2024_01": 12,
        "raw_reads_2024_02": 24,
        "raw_reads_2024_03": 12,
    }
    assert store.count("intervals", {"read_day": DAYS[1]}) == 24
    indexes = set(
        store.read_frame("SELECT indexname FROM pg_indexes WHERE tablename = 'intervals'")["indexname"]
    )
    assert {"ix_intervals_day", "ix_intervals_meter_end", "ix_intervals_day_created"} <= indexes
    comment = store.scalar("SELECT obj_description('intervals'::regclass, 'pg_class')")
    assert comment.startswith("Versioned validated store")

    migrate.downgrade(store.engine, "0009")
    for table in partitions.PARTITIONED:
        assert store.scalar(f"SELECT relkind FROM pg_class WHERE relname = '{table}'") == "r"
    assert store.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'intervals\\_20%'") == 0
    pd.testing.assert_frame_equal(contents(store, "SELECT * FROM raw_reads"), before["raw_reads"])
    pd.testing.assert_frame_equal(contents(store, INTERVALS_SQL), before["intervals"])
    pd.testing.assert_frame_equal(contents(store, CURRENT_SQL), before["current"])
    indexes = set(
        store.read_frame("SELECT indexname FROM pg_indexes WHERE tablename = 'intervals'")["indexname"]
    )
    assert indexes == {"ix_intervals_day", "ix_intervals_meter_end"}
    store.dispose()


@pytest.mark.postgres
def test_upgrade_recreates_every_view_that_reads_the_tables(postgres_url: str) -> None:
    store = Store(postgres_url)
    migrate.downgrade(store.engine, "0009")
    fill(store)
    store.execute("CREATE SCHEMA reports")
    store.execute(
        "CREATE VIEW reports.edited AS SELECT meter_id, count(*) AS n FROM current_intervals "
        "WHERE status = 'edited' GROUP BY meter_id"
    )
    store.execute("CREATE VIEW reports.edited_m0 AS SELECT n FROM reports.edited WHERE meter_id = 'M0'")
    expected = contents(store, "SELECT * FROM reports.edited")
    migrate.upgrade(store.engine)
    pd.testing.assert_frame_equal(contents(store, "SELECT * FROM reports.edited"), expected)
    assert store.scalar("SELECT n FROM reports.edited_m0") == 8
    store.dispose()


@pytest.mark.postgres
def test_writes_across_a_month_boundary_land_in_monthly_partitions(postgres_url: str) -> None:
    store = Store(postgres_url)
    fill(store, [dt.date(2025, 6, 30), dt.date(2025, 7, 1)])
    assert set(where_rows_live(store, "raw_reads")) == {"raw_reads_2025_06", "raw_reads_2025_07"}
    assert set(where_rows_live(store, "intervals")) == {"intervals_2025_06", "intervals_2025_07"}
    # a partition replace of a new month (delete, then COPY) creates it in the same transaction
    store.replace_partition("raw_reads", {"read_day": dt.date(2025, 8, 1)}, reads([dt.date(2025, 8, 1)]))
    assert where_rows_live(store, "raw_reads")["raw_reads_2025_08"] == 12
    # a month created by a transaction that rolled back is not taken for existing afterwards
    with pytest.raises(RuntimeError), store.begin() as conn:
        store.bulk_insert("intervals", versions(reads([dt.date(2025, 9, 2)])), conn)
        raise RuntimeError("roll back")
    assert store.scalar("SELECT to_regclass('intervals_2025_09')") is None
    store.bulk_insert("intervals", versions(reads([dt.date(2025, 9, 2)])))
    assert where_rows_live(store, "intervals")["intervals_2025_09"] == 12
    # a second store (another process) writing the months the first created
    other = Store(postgres_url)
    other.bulk_insert("intervals", versions(reads([dt.date(2025, 9, 3)]), version=1))
    assert where_rows_live(store, "intervals")["intervals_2025_09"] == 24
    assert (
        store.count("intervals") == 24 + 12 + 12 + 12
        and store.scalar("SELECT count(*) FROM intervals_default") == 0
    )
    assert store.scalar("SELECT count(*) FROM raw_reads_default") == 0
    other.dispose()
    store.dispose()


@pytest.mark.postgres
def test_vee_insert_select_creates_its_month(postgres_url: str, tmp_path) -> None:
    """VEE writes versions with INSERT … SELECT (not through bulk_insert): it asks for the day's month."""
    store = Store(postgres_url)
    day = dt.date(2024, 3, 12)
    master_data(store)
    config = load_config(data_dir=tmp_path / "data")
    ingest_file(store, reads_file(tmp_path / "d1.csv", day_values("M1") | day_values("M2")), config)
    assert store.scalar("SELECT to_regclass('intervals_2024_03')") is None  # no version written yet
    run_day(store, day, config)
    parts = where_rows_live(store, "intervals")
    assert set(parts) == {"intervals_2024_03"} and parts["intervals_2024_03"] == 2 * 96
    store.dispose()


@pytest.mark.postgres
def test_split_default_moves_an_older_clients_rows_into_their_months(postgres_url: str) -> None:
    store = Store(postgres_url)
    frame = reads([dt.date(2024, 5, 31), dt.date(2024, 6, 1)])
    cols = ", ".join(frame.columns)
    with store.begin() as conn:  # an older client: a plain INSERT, no partition created first
        conn.execute(sa.text(f"INSERT INTO raw_reads ({cols}) VALUES ({', '.join(':' + c for c in frame.columns)})"),
                     frame.to_dict("records"))  # fmt: skip
    assert where_rows_live(store, "raw_reads") == {"raw_reads_default": 24}
    # the store then writes June: the month is in DEFAULT, so its rows join them there (no error)
    store.bulk_insert("raw_reads", reads([dt.date(2024, 6, 2)], file_id=2))
    assert where_rows_live(store, "raw_reads") == {"raw_reads_default": 36}
    expected = contents(store, "SELECT * FROM raw_reads")
    with store.begin() as conn:
        moved = partitions.split_default(conn, "raw_reads")
    assert moved == {"raw_reads_2024_05": 12, "raw_reads_2024_06": 24}
    assert where_rows_live(store, "raw_reads") == {"raw_reads_2024_05": 12, "raw_reads_2024_06": 24}
    pd.testing.assert_frame_equal(contents(store, "SELECT * FROM raw_reads"), expected)
    store.dispose()


def test_retention_removes_the_same_rows_on_both_backends(store: Store) -> None:
    fill(store)
    expected_raw = contents(store, "SELECT * FROM raw_reads WHERE read_day >= DATE '2024-02-01'")
    expected_int = contents(store, INTERVALS_SQL + " WHERE read_day >= DATE '2024-02-01'")
    dry = run_retention(store, "raw_reads", dt.date(2024, 2, 1), dry_run=True)
    assert dry.rows == 12 and store.count("raw_reads") == 48
    done = run_retention(store, "raw_reads", dt.date(2024, 2, 1), by="ops", reason="36-month horizon")
    assert done.rows == 12
    assert done.partitions == (["raw_reads_2024_01"] if store.backend == "postgresql" else [])
    pd.testing.assert_frame_equal(contents(store, "SELECT * FROM raw_reads"), expected_raw)
    run_retention(store, "intervals", dt.date(2024, 2, 1), by="ops", reason="36-month horizon")
    pd.testing.assert_frame_equal(contents(store, INTERVALS_SQL), expected_int)
    log = audit.entries(store, action="retention.")
    assert list(log["object_id"]) == ["raw_reads", "intervals"]
    assert '"rows":12' in log["details"].iloc[0].replace(" ", "")
    assert audit.verify(store)[1] is None
    if store.backend == "postgresql":
        assert store.scalar("SELECT to_regclass('raw_reads_2024_01')") is None
        assert store.scalar("SELECT to_regclass('raw_reads_2024_02')") is not None


def test_retention_refuses_billed_interval_months_unless_forced(store: Store) -> None:
    fill(store, billed_days=(dt.date(2024, 1, 31),))
    with pytest.raises(partitions.RetentionRefused, match="12 billed"):
        run_retention(store, "intervals", dt.date(2024, 3, 1), by="ops", reason="horizon")
    assert store.count("intervals") == 72
    assert audit.entries(store, action="retention.").empty
    # raw reads carry no billing: their months go
    run_retention(store, "raw_reads", dt.date(2024, 3, 1), by="ops", reason="horizon")
    assert store.count("raw_reads") == 12
    result = run_retention(store, "intervals", dt.date(2024, 3, 1), by="ops", reason="horizon", force=True)
    assert result.billed == 12 and result.rows == 60
    assert store.count("intervals") == 12
    assert '"forced":true' in audit.entries(store, action="retention.")["details"].iloc[-1].replace(" ", "")


@pytest.mark.postgres
def test_retention_also_removes_old_rows_parked_in_default(postgres_url: str) -> None:
    store = Store(postgres_url)
    fill(store)
    frame = reads([dt.date(2023, 12, 5)], file_id=9)
    cols = ", ".join(frame.columns)
    with store.begin() as conn:  # an older client wrote December into DEFAULT
        conn.execute(sa.text(f"INSERT INTO raw_reads ({cols}) VALUES ({', '.join(':' + c for c in frame.columns)})"),
                     frame.to_dict("records"))  # fmt: skip
    result = run_retention(store, "raw_reads", dt.date(2024, 2, 1), by="ops", reason="horizon")
    assert result.partitions == ["raw_reads_2024_01"] and result.rows == 24
    assert store.scalar("SELECT count(*) FROM raw_reads WHERE read_day < DATE '2024-02-01'") == 0
    store.dispose()


def test_retention_cli(store_url: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    store = Store(store_url)
    fill(store, billed_days=(dt.date(2024, 1, 31),))
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store_url)
    base = ["retention", "--table", "intervals", "--before"]
    assert main([*base, "2024-02-15", "--by", "ops", "--reason", "r"]) == 2  # not a month's first day
    assert main([*base, "2024-02-01"]) == 2  # who and why are required
    assert main([*base, "2024-02-01", "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"rows": 12' in out and '"billed": 12' in out and '"dry_run": true' in out
    assert main([*base, "2024-02-01", "--by", "ops", "--reason", "r"]) == 1  # billed
    assert store.count("intervals") == 72
    assert main([*base, "2024-02-01", "--by", "ops", "--reason", "r", "--force"]) == 0
    assert store.count("intervals") == 60
    assert main(["partitions", "split-default"]) == 0
    store.dispose()


def test_month_helpers() -> None:
    assert partitions.next_month(dt.date(2024, 12, 1)) == dt.date(2025, 1, 1)
    assert partitions.month_start(dt.date(2024, 2, 29)) == dt.date(2024, 2, 1)
    assert partitions.partition_name("intervals", dt.date(2024, 3, 1)) == "intervals_2024_03"
    with pytest.raises(ValueError, match="not partitioned"):
        partitions.ensure_partitions(None, "meters", [dt.date(2024, 1, 1)])  # type: ignore[arg-type]
