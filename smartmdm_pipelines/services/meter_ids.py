"""Per-source meter-id maps: the ids a head-end sends (its external ids) -> CIS meter ids.

A source names its map in the utility YAML (``meter_map: maps/gas-amr.csv``): a CSV with the
header ``external_id,meter_id``, one row per external id. It is applied to every read and event
of that source's files right after parsing, for ``inspect`` and ``ingest`` alike. An id the map
does not hold is kept as sent (it surfaces as an unknown meter downstream) and is listed in the
file's summary (``unmapped_meters``), so nothing is silently renamed or dropped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from smartmdm_pipelines.adapters.base import ParsedFile

MAP_COLUMNS = ["external_id", "meter_id"]
MAX_UNMAPPED_LISTED = 50


class MeterMapError(ValueError):
    """The configured map cannot be used (a configuration problem, not a problem of the file)."""


def load_meter_map(path: Path) -> dict[str, str]:
    """The map of a CSV file; a missing or inconsistent file raises ``MeterMapError`` (one line)."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise MeterMapError(f"meter map {path} cannot be read: {exc.strerror or exc}") from None
    return dict(_load(str(path), stamp))


@lru_cache(maxsize=16)
def _load(path: str, _stamp: int) -> tuple[tuple[str, str], ...]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise MeterMapError(f"meter map {path} is not a readable CSV file: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in MAP_COLUMNS if c not in frame.columns]
    if missing:
        raise MeterMapError(
            f"meter map {path}: header is missing column(s) {missing}; expected {MAP_COLUMNS}"
        )
    frame = frame[MAP_COLUMNS].apply(lambda column: column.str.strip())
    lines = pd.Series(range(2, len(frame) + 2), index=frame.index)
    empty = (frame["external_id"] == "") | (frame["meter_id"] == "")
    if empty.any():
        line = int(lines[empty].iloc[0])
        raise MeterMapError(f"meter map {path}: line {line} has an empty external_id or meter_id")
    clash = frame.drop_duplicates().duplicated("external_id", keep=False)
    if clash.any():
        rows = frame[clash]
        first = rows["external_id"].iloc[0]
        at = lines[clash & (frame["external_id"] == first)].tolist()
        raise MeterMapError(
            f"meter map {path}: external id '{first[:60]}' maps to more than one meter id (lines {at[:5]})"
        )
    return tuple(zip(frame["external_id"], frame["meter_id"], strict=True))


def apply_meter_map(parsed: ParsedFile, mapping: dict[str, str]) -> list[str]:
    """Rename the meter ids of ``parsed`` in place (interval, register and event rows); returns the
    ids the map does not hold (sorted, at most ``MAX_UNMAPPED_LISTED``)."""
    unmapped: set[str] = set()
    for attr in ("intervals", "registers", "events"):
        frame = getattr(parsed, attr)
        if not len(frame):
            continue
        codes, uniques = pd.factorize(frame["meter_id"])
        known = pd.Index(uniques).map(mapping)
        missing = known.isna()
        unmapped.update(str(u) for u in pd.Index(uniques)[missing])
        renamed = pd.Index(uniques).where(missing, known).to_numpy(dtype=object)
        frame["meter_id"] = pd.Series(renamed[codes], index=frame.index, dtype="str")
    return sorted(unmapped)[:MAX_UNMAPPED_LISTED]
