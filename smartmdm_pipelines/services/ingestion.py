"""Head-end file ingestion: register, parse, load in bulk, archive. One code path for the
sensor-launched Dagster runs, the ``smartmdm inspect`` / ``ingest`` commands and historical
migrations.

A landed file is a *delivery*, except a compressed one (``.zip`` with one or more members, ``.gz``;
see ``services/unpack.py``): each of its members is a delivery of its own, with its own
``headend_files`` row named ``container!member``, its own accounting and idempotency, and the
original compressed file is archived once.

Idempotency: a delivery is identified by the sha256 of its bytes, so identical bytes delivered
again (under any name) are not loaded twice. An *empty* delivery (a file of at most 1 MiB that
parses without error and holds no data record, e.g. a header-only CSV saying "no events today")
is identified by its source, its name and its bytes instead: head-ends send identical empty
files every day, and each is a delivery of its own, never a duplicate of another one.

Archiving: a file in the landing folder is moved out of it (archive, quarantine or duplicates);
a file given from anywhere else (``smartmdm ingest ~/Downloads/x.zip``) is copied there and the
user's file stays where it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from smartmdm_pipelines.adapters.base import ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.registry import parse_file
from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.timeutil import local_date, operating_day, register_day
from smartmdm_pipelines.domain.vee.quality import source_quality_rank
from smartmdm_pipelines.services.derived_intervals import register_interval_days
from smartmdm_pipelines.services.meter_ids import apply_meter_map, load_meter_map
from smartmdm_pipelines.services.unpack import Member, UnpackLimits, container_kind, members
from smartmdm_pipelines.store.store import Store

MAX_ERRORS_IN_SUMMARY = 50
MAX_REASON_CHARS = 300  # a reason quotes at most 200 characters of the file
EMPTY_PROBE_BYTES = 1 << 20  # a file this small is parsed to tell whether it is an empty delivery


class DeliveryError(OSError):
    """A path that is not a readable head-end file (missing, a directory, unreadable)."""


@dataclass
class FileSummary:
    """What a file holds (``inspect``) or what loading it did (``ingest``)."""

    file: str
    sha256: str
    format: str
    status: str  # loaded | partially loaded | rejected | empty (no data record) | duplicate
    interval_reads: int = 0
    register_reads: int = 0
    events: int = 0
    rejected_rows: int = 0
    records: int = 0
    meters: int = 0
    channels: list[str] = field(default_factory=list)
    first_interval_end: str | None = None
    last_interval_end: str | None = None
    read_days: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    vee_days: list[str] = field(default_factory=list)
    file_id: int | None = None
    duplicate_of: int | None = None
    archived_to: str | None = None
    container: str | None = None  # the compressed file the delivery came in
    channels_detail: list[dict] = field(default_factory=list)  # per record, channel and unit
    unmapped_meters: list[str] = field(default_factory=list)  # ids the source's meter map lacks

    def to_dict(self) -> dict:
        return asdict(self)


def check_readable(path: Path) -> Path:
    """``path`` if it is a readable file, else a one-line ``DeliveryError`` naming it."""
    path = Path(path)
    if path.is_dir():
        raise DeliveryError(f"{path} is a directory (expected a head-end file)")
    if not path.exists():
        raise DeliveryError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise DeliveryError(f"{path}: permission denied (the file cannot be read)")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReadDays:
    """The operating day of every read of a parsed file, worked out once per file (a per-row
    time-zone conversion) for its summary, its rows in the store and the days VEE must run."""

    intervals: pd.Series
    registers: pd.Series
    events: pd.Series

    @classmethod
    def of(cls, parsed: ParsedFile, tz: str) -> ReadDays:
        iv, reg, ev = parsed.intervals, parsed.registers, parsed.events
        return cls(
            intervals=operating_day(iv["interval_end"], iv["interval_seconds"], tz),
            registers=register_day(reg["read_at"], tz),
            events=local_date(ev["event_at"], tz),
        )

    def interval_days(self) -> list[dt.date]:
        return _dates(self.intervals)

    def touched(self) -> list[dt.date]:
        return sorted(set(_dates(self.intervals)) | set(_dates(self.registers)) | set(_dates(self.events)))


def _dates(days: pd.Series) -> list[dt.date]:
    return sorted(pd.Timestamp(d).date() for d in days.unique()) if len(days) else []


def summarise(
    path: Path | str, sha: str, parsed: ParsedFile, utility_tz: str, days: ReadDays | None = None
) -> FileSummary:
    iv = parsed.intervals
    meters = pd.concat([iv["meter_id"], parsed.registers["meter_id"], parsed.events["meter_id"]]).nunique()
    channels = sorted(set(iv["channel"].unique()) | set(parsed.registers["channel"].unique()))
    errors = [{"line": parsed.fatal_line, "reason": clip(parsed.fatal)}] if parsed.fatal else []
    errors += [
        {"line": int(line), "reason": clip(reason)}
        for line, reason in parsed.rejected[["line", "reason"]]
        .head(MAX_ERRORS_IN_SUMMARY)
        .itertuples(index=False)
    ]
    return FileSummary(
        file=str(path),
        sha256=sha,
        format=parsed.format,
        status="empty" if _is_empty(parsed) else parsed.status,
        interval_reads=len(iv),
        register_reads=len(parsed.registers),
        events=len(parsed.events),
        rejected_rows=len(parsed.rejected),
        records=parsed.records,
        meters=int(meters),
        channels=[str(c) for c in channels],
        first_interval_end=iv["interval_end"].min().isoformat() if len(iv) else None,
        last_interval_end=iv["interval_end"].max().isoformat() if len(iv) else None,
        read_days=[d.isoformat() for d in touched_days(parsed, utility_tz, days)],
        errors=errors,
        channels_detail=channels_detail(parsed),
    )


def channels_detail(parsed: ParsedFile) -> list[dict]:
    """Per record kind, channel and unit (after conversion): the reads and how many of them are
    actual, estimated by the head-end, or no-read placeholders (the classes VEE ranks, from the
    source quality codes each adapter keeps: CMEP ``N…``, NEM12 ``N``, an empty value …).

    A file holds a handful of channels, units and quality codes: each is classified once and the
    reads are counted with one ``bincount``."""
    out = []
    for record, frame in (("interval", parsed.intervals), ("register", parsed.registers)):
        if not len(frame):
            continue
        q_codes, q_uniques = pd.factorize(frame["source_quality"], use_na_sentinel=False)
        per_code = source_quality_rank(
            pd.Series(q_uniques, dtype=object), pd.Series(np.zeros(len(q_uniques)))
        )
        rank = np.where(frame["value"].isna().to_numpy(), 2, per_code[q_codes])
        c_codes, channels = pd.factorize(frame["channel"], use_na_sentinel=False)
        u_codes, units = pd.factorize(frame["unit"], use_na_sentinel=False)
        group = c_codes.astype(np.int64) * len(units) + u_codes
        counts = np.bincount(group * 3 + rank, minlength=len(channels) * len(units) * 3).reshape(-1, 3)
        for g in np.flatnonzero(counts.sum(axis=1)):
            actual, estimated, no_read = (int(x) for x in counts[g])
            out.append(
                {
                    "channel": str(channels[g // len(units)]),
                    "record": record,
                    "unit": str(units[g % len(units)]),
                    "reads": actual + estimated + no_read,
                    "actual": actual,
                    "estimated": estimated,
                    "no_read": no_read,
                }
            )
    return sorted(out, key=lambda d: (d["record"], d["channel"], d["unit"]))


def clip(text: str | None, limit: int = MAX_REASON_CHARS) -> str | None:
    """A reason as reported: at most ``limit`` characters (a reason quotes at most 200 of the file)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def inspect_file(path: Path, config: UtilityConfig) -> FileSummary:
    """Parse a plain (not compressed) file without loading: what it holds and what would be rejected."""
    return inspect_path(path, config)[0]


