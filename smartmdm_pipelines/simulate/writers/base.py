"""What a head-end writer receives: deliveries (which file) and canonical Arrow tables (which rows).

The generator decides *what* each head-end delivers and when (one file per head-end, record
type and operating day, plus re-deliveries); a writer decides *how* it looks on disk. Adding a
format (CMEP, Green Button, NEM12, a vendor CSV) is one module that subclasses
``HeadEndWriter`` — for one file per delivery ``CsvFileWriter`` or ``TextFileWriter`` (file names,
open-file cache, duplicates, trailers) — and registers itself in ``writers.REGISTRY``.

Canonical tables, one row per read or event, already in file order:

- intervals: meter_id, channel, interval_end (timestamp[s, UTC]), interval_seconds (int32),
  value (float64, null = no read), unit, quality
- registers: meter_id, channel, read_at (timestamp[s, UTC]), value, unit, quality
- events: meter_id, event_at (timestamp[s, UTC]), event_type, code

String columns are dictionary-encoded (int32 indices) so they cost little until written.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv

RECORD_INTERVALS = "intervals"
RECORD_REGISTERS = "registers"
RECORD_EVENTS = "events"

VARIANT_REDELIVERY = "redelivery"
VARIANT_RESEND = "resend"

_DICT = pa.dictionary(pa.int32(), pa.string())
_TS = pa.timestamp("s", tz="UTC")

SCHEMAS = {
    RECORD_INTERVALS: pa.schema(
        [
            ("meter_id", _DICT),
            ("channel", _DICT),
            ("interval_end", _TS),
            ("interval_seconds", pa.int32()),
            ("value", pa.float64()),
            ("unit", _DICT),
            ("quality", _DICT),
        ]
    ),
    RECORD_REGISTERS: pa.schema(
        [
            ("meter_id", _DICT),
            ("channel", _DICT),
            ("read_at", _TS),
            ("value", pa.float64()),
            ("unit", _DICT),
            ("quality", _DICT),
        ]
    ),
    RECORD_EVENTS: pa.schema(
        [("meter_id", _DICT), ("event_at", _TS), ("event_type", _DICT), ("code", _DICT)]
    ),
}


@dataclass(frozen=True, order=True)
class Delivery:
    """One head-end file: ``label`` is the operating day (YYYYMMDD) or month (YYYYMM);
    ``variant`` is empty, ``redelivery`` (late corrected values) or ``resend`` (a duplicate)."""

    headend: str
    record: str
    label: str
    variant: str = ""


class HeadEndWriter(ABC):
    """Writes deliveries under ``out_dir``; rows of one delivery arrive in several appends."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    @abstractmethod
    def path_for(self, delivery: Delivery) -> str:
        """The delivery's file, relative to out_dir (posix separators)."""

    @abstractmethod
    def open(self, delivery: Delivery) -> None:
        """Create the file even if no rows will follow (an empty delivery is still a delivery)."""

    @abstractmethod
    def write(self, delivery: Delivery, table: pa.Table) -> None:
        """Append rows (a table in the canonical schema of ``delivery.record``)."""

    @abstractmethod
    def duplicate(self, source: Delivery, target: Delivery) -> None:
        """Deliver ``source`` again, byte for byte, under ``target``'s name (after ``close``)."""

    @abstractmethod
    def close(self) -> list[str]:
        """Flush and close everything; return the relative paths written, sorted."""


