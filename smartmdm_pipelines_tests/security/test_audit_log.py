"""The audit log (issue 15): every manual action writes exactly one row with who, when and why,
in the action's own transaction; who and why are required; nothing in the API or the CLI can
change or remove a row; PostgreSQL refuses it by trigger, and on DuckDB a changed row makes
``smartmdm audit verify`` fail naming it."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import threading
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from smartmdm_pipelines.cli import build_parser, main
from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services import audit, portal_alerts
from smartmdm_pipelines.services.billing_close import version_determinants
from smartmdm_pipelines.services.exceptions import Resolution, list_exceptions, resolve
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.portal_usage import BadRequest
from smartmdm_pipelines.services.protection import mark_case
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.portal.helpers import token
from smartmdm_pipelines_tests.security.test_authorization_matrix import (  # noqa: F401 (app: a fixture)
    CALLERS,
    ROUTES,
    app,
    app_routes,
)
from smartmdm_pipelines_tests.services.test_vee_service import day_values, master_data, reads_file

DAY = dt.date(2024, 3, 12)
PACKAGE = Path(__file__).resolve().parents[2] / "smartmdm_pipelines"


def rows(store: Store) -> list[dict]:
    return audit.entries(store).to_dict("records")


def four_exceptions(store: Store, tmp_path: Path) -> list[str]:
    """Four open exceptions of one day: M1's spike, M1's 4 missing intervals, M2's 2 missing
    intervals, M2's spike (in the order the test resolves them)."""
    master_data(store)
    values = day_values("M1", gap=range(40, 44)) | day_values("M2", gap=range(60, 62))
    values[("M1", 20)] = values[("M2", 30)] = 55.0
    config = load_config(data_dir=tmp_path / "data")
    ingest_file(store, reads_file(tmp_path / "d1.csv", values), config)
    run_day(store, DAY, config)
    found = list_exceptions(store).set_index(["meter_id", "rule"])["exception_id"]
    keys = [("M1", "spike"), ("M1", "missing_interval"), ("M2", "missing_interval"), ("M2", "spike")]
    assert sorted(found.index) == sorted(keys), found
    return [found[k] for k in keys]


def test_each_exception_action_writes_one_row_with_who_when_why(store: Store, tmp_path, monkeypatch, capsys):
    config = load_config(data_dir=tmp_path / "data")
    ids = four_exceptions(store, tmp_path)
    before = pd.Timestamp.now(tz="UTC")
    done = [
        (ids[0], "accept", {}),
        (ids[1], "edit", {"value": 0.5}),
        (ids[2], "estimate", {"method": "linear"}),
    ]
    for i, (exception_id, action, extra) in enumerate(done):
        resolve(
            store, config, Resolution(exception_id, action, by=f"analyst {i}", reason=f"why {i}", **extra)
        )
        assert len(rows(store)) == i + 1
    # the fourth through the CLI (the same service underneath)
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store.url)
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    assert main(["exceptions", "dismiss", ids[3], "--by", "o'neil; --", "--reason", "été \U0001f50c"]) == 0
    capsys.readouterr()

    log = rows(store)
    assert [r["action"] for r in log] == [
        "exception.accept",
        "exception.edit",
        "exception.estimate",
        "exception.dismiss",
    ]
    assert [r["object_id"] for r in log] == ids and {r["object_type"] for r in log} == {"vee_exception"}
    assert [r["actor"] for r in log] == ["analyst 0", "analyst 1", "analyst 2", "o'neil; --"]
    assert [r["reason"] for r in log] == ["why 0", "why 1", "why 2", "été \U0001f50c"]
    assert all(before <= r["acted_at"] <= pd.Timestamp.now(tz="UTC") for r in log)
    details = [json.loads(r["details"]) for r in log]
    assert details[1]["value"] == 0.5 and details[2]["method"] == "linear"
    assert [d["status"] for d in details] == [
        {"before": "open", "after": s} for s in ("accepted", "edited", "edited", "dismissed")
    ]
    assert [d["new_versions"] for d in details] == [1, 4, 2, 0]  # one per interval covered; none dismissed
    assert [(d["meter_id"], d["rule"]) for d in details][:2] == [("M1", "spike"), ("M1", "missing_interval")]
    # the row's time is the resolution's time
    resolved = store.read_frame("SELECT exception_id, resolved_at FROM vee_exceptions WHERE status <> 'open'")
    at = dict(zip(resolved["exception_id"], resolved["resolved_at"], strict=True))
    assert all(abs(at[r["object_id"]] - r["acted_at"]) < pd.Timedelta(milliseconds=1) for r in log)

    # a refused action writes nothing
    with pytest.raises(ValueError, match="not open"):
        resolve(store, config, Resolution(ids[0], "dismiss", by="mallory", reason="overwrite"))
    with pytest.raises(ValueError, match="required"):
        resolve(store, config, Resolution(ids[0], "dismiss", by="mallory", reason=""))
    assert len(rows(store)) == 4
    assert audit.verify(store) == (4, None)


