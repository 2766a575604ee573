"""Issue 15, dependencies failing: the MQTT broker restarts while head-ends publish reads at QoS 1.

A private Mosquitto (its own port, persistence in the test's folder) is restarted twice: once
between publishes (messages published while it is down wait in the publisher, messages for the
subscriber wait in its persistent session), and once *inside* the subscriber's handling of a
message — after the delivery is committed, before its PUBACK — so the broker must redeliver a
message that is already stored. Every read must be committed exactly once.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.server.mqtt import Subscriber
from smartmdm_pipelines.services.realtime import ingest_body
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, free_port, master_data

pytestmark = pytest.mark.reliability

MOSQUITTO = Path(os.environ.get("SMARTMDM_TEST_MOSQUITTO", "/usr/sbin/mosquitto"))
MESSAGES = 24
METERS = [f"M{i}" for i in range(MESSAGES)]


class Broker:
    """A Mosquitto of the test's own, with persistence, restartable on the same port."""

    def __init__(self, folder: Path) -> None:
        if not MOSQUITTO.exists():
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{MOSQUITTO} is needed in CI")
            pytest.skip(f"{MOSQUITTO} not found (SMARTMDM_TEST_MOSQUITTO)")
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "broker.log", "a"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            try:
                probe.connect("127.0.0.1", self.port)
                probe.disconnect()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {(self.folder / 'broker.log').read_text()[-500:]}")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()  # SIGTERM: the broker saves its sessions to disk
        self.process.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path / "broker")
    yield b
    if b.process and b.process.poll() is None:
        b.process.kill()
        b.process.wait()


def _wait(predicate, seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_read_is_committed_once_across_broker_restarts(store: Store, broker: Broker, tmp_path) -> None:
    config = load_config(data_dir=tmp_path / "data")
    master_data(store, METERS)
    handled: list[str] = []
    lock = threading.Lock()

    def handle(source: str, payload: bytes) -> None:
        summary = ingest_body(store, config, source, payload, "mqtt")
        with lock:
            handled.append(summary.status)
            first_commit = len(handled) == 6
        if first_commit:  # committed, not yet acknowledged: the broker goes away now
            broker.restart()

    subscriber = Subscriber("127.0.0.1", broker.port, handle, client_id="smartmdm-serve-restart-test")
    subscriber.start()
    head_end = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="head-end-1", clean_session=False)
    head_end.reconnect_delay_set(min_delay=1, max_delay=2)
    acknowledged: set[int] = set()  # PUBACKs (a message published while the broker is down is queued)
    head_end.on_publish = lambda client, userdata, mid, reason_code, properties: acknowledged.add(mid)
    head_end.connect("127.0.0.1", broker.port)
    head_end.loop_start()
    try:
        _wait(subscriber.connected.is_set, what="the subscriber to connect")
        infos = []
        for i, meter in enumerate(METERS):
            if i == MESSAGES // 2:
                _wait(lambda: broker.restarts == 1, what="the restart inside the handler")
                broker.stop()  # down while the head-end keeps publishing: it queues at QoS 1
            if i == MESSAGES // 2 + 4:
                broker.start()
            infos.append(head_end.publish("smartmdm/headend/he1/reads", body([meter], range(0, 8)), qos=1))
        _wait(lambda: {info.mid for info in infos} <= acknowledged, what="every PUBACK from the broker")
        _wait(lambda: store.count("headend_files") >= MESSAGES, what="every message to be committed")
        _wait(lambda: subscriber.inbox.empty(), what="the subscriber's queue to drain")
        time.sleep(2)  # any redelivery in flight lands now; it must be a duplicate
    finally:
        head_end.loop_stop()
        head_end.disconnect()
        subscriber.stop()

    files = store.read_frame("SELECT sha256, channel FROM headend_files")
    assert len(files) == MESSAGES and files["sha256"].is_unique and set(files["channel"]) == {"mqtt"}
    reads = store.read_frame("SELECT meter_id, count(*) AS n FROM raw_reads GROUP BY meter_id")
    assert sorted(reads["meter_id"]) == sorted(METERS) and set(reads["n"]) == {8}  # each read once
    assert handled.count("loaded") == MESSAGES
    assert "duplicate" in handled  # the message committed before the restart came back, unacknowledged
