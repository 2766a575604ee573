"""Line-precise, columnar CSV reading shared by the CSV-based adapters.

pyarrow parses the file (fast, multi-threaded); rows with the wrong number of fields
are set aside with their physical line number so they can be rejected with a reason, and
so are lines whose quoted field is not closed on the line (they would otherwise swallow
the following lines and shift every line number after them).
"""

from __future__ import annotations

import csv
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from smartmdm_pipelines.adapters.base import FileRejected

UNTERMINATED_QUOTE = "a quoted field is not closed on this line (unbalanced double quote)"
_NON_BLANK = re.compile(rb"[^\r\n\t ]")
_BLOCK_SIZE = 1 << 22  # 4 MiB: enough blocks to keep both cores of a small server busy
# A line whose quoted fields all close on it, read the way pyarrow reads it: a quote opens a field
# only at its start, "" inside is a quote, and after the closing quote the rest of the field is
# text (possessive, so "" pairs are taken left to right as pyarrow does).
_FIELD = r'(?:"(?:[^"]|"")*+"[^,]*|[^",][^,]*|)'
_CLOSED_LINE = re.compile(rf"{_FIELD}(?:,{_FIELD})*")


def header_line(data: bytes) -> tuple[int, bytes]:
    """1-based line number and text of the first non-blank line (among the first 65)."""
    start = 0
    for number in range(1, 66):
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        if line.strip(b"\r \t"):
            return number, line.rstrip(b"\r")
        if end < 0:
            break
        start = end + 1
    raise FileRejected("the file is empty (expected a header row)")


def read_string_table(
    data: bytes, columns: list[str]
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str, str]]]:
    """Parse CSV ``data`` (already checked by ``decode_check``) whose header holds ``columns`` (in
    any order, extra columns allowed).

    Returns the table (the ``columns``, in that order, as large strings; blank lines dropped), the
    1-based line number of each row, and (line, text, reason) of the lines that are not rows:
    the wrong number of fields, or a quoted field not closed on the line, in line order.
    """
    head_no, head = header_line(data)
    if head.count(b'"') & 1 and not _valid_csv(head.decode("utf-8")):
        raise FileRejected("the header has an unbalanced double quote", head_no)
    names = [h.strip().strip('"').strip() for h in head.decode("utf-8").split(",")]
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileRejected(f"header is missing column(s) {missing}; expected {columns}", head_no)
    start = _offset_after_line(data, head_no)
    if _NON_BLANK.search(data, start) is None:
        empty = pa.table({c: pa.array([], pa.large_string()) for c in columns})
        return empty, np.zeros(0, dtype=np.int64), []
    first = head_no + 1
    unterminated: list[tuple[int, str, str]] = []
    # the body is read in place (no copy of a large file) unless lines must be blanked
    body = _Body(data, start)
    quoted = body.has_quote()
    if quoted:
        blanked, unterminated = blank_unterminated_lines(body.bytes(), first)
        body = _Body(blanked)
    table, bad_texts, body, too_long = _read_or_blank_long_lines(body, names, columns, first)
    unterminated = sorted(unterminated + too_long)
    # A line can also be left open with an even number of quotes (a stray quote inside an
    # unquoted field, then an opening one): then pyarrow returns fewer rows than lines.
    if quoted and table.num_rows + len(bad_texts) < body.line_count():
        blanked, more = blank_unterminated_lines(body.bytes(), first, every_quoted_line=True)
        if more:
            body = _Body(blanked)
            unterminated = sorted(unterminated + more)
            table, bad_texts = _read(body, names, columns)
    line_numbers = np.arange(first, first + table.num_rows, dtype=np.int64)
    bad: list[tuple[int, str, str]] = []
    if bad_texts:
        line_numbers, bad = _locate_bad_rows(body, head_no, bad_texts, len(names))
    if unterminated:
        bad = sorted(bad + unterminated)
    # blank lines parse as all-empty rows: drop them (they are not records)
    blank = _blank_rows(table, columns)
    if blank is not None:
        table = drop_rows(table, blank)
        line_numbers = line_numbers[: len(blank)][~blank]
    return table, line_numbers[: table.num_rows], bad


