"""What every head-end adapter is (the ``Adapter`` template), returns and raises."""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
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
MAX_LINE_BYTES = 4 << 20  # a line longer than this is rejected on its own, before the adapter reads
_SCAN_PIECE = 1 << 20  # the file is scanned for long lines in pieces of this size (< MAX_LINE_BYTES)


MAX_FATAL_CHARS = 500  # a file's reason quotes short excerpts; a huge quoted value is clipped


class FileRejected(Exception):
    """The file as a whole cannot be loaded (nothing in it is trusted). The reason is one line of
    at most ``MAX_FATAL_CHARS`` characters, whatever it quotes."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        reason = " ".join(reason.split())
        if len(reason) > MAX_FATAL_CHARS:
            reason = reason[: MAX_FATAL_CHARS - 1] + "…"
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
    line_based: ClassVar[bool] = True  # one record per line: lines over MAX_LINE_BYTES are cut out
    reasons_start_with_line: ClassVar[bool] = False  # "line 17: …" (NEM12)

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
            scan = self.line_based and _newline_is_a_byte(source)
            with without_long_lines(Path(path), MAX_LINE_BYTES if scan else None) as (readable, cut):
                self.read(readable, source, result)
            if cut:
                add_long_lines(result, cut, self.reasons_start_with_line)
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


# ----------------------------------------------------------------- lines too long to be records
@dataclass(frozen=True)
class LongLine:
    """A line cut out of the file before parsing: its number, where it is, its first bytes."""

    line: int
    start: int
    end: int  # the offset of its newline (or of the end of the file)
    head: bytes

    @property
    def reason(self) -> str:
        return (
            f"a field longer than {MAX_LINE_BYTES >> 20} MiB (the line is {self.end - self.start:,} bytes; "
            "a meter data row is a few hundred)"
        )


def _newline_is_a_byte(source: SourceConfig) -> bool:
    """Whether a line end is the byte 0x0A in the source's encoding (not in UTF-16 or UTF-32)."""
    encoding = (source.csv.encoding if source.csv is not None else "utf-8").lower().replace("_", "-")
    return not encoding.startswith(("utf-16", "utf-32", "utf16", "utf32"))


def long_lines(path: Path, limit: int) -> list[LongLine]:
    """The lines of the file longer than ``limit`` bytes, found by streaming it in 1 MiB pieces
    (memory stays bounded whatever the length of a line). Lines inside one piece are shorter
    than the piece, so only the line each piece continues and the one it leaves open are measured."""
    found: list[tuple[int, int, int]] = []
    line, start, pos = 1, 0, 0
    with open(path, "rb") as handle:
        while piece := handle.read(_SCAN_PIECE):
            first = piece.find(b"\n")
            if first >= 0:
                if pos + first - start > limit:
                    found.append((line, start, pos + first))
                line += piece.count(b"\n")
                start = pos + piece.rfind(b"\n") + 1
            pos += len(piece)
        if pos - start > limit:
            found.append((line, start, pos))
        out = []
        for number, begin, end in found:
            handle.seek(begin)
            out.append(LongLine(number, begin, end, handle.read(200)))
    return out


@contextmanager
def without_long_lines(path: Path, limit: int | None) -> Iterator[tuple[Path, list[LongLine]]]:
    """The file to parse and the lines cut out of it: the file itself when no line is longer than
    ``limit``; else a copy (streamed, in a temporary folder) where each long line is left empty, so
    line numbers do not move. A long first line (the header, or the first record) rejects the file."""
    found = long_lines(path, limit) if limit is not None else []
    if not found:
        yield path, []
        return
    with open(path, "rb") as handle:
        head = handle.read(found[0].start)
    if not head.strip():  # nothing but blank lines before it: the header or first record
        first = found[0]
        raise FileRejected(
            f"the line is {first.end - first.start:,} bytes long, more than the {limit >> 20} MiB a line "
            "may have (a header or meter data row is a few hundred bytes)",
            first.line,
        )
    with tempfile.TemporaryDirectory(prefix="smartmdm-long-lines-") as folder:
        copy = Path(folder) / path.name
        with open(path, "rb") as source, open(copy, "wb") as out:
            at = 0
            for cut in [*found, None]:
                stop = cut.start if cut is not None else None
                while stop is None or at < stop:
                    piece = source.read(_SCAN_PIECE if stop is None else min(_SCAN_PIECE, stop - at))
                    if not piece:
                        break
                    out.write(piece)
                    at += len(piece)
                if cut is not None:
                    source.seek(cut.end)
                    at = cut.end
        yield copy, found


def add_long_lines(result: ParsedFile, cut: list[LongLine], with_line: bool = False) -> None:
    """Each line cut out is a record of the file, rejected with its line and reason."""
    rows = pd.DataFrame(
        {
            "line": [c.line for c in cut],
            "raw_text": [c.head.decode("utf-8", "replace") + "…" for c in cut],
            "reason": [f"line {c.line}: {c.reason}" if with_line else c.reason for c in cut],
        }
    ).astype(REJECTED_COLUMNS)
    result.rejected = (
        pd.concat([result.rejected, rows], ignore_index=True).sort_values("line", kind="stable")
        if len(result.rejected)
        else rows
    ).reset_index(drop=True)
    result.records += len(cut)
