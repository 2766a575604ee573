"""Vectorised row checks shared by adapters: each check marks rows with a reason (first wins)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

OFFSET_SUFFIX = r"(?:Z|[+-][0-9]{2}:?[0-9]{2})$"


class RowReasons:
    """Collects the first failing reason per row, without a Python loop over rows."""

    def __init__(self, n: int) -> None:
        self.reasons = np.full(n, None, dtype=object)

    def check(self, failed: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        failed = np.asarray(failed, dtype=bool) & (self.reasons == None)  # noqa: E711
        if not failed.any():
            return
        if isinstance(reason, pd.Series):
            self.reasons[failed] = reason.to_numpy(dtype=object)[failed]
        else:
            self.reasons[failed] = reason

    @property
    def bad(self) -> np.ndarray:
        return self.reasons != None  # noqa: E711


def check_rows(
    reasons: RowReasons, failed: pd.Series | np.ndarray, *parts: str | pd.Series | np.ndarray
) -> None:
    """Give rows of ``failed`` (that have no reason yet) the reason ``parts`` joined: texts are
    built only for those rows; a column part shows the row's value (40 characters at most)."""
    failed = np.asarray(failed, dtype=bool) & ~reasons.bad
    if not failed.any():
        return
    rows = np.flatnonzero(failed)
    text = pd.Series("", index=range(len(rows)), dtype="str")
    for part in parts:
        if isinstance(part, str):
            text = text + part
            continue
        values = pd.Series(np.asarray(part)[rows])
        if values.dtype.kind == "f":
            values = values.map(lambda v: f"{v:g}")
        text = text + values.astype("str").str.slice(0, 40)
    reasons.reasons[rows] = text.to_numpy(dtype=object)


def parse_utc_instants(text: pd.Series, column: str, reasons: RowReasons) -> pd.Series:
    """ISO-8601 instants that must carry an offset; naive or unparseable ones are rejected."""
    stripped = text.str.strip()
    has_offset = stripped.str.contains(OFFSET_SUFFIX, regex=True)
    parsed = pd.to_datetime(stripped.where(has_offset), format="ISO8601", utc=True, errors="coerce")
    reasons.check(stripped.eq(""), f"{column} is empty (expected an ISO-8601 instant with offset)")
    reasons.check(
        ~has_offset,
        column + " " + _quoted(stripped) + " has no UTC offset (expected e.g. 2024-03-10T06:15:00Z)",
    )
    reasons.check(parsed.isna(), column + " " + _quoted(stripped) + " is not a valid ISO-8601 instant")
    return parsed.astype("datetime64[us, UTC]")


def parse_numbers(text: pd.Series, column: str, reasons: RowReasons, allow_empty: bool) -> pd.Series:
    stripped = text.str.strip()
    numbers = pd.to_numeric(stripped.where(stripped.ne("")), errors="coerce")
    if not allow_empty:
        reasons.check(stripped.eq(""), f"{column} is empty (expected a number)")
    reasons.check(stripped.ne("") & numbers.isna(), column + " " + _quoted(stripped) + " is not a number")
    finite = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan)) | numbers.isna().to_numpy()
    reasons.check(~finite, column + " " + _quoted(stripped) + " is not a finite number")
    return numbers.astype("float64")


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.str.slice(0, 40) + "'"


# --- Arrow-native checks: the per-row work runs in pyarrow.compute, reasons only for failing rows ---

Reason = str | Callable[[np.ndarray], "pa.Array | np.ndarray | list[str]"]
_LEAF_ROWS = 64  # pieces of a chunk Arrow cannot cast are halved down to this size


