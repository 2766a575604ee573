"""Mutations of small seed files for the fuzz suites (hypothesis strategies).

``mutated(seed)`` draws one to five edits of the seed's bytes: a byte flipped to an interesting
value, a truncation, random bytes inserted, a line deleted, doubled or two lines swapped, two
fields swapped, a field replaced by a hostile value (``NaN``, ``1e308``, a 40-digit number, an
Arabic digit, a quote, a 10-200 kB field), or the whole file re-encoded (UTF-16, Latin-1, a BOM,
CRLF line ends). Fields are the runs between delimiters (``,;|`` tab, ``<>``, quotes, line ends),
so the same edits reach CSV cells, NEM12 values and XML text alike.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# `make fuzz` raises these; the normal test run does at least 1,000 inputs per target
EXAMPLES = int(os.environ.get("SMARTMDM_FUZZ_EXAMPLES", "1000"))
SEED = int(os.environ.get("SMARTMDM_FUZZ_SEED", "20261201"))
FILE_SECONDS = float(os.environ.get("SMARTMDM_FUZZ_FILE_SECONDS", "30"))  # a hang, not a slow machine

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)

_FIELD = re.compile(rb'[^,;|\t<>"\r\n]+')
INTERESTING_BYTES = [
    0x0A,
    0x0D,
    0x2C,
    0x3B,
    0x22,
    0x27,
    0x30,
    0x39,
    0x3C,
    0x3E,
    0x20,
    0x2D,
    0x2E,
    0xFF,
    0x00,
    0xC3,
]
HOSTILE_FIELDS = [
    b"",
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"-1",
    b"1e308",
    b"-1e309",
    b"9" * 40,
    b"0x10",
    "\u0663".encode(),  # an Arabic-Indic digit three
    "\u00e9t\u00e9".encode(),
    b"'; DROP TABLE interval_reads; --",
    b'"',
    b'""',
    b"\\",
    b"../../etc/passwd",
    b"2024-02-30T25:61:00Z",
    b"1970-01-01",
    b"9999-12-31T23:59:59+14:00",
    b"00000000000000",
    b"\x00",
    "\U0001f4a9".encode(),
]


def _fields(data: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in _FIELD.finditer(data)]


@st.composite
def huge_field(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([10_000, 65_537, 200_000]))
    return draw(st.sampled_from([b"9", b"A", b",", b'"', b"-", "\u00e9".encode()])) * size


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_edits: int = 5) -> bytes:
    out = bytes(seed)
    for _ in range(draw(st.integers(1, max_edits))):
        if not out:
            break
        out = draw(_edit(out))
    return out


@st.composite
def _edit(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "flip",
                "flip",
                "truncate",
                "insert",
                "delete_line",
                "duplicate_line",
                "swap_lines",
                "swap_fields",
                "hostile_field",
                "hostile_field",
                "huge_field",
                "encoding",
            ]
        )
    )
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        byte = draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255))
        return data[:at] + bytes([byte]) + data[at + 1 :]
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if kind in ("delete_line", "duplicate_line", "swap_lines"):
        lines = data.split(b"\n")
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete_line":
            del lines[i]
        elif kind == "duplicate_line":
            lines.insert(i, lines[i])
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if kind == "encoding":
        return _reencode(data, draw(st.sampled_from(["utf-16", "latin-1", "bom", "crlf", "cp1252"])))
    spans = _fields(data)
    if not spans:
        return data
    i = draw(st.integers(0, len(spans) - 1))
    a, b = spans[i]
    if kind == "swap_fields":
        j = draw(st.integers(0, len(spans) - 1))
        c, d = spans[j]
        if (a, b) == (c, d):
            return data
        (a, b), (c, d) = sorted([(a, b), (c, d)])
        return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]
    value = draw(huge_field()) if kind == "huge_field" else draw(st.sampled_from(HOSTILE_FIELDS))
    return data[:a] + value + data[b:]


def _reencode(data: bytes, how: str) -> bytes:
    text = data.decode("utf-8", errors="replace")
    if how == "utf-16":
        return text.encode("utf-16")
    if how in ("latin-1", "cp1252"):
        return ("\u00e9" + text).encode(how, errors="replace")
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
