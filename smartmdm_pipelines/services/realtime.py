"""The real-time path's use cases: a delivery pushed over HTTP or MQTT (or pulled from a head-end
API) goes through the same ingestion as a landed file, then VEE runs on only the meter-days it
touched, writing the versions and their outbox rows in one transaction.

VEE of a pass is ``services.vee.run_day`` in its incremental mode (``new_files``): the daily
engine's rules, estimation and versioning on the touched meters' series up to their latest read;
only the new reads' intervals and those whose flags they can change are compared and versioned
(``domain/vee/incremental.py``). The day rules (register sum checks, missing channels, usage vs
like days …), the exception queue, daily usage and the gaps after a series' latest read (the day's
future is not a gap) are the daily run's. After the real-time passes of all of a day's deliveries,
the daily run writes validation versions only for intervals after their series' latest read of
the day, and estimation versions only for intervals that are suspect or missing then.

Ingestion and validation are two steps so that many deliveries arriving together are validated
together: a delivery is committed (and acknowledged to the head-end) first; ``validate_pending``
then takes every delivery not validated yet (``headend_files.vee_at`` is NULL), runs VEE per
operating day on the union of their meters and marks them validated. A crash between the two
steps loses nothing: the deliveries are still pending at the next start, and re-running VEE on a
day writes no version that is already there.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from smartmdm_pipelines.adapters.base import SourceConfig
from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.services.ingestion import (
    FileSummary,
    PreparedDelivery,
    _Delivery,
    prepare_delivery,
    write_deliveries,
)
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store

CHANNELS = ("http", "mqtt", "pull")
SPOOL = "spool"
STALE_SPOOL_SECONDS = 3600  # no push takes an hour to parse and load
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def source_config(config: UtilityConfig, source: str) -> SourceConfig:
    """The configured source of that name (its time zone, format, meter map), else a source with
    the utility's time zone whose format is sniffed from the content."""
    src = next((s for s in config.sources if s.name == source), None)
    if src is None:
        return SourceConfig(source, config.utility.timezone)
    return SourceConfig(
        src.name, src.timezone, src.format, src.default_unit, csv=src.csv, nem12_timezone=src.nem12_timezone
    )


def delivery_file_name(name: str | None, fallback: str) -> str:
    """A pushed delivery's name made a plain file name: only ``A-Za-z0-9._-`` (a ``/``, a NUL or
    a space becomes ``_``), no leading dot (so never ``.`` or ``..``), at most 200 characters."""
    safe = _SAFE.sub("_", name or "").lstrip(".")[:200]
    return safe if safe.strip("_") else fallback


def ingest_body(
    store: Store,
    config: UtilityConfig,
    source: str,
    body: bytes,
    channel: str,
    name: str | None = None,
    write_lock: AbstractContextManager | None = None,
    batcher: IngestBatcher | None = None,
) -> FileSummary:
    """Register and load one pushed delivery (status ``duplicate`` for bytes already received);
    ``write_lock`` is held while it is written (not while it is parsed). With a ``batcher`` it is
    written together with the other deliveries waiting to be written at that moment (one
    transaction); it returns once its rows are committed."""
    (outcome,) = ingest_bodies(store, config, [(source, body, channel, name)], write_lock, batcher)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def ingest_bodies(
    store: Store,
    config: UtilityConfig,
    items: list[tuple[str, bytes, str, str | None]],
    write_lock: AbstractContextManager | None = None,
    batcher: IngestBatcher | None = None,
) -> list[FileSummary | Exception]:
    """``ingest_body`` of several deliveries ((source, body, channel, name) each), parsed one after
    the other and written in one transaction; the outcome of each, in order (its summary, or the
    exception that kept it out of the store: the others are stored all the same)."""
    outcomes: list[FileSummary | Exception | None] = [None] * len(items)
    prepared: list[tuple[int, PreparedDelivery]] = []
    for i, item in enumerate(items):
        try:
            ready = _prepare_body(store, config, *item)
        except Exception as exc:  # this delivery only (reported to its sender)
            outcomes[i] = exc
            continue
        if isinstance(ready, FileSummary):
            outcomes[i] = ready  # a duplicate
        else:
            prepared.append((i, ready))
    if prepared:
        batch = [p for _, p in prepared]
        if batcher is not None:
            written = batcher.write(batch)
        else:
            with write_lock or contextlib.nullcontext():
                written = write_deliveries(store, config, batch)
        for (i, _), outcome in zip(prepared, written, strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def _prepare_body(
    store: Store, config: UtilityConfig, source: str, body: bytes, channel: str, name: str | None
) -> FileSummary | PreparedDelivery:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {channel!r}")
    received = pd.Timestamp.now(tz="UTC")
    sha = hashlib.sha256(body).hexdigest()
    generated = f"{channel}-{source}-{received.strftime('%Y%m%dT%H%M%S%f')}-{sha[:8]}"
    name = delivery_file_name(name, generated)
    spool = config.data_dir / SPOOL
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=spool) as folder:  # the adapters parse a file
        path = Path(folder) / name
        path.write_bytes(body)
        delivery = _Delivery(
            f"{channel}:{source}/{name}",
            name,
            source_config(config, source),
            path,
            sha,
            len(body),
            channel=channel,
        )
        return prepare_delivery(store, config, delivery, received)


