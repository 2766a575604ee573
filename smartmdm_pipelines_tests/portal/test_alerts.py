"""Customer alerts on both backends: configuration through the API, one notification per episode,
quiet hours, cool-down, dedup across restarts, delivery to a real webhook on loopback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from werkzeug import Response

from smartmdm_pipelines.services import portal_alerts
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.portal.helpers import TZ, client, seed, token


def at(local: str) -> pd.Timestamp:
    return pd.Timestamp(local).tz_localize(TZ).tz_convert("UTC")


def messages(store: Store) -> pd.DataFrame:
    return store.read_frame(
        "SELECT idempotency_key, kind, payload, status, attempts FROM outbound_messages WHERE channel = 'alert' "
        "ORDER BY created_at, idempotency_key"
    )


@pytest.fixture
def api(store, monkeypatch):
    m1 = seed(store)
    return client(store, monkeypatch), m1, store


def put(c, sp: str, *rules: dict, who=None):
    r = c.put(
        f"/v1/service-points/{sp}/alerts", json={"rules": list(rules)}, headers=who or token("customer", "A1")
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_configuration_validation_and_listing(api):
    c, _, _ = api
    doc = put(c, "SP-1", {"kind": "continuous_flow", "hours": 6, "quiet_start": 22, "quiet_end": 7})
    assert doc["rules"][0]["rule_id"] == "SP-1:continuous_flow" and doc["rules"][0]["cooldown_hours"] == 24
    h = token("customer", "A1")
    bad = [
        {"rules": [{"kind": "daily_usage_above"}]},  # no threshold
        {"rules": [{"kind": "continuous_flow"}]},  # no hours
        {"rules": [{"kind": "nonsense", "threshold": 1}]},
        {"rules": [{"kind": "daily_usage_above", "threshold": -1}]},
        {
            "rules": [
                {"kind": "daily_usage_above", "threshold": 1},
                {"kind": "daily_usage_above", "threshold": 2},
            ]
        },
        {"rules": [{"kind": "daily_usage_above", "threshold": 1, "quiet_start": 25}]},
    ]
    for body in bad:
        r = c.put("/v1/service-points/SP-1/alerts", json=body, headers=h)
        assert r.status_code in (400, 422), (body, r.text)
    listed = c.get("/v1/accounts/A1/alerts", headers=h).json()
    assert [r["kind"] for r in listed["rules"]] == ["continuous_flow"] and listed["alerts"] == []
    put(c, "SP-1")  # an empty set removes the rules
    assert c.get("/v1/accounts/A1/alerts", headers=h).json()["rules"] == []


def test_continuous_flow_one_notification_per_episode_and_restart(api, store_url):
    c, m1, store = api
    put(c, "SP-1", {"kind": "continuous_flow", "hours": 6})
    first = portal_alerts.evaluate(store, at("2024-11-10 12:00"))
    assert first["opened"] == 1 and first["notified"] == 1
    for hour in ("13:00", "14:00", "18:00"):
        again = portal_alerts.evaluate(store, at(f"2024-11-10 {hour}"))
        assert again["opened"] == 0 and again["notified"] == 0
    # a restart: a new store (new process) evaluating the same reads queues nothing new
    fresh = Store(store_url)
    try:
        assert portal_alerts.evaluate(fresh, at("2024-11-10 19:00"))["opened"] == 0
    finally:
        fresh.dispose()
    assert len(messages(store)) == 1
    payload = json.loads(messages(store)["payload"].iloc[0])
    assert payload["kind"] == "continuous_flow" and payload["account_id"] == "A1" and payload["value"] >= 6
    # the flow stops for an hour at the end of the day: the episode ends
    local = m1["interval_end"].dt.tz_convert(TZ)
    last_hour = m1[(local > "2024-11-10T23:00-06:00") & (local <= "2024-11-11T00:00-06:00")]
    store.bulk_insert("intervals", last_hour.assign(version=2, value=0.0, created_by="t"))
    assert portal_alerts.evaluate(store, at("2024-11-10 20:00"))["ended"] == 1
    alerts = c.get("/v1/accounts/A1/alerts", headers=token("customer", "A1")).json()["alerts"]
    assert len(alerts) == 1 and alerts[0]["status"] == "ended" and alerts[0]["notified_at"]


def test_quiet_hours_then_cool_down(api):
    c, _, store = api
    put(
        c,
        "SP-1",
        {
            "kind": "daily_usage_above",
            "threshold": 1.0,
            "quiet_start": 22,
            "quiet_end": 7,
            "cooldown_hours": 48,
        },
    )
    quiet = portal_alerts.evaluate(store, at("2024-11-08 23:00"))
    assert quiet["opened"] == 2 and quiet["notified"] == 0 and quiet["deferred"] == 2  # Nov 7 and Nov 8
    morning = portal_alerts.evaluate(store, at("2024-11-09 07:30"))
    assert morning["notified"] == 1 and len(messages(store)) == 1  # one message for what was pending
    # Nov 10 is a new episode but within the 48-hour cool-down: deferred, then sent after it
    assert portal_alerts.evaluate(store, at("2024-11-10 12:00"))["deferred"] >= 1
    assert len(messages(store)) == 1
    assert portal_alerts.evaluate(store, at("2024-11-11 08:00"))["notified"] == 1
    assert len(messages(store)) == 2


def test_projected_bill_vacant_premise_and_last_year(api):
    c, m1, store = api
    ops = token("ops")
    put(
        c,
        "SP-1",
        {"kind": "projected_bill_above", "threshold": 1.0},
        {"kind": "period_usage_above", "threshold": 1e6},
    )
    out = portal_alerts.evaluate(store, at("2024-11-10 12:00"))
    assert out["opened"] == 1  # the bill, not the (huge) usage threshold
    row = store.read_frame("SELECT kind, episode_key, value FROM usage_alerts")
    assert (
        row["kind"].tolist() == ["projected_bill_above"] and row["episode_key"].iloc[0] == "period-2024-11-01"
    )
    assert row["value"].iloc[0] > 1.0
    # SP-2 has no account after A2 moved out: usage there is a vacant-premise alert
    store.execute("UPDATE accounts SET move_out = '2024-11-01' WHERE account_id = 'A2'")
    put(c, "SP-2", {"kind": "vacant_usage"}, {"kind": "usage_vs_last_year", "percent": 10}, who=ops)
    out = portal_alerts.evaluate(store, at("2024-11-10 12:00"), service_points=["SP-2"])
    kinds = store.read_frame("SELECT kind FROM usage_alerts WHERE service_point_id = 'SP-2'")["kind"].tolist()
    assert kinds == ["vacant_usage", "vacant_usage"]  # Nov 9 and Nov 10; no last year's data: no comparison
    # last year's same week at half the usage: 100% above
    ly = m1.assign(
        meter_id="M1", interval_end=m1["interval_end"] - pd.Timedelta(days=366), value=m1["value"] / 2
    )
    ly = ly[(ly["interval_end"] > at("2023-11-01 00:00"))]
    store.bulk_insert(
        "intervals",
        ly.assign(read_day=ly["interval_end"].dt.tz_convert(TZ).dt.normalize().dt.tz_localize(None)),
    )
    put(c, "SP-1", {"kind": "usage_vs_last_year", "percent": 50})
    portal_alerts.evaluate(store, at("2024-11-10 12:00"), service_points=["SP-1"])
    vs = store.read_frame("SELECT value, episode_key FROM usage_alerts WHERE kind = 'usage_vs_last_year'")
    assert len(vs) == 1 and vs["value"].iloc[0] == pytest.approx(100.0, abs=1.0)


def test_webhook_delivery_at_least_once_with_idempotency_key(api, httpserver):
    c, _, store = api
    put(c, "SP-1", {"kind": "daily_usage_above", "threshold": 1.0})
    portal_alerts.evaluate(store, at("2024-11-10 12:00"))
    seen: list[tuple[str, dict]] = []
    answers = iter([503, 200])

    def receive(request):
        seen.append((request.headers["Idempotency-Key"], request.get_json()))
        return Response("", status=next(answers))

    httpserver.expect_request("/alerts", method="POST").respond_with_handler(receive)
    url = httpserver.url_for("/alerts")
    assert portal_alerts.send_pending(store, url) == {"sent": 0, "failed": 0, "retry": 1}
    assert portal_alerts.send_pending(store, url) == {"sent": 1, "failed": 0, "retry": 0}
    assert portal_alerts.send_pending(store, url) == {"sent": 0, "failed": 0, "retry": 0}
    assert len(seen) == 2 and seen[0][0] == seen[1][0] == messages(store)["idempotency_key"].iloc[0]
    assert seen[1][1]["kind"] == "daily_usage_above" and seen[1][1]["service_point_id"] == "SP-1"
    assert messages(store)["status"].tolist() == ["sent"]


def test_cis_import_and_cli(api, tmp_path, monkeypatch, capsys, store_url):
    c, _, store = api
    csv = tmp_path / "alert_rules.csv"
    csv.write_text(
        "service_point_id,kind,threshold,hours,percent,quiet_start,quiet_end,cooldown_hours,enabled\n"
        "SP-1,continuous_flow,,6,,22,7,12,true\n"
        "SP-1,daily_usage_above,5,,,,,,\n"
        "SP-9,daily_usage_above,5,,,,,,\n"
        "SP-2,continuous_flow,,,,,,,\n"
        "SP-2,daily_usage_above,abc,,,,,,\n"
    )
    out = portal_alerts.import_rules_csv(store, csv)
    assert out["rules"] == 2 and out["service_points"] == 1
    assert [e.split(": ", 1)[0] for e in out["errors"]] == [f"{csv}:4", f"{csv}:5", f"{csv}:6"]
    assert "unknown service point 'SP-9'" in out["errors"][0] and "needs hours" in out["errors"][1]
    rules = c.get("/v1/accounts/A1/alerts", headers=token("customer", "A1")).json()["rules"]
    assert {r["kind"]: r["source"] for r in rules} == {"continuous_flow": "cis", "daily_usage_above": "cis"}
    assert next(r for r in rules if r["kind"] == "continuous_flow")["cooldown_hours"] == 12
    if store_url.startswith("duckdb"):
        return  # the CLI opens the store itself: one writer process for DuckDB
    from smartmdm_pipelines.cli import main

    monkeypatch.setenv("SMARTMDM_DATABASE_URL", store_url)
    assert main(["alerts", "evaluate", "--at", "2024-11-10T12:00:00-06:00"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts["rules"] == 2 and counts["opened"] == 3  # a flow run, Nov 9 and Nov 10 over 5 kWh


def test_ops_replays_failed_notifications(api):
    c, _, store = api
    put(c, "SP-1", {"kind": "daily_usage_above", "threshold": 1.0})
    portal_alerts.evaluate(store, at("2024-11-10 12:00"))
    for _ in range(portal_alerts.MAX_ATTEMPTS):
        portal_alerts.send_pending(store, "http://127.0.0.1:9/refused", session=None, timeout=0.5)
    assert messages(store)["status"].tolist() == ["failed"]
    assert c.post("/v1/alerts/replay", json={}, headers=token("customer", "A1")).status_code == 403
    assert c.post("/v1/alerts/replay", json={}, headers=token("portal-service")).status_code == 403
    r = c.post("/v1/alerts/replay", json={}, headers=token("ops"))
    assert r.status_code == 200 and r.json() == {"queued": 1}
    assert messages(store)[["status", "attempts"]].values.tolist() == [["pending", 0]]
