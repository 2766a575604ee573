"""Line-precise, columnar CSV reading shared by the CSV-based adapters.

pyarrow parses the file (fast, multi-threaded); rows with the wrong number of fields
are set aside with their physical line number so they can be rejected with a reason.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from smartmdm_pipelines.adapters.base import FileRejected

BOM = b"\xef\xbb\xbf"


def decode_check(data: bytes) -> bytes:
    """Strip a UTF-8 BOM and make sure the bytes are UTF-8; otherwise reject with the line."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
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


def header_line(data: bytes) -> tuple[int, bytes]:
    """1-based line number and text of the first non-blank line."""
    for number, line in enumerate(data.split(b"\n", 64), start=1):
        if line.strip(b"\r \t"):
            return number, line.rstrip(b"\r")
    raise FileRejected("the file is empty (expected a header row)")


def read_string_table(
    data: bytes, columns: list[str]
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str, str]]]:
    """Parse CSV ``data`` whose header holds ``columns`` (in any order, extra columns allowed).

    Returns the table (all columns as strings, blank lines dropped), the 1-based line number
    of each row, and (line, text, reason) of rows with the wrong number of fields.
    """
    head_no, head = header_line(data)
    names = [h.strip().strip('"').strip() for h in head.decode("utf-8").split(",")]
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileRejected(f"header is missing column(s) {missing}; expected {columns}", head_no)
    body_start = _offset_after_line(data, head_no)
    body = data[body_start:]
    if not body.strip(b"\r\n\t "):
        empty = pa.table({c: pa.array([], pa.string()) for c in columns})
        return empty, np.zeros(0, dtype=np.int64), []
    bad_texts: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_texts.append(row.text)
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=columns,
        ),
    )
    line_numbers = np.arange(head_no + 1, head_no + 1 + table.num_rows + len(bad_texts), dtype=np.int64)
    bad: list[tuple[int, str, str]] = []
    if bad_texts:
        line_numbers, bad = _locate_bad_rows(body, head_no, bad_texts, len(names))
    # blank lines parse as all-empty rows: drop them (they are not records)
    blank = np.ones(table.num_rows, dtype=bool)
    for name in columns:
        blank &= np.asarray(
            pa.compute.equal(pa.compute.utf8_length(table[name]), 0).to_numpy(zero_copy_only=False)
        )
    if blank.any():
        keep = ~blank
        table = table.filter(pa.array(keep))
        line_numbers = line_numbers[: len(keep)][keep]
    return table, line_numbers[: table.num_rows], bad


def _offset_after_line(data: bytes, line_no: int) -> int:
    offset = 0
    for _ in range(line_no):
        nxt = data.find(b"\n", offset)
        if nxt < 0:
            return len(data)
        offset = nxt + 1
    return offset


def _locate_bad_rows(
    body: bytes, head_no: int, bad_texts: list[str], expected: int
) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Slow path, only for files with malformed rows: find their physical lines in order."""
    lines = body.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    good: list[int] = []
    bad: list[tuple[int, str, str]] = []
    pending = iter(bad_texts)
    want = next(pending, None)
    for i, text in enumerate(lines):
        number = head_no + 1 + i
        if want is not None and text.rstrip("\r") == want.rstrip("\r"):
            fields = len(text.split(","))
            bad.append((number, text.rstrip("\r"), f"expected {expected} fields, found {fields}"))
            want = next(pending, None)
        else:
            good.append(number)
    return np.asarray(good, dtype=np.int64), bad
