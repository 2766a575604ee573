"""Format registry and auto-detection: a new head-end format is one module plus one line here."""

from __future__ import annotations

from pathlib import Path

from smartmdm_pipelines.adapters import beacon_csv, cmep, generic_csv, green_button, mapped_csv, nem12
from smartmdm_pipelines.adapters.base import Adapter, FileRejected, ParsedFile, SourceConfig

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        *generic_csv.ADAPTERS,  # one module, three formats
        green_button.ADAPTER,
        nem12.ADAPTER,
        cmep.ADAPTER,
        beacon_csv.ADAPTER,
        mapped_csv.ADAPTER,
    )
}

_SNIFF_BYTES = 64 * 1024


def detect_format(path: Path) -> str:
    """The name of the adapter that recognises the file's content."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    for name, adapter in ADAPTERS.items():
        if adapter.sniff(head, Path(path)):
            return name
    raise FileRejected(f"unrecognised format (none of {sorted(ADAPTERS)} matches the content)", 1)


def parse_file(path: Path, source: SourceConfig | None = None) -> ParsedFile:
    """Parse a file with its configured or detected adapter; never raises for bad content."""
    source = source or SourceConfig()
    try:
        name = source.format or detect_format(path)
        adapter = ADAPTERS[name]
    except FileRejected as exc:
        return ParsedFile(format="unknown", fatal=exc.reason, fatal_line=exc.line)
    except KeyError:
        return ParsedFile(format=str(source.format), fatal=f"no adapter named {source.format!r}")
    try:
        return adapter.parse(Path(path), source)
    except Exception as exc:  # an adapter bug must not lose the file: it is registered as rejected
        detail = " ".join(str(exc).split())[:200]
        return ParsedFile(format=name, fatal=f"{name} parser failed: {type(exc).__name__}: {detail}")
