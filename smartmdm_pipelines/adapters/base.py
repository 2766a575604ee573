"""What every head-end adapter returns, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from smartmdm_pipelines.adapters.csv_mapping import CsvMapping
from smartmdm_pipelines.domain.readings import (
    EVENT_COLUMNS,
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    empty_frame,
)


class FileRejected(Exception):
    """The file as a whole cannot be loaded (nothing in it is trusted)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


@dataclass(frozen=True)
class SourceConfig:
    """Per-source settings from the utility config (time zone of naive timestamps, default unit,
    the zone of NEM12 days when it is not NEM time; ``csv``: the column mapping of a YAML-mapped
    CSV source)."""

    name: str = "default"
    timezone: str = "UTC"
    format: str | None = None
    default_unit: str | None = None
    csv: CsvMapping | None = None
    nem12_timezone: str | None = None


@dataclass
class ParsedFile:
    """Canonical frames of one file. ``records`` counts the data records read (lines, or
    records of multi-line formats); each is loaded or lands in ``rejected``."""

    format: str
    intervals: pd.DataFrame = field(default_factory=lambda: empty_frame(INTERVAL_READ_COLUMNS))
    registers: pd.DataFrame = field(default_factory=lambda: empty_frame(REGISTER_READ_COLUMNS))
    events: pd.DataFrame = field(default_factory=lambda: empty_frame(EVENT_COLUMNS))
    rejected: pd.DataFrame = field(default_factory=lambda: empty_frame(REJECTED_COLUMNS))
    records: int = 0
    fatal: str | None = None
    fatal_line: int | None = None

    @property
    def status(self) -> str:
        if self.fatal is not None:
            return "rejected"
        loaded = len(self.intervals) + len(self.registers) + len(self.events)
        if len(self.rejected) == 0:
            return "loaded"
        return "partially loaded" if loaded else "rejected"


class Adapter(Protocol):
    """One head-end format. ``sniff`` looks at the first bytes; ``parse`` reads the file."""

    name: str

    def sniff(self, head: bytes, path: Path) -> bool: ...

    def parse(self, path: Path, source: SourceConfig) -> ParsedFile: ...
