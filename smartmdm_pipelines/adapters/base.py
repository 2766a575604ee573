"""What every head-end adapter is (the ``Adapter`` template), returns and raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from smartmdm_pipelines.adapters.csv_mapping import CsvMapping
from smartmdm_pipelines.domain.readings import (
    EVENT_COLUMNS,
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    empty_frame,
)

BOM = b"\xef\xbb\xbf"


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


class Adapter(ABC):
    """One head-end format, as a template: ``parse`` checks the source's time zone (when the
    format writes naive local times in it), lets ``read`` fill the result and turns a
    ``FileRejected`` into the file's fatal result. A format is a subclass named ``…Adapter``
    with ``name``, ``sniff`` and ``read``, exported by its module as ``ADAPTER`` and listed in
    registry.py."""

    name: str
    zone_in_source: ClassVar[bool] = False  # naive local times in ``SourceConfig.timezone``

    @abstractmethod
    def sniff(self, head: bytes, path: Path) -> bool:
        """Whether the file's first bytes are this format (auto-detection)."""

    @abstractmethod
    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        """Fill ``result`` from the file; raise ``FileRejected`` when nothing in it can be trusted."""

    def parse(self, path: Path, source: SourceConfig) -> ParsedFile:
        """The file's canonical frames, rejected rows with their reasons, or its fatal reason."""
        result = ParsedFile(format=self.name)
        try:
            if self.zone_in_source:
                check_zone(source)
            self.read(Path(path), source, result)
        except FileRejected as exc:
            result.fatal, result.fatal_line = exc.reason, exc.line
        return result

    @staticmethod
    def text(path: Path) -> bytes:
        """The file's bytes without a BOM, checked to be UTF-8 text (else rejected with the line)."""
        return decode_check(path.read_bytes())


def check_zone(source: SourceConfig) -> None:
    """Reject the file when the source's configured time zone is unknown."""
    try:
        ZoneInfo(source.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FileRejected(
            f"unknown time zone {source.timezone!r} configured for source {source.name!r}"
        ) from None


def decode_check(data: bytes) -> bytes:
    """Strip a UTF-8 BOM and make sure the bytes are UTF-8; otherwise reject with the line."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if data.isascii():  # the common case, and much faster than decoding
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileRejected(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (expected UTF-8; "
            "re-export the file as UTF-8)",
            line,
        ) from None
    return data
