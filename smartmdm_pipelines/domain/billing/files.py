"""Reading an operator's input file (a tariff, a usage CSV) with one-line errors.

Whatever is wrong with the file — a directory, a missing file, binary data, a value of
megabytes on one line — the message is one line that names the file and says what was
expected, and quotes at most a short excerpt of the content, never the content itself.
"""

from __future__ import annotations

from pathlib import Path

QUOTE_LIMIT = 200  # characters of file content a message may quote


class InputFileError(ValueError):
    """An input file that cannot be read as text; the message is one line naming the file."""


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` for an error message: one line, at most ``limit`` characters of it, and its length
    when it was cut (``'AAAA…' (67,108,864 characters)``)."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(flat) <= limit:
        return repr(flat)
    return f"{flat[: max(limit - 1, 1)]!r}… ({len(text):,} characters)"


def excerpt(text: str, position: int, width: int = 60) -> str:
    """The characters around ``position`` (where a parser stopped), quoted."""
    start = max(position - width // 2, 0)
    return quote(text[start : start + width], width)


def _binary_at(data: bytes) -> int | None:
    """Offset of the first byte that is not UTF-8 text (a NUL or an invalid sequence), else None."""
    nul = data.find(b"\x00")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start if nul < 0 else min(exc.start, nul)
    return None if nul < 0 else nul


def is_unreadable(exc: BaseException) -> bool:
    """Whether ``exc`` says the path could not be opened at all (a directory, no such file, no
    permission) rather than that its content is wrong: the CLI exits 2 for the first, 1 for the second."""
    return bool(getattr(exc, "unreadable", False))


def _unreadable(error: type[ValueError], message: str) -> ValueError:
    exc = error(message)
    exc.unreadable = True  # type: ignore[attr-defined]
    return exc


def read_text(path: Path | str, kind: str, expected: str, error: type[ValueError] = InputFileError) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark is dropped), never empty.

    ``kind`` names what the file should be (``JSON``, ``CSV``) and ``expected`` what it should
    hold, in the messages, which are raised as ``error``, e.g.
    ``photo.png: not JSON: binary data (byte 0x89 at offset 0 is not UTF-8 text)``.
    """
    path = Path(path)
    name = path.name or str(path)
    if path.is_dir():
        raise _unreadable(error, f"{name}: cannot read: it is a directory, not a {kind} file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _unreadable(error, f"{name}: cannot read: no such file ({path})") from None
    except PermissionError:
        raise _unreadable(error, f"{name}: cannot read: permission denied") from None
    except OSError as exc:
        raise _unreadable(error, f"{name}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    offset = _binary_at(data)
    if offset is not None:
        raise error(
            f"{name}: not {kind}: binary data (byte 0x{data[offset]:02x} at offset {offset:,} "
            "is not UTF-8 text)"
        )
    text = data.decode("utf-8")
    if not text.strip():
        raise error(f"{name}: not {kind}: the file is empty (expected {expected})")
    return text
