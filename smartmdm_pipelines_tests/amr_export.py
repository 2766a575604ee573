"""A year of cumulative water register reads in the shape of a real AMR export, written by the tests.

The shape of a public Madrid water-utility export (docs/formats.md §5)::

    user key;datetime;meter reading;diff
    12345;01/01/2019 02:00:52;4e+05;NA
    12345;01/01/2019 02:59:01;4e+05;0

``user key`` is the meter, ``datetime`` naive local time (Europe/Madrid, ``dd/mm/yyyy HH:MM:SS``),
``meter reading`` the register in litres (round values in R's scientific notation), ``diff`` the
head-end's own difference. Reads come about hourly with drifting seconds, with gaps of 5-29 h,
through both DST changes (the repeated autumn hour appears twice, the spring hour not at all).
Generated deterministically from a seed: the same bytes on every run.

Meter ``12345`` starts at 400,000 L, is exchanged on ``EXCHANGE_AT`` (the new meter starts near
zero; the CIS records the exchange as a new installation) and sends one bad read (``BAD_READ_AT``,
a dropped digit). Meter ``67890`` starts near the top of its 6 dials and rolls over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.readings import UNIT_CONVERSIONS

GAL_PER_L = UNIT_CONVERSIONS["l"][1]
TZ = "Europe/Madrid"
YEAR_START = pd.Timestamp("2019-01-01T00:00:00Z")
HOURS = 365 * 24
DIALS = 6
EXCHANGE_AT = pd.Timestamp("2019-06-12T08:00:00Z")  # 10:00 local
BAD_READ_AT = pd.Timestamp("2019-09-03T09:00:00Z")  # the read of this hour loses its last digit
SPRING_DAY = "2019-03-31"
AUTUMN_DAY = "2019-10-27"
GAPS_HOURS = (5, 7, 9, 12, 15, 18, 21, 24, 26, 29)  # read gaps, spread over the year
HEADER = "user key;datetime;meter reading;diff"
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"
YAML = """\
utility:
  name: Canal test
  timezone: Europe/Madrid
  partitions_start: "2019-01-01"
  holidays: none
sources:
  - name: madrid-water
    pattern: "lecturas_*"
    timezone: Europe/Madrid
    csv:
      delimiter: ";"
      columns:
        meter: user key
        time: datetime
        value: meter reading
      time_format: "%d/%m/%Y %H:%M:%S"
      value_kind: register
      unit: L
      channel: water
"""


@dataclass(frozen=True)
class Export:
    """The reads written (UTC instants, litres) and the file."""

    path: Path
    reads: pd.DataFrame  # meter_id, read_at (UTC), litres, line


def register_reads(seed: int = 2019) -> pd.DataFrame:
    """meter_id, read_at (UTC), litres: the reads of the export (before formatting)."""
    rng = np.random.default_rng(seed)
    parts = []
    for meter, start_litres, rate in (("12345", 400_000.0, 22.0), ("67890", 986_500.0, 30.0)):
        hours = np.arange(1, HOURS + 1)
        slot = YEAR_START + pd.to_timedelta(hours, unit="h")
        local_hour = slot.tz_convert(TZ).hour
        shape = (
            0.3
            + 1.4 * np.exp(-(((local_hour - 8) / 2.0) ** 2))
            + 1.0 * np.exp(-(((local_hour - 21) / 2.5) ** 2))
        )
        night = (local_hour >= 1) & (local_hour <= 5)
        idle = rng.random(len(hours)) < np.where(night, 0.8, 0.25)  # hours without any use
        use = np.where(idle, 0.0, rng.gamma(2.0, rate * shape / 2.0))  # litres per hour
        jitter = np.cumsum(rng.integers(-9, 10, len(hours)))  # drifting seconds
        jitter = np.clip(jitter % 120 - 60, -59, 59)
        at = slot + pd.to_timedelta(jitter, unit="s")
        litres = start_litres + np.floor(np.cumsum(use))
        keep = np.ones(len(hours), dtype=bool)
        for i, gap in enumerate(GAPS_HOURS):  # gaps away from the DST days and the special reads
            first = 200 + i * 800 + (0 if meter == "12345" else 37)
            keep[first : first + gap - 1] = False
        frame = pd.DataFrame({"meter_id": meter, "read_at": at[keep], "litres": litres[keep]})
        if meter == "12345":
            frame.loc[frame.index[0], "litres"] = start_litres  # the export's first line: 4e+05
            after = frame["read_at"] > EXCHANGE_AT
            swapped = frame.loc[after, "litres"] - frame.loc[after, "litres"].iloc[0]
            frame.loc[after, "litres"] = swapped + 3.0  # the new meter's register
        else:
            frame["litres"] = frame["litres"] % 10**DIALS  # the dials wrap
        parts.append(frame)
    reads = pd.concat(parts, ignore_index=True)
    bad = (reads["meter_id"] == "12345") & ((reads["read_at"] - BAD_READ_AT).abs() < pd.Timedelta(minutes=5))
    reads.loc[bad, "litres"] = np.floor(reads.loc[bad, "litres"] / 10)  # a dropped digit
    return reads


def canonical_reads(reads: pd.DataFrame) -> pd.DataFrame:
    """The register reads as the adapter loads them (gallons, source unit L), one file, its lines."""
    line = reads["line"] if "line" in reads else np.arange(2, len(reads) + 2)
    return pd.DataFrame(
        {
            "meter_id": reads["meter_id"],
            "channel": "water",
            "read_at": reads["read_at"],
            "value": reads["litres"] * GAL_PER_L,
            "source_unit": "L",
            "file_id": 1,
            "line": line,
        }
    )


def r_number(value: float) -> str:
    """A litre count as R writes it: round values in scientific notation (4e+05)."""
    text = f"{value:.0f}"
    if value >= 1e5 and value % 10_000 == 0:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{exponent[0]}{int(exponent[1:]):02d}"
    return text


def write_export(path: Path, reads: pd.DataFrame | None = None) -> Export:
    """The export file of ``reads`` (default: the year of ``register_reads``), meter by meter."""
    reads = register_reads() if reads is None else reads
    local = reads["read_at"].dt.tz_convert(TZ).dt.strftime(TIME_FORMAT)
    diff = reads.groupby("meter_id")["litres"].diff()
    lines = [
        f"{m};{t};{r_number(v)};{'NA' if np.isnan(d) else f'{d:.0f}'}"
        for m, t, v, d in zip(reads["meter_id"], local, reads["litres"], diff, strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return Export(path, reads.assign(line=np.arange(2, len(reads) + 2)))


def config_file(folder: Path) -> Path:
    """The utility YAML with the mapped source (no code: the mapping is all it takes)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "utility.yaml"
    path.write_text(YAML)
    return path