def inspect_path(path: Path, config: UtilityConfig) -> list[FileSummary]:
    """Parse without loading: one summary per delivery of a landed file (one, or one per member of
    a compressed file)."""
    summaries = []
    with _deliveries(Path(path), config) as (_, deliveries):
        for d in deliveries:
            parsed = d.parse()
            unmapped = _map_meter_ids(parsed, config, d.source)
            summary = summarise(d.label, d.sha, parsed, config.utility.timezone)
            summary.container, summary.unmapped_meters = d.container, unmapped
            summaries.append(summary)
    return summaries


def unpack_limits(config: UtilityConfig) -> UnpackLimits:
    limits = config.landing.unpack
    return UnpackLimits(
        max_members=limits.max_members, max_total_bytes=limits.max_total_mb << 20, max_ratio=limits.max_ratio
    )


def touched_days(parsed: ParsedFile, tz: str, days: ReadDays | None = None) -> list[dt.date]:
    return (days or ReadDays.of(parsed, tz)).touched()


def ingest_file(store: Store, path: Path, config: UtilityConfig, *, archive: bool = True) -> FileSummary:
    """Register, parse and load one plain file in one transaction, then archive it (``ingest_path``
    for a file that may be compressed).

    Re-delivery of identical bytes is a no-op (status ``duplicate``). A file that cannot be
    parsed at all is registered as rejected with its reason and goes to quarantine.
    """
    return ingest_path(store, path, config, archive=archive)[0]


