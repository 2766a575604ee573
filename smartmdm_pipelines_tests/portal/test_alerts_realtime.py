"""The real-time path evaluates customer alerts on the reads it has just validated: a delivery
pushed to the service, VEE on receipt, and the alert is there without any batch run."""

from __future__ import annotations

import pandas as pd

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.services import portal_alerts
from smartmdm_pipelines_tests.realtime.helpers import body, master_data


def test_alert_raised_on_receipt(store, tmp_path, monkeypatch):
    monkeypatch.delenv("SMARTMDM_CIS_PUSH_URL", raising=False)
    monkeypatch.delenv("SMARTMDM_PORTAL_PUSH_URL", raising=False)
    master_data(store, ["M1"])
    portal_alerts.put_rules(
        store, "SP-M1", [{"kind": "daily_usage_above", "threshold": 5.0}], "api", "test", reason="a test rule"
    )
    monkeypatch.setattr(portal_alerts, "clock", lambda: pd.Timestamp("2024-03-12T20:00:00-05:00"))
    config = load_config(data_dir=tmp_path / "data")
    settings = ServerSettings(config=config, store_url=store.url, workers=False, mqtt_host=None)
    runtime = Runtime(settings, store)
    runtime.ingest("he1", body(["M1"], range(0, 8)), "http")  # 2 hours: about 3 kWh, under 5
    runtime.validate_now()
    assert store.count("usage_alerts") == 0
    runtime.ingest("he1", body(["M1"], range(8, 40)), "http")
    runtime.validate_now()
    alerts = store.read_frame("SELECT account_id, kind, episode_key, value, notified_at FROM usage_alerts")
    assert alerts[["account_id", "kind", "episode_key"]].values.tolist() == [
        ["A-M1", "daily_usage_above", "2024-03-12"]
    ]
    assert alerts["value"].iloc[0] > 5.0 and alerts["notified_at"].notna().all()
    queued = store.read_frame("SELECT idempotency_key FROM outbound_messages WHERE channel = 'alert'")
    assert len(queued) == 1