def _case(store: Store) -> str:
    now = pd.Timestamp("2024-04-02T10:00Z")
    store.bulk_insert(
        "protection_cases",
        pd.DataFrame(
            [
                {
                    "case_id": "PC-SP1",
                    "service_point_id": "SP1",
                    "status": "open",
                    "score": 0.8,
                    "revenue_at_stake": 120.0,
                    "indicators": "reverse_flow",
                    "opened_at": now,
                    "updated_at": now,
                }
            ]
        ),
    )
    return "PC-SP1"


def test_a_case_disposition_writes_one_row(store: Store, monkeypatch, capsys) -> None:
    case = _case(store)
    mark_case(store, case, "confirmed", "Ana Ruiz", "seal broken on site")
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store.url)
    argv = ["protection", "mark", case, "--status", "closed", "--by", "Bo", "--reason", "meter replaced"]
    assert main(argv) == 0
    with pytest.raises(ValueError, match="--reason is required"):
        mark_case(store, case, "confirmed", "Bo", "  ")
    capsys.readouterr()
    log = rows(store)
    assert [(r["action"], r["object_id"], r["actor"], r["reason"]) for r in log] == [
        ("case.disposition", case, "Ana Ruiz", "seal broken on site"),
        ("case.disposition", case, "Bo", "meter replaced"),
    ]
    assert [json.loads(r["details"])["status"] for r in log] == [
        {"before": "open", "after": "confirmed"},
        {"before": "confirmed", "after": "closed"},
    ]
    history = store.read_frame("SELECT changed_at FROM protection_case_history ORDER BY changed_at")
    assert [r["acted_at"] for r in log] == history["changed_at"].tolist()


def test_alert_configuration_changes_write_one_row_each(store: Store, tmp_path) -> None:
    master_data(store)  # service points SP1, SP2
    rule = {"kind": "daily_usage_above", "threshold": 5.0}
    portal_alerts.put_rules(store, "SP1", [rule], "api", "customer:A1", reason="going on holiday")
    portal_alerts.put_rules(store, "SP1", [], "api", "ops", reason="customer asked by phone")
    for by, why in (("", "x"), ("ops", ""), ("ops", "   ")):
        with pytest.raises(BadRequest, match="required"):
            portal_alerts.put_rules(store, "SP1", [rule], "api", by, reason=why)
    csv = tmp_path / "alert_rules.csv"
    csv.write_text(
        "service_point_id,kind,threshold,hours\nSP1,continuous_flow,,4\nSP2,daily_usage_above,9,\nNOPE,vacant_usage,,\n"
    )
    out = portal_alerts.import_rules_csv(store, csv)
    assert out["service_points"] == 2 and len(out["errors"]) == 1

    log = rows(store)
    assert [(r["action"], r["object_id"], r["actor"]) for r in log] == [
        ("alert_config.put", "SP1", "customer:A1"),
        ("alert_config.delete", "SP1", "ops"),
        ("alert_config.sync", "SP1", "cis-sync"),
        ("alert_config.sync", "SP2", "cis-sync"),
    ]
    assert [r["reason"] for r in log][:2] == ["going on holiday", "customer asked by phone"]
    assert {r["reason"] for r in log[2:]} == {"CIS alert rules file alert_rules.csv"}
    d = [json.loads(r["details"]) for r in log]
    assert d[0]["before"] == [] and d[0]["after"][0]["kind"] == "daily_usage_above"
    assert d[0]["after"][0]["threshold"] == 5.0
    assert d[1]["before"] == d[0]["after"] and d[1]["after"] == []
    assert d[2]["after"][0]["hours"] == 4 and d[2]["source"] == "cis"
    assert store.count("alert_rules") == 2  # SP1 continuous_flow, SP2 daily_usage_above