def ingest_path(
    store: Store, path: Path, config: UtilityConfig, *, archive: bool = True
) -> list[FileSummary]:
    """Ingest a landed file: a plain file is one delivery, a compressed one a delivery per member
    (each registered and loaded on its own: a bad member does not stop the good ones). The
    original file is archived once (see the module docstring for move versus copy)."""
    received = pd.Timestamp.now(tz="UTC")
    summaries: list[FileSummary] = []
    landed = str(Path(path).resolve()) if archive else None
    with _deliveries(Path(path), config) as (sha, deliveries):
        for d in deliveries:
            summary = _ingest_delivery(store, config, d, received, landed=landed)
            summary.container = d.container
            summaries.append(summary)
    if archive:
        recorded = _resume_own(store, Path(path), sha, summaries)
        statuses = {s.status for s in summaries}
        ids = [s.file_id for s in summaries if s.file_id is not None]
        target = recorded or _archive_target(Path(path), config, sha, statuses, received)
        for s in summaries:
            s.archived_to = str(target)
        if ids:  # recorded before the file moves: a crash in between leaves the move to the re-run
            store.execute(
                "UPDATE headend_files SET archive_path = :p WHERE file_id IN (SELECT unnest(:ids))",
                {"p": str(target), "ids": ids},
            )
        _place(Path(path), target, config)
    return summaries


def _resume_own(store: Store, path: Path, sha: str, summaries: list[FileSummary]) -> Path | None:
    """Take back the deliveries an ingestion of this very file registered before it was killed,
    and return the archive target it recorded (if it got that far).

    Such a delivery looks like a duplicate, but its ``archive_path`` is still the landing path (or
    names a target that does not exist yet): its summary becomes its first outcome again (status,
    file id, the days VEE must run, which the killed run never reported), so the file goes where
    that outcome sends it (not to ``duplicates``) and the delivery gets its archive path."""
    duplicate_of = [
        s.duplicate_of for s in summaries if s.status == "duplicate" and s.duplicate_of is not None
    ]
    if not duplicate_of:
        return None
    rows = store.read_frame(
        "SELECT file_id, status, archive_path, read_days FROM headend_files "
        "WHERE file_id IN (SELECT unnest(:ids))",
        {"ids": duplicate_of},
    )
    landed, name = str(path.resolve()), f"{sha[:12]}_{path.name}"
    paths = rows["archive_path"].where(rows["archive_path"].notna(), None)
    pending = paths.map(
        lambda p: p is not None and (p == landed or (Path(p).name == name and not Path(p).exists()))
    )
    own = {int(r.file_id): r for r in rows[pending.astype(bool)].itertuples(index=False)}
    for s in summaries:
        row = own.get(s.duplicate_of) if s.status == "duplicate" else None
        if row is not None:
            s.status, s.file_id, s.duplicate_of = str(row.status), int(row.file_id), None
            s.read_days = [d for d in str(row.read_days or "").split(";") if d]
            s.vee_days = _stored_vee_days(store, s.file_id)
    recorded = [r.archive_path for r in own.values() if r.archive_path != landed]
    return Path(recorded[0]) if recorded else None


def _stored_vee_days(store: Store, file_id: int) -> list[str]:
    """``days_to_validate`` of a delivery already loaded, from its rows in the store: the days of
    its interval reads, and those of its registers and events that hold interval reads."""
    days = store.read_frame(
        "SELECT DISTINCT read_day FROM raw_reads WHERE file_id = :f UNION "
        "SELECT DISTINCT t.read_day FROM (SELECT read_day FROM register_reads WHERE file_id = :f "
        "UNION SELECT read_day FROM meter_events WHERE file_id = :f) t "
        "WHERE EXISTS (SELECT 1 FROM raw_reads r WHERE r.read_day = t.read_day)",
        {"f": file_id},
    )
    return sorted(pd.Timestamp(d).date().isoformat() for d in days["read_day"])


