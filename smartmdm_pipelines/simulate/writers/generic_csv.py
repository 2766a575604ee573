"""Smart MDM generic CSV (docs/generic_csv.md): header row, UTC ``Z`` instants, empty = null.

Files: ``headend/{headend}_{label}_{record}.csv``, re-deliveries
``headend/{headend}_{label}_redelivery.csv`` (interval records) and resends
``headend/{headend}_{label}_{record}_resend.csv``.

Speed: rows are written by ``pyarrow.csv`` without quoting (no value contains a separator,
quote or newline). Instants are formatted once per distinct value (a file has few distinct
interval ends) and written as a dictionary column.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .base import SCHEMAS, VARIANT_REDELIVERY, Delivery, HeadEndWriter

HEADERS = {record: ",".join(schema.names) for record, schema in SCHEMAS.items()}
MAX_OPEN_FILES = 128
_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65536)


def iso_dictionary(epochs: np.ndarray) -> pa.DictionaryArray:
    """int64 epoch seconds -> dictionary array of ``YYYY-MM-DDTHH:MM:SSZ`` strings."""
    codes, uniques = pd.factorize(epochs, sort=False)
    text = np.char.add(np.datetime_as_string(np.asarray(uniques).astype("datetime64[s]"), unit="s"), "Z")
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(text))


def to_csv_table(table: pa.Table) -> pa.Table:
    """Replace the timestamp column by ISO strings (the rest is written as is)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            epochs = column.combine_chunks().cast(pa.int64()).to_numpy()
            columns.append(iso_dictionary(epochs))
        else:
            columns.append(column)
    return pa.table(columns, names=table.column_names)


class GenericCsvWriter(HeadEndWriter):
    """Writes the generic CSV format; keeps up to ``MAX_OPEN_FILES`` files open, reopens others
    for append (long windows have thousands of day files)."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self._open: OrderedDict[Delivery, tuple[pa.NativeFile, pacsv.CSVWriter | None]] = OrderedDict()
        self._known: set[Delivery] = set()
        self._duplicates: list[tuple[Delivery, Delivery]] = []

    def path_for(self, delivery: Delivery) -> str:
        if delivery.variant == VARIANT_REDELIVERY:
            return f"headend/{delivery.headend}_{delivery.label}_{VARIANT_REDELIVERY}.csv"
        suffix = f"_{delivery.variant}" if delivery.variant else ""
        return f"headend/{delivery.headend}_{delivery.label}_{delivery.record}{suffix}.csv"

    def _handle(self, delivery: Delivery) -> tuple[pa.NativeFile, pacsv.CSVWriter | None]:
        if delivery in self._open:
            self._open.move_to_end(delivery)
            return self._open[delivery]
        path = self.out_dir / self.path_for(delivery)
        if delivery in self._known:
            sink = pa.OSFile(str(path), "ab")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = pa.OSFile(str(path), "wb")
            sink.write((HEADERS[delivery.record] + "\n").encode())
            self._known.add(delivery)
        self._open[delivery] = (sink, None)
        while len(self._open) > MAX_OPEN_FILES:
            self._close_one(next(iter(self._open)))
        return self._open[delivery]

    def _close_one(self, delivery: Delivery) -> None:
        sink, writer = self._open.pop(delivery)
        if writer is not None:
            writer.close()
        sink.close()

    def open(self, delivery: Delivery) -> None:
        self._handle(delivery)

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        if table.num_rows == 0:
            self._handle(delivery)
            return
        csv_table = to_csv_table(table)
        sink, writer = self._handle(delivery)
        if writer is None:
            writer = pacsv.CSVWriter(sink, csv_table.schema, write_options=_OPTIONS)
            self._open[delivery] = (sink, writer)
        writer.write_table(csv_table)

    def duplicate(self, source: Delivery, target: Delivery) -> None:
        self._duplicates.append((source, target))

    def close(self) -> list[str]:
        for delivery in list(self._open):
            self._close_one(delivery)
        paths = {self.path_for(d) for d in self._known}
        for source, target in self._duplicates:
            shutil.copyfile(self.out_dir / self.path_for(source), self.out_dir / self.path_for(target))
            paths.add(self.path_for(target))
        return sorted(paths)
