"""The MQTT subscriber: ``smartmdm/headend/{source}/reads`` at QoS 1 with a persistent session
(the client id is stable per store, so the broker keeps the session's messages while the
service is down; ``$SMARTMDM_MQTT_TOPIC_PREFIX`` replaces ``smartmdm`` to share a broker).

A message is acknowledged (PUBACK) only after its delivery is committed to the store, so a
crash before that makes the broker redeliver it; a redelivered message has the same bytes, so
ingestion sees a duplicate and nothing is loaded twice. Messages are queued by the network
thread and ingested by one worker thread, which keeps the connection's keep-alive answered
while a large delivery loads; the worker takes every message waiting (up to ``MAX_BATCH``) and
stores them together (``handle_many``: one transaction), then acknowledges each one stored.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

DEFAULT_PREFIX = "smartmdm"
MAX_BATCH = 50  # messages stored together (one transaction) when that many are waiting
log = logging.getLogger("smartmdm.mqtt")


def topic_filter(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/headend/+/reads"


def source_of(topic: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """The head-end source of a ``{prefix}/headend/{source}/reads`` topic."""
    head = f"{prefix}/headend/"
    if not topic.startswith(head) or not topic.endswith("/reads"):
        return None
    source = topic[len(head) : -len("/reads")]
    return source if source and "/" not in source else None


class Subscriber:
    def __init__(
        self,
        host: str,
        port: int,
        handle: Callable[[str, bytes], None],
        *,
        client_id: str = "smartmdm-serve",
        prefix: str = DEFAULT_PREFIX,
        stop: threading.Event | None = None,
        handle_many: Callable[[list[tuple[str, bytes]]], list] | None = None,
    ) -> None:
        """``handle(source, body)`` stores one delivery (raising if it could not); ``handle_many``
        stores several ((source, body) each) and returns the outcome of each, an exception for
        one it could not store."""
        self.host, self.port, self.handle = host, port, handle
        self.handle_many = handle_many
        self.prefix, self.topic = prefix, topic_filter(prefix)
        self.stop_event = stop or threading.Event()
        self.inbox: queue.Queue = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.connected = threading.Event()
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._worker.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.client.disconnect()
        self.client.loop_stop()
        self._worker.join(timeout=30)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        client.subscribe(self.topic, qos=1)
        self.connected.set()
        log.info("MQTT: subscribed to %s on %s:%s", self.topic, self.host, self.port)

    def _on_message(self, client, userdata, message) -> None:
        self.inbox.put(message)

    def _work(self) -> None:
        while not self.stop_event.is_set():
            try:
                messages = [self.inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(messages) < MAX_BATCH:
                try:
                    messages.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self._store(messages)

    def _store(self, messages: list) -> None:
        """Store the messages (together when there are several), then acknowledge each one stored
        (or ignored); one that could not be stored is not acknowledged."""
        sources = [source_of(m.topic, self.prefix) for m in messages]
        valid = [i for i, s in enumerate(sources) if s is not None]
        outcomes: dict[int, object] = {}
        if self.handle_many is not None and len(valid) > 1:
            try:
                results = list(self.handle_many([(sources[i], messages[i].payload) for i in valid]))
            except Exception as exc:  # none stored
                results = [exc] * len(valid)
            outcomes = dict(zip(valid, results, strict=True))
        else:
            for i in valid:
                try:
                    outcomes[i] = self.handle(sources[i], messages[i].payload)
                except Exception as exc:
                    outcomes[i] = exc
        for i, message in enumerate(messages):
            if sources[i] is None:
                log.warning(
                    "MQTT: ignored a message on %s (not smartmdm/headend/{source}/reads)", message.topic
                )
            elif isinstance(outcomes[i], BaseException):
                # not acknowledged: the broker redelivers it after a reconnect
                log.error(
                    "MQTT: a delivery on %s could not be stored; it stays unacknowledged",
                    message.topic,
                    exc_info=outcomes[i],
                )
                continue
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