def landing_key(path: Path, config: UtilityConfig) -> str:
    """The idempotency key of a file in the landing folder (the sensor's run key): its sha256, or
    for an empty delivery the key of ``empty_delivery_key``."""
    path = Path(path)
    sha = sha256_of(path)
    if path.stat().st_size > EMPTY_PROBE_BYTES or container_kind(path) is not None:
        return sha
    source = config.source_for(path.name)
    return empty_delivery_key(sha, source.name, path.name) if _is_empty(parse_file(path, source)) else sha


def loaded_file_id(store: Store, sha_prefix: str, name: str) -> int | None:
    """The id of a delivery already registered under this landing key (short sha256 + name), if any."""
    loaded = store.read_frame(
        "SELECT file_id, status FROM headend_files WHERE sha256 LIKE :p OR archive_path LIKE :a",
        {"p": f"{sha_prefix}%", "a": f"%{sha_prefix}_{name}"},
    )
    return int(loaded["file_id"].iloc[0]) if len(loaded) else None


def empty_delivery_key(sha: str, source: str, name: str) -> str:
    """An empty delivery's key: its source, name and bytes (not the bytes alone)."""
    return hashlib.sha256(f"empty delivery\0{source}\0{name}\0{sha}".encode()).hexdigest()


def _is_empty(parsed: ParsedFile) -> bool:
    return parsed.fatal is None and parsed.records == 0


@dataclass(frozen=True)
class _Delivery:
    """One delivery of a landed file: the file itself, or a member of a compressed one."""

    label: str  # how summaries name it: the path, or ``container_path!member``
    name: str  # how headend_files names it: the file name, or ``container!member``
    source: SourceConfig
    path: Path | None  # its bytes (None: it could not be expanded, see ``error``)
    sha: str  # sha256 of its bytes (of the container and its name when it has none)
    size: int = 0
    error: str | None = None
    container: str | None = None
    channel: str = "file"  # how it arrived: file | http | mqtt | pull

    def parse(self) -> ParsedFile:
        if self.path is None:
            return ParsedFile(format="unknown", fatal=self.error)
        return parse_file(self.path, self.source)


@contextmanager
def _deliveries(path: Path, config: UtilityConfig) -> Iterator[tuple[str, list[_Delivery]]]:
    """The sha256 of a landed file and its deliveries (members expanded while the block runs)."""
    path = check_readable(path)
    sha = sha256_of(path)
    kind = container_kind(path)
    if kind is None:
        source = config.source_for(path.name)
        yield sha, [_Delivery(str(path), path.name, source, path, sha, path.stat().st_size)]
        return
    with members(path, kind, unpack_limits(config)) as found:
        yield sha, [_member_delivery(m, path, sha, config) for m in found]


def _member_delivery(member: Member, container: Path, container_sha: str, config: UtilityConfig) -> _Delivery:
    """A member as a delivery; its source is the one its own name matches, else the container's."""
    source = config.source_for(container.name)
    if member.member is not None:
        own = config.source_for(Path(member.member.replace("\\", "/")).name)
        source = own if own.name != "unknown" else source
    if member.path is not None:
        label = f"{container}!{member.member}"
        sha = sha256_of(member.path)
        return _Delivery(label, member.name, source, member.path, sha, member.size, container=str(container))
    if member.member is None:  # the container itself could not be opened
        size = container.stat().st_size
        return _Delivery(
            str(container), member.name, source, None, container_sha, size, member.error, str(container)
        )
    key = hashlib.sha256(f"member\0{container_sha}\0{member.name}".encode()).hexdigest()
    label = f"{container}!{member.member}"
    return _Delivery(label, member.name, source, None, key, member.size, member.error, str(container))


def _map_meter_ids(parsed: ParsedFile, config: UtilityConfig, source: SourceConfig) -> list[str]:
    """Apply the source's meter-id map, if it has one; the ids it lacks."""
    map_path = config.meter_map_path(source.name)
    if map_path is None:
        return []
    return apply_meter_map(parsed, load_meter_map(map_path))