def drop_rows(table: pa.Table, drop: np.ndarray, *, max_slices: int = 1_000) -> pa.Table:
    """``table`` without the rows of ``drop``. When there are at most ``max_slices`` of them (blank
    lines, rejected rows) the rest is kept as zero-copy slices (one chunk each): a filter copies
    every column, which took 0.7-2 s for a 6.5-million-row file with 0.1 % rejected rows."""
    rows = np.flatnonzero(drop)
    if len(rows) == 0:
        return table
    if len(rows) > max_slices:
        return table.filter(pa.array(~drop))
    starts = np.concatenate([[0], rows + 1])
    ends = np.concatenate([rows, [table.num_rows]])
    pieces = [table.slice(start, end - start) for start, end in zip(starts, ends, strict=True) if end > start]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


class _Body:
    """The lines after the header: ``data[start:]``, without copying it."""

    def __init__(self, data: bytes, start: int = 0) -> None:
        self.data, self.start = data, start

    def buffer(self) -> pa.Buffer:
        return pa.py_buffer(self.data).slice(self.start)

    def bytes(self) -> bytes:
        return self.data[self.start :] if self.start else self.data

    def has_quote(self) -> bool:
        return self.data.find(b'"', self.start) >= 0

    def line_count(self) -> int:
        return _line_count(self.data, self.start)


def blank_unterminated_lines(
    body: bytes, first_line: int, *, every_quoted_line: bool = False
) -> tuple[bytes, list[tuple[int, str, str]]]:
    """Lines of ``body`` (whose first line is ``first_line``) with a quoted field not closed on the
    line, blanked out (they would swallow the following lines) and returned as rejected
    (line, text, reason).

    The lines with an odd number of double quotes are checked with the csv module: one that is
    not valid CSV is rejected (a stray quote inside an unquoted field, ``5/8"``, is valid).
    ``every_quoted_line`` also checks the others, rejecting exactly those pyarrow would read
    past their end (an even count can leave a field open: ``5/8",x,"open``)."""
    broken: list[tuple[int, str, str]] = []
    blank: list[tuple[int, int]] = []
    for index, start, end in _quoted_lines(body, odd_only=not every_quoted_line):
        line = body[start:end]
        odd = line.count(b'"') & 1
        if not odd and not every_quoted_line:
            continue
        text = line.decode("utf-8").rstrip("\r")
        if _valid_csv(text) if odd else _closed(text):
            continue
        broken.append((first_line + index, text, UNTERMINATED_QUOTE))
        blank.append((start, end))
    if not broken:
        return body, []
    pieces, kept_from = [], 0
    for start, end in blank:  # the line's text goes, its newline stays: line numbers do not move
        pieces.append(body[kept_from:start])
        kept_from = end
    pieces.append(body[kept_from:])
    return b"".join(pieces), broken


def _quoted_lines(body: bytes, odd_only: bool) -> list[tuple[int, int, int]]:
    """(0-based line index, start, end offsets without the newline) of the lines holding a double
    quote (``odd_only``: or at least those with an odd count), in order. Few lines have quotes in
    most exports: they are found with ``bytes.find`` (memchr speed); when most lines do (every
    field quoted), splitting the lines is faster."""
    spans: list[tuple[int, int, int]] = []
    size, index, counted = len(body), 0, 0
    at = body.find(b'"')
    while at >= 0:
        start = body.rfind(b"\n", 0, at) + 1
        end = body.find(b"\n", at)
        end = size if end < 0 else end
        index += body.count(b"\n", counted, start)
        counted = start
        spans.append((index, start, end))
        if len(spans) > 10_000 and len(spans) * 1000 > end:  # dense: more than a line per kB
            return _quoted_lines_by_split(body, odd_only)
        at = body.find(b'"', end)
    return spans


