"""Head-end file ingestion: register, parse, load in bulk, archive. One code path for the
sensor-launched Dagster runs, the ``smartmdm ingest`` command and historical migrations."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from smartmdm_pipelines.adapters.base import ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.registry import parse_file
from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.timeutil import local_date, operating_day, register_day
from smartmdm_pipelines.services.register_intervals import register_interval_days
from smartmdm_pipelines.store.store import Store

MAX_ERRORS_IN_SUMMARY = 50


@dataclass
class FileSummary:
    """What a file holds (``inspect``) or what loading it did (``ingest``)."""

    file: str
    sha256: str
    format: str
    status: str  # loaded | partially loaded | rejected | duplicate
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

    def to_dict(self) -> dict:
        return asdict(self)


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
    path: Path, sha: str, parsed: ParsedFile, utility_tz: str, days: ReadDays | None = None
) -> FileSummary:
    iv = parsed.intervals
    meters = pd.concat([iv["meter_id"], parsed.registers["meter_id"], parsed.events["meter_id"]]).nunique()
    channels = sorted(set(iv["channel"].unique()) | set(parsed.registers["channel"].unique()))
    errors = [{"line": parsed.fatal_line, "reason": parsed.fatal}] if parsed.fatal else []
    errors += [
        {"line": int(line), "reason": reason}
        for line, reason in parsed.rejected[["line", "reason"]]
        .head(MAX_ERRORS_IN_SUMMARY)
        .itertuples(index=False)
    ]
    return FileSummary(
        file=str(path),
        sha256=sha,
        format=parsed.format,
        status=parsed.status,
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
    )


def inspect_file(path: Path, config: UtilityConfig) -> FileSummary:
    """Parse without loading: what the file holds and what would be rejected."""
    path = Path(path)
    parsed = parse_file(path, config.source_for(path.name))
    return summarise(path, sha256_of(path), parsed, config.utility.timezone)


def touched_days(parsed: ParsedFile, tz: str, days: ReadDays | None = None) -> list[dt.date]:
    return (days or ReadDays.of(parsed, tz)).touched()


def ingest_file(store: Store, path: Path, config: UtilityConfig, *, archive: bool = True) -> FileSummary:
    """Register, parse and load one file in one transaction, then move it out of landing.

    Re-delivery of identical bytes is a no-op (status ``duplicate``). A file that cannot be
    parsed at all is registered as rejected with its reason and moved to quarantine.
    """
    path = Path(path)
    sha = sha256_of(path)
    existing = store.read_frame("SELECT file_id FROM headend_files WHERE sha256 = :sha", {"sha": sha})
    if len(existing):
        summary = FileSummary(file=str(path), sha256=sha, format="", status="duplicate")
        summary.duplicate_of = int(existing["file_id"].iloc[0])
        if archive:
            summary.archived_to = str(_move(path, config.archive_dir / "duplicates", sha))
        return summary

    source: SourceConfig = config.source_for(path.name)
    parsed = parse_file(path, source)
    tz = config.utility.timezone
    days = ReadDays.of(parsed, tz)
    summary = summarise(path, sha, parsed, tz, days)
    received = pd.Timestamp.now(tz="UTC")
    with store.begin() as conn:
        file_id = int(store.execute("SELECT nextval('headend_file_id_seq')", conn=conn).scalar_one())
        summary.file_id = file_id
        registry = pd.DataFrame(
            [
                {
                    "file_id": file_id,
                    "name": path.name,
                    "sha256": sha,
                    "size_bytes": path.stat().st_size,
                    "format": parsed.format,
                    "source": source.name,
                    "received_at": received,
                    "loaded_at": pd.Timestamp.now(tz="UTC"),
                    "status": parsed.status,
                    "rows_in": parsed.records,
                    "rows_loaded": max(parsed.records - len(parsed.rejected), 0),
                    "interval_reads": summary.interval_reads,
                    "register_reads": summary.register_reads,
                    "events": summary.events,
                    "rows_rejected": summary.rejected_rows + (1 if parsed.fatal else 0),
                    "first_interval_end": pd.Timestamp(summary.first_interval_end)
                    if summary.first_interval_end
                    else None,
                    "last_interval_end": pd.Timestamp(summary.last_interval_end)
                    if summary.last_interval_end
                    else None,
                    "read_days": ";".join(summary.read_days),
                    "error": _error_text(parsed),
                }
            ]
        )
        store.bulk_insert("headend_files", registry, conn)
        store.bulk_insert("raw_reads", _with_file(parsed.intervals, file_id, days.intervals), conn)
        store.bulk_insert("register_reads", _with_file(parsed.registers, file_id, days.registers), conn)
        store.bulk_insert("meter_events", _with_file(parsed.events, file_id, days.events), conn)
        rejected = parsed.rejected
        if parsed.fatal:
            rejected = pd.DataFrame(
                [
                    {
                        "line": parsed.fatal_line or 0,
                        "raw_text": None,
                        "reason": f"file rejected: {parsed.fatal}",
                    }
                ]
            )
        store.bulk_insert("rejected_rows", rejected.assign(file_id=file_id), conn)
    summary.vee_days = days_to_validate(store, parsed, summary.read_days, tz, days)
    # register reads of a source that derives intervals: the days their derived intervals span
    derived = register_interval_days(store, parsed, source, config, file_id)
    summary.vee_days = sorted(set(summary.vee_days) | set(derived))
    if archive:
        target = (
            config.quarantine_dir
            if parsed.status == "rejected"
            else config.archive_dir / received.strftime("%Y/%m/%d")
        )
        moved = _move(path, target, sha)
        summary.archived_to = str(moved)
        store.execute(
            "UPDATE headend_files SET archive_path = :p WHERE file_id = :id", {"p": str(moved), "id": file_id}
        )
    return summary


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
    table = pa.Table.from_pandas(frame, preserve_index=False)
    n = table.num_rows
    return table.append_column("file_id", pa.repeat(pa.scalar(file_id, pa.int64()), n)).append_column(
        "read_day", pa.array(read_day.to_numpy())
    )


def _error_text(parsed: ParsedFile) -> str | None:
    if parsed.fatal:
        return f"line {parsed.fatal_line}: {parsed.fatal}" if parsed.fatal_line else parsed.fatal
    if len(parsed.rejected):
        first = parsed.rejected.iloc[0]
        more = len(parsed.rejected) - 1
        return f"line {first['line']}: {first['reason']}" + (
            f" (and {more} more rejected rows)" if more else ""
        )
    return None


def _move(path: Path, folder: Path, sha: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha[:12]}_{path.name}"
    shutil.move(str(path), target)
    return target