def _ingest_delivery(
    store: Store,
    config: UtilityConfig,
    delivery: _Delivery,
    received: pd.Timestamp,
    write_lock: AbstractContextManager | None = None,
    landed: str | None = None,
) -> FileSummary:
    """Duplicate check, parse and load of one delivery (no archiving). ``write_lock`` is held
    only while the delivery is registered and loaded: a process that serialises its writers
    (DuckDB) still parses one delivery while it writes another. ``landed``: the path of the
    landed file to be archived after it (its ``archive_path`` until then)."""
    prepared = prepare_delivery(store, config, delivery, received, landed)
    if isinstance(prepared, FileSummary):
        return prepared
    with write_lock or contextlib.nullcontext():
        (outcome,) = write_deliveries(store, config, [prepared])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@dataclass
class PreparedDelivery:
    """A delivery parsed and summarised, ready to be registered and loaded (``write_deliveries``)."""

    delivery: _Delivery
    parsed: ParsedFile
    key: str  # its idempotency key (sha256, or the empty-delivery key)
    received: pd.Timestamp
    summary: FileSummary
    days: ReadDays
    landed: str | None = None


def prepare_delivery(
    store: Store,
    config: UtilityConfig,
    delivery: _Delivery,
    received: pd.Timestamp,
    landed: str | None = None,
) -> FileSummary | PreparedDelivery:
    """Everything of a delivery's ingestion that needs no write: the duplicate check (a
    ``duplicate`` summary when its key is registered already), parsing, the meter map, the
    operating days and the summary."""
    key = delivery.sha
    duplicate = _known(store, key, delivery.label)
    if duplicate is not None:
        return duplicate
    parsed = delivery.parse()
    if delivery.path is not None and _is_empty(parsed) and delivery.size <= EMPTY_PROBE_BYTES:
        key = empty_delivery_key(key, delivery.source.name, delivery.name)
        duplicate = _known(store, key, delivery.label)
        if duplicate is not None:
            return duplicate
    unmapped = _map_meter_ids(parsed, config, delivery.source)
    tz = config.utility.timezone
    days = ReadDays.of(parsed, tz)
    summary = summarise(delivery.label, key, parsed, tz, days)
    summary.unmapped_meters = unmapped
    return PreparedDelivery(delivery, parsed, key, received, summary, days, landed)


def write_deliveries(
    store: Store, config: UtilityConfig, batch: list[PreparedDelivery]
) -> list[FileSummary | Exception]:
    """Register and load prepared deliveries in ONE transaction (one insert per table, one
    commit), each with its own ``headend_files`` row, accounting and rejected rows; the outcome of
    each, in order. A key already registered (or earlier in the batch: the same bytes pushed
    twice at once) makes that delivery a ``duplicate`` of the registered one. If the transaction
    fails (a delivery the store refuses, the same bytes registered by another process meanwhile),
    each delivery is written on its own, so one bad delivery does not sink the others: its
    outcome is then its exception (or ``duplicate``, when another writer registered its key)."""
    if not batch:
        return []
    try:
        return _write_together(store, config, batch)
    except Exception:
        if len(batch) == 1:
            duplicate = _known(store, batch[0].key, batch[0].delivery.label)
            if duplicate is None:
                raise
            return [duplicate]
    outcomes: list[FileSummary | Exception] = []
    for prepared in batch:
        try:
            outcomes += write_deliveries(store, config, [prepared])
        except Exception as exc:  # the driver's own error class: reported to this delivery's sender
            outcomes.append(exc)
    return outcomes


