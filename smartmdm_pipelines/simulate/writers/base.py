"""What a head-end writer receives: deliveries (which file) and canonical Arrow tables (which rows).

The generator decides *what* each head-end delivers and when (one file per head-end, record
type and operating day, plus re-deliveries); a writer decides *how* it looks on disk. Adding a
format (CMEP, Green Button, NEM12, a vendor CSV) is one module that subclasses
``HeadEndWriter`` and registers itself in ``writers.REGISTRY``.

Canonical tables, one row per read or event, already in file order:

- intervals: meter_id, channel, interval_end (timestamp[s, UTC]), interval_seconds (int32),
  value (float64, null = no read), unit, quality
- registers: meter_id, channel, read_at (timestamp[s, UTC]), value, unit, quality
- events: meter_id, event_at (timestamp[s, UTC]), event_type, code

String columns are dictionary-encoded (int32 indices) so they cost little until written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

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