def _quoted_lines_by_split(body: bytes, odd_only: bool) -> list[tuple[int, int, int]]:
    spans, start = [], 0
    for index, line in enumerate(body.split(b"\n")):
        end = start + len(line)
        if (line.count(b'"') & 1) if odd_only else (b'"' in line):
            spans.append((index, start, end))
        start = end + 1
    return spans


def reparse_lines(
    split: pa.ListArray, lines: pa.Array, rows: np.ndarray, delimiter: str = ",", quote: str = '"'
) -> tuple[pa.ListArray, np.ndarray]:
    """``split`` (the fields of ``lines`` split plainly on the delimiter) with the lines ``rows``
    (ascending indices; the rare ones whose quoting needs it) parsed by the csv module instead.
    Returns the fields and the mask of lines whose quoting is broken (left split plainly: the
    caller rejects them)."""
    unbalanced = np.zeros(len(lines), dtype=bool)
    parsed: list[list[str]] = []
    for i in rows:
        text = lines[int(i)].as_py()
        try:
            parsed.append(next(csv.reader([text], delimiter=delimiter, quotechar=quote, strict=True)))
        except (csv.Error, StopIteration):
            unbalanced[i] = True
            parsed.append(text.split(delimiter))
    plain = np.setdiff1d(np.arange(len(lines)), rows)
    merged = pa.concat_arrays(
        [split.take(pa.array(plain)).cast(pa.list_(pa.string())), pa.array(parsed, pa.list_(pa.string()))]
    )
    order = np.concatenate([plain, rows])
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return merged.take(pa.array(inverse)), unbalanced


def _valid_csv(text: str) -> bool:
    """Whether one line of text is valid CSV (RFC 4180 quoting)."""
    try:
        next(csv.reader([text], strict=True), None)
    except csv.Error:
        return False
    return True


def _closed(text: str) -> bool:
    """Whether every quoted field of one line of CSV text is closed on the line, as pyarrow reads it."""
    return _CLOSED_LINE.fullmatch(text) is not None


def _read(body: _Body, names: list[str], columns: list[str]) -> tuple[pa.Table, list[str]]:
    bad_texts: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_texts.append(row.text)
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(body.buffer()),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=True, block_size=_BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            # large_string: what pandas' "str" columns hold, so they convert without a copy
            column_types={n: pa.large_string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=columns,
            check_utf8=False,  # decode_check has validated every byte of the file
        ),
    )
    return table, bad_texts


def _read_or_blank_long_lines(
    body: _Body, names: list[str], columns: list[str], first_line: int
) -> tuple[pa.Table, list[str], _Body, list[tuple[int, str, str]]]:
    """``_read``; when a row is longer than pyarrow's block (it then fails the whole file with
    "straddling object straddles two block boundaries"), those lines are rejected on their own
    (with their line number, quoting at most 200 characters) and the rest is read."""
    try:
        table, bad_texts = _read(body, names, columns)
        return table, bad_texts, body, []
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    blanked, too_long = blank_long_lines(body.bytes(), first_line, _BLOCK_SIZE)
    body = _Body(blanked)
    try:
        table, bad_texts = _read(body, names, columns)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
        raise FileRejected(
            f"a row is too long to be read (the CSV reader takes at most {_BLOCK_SIZE >> 20} MiB at a time)"
        ) from None
    return table, bad_texts, body, too_long