def test_the_api_put_records_the_token_subject_and_the_reason(app) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    store = app.state.runtime.store
    client = TestClient(app)
    body = {"rules": [{"kind": "daily_usage_above", "threshold": 5}], "reason": "holiday"}
    assert (
        client.put("/v1/service-points/SP-1/alerts", json=body, headers=token("customer", "A1")).status_code
        == 200
    )
    del body["reason"]
    assert client.put("/v1/service-points/SP-1/alerts", json=body, headers=token("ops")).status_code == 200
    empty = client.put("/v1/service-points/SP-1/alerts", json=body | {"reason": ""}, headers=token("ops"))
    assert empty.status_code == 422  # an empty reason is refused, not recorded
    log = rows(store)
    assert [(r["action"], r["actor"], r["reason"]) for r in log] == [
        ("alert_config.put", "customer:A1", "holiday"),
        ("alert_config.put", "ops", "alert settings saved through the portal API (ops token)"),
    ]


def test_a_forced_close_needs_who_and_why_before_anything(store: Store) -> None:
    for by, why in (("", "storm"), ("jdoe", ""), ("jdoe", "  ")):
        with pytest.raises(audit.AuditError, match="billing.force_close: (who|why)"):
            version_determinants(
                store, "C01", "2027-07-02", closed_by=by, threshold=0.98, estimated_share_limit=0.1,
                force=True, reason=why,
            )  # fmt: skip
    assert store.count("billing_closes") == 0 and store.count("audit_log") == 0