def _write_together(
    store: Store, config: UtilityConfig, batch: list[PreparedDelivery]
) -> list[FileSummary | Exception]:
    keys = [p.key for p in batch]
    outcomes: list[FileSummary | Exception | None] = [None] * len(batch)
    # PostgreSQL: the months of the reads exist before the write (store/partitions.py)
    store.prepare_partitions("raw_reads", sorted({d for p in batch for d in p.days.interval_days()}))
    with store.begin() as conn:
        known = store.read_frame(
            "SELECT sha256, file_id FROM headend_files WHERE sha256 IN (SELECT unnest(:k))", {"k": keys}, conn
        )
        owner = {str(k): int(f) for k, f in zip(known["sha256"], known["file_id"], strict=True)}
        new = []
        for i, p in enumerate(batch):
            if p.key in owner:  # registered meanwhile, or by an earlier delivery of this batch
                outcomes[i] = _duplicate(p.key, p.delivery.label, owner[p.key])
            else:
                owner[p.key] = -1 - i  # the file id is known below
                new.append(i)
        if new:
            ids = store.read_frame(
                "SELECT nextval('headend_file_id_seq') AS file_id FROM generate_series(1, :n)",
                {"n": len(new)},
                conn,
            )["file_id"]
            file_ids = sorted(int(f) for f in ids)  # in arrival order
            for i, file_id in zip(new, file_ids, strict=True):
                batch[i].summary.file_id = file_id
                owner[batch[i].key] = file_id
            for i, p in enumerate(batch):  # duplicates of a delivery earlier in the batch
                outcome = outcomes[i]
                if isinstance(outcome, FileSummary) and (outcome.duplicate_of or 0) < 0:
                    outcome.duplicate_of = owner[p.key]
            chosen = [batch[i] for i in new]
            store.bulk_insert("headend_files", pd.DataFrame([_registry_row(p) for p in chosen]), conn)
            for table, frames in (
                (
                    "raw_reads",
                    [_with_file(p.parsed.intervals, p.summary.file_id, p.days.intervals) for p in chosen],
                ),
                (
                    "register_reads",
                    [_with_file(p.parsed.registers, p.summary.file_id, p.days.registers) for p in chosen],
                ),
                (
                    "meter_events",
                    [_with_file(p.parsed.events, p.summary.file_id, p.days.events) for p in chosen],
                ),
                ("rejected_rows", [_rejected(p) for p in chosen]),
            ):
                store.bulk_insert(table, _together(frames), conn)
    for i in new:
        p = batch[i]
        summary = p.summary
        tz = config.utility.timezone
        summary.vee_days = days_to_validate(store, p.parsed, summary.read_days, tz, p.days)
        # register reads of a source that derives intervals: the days their derived intervals span
        derived = register_interval_days(store, p.parsed, p.delivery.source, config, summary.file_id)
        summary.vee_days = sorted(set(summary.vee_days) | set(derived))
        outcomes[i] = summary
    return outcomes  # type: ignore[return-value]


def _known(store: Store, key: str, label: str) -> FileSummary | None:
    """A duplicate summary when ``key`` is already registered."""
    existing = store.read_frame("SELECT file_id FROM headend_files WHERE sha256 = :sha", {"sha": key})
    if not len(existing):
        return None
    return _duplicate(key, label, int(existing["file_id"].iloc[0]))


def _duplicate(key: str, label: str, file_id: int) -> FileSummary:
    summary = FileSummary(file=label, sha256=key, format="", status="duplicate")
    summary.duplicate_of = file_id
    return summary


def _registry_row(p: PreparedDelivery) -> dict:
    parsed, summary, delivery = p.parsed, p.summary, p.delivery
    return {
        "file_id": summary.file_id,
        "name": delivery.name,
        "sha256": p.key,
        "size_bytes": delivery.size,
        "format": parsed.format,
        "source": delivery.source.name,
        "received_at": p.received,
        "loaded_at": pd.Timestamp.now(tz="UTC"),
        "status": summary.status,
        "rows_in": parsed.records,
        "rows_loaded": max(parsed.records - len(parsed.rejected), 0),
        "interval_reads": summary.interval_reads,
        "register_reads": summary.register_reads,
        "events": summary.events,
        "rows_rejected": summary.rejected_rows + (1 if parsed.fatal else 0),
        "first_interval_end": pd.Timestamp(summary.first_interval_end)
        if summary.first_interval_end
        else None,
        "last_interval_end": pd.Timestamp(summary.last_interval_end) if summary.last_interval_end else None,
        "read_days": ";".join(summary.read_days),
        "error": _error_text(parsed),
        "channel": delivery.channel,
        "archive_path": p.landed,
    }


def _rejected(p: PreparedDelivery) -> pd.DataFrame:
    parsed = p.parsed
    rejected = parsed.rejected
    if parsed.fatal:
        rejected = pd.DataFrame(
            [
                {
                    "line": parsed.fatal_line or 0,
                    "raw_text": None,
                    "reason": clip(f"file rejected: {parsed.fatal}"),
                }
            ]
        )
    return rejected.assign(file_id=p.summary.file_id)


