"""Batch export of billing determinants with an outbox, on DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.services.cis_export import ExportError, export_determinants
from smartmdm_pipelines.store.store import Store

START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 31)


def determinants(
    version: int = 1, accounts=("A1", "A2"), correction: bool = False, scale: float = 1.0
) -> pd.DataFrame:
    rows = []
    for n, account in enumerate(accounts, 1):
        for det, tou, value, unit in (
            ("kwh_delivered", None, 500.0 * n, "kWh"),
            ("kwh_tou", 0, 300.25 * n, "kWh"),
            ("kwh_tou", 1, 199.75 * n, "kWh"),
            ("kw_max", None, 7.5 * n, "kW"),
        ):
            rows.append(
                {
                    "account_id": account,
                    "service_point_id": f"SP{n}",
                    "cycle_id": "C01",
                    "period_start": START,
                    "period_end": END,
                    "version": version,
                    "determinant": det,
                    "value": value * scale,
                    "unit": unit,
                    "estimated_share": 0.05 * n,
                    "is_correction": correction,
                    "content_hash": "h",
                    "created_at": pd.Timestamp("2024-04-03T10:00:00Z"),
                    "tou_period": tou,
                    "source": "interval",
                }
            )
    frame = pd.DataFrame(rows)
    frame["tou_period"] = frame["tou_period"].astype("Int64")
    return frame


def test_the_three_files_and_the_outbox(store: Store, tmp_path: Path) -> None:
    result = export_determinants(store, determinants(), tmp_path, "billing_C01_20240301")
    assert (result.exported, result.skipped, result.determinant_rows, result.corrections) == (2, 0, 8, 0)

    wide = pd.read_csv(tmp_path / "billing_C01_20240301.csv")
    assert wide.columns.tolist() == [
        "account_id", "service_point_id", "cycle_id", "period_start", "version", "period_end",
        "is_correction", "estimated_share", "idempotency_key",
        "kw_max", "kwh_delivered", "kwh_tou_p0", "kwh_tou_p1",
    ]  # fmt: skip
    assert wide["account_id"].tolist() == ["A1", "A2"]
    assert wide["kwh_tou_p0"].tolist() == [300.25, 600.5]
    assert wide["period_end"].tolist() == ["2024-03-31"] * 2
    assert wide["is_correction"].tolist() == [False, False]

    lines = (tmp_path / "billing_C01_20240301.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    first = records[0]
    assert first["idempotency_key"] == "billing:A1:SP1:C01:2024-03-01:v1"
    assert (first["period_start"], first["period_end"], first["version"]) == ("2024-03-01", "2024-03-31", 1)
    assert first["estimated_share"] == pytest.approx(0.05)
    assert first["determinants"] == [
        {"determinant": "kw_max", "tou_period": None, "value": 7.5, "unit": "kW", "source": "interval"},
        {
            "determinant": "kwh_delivered",
            "tou_period": None,
            "value": 500.0,
            "unit": "kWh",
            "source": "interval",
        },
        {"determinant": "kwh_tou", "tou_period": 0, "value": 300.25, "unit": "kWh", "source": "interval"},
        {"determinant": "kwh_tou", "tou_period": 1, "value": 199.75, "unit": "kWh", "source": "interval"},
    ]

    manifest = json.loads((tmp_path / "billing_C01_20240301.manifest.json").read_text())
    assert manifest["batch_name"] == "billing_C01_20240301"
    assert (manifest["record_count"], manifest["determinant_rows"], manifest["corrections"]) == (2, 8, 0)
    assert manifest["periods"] == [
        {"cycle_id": "C01", "period_start": "2024-03-01", "period_end": "2024-03-31"}
    ]
    for name in ("billing_C01_20240301.csv", "billing_C01_20240301.jsonl"):
        data = (tmp_path / name).read_bytes()
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "records": 2,
        }
    assert not list(tmp_path.glob(".*"))  # no temporary files left

    outbox = store.read_frame("SELECT * FROM outbound_messages ORDER BY idempotency_key")
    assert outbox["idempotency_key"].tolist() == [
        "billing:A1:SP1:C01:2024-03-01:v1",
        "billing:A2:SP2:C01:2024-03-01:v1",
    ]
    assert set(outbox["channel"]) == {"cis_batch"} and set(outbox["kind"]) == {"billing_determinants"}
    assert set(outbox["status"]) == {"sent"} and set(outbox["attempts"]) == {1}
    assert set(outbox["response"]) == {"billing_C01_20240301.jsonl"}
    assert outbox["sent_at"].notna().all()
    assert [json.loads(p) for p in outbox["payload"]] == records


def test_a_re_export_skips_everything_and_writes_no_batch(store: Store, tmp_path: Path) -> None:
    export_determinants(store, determinants(), tmp_path, "b1")
    result = export_determinants(store, determinants(), tmp_path, "b2")
    assert (result.exported, result.skipped, result.files) == (0, 2, {})
    assert not list(tmp_path.glob("b2*"))
    assert store.count("outbound_messages") == 2


def test_a_new_version_is_exported_and_flagged_as_a_correction(store: Store, tmp_path: Path) -> None:
    export_determinants(store, determinants(), tmp_path, "b1")
    both = pd.concat([determinants(), determinants(version=2, accounts=("A1",), correction=True, scale=1.1)])
    result = export_determinants(store, both, tmp_path, "b2")
    assert (result.exported, result.skipped, result.corrections) == (1, 2, 1)
    wide = pd.read_csv(tmp_path / "b2.csv")
    assert wide[["account_id", "version", "is_correction"]].values.tolist() == [["A1", 2, True]]
    assert wide["kwh_delivered"].iloc[0] == pytest.approx(550.0)
    manifest = json.loads((tmp_path / "b2.manifest.json").read_text())
    assert manifest["corrections"] == 1 and manifest["record_count"] == 1
    assert json.loads((tmp_path / "b2.jsonl").read_text())["idempotency_key"].endswith(":v2")
    assert store.count("outbound_messages") == 3


def test_rate_segments_get_their_own_columns(store: Store, tmp_path: Path) -> None:
    frame = determinants(accounts=("A1",))
    frame = pd.concat(
        [
            frame.assign(rate_code="R1", segment_start=START, segment_end=dt.date(2024, 3, 14)),
            frame.assign(rate_code="R2", segment_start=dt.date(2024, 3, 15), segment_end=END),
        ]
    )
    export_determinants(store, frame, tmp_path, "seg")
    wide = pd.read_csv(tmp_path / "seg.csv")
    assert {"kwh_delivered_s1", "kwh_delivered_s2", "kwh_tou_p0_s2"} <= set(wide.columns)
    record = json.loads((tmp_path / "seg.jsonl").read_text())
    assert {d["rate_code"] for d in record["determinants"]} == {"R1", "R2"}


def test_bad_input_and_existing_batches_are_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="lack columns"):
        export_determinants(store, determinants().drop(columns=["version"]), tmp_path, "x")
    with pytest.raises(ExportError, match="more than once"):
        export_determinants(store, pd.concat([determinants(), determinants().iloc[:1]]), tmp_path, "x")
    export_determinants(store, determinants(accounts=("A1",)), tmp_path, "x")
    with pytest.raises(ExportError, match="already exists"):
        export_determinants(store, determinants(accounts=("A2",)), tmp_path, "x")
    assert store.count("outbound_messages") == 1


def test_strings_and_numbers_survive_the_vectorised_formatting(store: Store, tmp_path: Path) -> None:
    """Quotes, commas, newlines, slashes, control and non-ASCII characters are escaped (JSON) or
    quoted (CSV) and read back as written; floats keep their value in both files."""
    account = 'Müller, "Jr."\n/ 😀\x01\\'
    frame = determinants(accounts=(account, "A2"))
    frame.loc[frame["account_id"] == account, "unit"] = "m³/h"
    frame.loc[frame["determinant"] == "kw_max", "value"] = [0.1 + 0.2, 1e17]
    frame.loc[frame["account_id"] == "A2", "estimated_share"] = float("nan")
    result = export_determinants(store, frame, tmp_path, "esc")
    assert result.exported == 2

    records = [json.loads(line) for line in (tmp_path / "esc.jsonl").read_text().splitlines()]
    assert records[0]["account_id"] == account
    assert records[0]["idempotency_key"] == f"billing:{account}:SP1:C01:2024-03-01:v1"
    assert {d["unit"] for d in records[0]["determinants"]} == {"m³/h"}
    assert records[0]["determinants"][0]["value"] == pytest.approx(0.3)
    assert records[1]["determinants"][0]["value"] == 1e17
    assert records[1]["estimated_share"] is None
    assert (tmp_path / "esc.jsonl").read_bytes().isascii()  # non-ASCII is \u-escaped

    wide = pd.read_csv(tmp_path / "esc.csv", keep_default_na=False)
    assert wide["account_id"].tolist() == [account, "A2"]
    assert wide["idempotency_key"].iloc[0] == f"billing:{account}:SP1:C01:2024-03-01:v1"
    assert wide["kw_max"].tolist() == [0.1 + 0.2, 1e17]
    assert wide["estimated_share"].tolist()[1] == ""
    outbox = store.read_frame("SELECT idempotency_key, payload FROM outbound_messages ORDER BY payload")
    assert sorted(json.loads(p)["account_id"] for p in outbox["payload"]) == sorted([account, "A2"])
