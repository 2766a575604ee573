"""``smartmdm serve`` as a real process on both backends: HTTP push with per-source tokens,
MQTT (the broker at 127.0.0.1:1883), validated records pushed to a CIS stub, and a SIGKILL
mid-batch that loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pandas as pd
import pytest

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.cis_stub import CisStub
from smartmdm_pipelines_tests.realtime.helpers import Service, body, master_data, utility_yaml, wait_until

METERS = [f"M{i}" for i in range(1, 7)]
BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def cis():
    with CisStub(token="cis-token") as stub:
        yield stub


@pytest.fixture
def env(store_url: str, tmp_path: Path, cis: CisStub) -> dict[str, str]:
    store = Store(store_url)
    master_data(store, METERS)
    store.dispose()
    return {
        "SMARTMDM_DATABASE_URL": store_url,
        "SMARTMDM_DATA_DIR": str(tmp_path / "data"),
        "SMARTMDM_HEADEND_TOKENS": "he1=tok-one, he2=tok-two",
        "SMARTMDM_CIS_PUSH_URL": cis.url,
        "SMARTMDM_CIS_PUSH_TOKEN": "cis-token",
        "SMARTMDM_MQTT_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:10]}",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }


@pytest.fixture
def service(env, tmp_path: Path):
    (tmp_path / "dagster_home").mkdir()
    svc = Service(env, tmp_path / "serve.log")
    yield svc
    svc.stop()


def publisher() -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(*BROKER)
    client.loop_start()
    return client


def outbox_frame(url: str) -> pd.DataFrame:
    store = Store(url)
    try:
        return store.read_frame("SELECT * FROM outbox ORDER BY seq")
    finally:
        store.dispose()


def test_http_push_tokens_bodies_and_validated_records_reach_the_cis(service: Service, env, cis) -> None:
    service.start()
    ok = service.post("he1", body(["M1", "M2"], range(0, 8)), "tok-one")
    assert ok.status_code == 202, ok.text
    answer = ok.json()
    assert answer["interval_reads"] == 16 and answer["rejected_rows"] == 0 and answer["delivery_id"] >= 1
    assert service.post("he1", body(["M1"], range(0, 8)), "tok-two").status_code == 403
    assert service.post("he1", body(["M1"], range(0, 8)), None).status_code == 401
    assert service.post("he1", body(["M1"], range(0, 8)), "nope").status_code == 401
    dup = service.post("he1", body(["M1", "M2"], range(0, 8)), "tok-one")
    assert dup.status_code == 202 and dup.json()["status"] == "duplicate"
    assert dup.json()["delivery_id"] == answer["delivery_id"]
    bad = service.post("he1", b"this is not a meter file\n", "tok-one")
    assert bad.status_code == 422 and "unrecognised format" in bad.json()["errors"][0]["reason"]
    partly = service.post(
        "he2", body(["M3"], range(0, 4)) + b"M3,kwh_delivered,not-a-time,900,1,kWh,\n", "tok-two"
    )
    assert (
        partly.status_code == 202
        and partly.json()["rejected_rows"] == 1
        and partly.json()["interval_reads"] == 4
    )

    wait_until(lambda: len(cis.message_ids()) >= 20, what="20 records at the CIS stub")
    records = cis.records()
    assert sorted((r["meter_id"], r["interval_end"]) for r in records) == sorted(
        (m, (pd.Timestamp("2024-03-12T05:00Z") + pd.Timedelta(minutes=15 * (s + 1))).isoformat())
        for m, n in (("M1", 8), ("M2", 8), ("M3", 4))
        for s in range(n)
    )
    r = records[0]
    assert {"message_id", "meter_id", "channel", "interval_end", "value", "unit", "status", "version"} <= set(
        r
    )
    assert r["status"] == "valid" and r["service_point_id"] == f"SP-{r['meter_id']}"
    assert cis.unauthorised == 0
    health = json.loads(
        __import__("requests").get(f"{service.url}/v1/health", timeout=5).text
    )  # the service's own view of the outbox
    assert health["outbox"]["delivered"] == 20 and health["outbox"]["pending"] == 0
    assert service.stop() in (0, -15)
    status = subprocess.run(
        [sys.executable, "-m", "smartmdm_pipelines.cli", "outbox", "status", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["delivered"] == 20


def test_mqtt_reads_are_acknowledged_after_commit_and_survive_a_kill(service: Service, env, cis) -> None:
    service.start()
    prefix = env["SMARTMDM_MQTT_TOPIC_PREFIX"]
    pub = publisher()
    try:
        pub.publish(f"{prefix}/headend/he1/reads", body(["M1"], range(0, 4)), qos=1).wait_for_publish(10)
        wait_until(lambda: len(cis.message_ids()) >= 4, what="the MQTT reads at the CIS stub")
        service.kill()  # the broker keeps the persistent session's messages meanwhile
        pub.publish(f"{prefix}/headend/he1/reads", body(["M2"], range(0, 4)), qos=1).wait_for_publish(10)
        pub.publish(f"{prefix}/headend/he1/reads", body(["M1"], range(0, 4)), qos=1).wait_for_publish(10)
        service.start()
        wait_until(lambda: len(cis.message_ids()) >= 8, what="reads published while the service was down")
        time.sleep(1.0)
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert service.stop() in (0, -15)
    files = outbox_frame(env["SMARTMDM_DATABASE_URL"])
    # at least once, by message id: a batch the CIS took just before the kill may come again after
    # the restart, under the same ids (never a new id for the same interval version)
    assert len(files) == 8 and set(cis.message_ids()) == set(files["message_id"])
    store = Store(env["SMARTMDM_DATABASE_URL"])
    reg = store.read_frame("SELECT channel, status FROM headend_files ORDER BY file_id")
    store.dispose()
    assert reg["channel"].tolist() == ["mqtt", "mqtt"]  # the re-sent M1 bytes were a duplicate


def test_sigkill_mid_batch_then_restart_loses_nothing(service: Service, env, cis) -> None:
    cis.accept_delay = 0.3  # every batch takes a while: the kill lands in the middle of one
    env_small_batches = service.env | {
        "SMARTMDM_CONFIG": str(
            utility_yaml(Path(env["SMARTMDM_DATA_DIR"]), {"push_batch_size": 10, "push_max_batch_size": 10})
        )
    }
    service.env = env_small_batches
    service.start()
    for i, meter in enumerate(METERS):
        r = service.post(
            "he1" if i % 2 == 0 else "he2",
            body([meter], range(0, 48)),
            "tok-one" if i % 2 == 0 else "tok-two",
        )
        assert r.status_code == 202, r.text
    wait_until(lambda: len(cis.batches) >= 3, what="a few batches delivered")
    service.kill()
    delivered_before = len(cis.message_ids())
    service.start()
    wait_until(lambda: len(set(cis.message_ids())) >= len(METERS) * 48, timeout=120, what="every record")
    time.sleep(1.0)
    assert service.stop() in (0, -15)
    box = outbox_frame(env["SMARTMDM_DATABASE_URL"])
    assert len(box) == len(METERS) * 48 and set(box["state"]) == {"delivered"}
    got = pd.DataFrame(cis.records())
    assert set(got["message_id"]) == set(box["message_id"])  # nothing lost
    # nothing delivered twice under a different id: one id per interval version
    per_version = got.groupby(["meter_id", "channel", "interval_end", "version"])["message_id"].nunique()
    assert (per_version == 1).all()
    assert delivered_before < len(box)  # the kill happened before the end
