"""A big single-line file per format, written lazily, and the peak RSS of parsing it.

``write_big_line(name, path, size)`` keeps the seed's first line(s) (header, NEM12 100/200 records)
and then writes one line of ``size`` bytes without a line end: the last field of a data record
grown in 1 MiB pieces (for Green Button, the whole feed on one line with one reading's value grown).

``python -m smartmdm_pipelines_tests.fuzz.big_line MIB FOLDER`` parses, in a fresh process, every
format's seed and then its big-line file, printing JSON per parse: the status, the fatal reason,
seconds and ``max_rss_mib`` (the process's peak resident set so far, ``ru_maxrss``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

PIECE = 1 << 20


def _parts(name: str, seed: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(prefix, unit repeated to grow the line, suffix) of the big line's file."""
    lines = seed.split(b"\n")
    if name == "green_button":
        flat = seed.replace(b"\n", b"")
        at = flat.index(b"<value>") + len(b"<value>")
        end = flat.index(b"</value>", at)
        return flat[:at], b"9", flat[end:], b""
    if name == "nem12":
        return b"\n".join(lines[:2]) + b"\n300,20241103,", b"0.25,", b"", b""
    if name == "cmep":
        return lines[0] + b",R0,", b"9", b"", b""
    # CSV with a header: the header, then a first record whose last field grows
    record = lines[1]
    cut = max(record.rfind(b","), record.rfind(b";"))
    return lines[0] + b"\n" + record[: cut + 1], b"9", b"", b""


def write_big_line(name: str, seed: bytes, path: Path, size: int) -> Path:
    prefix, unit, suffix, _ = _parts(name, seed)
    piece = unit * (PIECE // len(unit))
    with open(path, "wb") as out:
        out.write(prefix)
        written = 0
        while written < size:
            chunk = piece[: size - written]
            out.write(chunk)
            written += len(chunk)
        out.write(suffix)
    return path


def main() -> None:
    """``python -m smartmdm_pipelines_tests.fuzz.big_line MIB FOLDER``: in this one process, parse
    every format's small seed (the baseline), then for each format write its big-line file, parse
    it, delete it; print one JSON line per parse with the peak RSS so far."""
    size, folder = int(sys.argv[1]) << 20, Path(sys.argv[2])
    from smartmdm_pipelines.adapters.registry import ADAPTERS
    from smartmdm_pipelines_tests.adapters.test_contract import SAMPLES, sample_data

    def report(name: str, path: Path) -> None:
        started = time.perf_counter()
        parsed = ADAPTERS[name].parse(path, SAMPLES[name].source)
        seconds = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        loaded = len(parsed.intervals) + len(parsed.registers) + len(parsed.events)
        row = {
            "format": name,
            "bytes": path.stat().st_size,
            "status": parsed.status,
            "fatal": parsed.fatal,
            "fatal_line": parsed.fatal_line,
            "loaded": loaded,
            "rejected": len(parsed.rejected),
            "rejected_lines": [int(n) for n in parsed.rejected["line"][:5]],
            "seconds": round(seconds, 2),
            "max_rss_mib": round(rss, 1),
        }
        print(json.dumps(row), flush=True)

    for name in sorted(ADAPTERS):
        small = folder / f"{name}.small"
        small.write_bytes(sample_data(name))
        report(name, small)
    for name in sorted(ADAPTERS):
        big = write_big_line(name, sample_data(name), folder / f"{name}.big", size)
        try:
            report(name, big)
        finally:
            big.unlink()


if __name__ == "__main__":
    main()
