"""The service's background work: VEE of pushed deliveries, one dispatcher per push destination,
the MQTT subscriber and the runless asset events Dagster shows.

With DuckDB the service is the store's single writer process (DuckDB allows one); inside the
process deliveries are written one transaction at a time (a lock; others are parsed meanwhile,
and the deliveries waiting when a write starts go together in it: ``IngestBatcher``),
while the single VEE worker validates the committed ones concurrently: a head-end's 202 or
PUBACK never waits for a VEE pass. The dispatchers only update their own outbox rows.
"""

from __future__ import annotations

import hashlib
import logging
import threading

import pandas as pd

from smartmdm_pipelines.domain.calendar import holidays_for
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.services.dispatch import Dispatcher
from smartmdm_pipelines.services.ingestion import FileSummary
from smartmdm_pipelines.services.portal_alerts import after_vee as alerts_after_vee
from smartmdm_pipelines.services.realtime import (
    IngestBatcher,
    RealtimeVee,
    ingest_bodies,
    ingest_body,
    sweep_spool,
    validate_pending,
)
from smartmdm_pipelines.store.store import Store

log = logging.getLogger("smartmdm.serve")


class Runtime:
    def __init__(self, settings: ServerSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.store_url)
        self.stop_event = threading.Event()
        self.vee_wanted = threading.Event()
        self.push_wanted: list[threading.Event] = []  # one per dispatcher
        self.ingest_lock = threading.Lock() if self.store.backend == "duckdb" else None
        # deliveries waiting to be written go together in one transaction (group commit)
        self.batcher = IngestBatcher(self.store, settings.config, self.ingest_lock)
        self.alerts_lock = threading.Lock()  # alert evaluation runs after VEE passes and on a timer
        self.threads: list[threading.Thread] = []
        self.subscriber = None
        self.last_vee: RealtimeVee | None = None
        self.reporter = None

    # --- inbound -----------------------------------------------------------------------------------

    def ingest(self, source: str, body: bytes, channel: str, name: str | None = None) -> FileSummary:
        summary = ingest_body(
            self.store, self.settings.config, source, body, channel, name, batcher=self.batcher
        )
        if summary.status != "duplicate":
            self.vee_wanted.set()
        return summary

    def ingest_many(self, items: list[tuple[str, bytes]], channel: str) -> list[FileSummary | Exception]:
        """Several deliveries ((source, body) each) parsed in turn and written together; the
        outcome of each (its summary, or the exception that kept it out of the store)."""
        outcomes = ingest_bodies(
            self.store,
            self.settings.config,
            [(source, body, channel, None) for source, body in items],
            batcher=self.batcher,
        )
        if any(isinstance(o, FileSummary) and o.status != "duplicate" for o in outcomes):
            self.vee_wanted.set()
        return outcomes

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.settings.workers:
            return
        for folder in sweep_spool(self.settings.config):  # what a killed process left mid-push
            log.info("removed the stale push folder %s", folder)
        if self.settings.report_to_dagster:
            from smartmdm_pipelines.server.dagster_events import Reporter

            self.reporter = Reporter.if_configured()
        self._thread(self._vee_loop, "vee")
        for target in self.settings.targets:
            self._thread(lambda t=target: self._push_loop(t), f"push-{target.destination}")
        if self.settings.mqtt_host:
            from smartmdm_pipelines.server.mqtt import Subscriber

            self.subscriber = Subscriber(
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                lambda source, body: self.ingest(source, body, "mqtt"),
                handle_many=lambda items: self.ingest_many(items, "mqtt"),
                client_id=self.settings.mqtt_client_id
                or "smartmdm-serve-" + hashlib.sha256(self.store.url.encode()).hexdigest()[:12],
                prefix=self.settings.mqtt_prefix,
                stop=self.stop_event,
            )
            self.subscriber.start()
        self.vee_wanted.set()  # deliveries a previous process committed but did not validate

    def stop(self) -> None:
        self.stop_event.set()
        self.vee_wanted.set()
        self.wake_dispatchers()
        if self.subscriber is not None:
            self.subscriber.stop()
        for thread in self.threads:
            thread.join(timeout=30)
        self.store.dispose()

    def _thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # --- workers -----------------------------------------------------------------------------------

    def _vee_loop(self) -> None:
        # the holiday calendar imports its country module on first use (about half a second):
        # at start, not in the first pass
        year = pd.Timestamp.now(tz="UTC").year
        holidays_for(self.settings.config.utility.holidays, year - 1, year + 1)
        while not self.stop_event.is_set():
            self.vee_wanted.wait(timeout=1.0)
            if self.stop_event.is_set():
                break
            self.vee_wanted.clear()
            try:
                self.validate_now()
            except Exception:
                log.exception("VEE of pushed deliveries failed; retrying")
                self.stop_event.wait(2.0)
                self.vee_wanted.set()

    def validate_now(self) -> RealtimeVee:
        run = validate_pending(self.store, self.settings.config)  # one VEE worker thread
        if run.deliveries:
            self.last_vee = run
            self.wake_dispatchers()
            log.info(
                "validated %d deliveries (%d reads, %d meter-days) in %.2fs after receipt",
                len(run.deliveries),
                run.interval_reads,
                run.meter_days,
                run.latency_seconds or 0.0,
            )
            if self.reporter is not None:
                self.reporter.delivery_validated(run)
            with self.alerts_lock:
                alerts_after_vee(self.store)  # customer alerts on the reads just validated
            self.vee_wanted.set()  # more may have arrived meanwhile
        return run

    def wake_dispatchers(self) -> None:
        for event in self.push_wanted:
            event.set()

    def _push_loop(self, target) -> None:
        wanted = threading.Event()
        self.push_wanted.append(wanted)
        rt = self.settings.config.realtime
        dispatcher = Dispatcher(
            self.store,
            target,
            batch_size=rt.push_batch_size,
            max_batch_size=rt.push_max_batch_size,
            timeout=rt.push_timeout_seconds,
        )
        while not self.stop_event.is_set():
            try:
                attempt = dispatcher.step()
            except Exception:
                log.exception("dispatch to %s failed; retrying", target.destination)
                self.stop_event.wait(2.0)
                continue
            if attempt.error:
                log.warning("push to %s: %s", target.destination, attempt.error)
            if attempt.idle:
                wanted.wait(timeout=1.0)
                wanted.clear()
            elif attempt.wait_seconds:
                self.stop_event.wait(attempt.wait_seconds)