def test_postgresql_refuses_update_delete_and_truncate(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        _case(store)
        mark_case(store, "PC-SP1", "confirmed", "Ana", "seal broken")
        before = rows(store)
        for sql in (
            "UPDATE audit_log SET actor = 'mallory'",
            "UPDATE audit_log SET reason = 'nothing happened', hash = prev_hash",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"):
                store.execute(sql)
        assert rows(store) == before and audit.verify(store) == (1, None)
    finally:
        store.dispose()


def test_a_changed_or_removed_row_on_duckdb_fails_audit_verify(duckdb_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    store = Store(duckdb_url)
    _case(store)
    for status in ("confirmed", "false_positive", "closed"):
        mark_case(store, "PC-SP1", status, "Ana", f"now {status}")
    store.dispose()
    assert main(["audit", "verify"]) == 0
    assert "3 rows, the hash chain holds" in capsys.readouterr().out

    store = Store(duckdb_url)
    store.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE id = 2")  # no trigger on DuckDB
    store.dispose()
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "audit_log row 2: its content does not match its hash" in err, err

    # a forger who recomputes the row's hash breaks the link to the next row instead
    store = Store(duckdb_url)
    row = rows(store)[1]
    from smartmdm_pipelines.domain.audit import row_hash

    store.execute("UPDATE audit_log SET hash = :h WHERE id = 2", {"h": row_hash(row)})
    store.dispose()
    assert main(["audit", "verify"]) == 1
    assert "audit_log row 3: its prev_hash is not the hash of the row before it" in capsys.readouterr().err

    store = Store(duckdb_url)
    store.execute("DELETE FROM audit_log WHERE id >= 2")
    store.execute("DELETE FROM audit_log WHERE id = 1")
    mark_case(store, "PC-SP1", "confirmed", "Ana", "again")  # the chain starts again at 1 …
    store.execute("UPDATE audit_log SET id = 5")  # … renumbered to hide it
    store.dispose()
    assert main(["audit", "verify"]) == 1
    assert "audit_log row 5: id 5 where id 1 was expected" in capsys.readouterr().err


def test_audit_list_filters_and_prints_json(duckdb_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    store = Store(duckdb_url)
    _case(store)
    mark_case(store, "PC-SP1", "confirmed", "Ana", "seal broken")
    master_data(store)
    portal_alerts.put_rules(store, "SP1", [], "api", "ops", reason="reset")
    store.dispose()
    assert main(["audit", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in listed] == ["case.disposition", "alert_config.delete"]
    assert listed[0]["details"]["status"] == {"before": "open", "after": "confirmed"}
    assert listed[0]["acted_at"].endswith("+00:00")
    assert main(["audit", "list", "--action", "alert_config.", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [2]
    assert main(["audit", "list", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.strip() == "no audit rows match"
    assert main(["audit", "list", "--since", "yesterday-ish"]) == 2
    assert "--since" in capsys.readouterr().err


# --- two recorders at once ---------------------------------------------------------------------


def _at_once(*jobs) -> list[str]:
    errors: list[str] = []

    def run(job) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 (collected and asserted on)
            errors.append(str(exc))

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_recorders_at_once_never_fork_the_chain(store: Store) -> None:
    """Both transactions are open and past their reads before either records (a barrier), so
    both would take the same last row: PostgreSQL makes the second wait for the first's commit
    (both recorded, ids 1 and 2); DuckDB's snapshot makes the second commit fail on the primary
    key, rolling its whole action back — the chain never forks."""
    barrier = threading.Barrier(2, timeout=30)

    def record(i: int):
        def job() -> None:
            with store.begin() as conn:
                conn.execute(sa.text("SELECT count(*) FROM audit_log"))  # the transaction has started
                barrier.wait()
                audit.record(
                    store,
                    conn,
                    actor=f"t{i}",
                    action="test.race",
                    object_type="t",
                    object_id=str(i),
                    reason="r",
                )

        return job

    errors = _at_once(record(1), record(2))
    if store.backend == "postgresql":
        assert errors == [] and audit.verify(store) == (2, None)
    else:
        assert len(errors) == 1 and "constraint" in errors[0].lower(), errors
        assert audit.verify(store) == (1, None)


def test_two_alert_changes_at_once_both_land_on_duckdb_too(store: Store, monkeypatch) -> None:
    """The API's threads may save two service points' rules at once: on DuckDB the transaction
    that loses the race is run again (services/audit.transaction), on PostgreSQL it waits."""
    master_data(store)
    barrier, first_call = threading.Barrier(2, timeout=30), threading.local()
    real = audit.record

    def record_together(*args, **kwargs):
        if not getattr(first_call, "done", False):  # each thread's first attempt only
            first_call.done = True
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "record", record_together)
    rule = [{"kind": "daily_usage_above", "threshold": 5.0}]
    errors = _at_once(
        lambda: portal_alerts.put_rules(store, "SP1", rule, "api", "a", reason="r1"),
        lambda: portal_alerts.put_rules(store, "SP2", rule, "api", "b", reason="r2"),
    )
    assert errors == []
    assert sorted(r["object_id"] for r in rows(store)) == ["SP1", "SP2"] and audit.verify(store) == (2, None)
    assert store.count("alert_rules") == 2


# --- no channel can alter a row ---------------------------------------------------------------


def cli_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every leaf command of the CLI (``("audit", "list")``, ``("exceptions", "accept")`` …)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix}
    return {
        leaf for sub in subs for name, p in sub.choices.items() for leaf in cli_commands(p, (*prefix, name))
    }


def test_no_code_path_updates_or_deletes_an_audit_row() -> None:
    """Every CLI command, API route, Dagster op and sync writes through the services: the only code
    naming the table is the service's INSERT and SELECTs (plus its schema and migration)."""
    mentions: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"audit_log", text):
            line = text[text.rfind("\n", 0, m.start()) + 1 : text.find("\n", m.end())]
            mentions.setdefault(str(path.relative_to(PACKAGE)), []).append(line.strip())
    assert set(mentions) <= {
        "services/audit.py",
        "store/schema_outputs.py",
        "store/migrations/versions/0008_audit_log.py",
        "cli_audit.py",
    }, sorted(mentions)
    writes = [
        line
        for line in mentions["services/audit.py"]
        if re.search(r"\b(UPDATE|DELETE|TRUNCATE|DROP)\b", line)
    ]
    assert writes == [], writes
    assert not any(
        re.search(r"\b(UPDATE|DELETE|TRUNCATE)\b", line) for line in mentions.get("cli_audit.py", [])
    )
    text = (PACKAGE / "services/audit.py").read_text()
    assert not re.search(r"\.(delete|replace_partition)\(", text)

    commands = cli_commands(build_parser())
    assert {c for c in commands if c[0] == "audit"} == {("audit", "list"), ("audit", "verify")}
    assert len(commands) > 30  # the walk found the whole CLI, not one level of it


def test_no_api_route_changes_existing_audit_rows(app) -> None:  # noqa: F811
    """Every writing route of the app, called by a caller allowed to use it: the rows already in
    the log stay as they were (new ones may follow), and the chain holds."""
    from fastapi.testclient import TestClient

    store = app.state.runtime.store
    portal_alerts.put_rules(store, "SP-1", [], "api", "ops", reason="before the calls")
    before = rows(store)
    client = TestClient(app)
    writers = {(m, p) for m, p in app_routes(app) if m not in ("GET", "HEAD")}
    assert writers == {k for k in ROUTES if k[0] != "GET"} and writers, writers
    for method, path in sorted(writers):
        for call in ROUTES[(method, path)]:
            caller, status = next((c, s) for c, s in call.expect.items() if s < 300)
            r = client.request(
                method,
                call.url.format(a="A1", sp="SP-1"),
                headers=CALLERS[caller]() | call.headers,
                json=call.json,
                content=call.content,
            )
            assert r.status_code == status, (method, path, r.text)
    after = rows(store)
    assert after[: len(before)] == before and audit.verify(store)[1] is None
