"""The batch file at cycle close reads the real-time outbox, on DuckDB and PostgreSQL: a record pushed
in real time to a real HTTP receiver and the same record in the close file carry the same
message_id and content; versions never queued for a push get the ids the push would give them; a
re-close carries only what is new, and a new version with a new id."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import outbox
from smartmdm_pipelines.services.cis_export import IntervalScope, export_determinants
from smartmdm_pipelines.services.dispatch import Dispatcher
from smartmdm_pipelines.services.outbox import PushTarget
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.cis_stub import CisStub
from smartmdm_pipelines_tests.realtime.helpers import body, master_data
from smartmdm_pipelines_tests.services.test_cis_export import determinants

DAY = dt.date(2024, 3, 12)


# every meter (no dbt's bill_segments here), streamed one meter a chunk
SCOPE = IntervalScope("C01", DAY, DAY, meters_sql="SELECT meter_id FROM meters", chunk_intervals=96)


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def drain(store: Store, stub: CisStub) -> None:
    d = Dispatcher(store, PushTarget("cis", stub.url), batch_size=40, timeout=5.0, backoff_base=0.01)
    assert d.drain(max_seconds=30) >= 0
    assert outbox.status(store).pending == 0


def interval_file(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"message_id": str, "quality": str}, keep_default_na=False)


def as_records(frame: pd.DataFrame) -> dict[str, dict]:
    """message_id -> record, values in the push contract's types."""
    out = {}
    for rec in frame.to_dict(orient="records"):
        rec = {k: (None if v == "" else v) for k, v in rec.items()}
        rec["value"] = None if rec["value"] is None else float(rec["value"])
        rec["version"], rec["interval_seconds"] = int(rec["version"]), int(rec["interval_seconds"])
        out[rec["message_id"]] = rec
    return out


def test_close_file_and_pushes_share_message_ids(store: Store, config, monkeypatch, tmp_path: Path) -> None:
    master_data(store, ["M1", "M2"])
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)
    # M2 arrives before any push is configured: its versions are never queued
    monkeypatch.delenv("SMARTMDM_CIS_PUSH_URL", raising=False)
    ingest_body(store, config, "he1", body(["M2"], range(96)), "http")
    validate_pending(store, config)
    assert store.count("outbox") == 0
    export_dir = tmp_path / "out"
    with CisStub() as stub:
        monkeypatch.setenv("SMARTMDM_CIS_PUSH_URL", stub.url)
        gap = [s for s in range(96) if s not in (40, 41)]  # two intervals estimated, pushed as such
        ingest_body(store, config, "he1", body(["M1"], gap), "http")
        validate_pending(store, config)
        drain(store, stub)
        pushed = {r["message_id"]: r for r in stub.records()}
        assert len(pushed) == 96 and sum(r["status"] == "estimated" for r in pushed.values()) == 2

        first = export_determinants(store, determinants(), export_dir, "b1", intervals=SCOPE)
        assert (first.exported, first.interval_records) == (2, 192)
        rows = interval_file(export_dir / "b1.intervals.csv")
        assert rows.columns.tolist() == outbox.RECORD_FIELDS  # one header for the streamed chunks
        assert rows["meter_id"].tolist() == ["M1"] * 96 + ["M2"] * 96
        assert rows.groupby("meter_id")["interval_end"].apply(lambda e: e.is_monotonic_increasing).all()
        in_file = as_records(rows)
        m1 = {k: r for k, r in in_file.items() if r["meter_id"] == "M1"}
        # the CIS reconciles the file against the pushes by message_id: same ids, same content
        assert m1 == pushed
        m2 = rows[rows["meter_id"].eq("M2")]
        assert len(m2) == 96 and set(m2["status"]) == {"valid"} and set(m2["version"]) == {1}
        assert set(m2["account_id"]) == {"A-M2"} and m2["message_id"].is_unique
        assert not set(m2["message_id"]) & set(pushed)
        assert m2["interval_end"].iloc[0] == "2024-03-12T05:15:00+00:00"

        manifest = json.loads((export_dir / "b1.manifest.json").read_text())
        data = (export_dir / "b1.intervals.csv").read_bytes()
        assert manifest["files"]["b1.intervals.csv"] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "records": 192,
        }
        assert (manifest["record_count"], manifest["interval_records"]) == (2, 192)
        batched = store.read_frame("SELECT * FROM outbox WHERE destination = 'cis_batch'")
        assert len(batched) == 192 and set(batched["state"]) == {"delivered"}
        assert set(batched["batch_key"]) == {"b1"} and set(batched["message_id"]) == set(in_file)

        # nothing new: no batch at all
        again = export_determinants(store, determinants(), export_dir, "b2", intervals=SCOPE)
        assert (again.exported, again.interval_records, again.files) == (0, 0, {})
        assert not list(export_dir.glob("b2*"))

        # the late actuals replace the two estimates: new versions, new ids, pushed and in the re-close
        ingest_body(
            store, config, "he1", body(["M1"], [40, 41], {("M1", 40): 0.71, ("M1", 41): 0.72}), "http"
        )
        validate_pending(store, config)
        drain(store, stub)
        late = {r["message_id"]: r for r in stub.records() if r["message_id"] not in pushed}
        assert len(late) == 2 and {r["status"] for r in late.values()} == {"valid"}
        third = export_determinants(store, determinants(), export_dir, "b3", intervals=SCOPE)
        assert (third.exported, third.interval_records) == (0, 2)
        assert set(third.files) == {"intervals", "manifest"}  # no new determinant version: no csv/jsonl
        new = as_records(interval_file(export_dir / "b3.intervals.csv"))
        assert new == late
        estimated = {(r["interval_end"], r["version"]) for r in pushed.values() if r["status"] == "estimated"}
        assert sorted(v for _, v in estimated) < sorted(r["version"] for r in new.values())
        assert {r["interval_end"] for r in new.values()} == {e for e, _ in estimated}
        manifest = json.loads((export_dir / "b3.manifest.json").read_text())
        assert (manifest["record_count"], manifest["interval_records"]) == (0, 2)
        assert manifest["periods"] == [
            {"cycle_id": "C01", "period_start": "2024-03-12", "period_end": "2024-03-12"}
        ]