class FileWriter(HeadEndWriter):
    """A format that writes one file per delivery, ``headend/{headend}_{label}_{record}[_{variant}]``
    (a redelivery: ``…_{label}_redelivery``) with the format's ``suffix``. At most
    ``max_open_files`` handles stay open (long windows have thousands of day files): the least
    recently used is closed and reopened for append when more rows come. A format gives
    ``_create`` (a new file with its header), ``_reopen`` and, when its files end with a trailer,
    ``_trailer``; duplicates are copied byte for byte at ``close``."""

    suffix: ClassVar[str]
    max_open_files: ClassVar[int] = 128

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self._open: OrderedDict[Delivery, Any] = OrderedDict()
        self._known: dict[Delivery, None] = {}  # every file created, in order
        self._duplicates: list[tuple[Delivery, Delivery]] = []

    def path_for(self, delivery: Delivery) -> str:
        if delivery.variant == VARIANT_REDELIVERY:
            return f"headend/{delivery.headend}_{delivery.label}_{VARIANT_REDELIVERY}{self.suffix}"
        variant = f"_{delivery.variant}" if delivery.variant else ""
        return f"headend/{delivery.headend}_{delivery.label}_{delivery.record}{variant}{self.suffix}"

    @abstractmethod
    def _create(self, path: Path, delivery: Delivery) -> Any:
        """Open a new file for writing, with the format's header; the handle."""

    @abstractmethod
    def _reopen(self, path: Path) -> Any:
        """Open a file written before for append; the handle."""

    def _trailer(self, delivery: Delivery) -> str | bytes | None:
        """What closes the file (written once, at ``close``)."""
        return None

    def _close_handle(self, handle: Any) -> None:
        handle.close()

    def _handle(self, delivery: Delivery) -> Any:
        if delivery in self._open:
            self._open.move_to_end(delivery)
            return self._open[delivery]
        path = self.out_dir / self.path_for(delivery)
        if delivery in self._known:
            handle = self._reopen(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._create(path, delivery)
            self._known[delivery] = None
        self._open[delivery] = handle
        while len(self._open) > self.max_open_files:
            self._close_handle(self._open.pop(next(iter(self._open))))
        return handle

    def open(self, delivery: Delivery) -> None:
        self._handle(delivery)

    def duplicate(self, source: Delivery, target: Delivery) -> None:
        self._duplicates.append((source, target))

    def close(self) -> list[str]:
        for delivery in self._known:
            trailer = self._trailer(delivery)
            if trailer is not None:
                self._handle(delivery).write(trailer)
            if delivery in self._open:
                self._close_handle(self._open.pop(delivery))
        paths = {self.path_for(d) for d in self._known}
        for source, target in self._duplicates:
            shutil.copyfile(self.out_dir / self.path_for(source), self.out_dir / self.path_for(target))
            paths.add(self.path_for(target))
        return sorted(paths)


class CsvFileWriter(FileWriter):
    """A CSV format written with Arrow's CSV writer behind its header line (``header``)."""

    suffix = ".csv"
    options = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65536)

    @abstractmethod
    def header(self, delivery: Delivery) -> bytes:
        """The header line of the delivery's file (with its line end)."""

    def _create(self, path: Path, delivery: Delivery) -> list:
        sink = pa.OSFile(str(path), "wb")
        sink.write(self.header(delivery))
        return [sink, None]  # the CSV writer comes with the first rows (their schema)

    def _reopen(self, path: Path) -> list:
        return [pa.OSFile(str(path), "ab"), None]

    def _close_handle(self, handle: list) -> None:
        sink, writer = handle
        if writer is not None:
            writer.close()
        sink.close()

    def _write_rows(self, delivery: Delivery, rows: pa.Table) -> None:
        handle = self._handle(delivery)
        if handle[1] is None:
            handle[1] = pacsv.CSVWriter(handle[0], rows.schema, write_options=self.options)
        handle[1].write_table(rows)


class TextFileWriter(FileWriter):
    """A text format written through a Python file handle (UTF-8, ``\\n`` line ends)."""

    def _create(self, path: Path, delivery: Delivery) -> IO[str]:
        handle = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()
        handle.write(self.header(delivery))
        return handle

    def _reopen(self, path: Path) -> IO[str]:
        return open(path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()

    def header(self, delivery: Delivery) -> str:
        """The start of the delivery's file (empty by default)."""
        return ""
