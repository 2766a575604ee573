"""Smart MDM generic CSV (docs/generic_csv.md): header row, UTC ``Z`` instants, empty = null.

Files: ``headend/{headend}_{label}_{record}.csv``, re-deliveries
``headend/{headend}_{label}_redelivery.csv`` (interval records) and resends
``headend/{headend}_{label}_{record}_resend.csv``.

Speed: rows are written by ``pyarrow.csv`` without quoting (no value contains a separator,
quote or newline). Instants are formatted once per distinct value (a file has few distinct
interval ends) and written as a dictionary column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .base import SCHEMAS, CsvFileWriter, Delivery

HEADERS = {record: ",".join(schema.names) for record, schema in SCHEMAS.items()}


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


class GenericCsvWriter(CsvFileWriter):
    """Writes the generic CSV format (one file per delivery; see ``FileWriter``)."""

    def header(self, delivery: Delivery) -> bytes:
        return (HEADERS[delivery.record] + "\n").encode()

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        if table.num_rows == 0:
            self._handle(delivery)
            return
        self._write_rows(delivery, to_csv_table(table))