class SparseReasons:
    """The first failing reason per row, for files where most rows pass: a mask, plus the
    reasons of the failing rows only (a reason may be a function of the failing row indices,
    so its text is built for those rows alone)."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self._rows: list[np.ndarray] = []
        self._texts: list[np.ndarray] = []

    def fail(self, failed: np.ndarray | pa.Array | pa.ChunkedArray | None, reason: Reason) -> None:
        if failed is None:
            return
        if isinstance(failed, pa.Array | pa.ChunkedArray):
            failed = arrow_mask(failed)
            if failed is None:
                return
        rows = np.flatnonzero(np.asarray(failed, dtype=bool) & ~self.bad)
        if len(rows) == 0:
            return
        self.bad[rows] = True
        if isinstance(reason, str):
            texts = np.full(len(rows), reason, dtype=object)
        else:
            made = reason(rows)
            if isinstance(made, pa.Array | pa.ChunkedArray):
                made = made.to_numpy(zero_copy_only=False)
            texts = np.asarray(made, dtype=object)
        self._rows.append(rows)
        self._texts.append(texts)

    def failures(self) -> tuple[np.ndarray, np.ndarray]:
        """(row indices in order, their reasons)."""
        if not self._rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
        rows = np.concatenate(self._rows)
        texts = np.concatenate(self._texts)
        order = np.argsort(rows, kind="stable")
        return rows[order], texts[order]


def arrow_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """A boolean Arrow array as a numpy mask (null = False), or None when no row is set."""
    if not pc.any(mask).as_py():
        return None
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def constant(text: pa.ChunkedArray) -> str | None:
    """The value of every row when they are all the same (e.g. a file of one unit), else None."""
    if len(text) == 0 or text.null_count:
        return None
    first = text[0].as_py()
    return first if pc.all(pc.equal(text, pa.scalar(first, text.type))).as_py() else None


def is_empty(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    lengths = pc.binary_length(text)
    if len(text) == 0 or pc.min(lengths).as_py() > 0:  # the usual column: no empty field
        return np.zeros(len(text), dtype=bool)
    return lengths.to_numpy(zero_copy_only=False) == 0


def trim(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """``utf8_trim_whitespace`` of the chunks that may need it: a chunk whose bytes are all
    printable ASCII other than space (the usual export) has nothing to trim."""
    chunks = [pc.utf8_trim_whitespace(c) if may_have_space(c) else c for c in text.chunks]
    return pa.chunked_array(chunks, type=text.type)


def may_have_space(chunk: pa.Array) -> bool:
    """False when every byte of the strings is printable ASCII other than space (nothing to trim)."""
    data = chunk.buffers()[2]
    if data is None:
        return False
    values = np.frombuffer(data, dtype=np.uint8)
    for start in range(0, len(values), 1 << 20):  # in cache-sized pieces
        piece = values[start : start + (1 << 20)]
        if piece.min() <= 0x20 or piece.max() >= 0x7F:
            return True
    return False


def message(
    *parts: str | pa.ChunkedArray | pa.Array, clip: int | None = None
) -> Callable[[np.ndarray], pa.Array]:
    """A reason built from literal texts and the failing rows' values of columns (each value
    cut to ``clip`` characters when given), e.g. ``message("unit '", unit, "' is unknown")``."""

    def make(rows: np.ndarray) -> pa.Array:
        index = pa.array(rows)
        pieces = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(pa.scalar(part, pa.large_string()))
                continue
            values = part.take(index).cast(pa.large_string())
            if clip is not None:
                values = pc.utf8_slice_codeunits(values, 0, clip)
            pieces.append(values)
        return pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))

    return make


def cast_text(
    text: pa.ChunkedArray,
    empty: np.ndarray,
    target: pa.DataType,
    fallback: Callable[[pa.Array], pa.Array],
) -> pa.ChunkedArray:
    """Cast strings to ``target`` with empty strings as nulls. Each chunk is cast by Arrow in one
    call. A chunk holding a value Arrow refuses is first split, in a few vectorised calls, into
    the values of the one canonical form Arrow's cast reads like pandas (plain decimals; instants
    ``YYYY-MM-DDTHH:MM:SSZ``), cast at once, and the rest, which go in one call to ``fallback``
    (text -> ``target`` values, null where not parseable). Where that does not apply, the chunk
    is halved until the pieces that fail are small, and those pieces alone go to ``fallback``. A
    few bad values cost a few small casts, and a day where many rows are garbage (issue 15: 30 %
    of the meters) costs one pass, not thousands of casts."""
    done: list[pa.Array | None] = []
    failed: list[pa.Array] = []
    start = 0
    for chunk in text.chunks:
        n = len(chunk)
        piece = _null_where(chunk, empty[start : start + n])
        start += n
        try:
            done.append(piece.cast(target))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        split = _canonical_cast(piece, target, fallback)
        if split is not None:
            done.append(split)
        else:
            _bisect_cast(piece, target, done, failed)
    if failed:
        fixed = fallback(pa.concat_arrays(failed))
        pieces = iter(failed)
        offset = 0
        for i, piece in enumerate(done):
            if piece is None:
                size = len(next(pieces))
                done[i] = fixed.slice(offset, size)
                offset += size
    return pa.chunked_array(done, type=target)


_DECIMAL = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_ZULU = "%Y-%m-%dT%H:%M:%SZ"
_ZULU_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
_ZULU_FIELDS = ((pc.month, 5), (pc.day, 8), (pc.hour, 11), (pc.minute, 14), (pc.second, 17))


def _zulu_instants(piece: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """(canonical mask, instants) of ``YYYY-MM-DDTHH:MM:SSZ`` texts. Arrow's strptime rolls an
    impossible date or time over (Feb 30 → Mar 1, second 60 → the next minute) where the cast
    and pandas refuse it, so a text counts only if every field reads back unchanged."""
    canonical = pc.fill_null(pc.match_substring_regex(piece, _ZULU_SHAPE), False)
    text = pc.if_else(canonical, piece, pa.scalar("2000-01-01T00:00:00Z", piece.type))
    naive = pc.strptime(text, format=_ZULU, unit=target.unit, error_is_null=True)
    canonical = pc.and_(canonical, pc.is_valid(naive))
    for field_of, start in _ZULU_FIELDS:
        written = pc.utf8_slice_codeunits(text, start, start + 2).cast(pa.int64())
        canonical = pc.and_(canonical, pc.fill_null(pc.equal(field_of(naive), written), False))
    return canonical, pc.if_else(canonical, naive, pa.scalar(None, naive.type)).cast(target)


def _canonical_cast(
    piece: pa.Array, target: pa.DataType, fallback: Callable[[pa.Array], pa.Array]
) -> pa.Array | None:
    """``piece`` cast with its canonical-form values read by Arrow and the others by
    ``fallback``; None when ``target`` has no canonical form here or Arrow still refuses one."""
    if pa.types.is_floating(target):
        canonical = pc.fill_null(pc.match_substring_regex(piece, _DECIMAL), False)
        try:
            fast = pc.if_else(canonical, piece, pa.scalar(None, piece.type)).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    elif pa.types.is_timestamp(target) and target.tz in ("UTC", "+00:00"):
        canonical, fast = _zulu_instants(piece, target)
    else:
        return None
    others = pc.and_(pc.invert(canonical), pc.is_valid(piece))
    if not pc.any(others).as_py():
        return fast
    fixed = fallback(piece.filter(others))
    return pc.replace_with_mask(fast, others, fixed.cast(target))


def _bisect_cast(
    piece: pa.Array, target: pa.DataType, done: list[pa.Array | None], failed: list[pa.Array]
) -> None:
    try:
        done.append(piece.cast(target))
        return
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if len(piece) <= _LEAF_ROWS:
        done.append(None)
        failed.append(piece)
        return
    half = len(piece) // 2
    _bisect_cast(piece.slice(0, half), target, done, failed)
    _bisect_cast(piece.slice(half), target, done, failed)


def _null_where(chunk: pa.Array, null: np.ndarray) -> pa.Array:
    if not null.any():
        return chunk
    if chunk.null_count == 0 and chunk.offset == 0:  # attach a validity bitmap, no string copy
        validity = pa.array(~null).buffers()[1]
        return pa.Array.from_buffers(chunk.type, len(chunk), [validity, *chunk.buffers()[1:]])
    return pc.if_else(pa.array(null), pa.scalar(None, chunk.type), chunk)


def arrow_numbers(
    text: pa.ChunkedArray, column: str, reasons: SparseReasons, allow_empty: bool, *, few: bool = False
) -> np.ndarray:
    """float64 of trimmed decimal ``text`` (NaN where empty); the checks of ``parse_numbers``.
    ``few``: the column usually holds one value (e.g. an interval length), converted once."""
    value = constant(text) if few else None
    if value is not None:
        empty = np.full(len(text), value == "")
        one = pa.chunked_array([pa.array([value], text.type)])
        number = cast_text(one, empty[:1], pa.float64(), pandas_numbers).to_numpy()[0]
        values = np.full(len(text), number, dtype=np.float64)
    else:
        empty = is_empty(text)
        values = cast_text(text, empty, pa.float64(), pandas_numbers).to_numpy()
    if not allow_empty:
        reasons.fail(empty, f"{column} is empty (expected a number)")
    reasons.fail(np.isnan(values) & ~empty, message(f"{column} '", text, "' is not a number", clip=40))
    reasons.fail(np.isinf(values), message(f"{column} '", text, "' is not a finite number", clip=40))
    return values


def pandas_numbers(text: pa.Array) -> pa.Array:
    """float64 of text by pandas (NaN where not a number): for the texts Arrow's cast refuses."""
    numbers = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
    return pa.array(numbers.to_numpy(dtype="float64", na_value=np.nan), pa.float64())