class IngestBatcher:
    """Group commit of pushed deliveries: a delivery parsed while others are being written waits,
    and the next write takes every delivery waiting then, in one transaction (one insert per
    table, one commit; each delivery keeps its own ``headend_files`` row, accounting and
    idempotency: ``ingestion.write_deliveries``). Each caller returns once its own delivery is
    committed, so its 202 or PUBACK still follows the commit. One write at a time (holding
    ``write_lock`` too when given: DuckDB's single writer); a burst's deliveries go in a few
    transactions instead of one each."""

    def __init__(
        self,
        store: Store,
        config: UtilityConfig,
        write_lock: AbstractContextManager | None = None,
        max_deliveries: int = 200,
    ) -> None:
        self.store, self.config = store, config
        self.write_lock = write_lock
        self.max_deliveries = max_deliveries
        self._cond = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing = False
        self.transactions = 0  # writes done (for tests and the log)

    def write(self, batch: list[PreparedDelivery]) -> list[FileSummary | Exception]:
        mine = [_Waiting(p) for p in batch]
        with self._cond:
            self._waiting.extend(mine)
        while True:
            with self._cond:
                while self._writing and not all(w.done for w in mine):
                    self._cond.wait()
                if all(w.done for w in mine):
                    return [w.outcome for w in mine]  # type: ignore[misc]
                self._writing = True  # this caller writes what is waiting, its own and others'
            group: list[_Waiting] = []
            outcomes: list[FileSummary | Exception] = []
            try:
                with self.write_lock or contextlib.nullcontext():
                    with self._cond:  # taken once the lock is ours: what arrived meanwhile comes too
                        group = self._waiting[: self.max_deliveries]
                        del self._waiting[: self.max_deliveries]
                    try:
                        outcomes = write_deliveries(self.store, self.config, [w.prepared for w in group])
                    except Exception as exc:  # write_deliveries reports per delivery; this is unexpected
                        outcomes = [exc] * len(group)
            finally:
                with self._cond:
                    for i, w in enumerate(group):
                        w.outcome = (
                            outcomes[i] if i < len(outcomes) else RuntimeError("the write was interrupted")
                        )
                        w.done = True
                    self._writing = False
                    self.transactions += 1
                    self._cond.notify_all()


@dataclass
class _Waiting:
    prepared: PreparedDelivery
    outcome: FileSummary | Exception | None = None
    done: bool = False


def sweep_spool(config: UtilityConfig, older_than_seconds: float = STALE_SPOOL_SECONDS) -> list[Path]:
    """Remove the temporary folders of pushes that a killed process left in the spool (a push is
    written to ``spool/tmp…/`` while it is parsed and loaded, then the folder goes). The delivery
    itself was committed or not (the head-end re-sends what was not acknowledged), so the folder
    holds nothing the store needs. Only folders untouched for ``older_than_seconds`` are removed:
    another worker process of the service may be writing a fresh one. Returns those removed."""
    spool = config.data_dir / SPOOL
    if not spool.is_dir():
        return []
    cutoff = time.time() - older_than_seconds
    removed = []
    for folder in spool.iterdir():
        if folder.is_dir() and folder.name.startswith("tmp") and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@dataclass
class RealtimeVee:
    """What one ``validate_pending`` pass did."""

    deliveries: list[int] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    meter_days: int = 0
    validation_versions: int = 0
    estimation_versions: int = 0
    interval_reads: int = 0
    oldest_received: pd.Timestamp | None = None
    finished: pd.Timestamp | None = None

    @property
    def latency_seconds(self) -> float | None:
        if self.oldest_received is None or self.finished is None:
            return None
        return (self.finished - self.oldest_received).total_seconds()


def validate_pending(store: Store, config: UtilityConfig, max_deliveries: int = 100_000) -> RealtimeVee:
    """VEE on the meter-days touched by the pushed deliveries not validated yet."""
    files = store.read_frame(
        "SELECT file_id, received_at, interval_reads FROM headend_files WHERE vee_at IS NULL "
        "AND channel IN (SELECT unnest(:c)) ORDER BY file_id LIMIT :n",
        {"c": list(CHANNELS), "n": max_deliveries},
    )
    out = RealtimeVee()
    if files.empty:
        return out
    ids = [int(f) for f in files["file_id"]]
    out.deliveries = ids
    out.interval_reads = int(files["interval_reads"].sum())
    out.oldest_received = pd.Timestamp(files["received_at"].min())
    touched = store.read_frame(
        "SELECT DISTINCT read_day, meter_id FROM raw_reads WHERE file_id IN (SELECT unnest(:ids)) "
        "UNION SELECT DISTINCT read_day, meter_id FROM register_reads WHERE file_id IN (SELECT unnest(:ids))",
        {"ids": ids},
    )
    out.meter_days = len(touched)
    for day, group in touched.groupby("read_day", sort=True):
        day = pd.Timestamp(day).date()
        meters = sorted(group["meter_id"].astype(str).unique().tolist())
        run = run_day(store, day, config, meters=meters, new_files=ids)
        out.days.append(day.isoformat())
        out.validation_versions += run.validation_versions
        out.estimation_versions += run.estimation_versions
    out.finished = pd.Timestamp.now(tz="UTC")
    store.execute(
        "UPDATE headend_files SET vee_at = :now WHERE file_id IN (SELECT unnest(:ids))",
        {"now": out.finished.to_pydatetime(), "ids": ids},
    )
    return out
