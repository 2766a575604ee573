"""Small head-end files written by the tests themselves (never read from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends

INTERVAL_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"


def interval_file(
    path: Path,
    meters: list[str],
    day: str,
    tz: str = "America/Chicago",
    value: float = 0.25,
    bad_lines: list[str] | None = None,
    shaped: bool = False,
) -> Path:
    """One local day of 15-minute kWh reads per meter, optionally followed by bad lines.

    ``shaped`` adds a small daily shape (a constant day is, rightly, a flat-line suspect for VEE).
    """
    ends = interval_ends(pd.Timestamp(day).date(), tz, 900)
    rows = [
        f"{m},kwh_delivered,{e.strftime('%Y-%m-%dT%H:%M:%SZ')},900,"
        f"{round(value + (0.01 * (i % 4) if shaped else 0), 3)},kWh,"
        for m in meters
        for i, e in enumerate(ends)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(INTERVAL_HEADER + "\n".join(rows + (bad_lines or [])) + "\n")
    return path