def _together(frames: list[pd.DataFrame | pa.Table]) -> list[pa.Table] | pa.Table:
    """The deliveries' rows for one table as one Arrow table (one insert), else as they are (an
    insert each, same transaction) when their column types cannot be unified."""
    tables = [
        f if isinstance(f, pa.Table) else pa.Table.from_pandas(f, preserve_index=False, nthreads=1)
        for f in frames
    ]
    tables = [t for t in tables if t.num_rows]
    if len(tables) <= 1:
        return tables
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return tables


def _archive_target(
    path: Path, config: UtilityConfig, sha: str, statuses: set[str], received: pd.Timestamp
) -> Path:
    """Where a landed file's deliveries' outcome sends it: duplicates when every one was a
    duplicate, quarantine when none loaded, else the archive folder of the day it was received."""
    if statuses == {"duplicate"}:
        folder = config.archive_dir / "duplicates"
    elif statuses <= {"rejected", "duplicate"}:
        folder = config.quarantine_dir
    else:
        folder = config.archive_dir / received.strftime("%Y/%m/%d")
    return folder / f"{sha[:12]}_{path.name}"


def _place(path: Path, target: Path, config: UtilityConfig) -> None:
    """Move (from the landing folder) or copy (from anywhere else) a landed file to ``target``,
    whole or not at all: a rename when the folder is on the same file system, else a copy to a
    hidden ``.part`` file that is flushed to disk and renamed into place before the original is
    removed. On any failure the partial copy is removed, the original is untouched and
    :class:`ArchiveError` names the folder."""
    move = _inside(path, config.landing_dir)
    folder = target.parent
    part = folder / f".{target.name}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.rename(path, target)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        with open(path, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(path, part)
        os.replace(part, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise ArchiveError(
            f"{path}: cannot archive into {folder}: {exc.strerror or exc}; the file stays "
            f"{'in ' + str(path.parent) if move else 'where it is'} with its rows loaded once, and a retry "
            "of the same file archives it without loading it again"
        ) from exc
    if move:
        path.unlink()


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def days_to_validate(
    store: Store, parsed: ParsedFile, touched: list[str], tz: str, days_of_reads: ReadDays | None = None
) -> list[str]:
    """The operating days VEE must (re)run for: those with interval reads in the file, plus days
    touched only by registers or events that already hold interval reads (a register or an outage
    event changes their validation); other days wait until their intervals arrive."""
    days_of_reads = days_of_reads or ReadDays.of(parsed, tz)
    days = {d.isoformat() for d in days_of_reads.interval_days()}
    others = sorted(set(touched) - days)
    if others:
        # one index probe per day (a scan of every raw read for DISTINCT took seconds on PostgreSQL)
        known = store.read_frame(
            "SELECT d AS read_day FROM unnest(:days) AS t(d)"
            " WHERE EXISTS (SELECT 1 FROM raw_reads r WHERE r.read_day = t.d)",
            {"days": [dt.date.fromisoformat(d) for d in others]},
        )
        days |= {pd.Timestamp(d).date().isoformat() for d in known["read_day"]}
    return sorted(days)


def _with_file(frame: pd.DataFrame, file_id: int, read_day: pd.Series) -> pa.Table:
    """The rows as Arrow (the store's bulk path), with their file and operating day."""
    # one thread: a delivery's frame is small, and a conversion pool per call costs more than it saves
    table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1 if len(frame) < 100_000 else None)
    n = table.num_rows
    return table.append_column("file_id", pa.repeat(pa.scalar(file_id, pa.int64()), n)).append_column(
        "read_day", pa.array(read_day.to_numpy())
    )


def _error_text(parsed: ParsedFile) -> str | None:
    if parsed.fatal:
        return clip(f"line {parsed.fatal_line}: {parsed.fatal}" if parsed.fatal_line else parsed.fatal)
    if len(parsed.rejected):
        first = parsed.rejected.iloc[0]
        more = len(parsed.rejected) - 1
        return clip(f"line {first['line']}: {first['reason']}") + (
            f" (and {more} more rejected rows)" if more else ""
        )
    return None


class ArchiveError(DeliveryError):
    """A landed file could not be archived (folder full or unwritable). Its rows are loaded (once);
    the file stays where it was and no partial copy is left, so a retry of the same file finishes
    the archiving (to the target recorded before the move) without loading anything again."""
