"""Outbox retention on both backends: delivered push receipts older than the grace period go;
pending work, dead letters and the cycle-close batch's own rows stay; the batch file still finds
every record with the same message_id; the purge is in the audit log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import audit, outbox
from smartmdm_pipelines.services.dispatch import Dispatcher
from smartmdm_pipelines.services.outbox import PushTarget
from smartmdm_pipelines.services.outbox_retention import purge_delivered
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.cis_stub import CisStub
from smartmdm_pipelines_tests.realtime.helpers import body, master_data

DAY = dt.date(2024, 3, 12)
METERS = ["M1", "M2", "M3"]
WEEK = pd.Timedelta(days=7)


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


@pytest.fixture
def queued(store: Store, config, monkeypatch) -> pd.DataFrame:
    """60 records for each of cis and portal; cis delivered but one dead-lettered, portal pending,
    and a cycle-close batch file's rows for the same day."""
    monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", "http://127.0.0.1:9/unused")
    monkeypatch.setenv("SMARTMDM_PORTAL_PUSH_URL", "http://127.0.0.1:9/unused")
    master_data(store, METERS)
    ingest_body(store, config, "he1", body(METERS, range(0, 20)), "http")
    validate_pending(store, config)
    rows = store.read_frame("SELECT * FROM outbox ORDER BY seq")
    bad = rows.loc[rows["destination"].eq("cis"), "message_id"].iloc[5]
    with CisStub() as stub:
        stub.refuse_ids = {bad}
        d = Dispatcher(store, PushTarget("cis", stub.url), batch_size=25, timeout=2.0)
        while not d.step().idle:
            pass
    meters_sql = "SELECT meter_id FROM meters"
    with store.begin() as conn:
        batch = outbox.batch_records(store, conn, meters_sql, {}, DAY, DAY)
        outbox.mark_batched(store, conn, batch.iloc[:30], "close-1", pd.Timestamp.now(tz="UTC"))
    return rows


def by_state(store: Store) -> dict[tuple[str, str], int]:
    frame = store.read_frame(
        "SELECT destination, state, count(*) AS n FROM outbox GROUP BY destination, state"
    )
    return {(d, s): int(n) for d, s, n in frame.itertuples(index=False)}


def age(store: Store, destination: str, days: float, limit: int) -> None:
    """Make the first ``limit`` delivered rows of ``destination`` delivered ``days`` ago."""
    store.execute(
        "UPDATE outbox SET delivered_at = :at WHERE seq IN (SELECT seq FROM outbox WHERE destination = :d "
        "AND state = 'delivered' ORDER BY seq LIMIT :n)",
        {
            "at": (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=days)).to_pydatetime(),
            "d": destination,
            "n": limit,
        },
    )


def test_only_old_delivered_push_receipts_are_removed(store: Store, queued: pd.DataFrame) -> None:
    before = by_state(store)
    assert before == {
        ("cis", "delivered"): 59,
        ("cis", "dead"): 1,
        ("portal", "pending"): 60,
        ("cis_batch", "delivered"): 30,
    }
    age(store, "cis", days=10, limit=40)
    age(store, "cis_batch", days=400, limit=30)  # a batch file's rows are kept whatever their age

    dry = purge_delivered(store, WEEK, actor="ops", reason="retention test", dry_run=True)
    assert dry.removed == {"cis": 40} and by_state(store) == before

    report = purge_delivered(store, WEEK, actor="ops", reason="retention test", chunk=7)  # several chunks
    assert report.removed == {"cis": 40} and not report.dry_run
    after = by_state(store)
    assert after == {**before, ("cis", "delivered"): 19}
    # the removed rows are exactly the aged ones (the oldest seqs of cis' delivered rows)
    kept = store.read_frame("SELECT seq FROM outbox WHERE destination = 'cis' AND state = 'delivered'")["seq"]
    assert kept.min() > queued.loc[queued["destination"].eq("cis"), "seq"].nsmallest(40).max()

    entry = audit.entries(store, action="outbox.purge").iloc[-1]
    assert (entry["action"], entry["actor"], entry["reason"]) == ("outbox.purge", "ops", "retention test")
    assert json.loads(entry["details"])["removed"] == {"cis": 40}
    assert audit.verify(store)[1] is None  # the chain still verifies

    assert purge_delivered(store, WEEK, actor="ops", reason="again").removed == {}  # nothing left that old


def test_the_cycle_close_batch_still_carries_every_record_with_its_id(
    store: Store, queued: pd.DataFrame
) -> None:
    def batch() -> pd.DataFrame:
        with store.begin() as conn:
            return outbox.batch_records(store, conn, "SELECT meter_id FROM meters", {}, DAY, DAY)

    expected = batch()
    assert len(expected) == 30  # the 60 records minus the 30 the first batch file carried
    purge_delivered(store, pd.Timedelta(0), actor="ops", reason="everything delivered")
    assert by_state(store).get(("cis", "delivered"), 0) == 0
    got = batch()  # rebuilt from the interval versions: same ids, same content
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )


def test_purge_needs_who_and_why_and_a_sane_period(store: Store) -> None:
    with pytest.raises(audit.AuditError):
        purge_delivered(store, WEEK, actor="ops", reason="")
    with pytest.raises(ValueError, match="negative"):
        purge_delivered(store, pd.Timedelta(days=-1), actor="ops", reason="r")


def test_cli_purge(store: Store, store_url: str, queued: pd.DataFrame, monkeypatch, capsys) -> None:
    age(store, "cis", days=30, limit=10)
    store.dispose()  # the CLI opens the store itself (one DuckDB writer)
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store_url)
    args = ["outbox", "purge", "--older-than-days", "7", "--by", "ops", "--reason", "monthly retention"]
    assert main([*args, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == {"cis": 10}
    assert main(args) == 0
    assert "removed 10 delivered record(s)" in capsys.readouterr().out
    again = Store(store_url)
    try:
        assert by_state(again)[("cis", "delivered")] == 49
    finally:
        again.dispose()