def arrow_utc_instants(text: pa.ChunkedArray, column: str, reasons: SparseReasons) -> pa.ChunkedArray:
    """UTC ``timestamp[us]`` of trimmed ISO-8601 ``text``; the checks of ``parse_utc_instants``.
    Arrow's cast accepts what pandas' ISO-8601 parser does for the usual forms ('Z', '+HH:MM',
    '+HHMM', 'T' or space, fractions to microseconds) with the same instant; any other text goes
    through pandas, so the outcome of every row is that of ``parse_utc_instants``."""
    empty = is_empty(text)
    zulu = pc.ends_with(text, "Z").to_numpy(zero_copy_only=False)
    has_offset = zulu
    if not zulu.all():
        others = np.flatnonzero(~zulu)
        has_offset = zulu.copy()
        matched = pc.match_substring_regex(text.take(pa.array(others)), OFFSET_SUFFIX)
        has_offset[others] = matched.to_numpy(zero_copy_only=False)
    utc = pa.timestamp("us", "UTC")
    parsed = cast_text(text, empty | ~has_offset, utc, _pandas_instants)
    reasons.fail(empty, f"{column} is empty (expected an ISO-8601 instant with offset)")
    reasons.fail(
        ~has_offset,
        message(column + " '", text, "' has no UTC offset (expected e.g. 2024-03-10T06:15:00Z)", clip=40),
    )
    reasons.fail(
        pc.is_null(parsed), message(column + " '", text, "' is not a valid ISO-8601 instant", clip=40)
    )
    return parsed


def _pandas_instants(text: pa.Array) -> pa.Array:
    parsed = pd.to_datetime(
        pd.Series(text.to_numpy(zero_copy_only=False), dtype=object),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    return pa.array(parsed.astype("datetime64[us, UTC]"), pa.timestamp("us", "UTC"))