def blank_long_lines(body: bytes, first_line: int, limit: int) -> tuple[bytes, list[tuple[int, str, str]]]:
    """Lines of ``body`` longer than ``limit`` bytes, blanked (their newline stays, so line numbers
    do not move) and returned as rejected (line, the first 200 characters, reason)."""
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 0x0A)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(body)]])
    long = np.flatnonzero(ends - starts > limit)
    if len(long) == 0:
        return body, []
    rejected, pieces, kept_from = [], [], 0
    for index in long.tolist():
        start, end = int(starts[index]), int(ends[index])
        text = body[start : start + 200].decode("utf-8", "replace")
        rejected.append(
            (
                first_line + index,
                text + "…",
                f"a field longer than {limit >> 20} MiB (the line is {end - start:,} bytes; a meter data "
                "row is a few hundred)",
            )
        )
        pieces.append(body[kept_from:start])
        kept_from = end
    pieces.append(body[kept_from:])
    return b"".join(pieces), rejected


def _line_count(data: bytes, start: int = 0) -> int:
    """Lines of ``data[start:]`` (a last line without a newline counts)."""
    return data.count(b"\n", start) + (0 if data.endswith(b"\n") or len(data) == start else 1)


def _blank_rows(table: pa.Table, columns: list[str]) -> np.ndarray | None:
    """Rows whose fields are all empty (blank lines), or None when there is none."""
    if table.num_rows == 0:
        return None
    blank = None
    for name in columns:
        lengths = pc.binary_length(table[name])
        if blank is None and pc.min(lengths).as_py() > 0:  # no empty field, so no blank row
            return None
        empty = pc.equal(lengths, 0)
        blank = empty if blank is None else pc.and_(blank, empty)
        if not pc.any(blank).as_py():
            return None
    return blank.to_numpy(zero_copy_only=False)


def _offset_after_line(data: bytes, line_no: int) -> int:
    offset = 0
    for _ in range(line_no):
        nxt = data.find(b"\n", offset)
        if nxt < 0:
            return len(data)
        offset = nxt + 1
    return offset


def _locate_bad_rows(
    body: _Body, head_no: int, bad_texts: list[str], expected: int
) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Only for files with malformed rows: the line numbers of the good rows and (line, text,
    reason) of the bad ones. pyarrow reports a malformed row by its text alone, and out of order
    when blocks are parsed in parallel; a line whose text is that of a malformed row is one, so
    the lines equal to any of them are found at once (the lines are an Arrow view of the bytes)."""
    data, start = body.data, body.start
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, offset=start) == 0x0A) + 1
    size = len(data) - start
    last = [size] if len(ends) == 0 or ends[-1] < size else []  # a last line without a newline
    offsets = np.concatenate([[0], ends, last]).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data).slice(start)
    )
    wanted = set()
    for text in bad_texts:
        text = text.rstrip("\r")
        wanted.update((text, text + "\r", text + "\n", text + "\r\n"))
    hit = pc.is_in(lines, value_set=pa.array(sorted(wanted), pa.large_string())).to_numpy(
        zero_copy_only=False
    )
    rows = np.flatnonzero(hit)
    if len(rows) != len(bad_texts):  # cannot happen with \n line ends: the line by line way
        return _locate_bad_rows_by_lines(body.bytes(), head_no, bad_texts, expected)
    first = head_no + 1
    bad = []
    for i, line in zip(rows.tolist(), lines.take(pa.array(rows)).to_pylist(), strict=True):
        text = line.removesuffix("\n").rstrip("\r")
        bad.append((first + i, text, f"expected {expected} fields, found {len(text.split(','))}"))
    return first + np.flatnonzero(~hit), bad


def _locate_bad_rows_by_lines(
    body: bytes, head_no: int, bad_texts: list[str], expected: int
) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Slow path: walk the physical lines and match the bad texts (in any order)."""
    lines = body.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    good: list[int] = []
    bad: list[tuple[int, str, str]] = []
    pending = Counter(text.rstrip("\r") for text in bad_texts)
    for i, text in enumerate(lines):
        number = head_no + 1 + i
        text = text.rstrip("\r")
        if pending[text] > 0:
            pending[text] -= 1
            bad.append((number, text, f"expected {expected} fields, found {len(text.split(','))}"))
        else:
            good.append(number)
    return np.asarray(good, dtype=np.int64), bad