def test_an_export_without_a_scope_carries_no_intervals(
    store: Store, config, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SMARTMDM_CIS_PUSH_URL", raising=False)
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)
    master_data(store, ["M1"])
    ingest_body(store, config, "he1", body(["M1"], range(96)), "http")
    validate_pending(store, config)
    result = export_determinants(store, determinants(), tmp_path, "b1")
    assert result.interval_records == 0 and "intervals" not in result.files
    assert not list(tmp_path.glob("*.intervals.csv")) and store.count("outbox") == 0
    # a scope with no determinants: the intervals alone
    only = export_determinants(store, determinants().iloc[:0], tmp_path, "b2", intervals=SCOPE)
    assert (only.exported, only.interval_records) == (0, 96)


def test_a_failure_while_streaming_leaves_no_file_and_no_outbox_rows(
    store: Store, config, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SMARTMDM_CIS_PUSH_URL", raising=False)
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)
    master_data(store, ["M1", "M2"])
    ingest_body(store, config, "he1", body(["M1", "M2"], range(96)), "http")
    validate_pending(store, config)
    real, calls = outbox.records_csv, []

    def disk_full_on_the_second_chunk(frame, header=True):
        calls.append(len(frame))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(frame, header)

    monkeypatch.setattr(outbox, "records_csv", disk_full_on_the_second_chunk)
    with pytest.raises(OSError, match="No space left"):
        export_determinants(store, determinants(), tmp_path / "out", "b1", intervals=SCOPE)
    assert calls == [96, 96]
    assert list((tmp_path / "out").iterdir()) == []  # neither the files nor a temporary one
    assert store.count("outbox") == 0 and store.count("outbound_messages") == 0
    monkeypatch.setattr(outbox, "records_csv", real)
    again = export_determinants(store, determinants(), tmp_path / "out", "b1", intervals=SCOPE)
    assert (again.exported, again.interval_records) == (2, 192)
