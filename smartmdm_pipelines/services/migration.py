"""Historical migration: replay a folder of legacy head-end files (years of them) through the
same adapters and load path as live ingestion, in chunks, resumably and idempotently.

Each file is a partition of ``legacy_files`` keyed by its path relative to the migration
folder. Loading is idempotent because a file's sha256 is registered once: a re-run or a
resumed backfill skips what is already in ``headend_files`` (status ``duplicate``).
Files are left where they are (a migration folder is not a landing zone). A compressed file
(``.zip``, ``.gz``) is one partition whose members are loaded as deliveries of their own, so the
counts are per delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.services.ingestion import DeliveryError, FileSummary, clip, ingest_path
from smartmdm_pipelines.store.store import Store


def legacy_files(folder: Path) -> list[str]:
    """Partition keys: every file below ``folder`` (posix relative paths, sorted, hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"migration folder {folder} does not exist")
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


@dataclass
class ChunkReport:
    """What a chunk did: ``files`` of the folder, and per delivery (a file or a member of a
    compressed one) loaded, skipped (already loaded) or rejected."""

    files: int = 0
    loaded: int = 0
    skipped: int = 0
    rejected: int = 0
    reads: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    read_days: set[str] = field(default_factory=set)

    @property
    def reads_per_second(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0

    def as_metadata(self) -> dict:
        return {
            "files": self.files,
            "loaded": self.loaded,
            "skipped_already_loaded": self.skipped,
            "rejected": self.rejected,
            "reads": self.reads,
            "seconds": round(self.seconds, 2),
            "reads_per_second": round(self.reads_per_second),
        }


def migrate_files(
    store: Store,
    folder: Path,
    keys: Iterable[str],
    config: UtilityConfig,
    progress: Callable[[int, int, FileSummary], None] | None = None,
) -> ChunkReport:
    """Load the files named by ``keys`` (relative to ``folder``); safe to repeat."""
    keys = list(keys)
    report = ChunkReport(files=len(keys))
    started = time.perf_counter()
    for number, key in enumerate(keys, start=1):
        try:
            summaries = ingest_path(store, Path(folder) / key, config, archive=False)
        except DeliveryError as exc:  # the file went away (or cannot be read) since it was registered
            report.rejected += 1
            report.failures.append(f"{key}: {exc}")
            continue
        for summary in summaries:
            name = key + ("!" + summary.file.rsplit("!", 1)[-1] if summary.container else "")
            if summary.status == "duplicate":
                report.skipped += 1
            elif summary.status == "rejected":
                report.rejected += 1
                reason = summary.errors[0]["reason"] if summary.errors else "rejected"
                report.failures.append(clip(f"{name}: {reason}", 400))
            else:
                report.loaded += 1
                report.reads += summary.interval_reads + summary.register_reads + summary.events
                report.read_days.update(summary.vee_days)
            if progress:
                progress(number, len(keys), summary)
    report.seconds = time.perf_counter() - started
    return report
