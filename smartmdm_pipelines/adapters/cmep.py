"""CMEP MEPMD01 (California Metering Exchange Protocol, interval data), docs/formats.md §1.1.

Headerless CSV. One line = one meter x one ``Units`` x N readings::

    MEPMD01,20080501,SENSUS,STAHO:1,13169370,B74741489,202411040815,B74741489,OK,W,CF,1.0,00000100,3,
    202411030100,R0,12,,R0,10,,N32,0

Fields 1-14 are the record header (type, version, sender, sender customer, receiver, receiver
customer, creation time, meter id, purpose, commodity, units, calculation constant, interval
``MMDDHHMM``, count), then ``count`` triplets (timestamp ``CCYYMMDDHHMM``, protocol text, value).

A *record* is a line: a line loads whole or is rejected whole (one rejected row naming the first
problem, e.g. ``reading 5 (field 27): value 'abc' is not a number``), so rows in = rows loaded +
rows rejected per file. Lines are split with Arrow and the triplets exploded with numpy; the
only per-line Python is the CSV fallback for the rare lines that carry double quotes.

Decisions (see also the tests):

- **Record types**: only ``MEPMD01`` loads. ``MEPMD02`` (TOU), ``MEPAD0x`` (admin) and ``MLA01``
  (alarms) lines are rejected with a reason. A file with no CMEP record at all is fatal.
- **Purpose**: ``OK``, ``RESEND``, ``HISTORY``, ``PROFILE`` (or empty) load; ``SUMMARY`` and
  ``TEMPLATE`` are rejected (not interval data).
- **Meter id**: field 8, kept verbatim (trimmed). Some feeds drop a prefix on a few meters
  (``74741489`` next to ``B74741489``); the adapter cannot know the prefix, so by default both
  spellings load as sent and the difference surfaces as an unknown meter downstream.
  ``CmepAdapter(meter_id_prefix="B")`` adds the prefix to ids that lack it.
- **Units and channel**: a ``REG`` suffix (``KWHREG``, ``CFREG``) makes the line a *register*
  line (cumulative reads -> ``registers``); otherwise the values are interval deltas. ``WH``/
  ``KWH``/``MWH`` -> kwh_delivered, ``VARH``/``KVARH`` -> kvarh, volume units (``GAL``, ``KGAL``,
  ``CF``, ``FT3``, ``CUFT``, ``CCF``, ``HCF``, ``M3``, ``L``) -> water, or gas when the commodity
  is ``G`` (``THERM`` is always gas). A unit that contradicts the commodity (``KWH`` on ``W``),
  demand units (``KW``) and steam are rejected. ``source_unit`` is the unit without ``REG``.
- **Calculation constant** (field 12) multiplies every value of the line (empty = 1).
- **Interval** ``MMDDHHMM`` (6 digits = ``DDHHMM``). An interval line needs a supported length
  (1, 5, 10, 15, 30, 60 minutes or 1 day); register lines may omit it.
- **Time**: triplet times are interval *ends* in local prevailing time of
  ``SourceConfig.timezone``. A blank time after the first triplet is "previous + interval":
  added in absolute time for sub-daily intervals (so a blank chain crosses DST correctly) and
  on the local calendar for day/month intervals (so a daily read stays at local midnight).
  A local time that does not exist (spring-forward gap) rejects the line. A local time that
  occurs twice (fall-back) is resolved so that the line stays a regular sequence at its
  interval (from the nearest unambiguous reading before or after it); without such evidence
  a time at or before an earlier repeated-hour time of the line (the clock went back: the
  second 01:00) takes standard time, the others daylight time. The resolved times of a line
  must strictly increase, otherwise the line is rejected.
- **Quality**: the protocol text is kept verbatim as ``source_quality``; its first letter is
  the class: ``R`` read, ``E`` estimated, ``A`` adjusted/actual, ``N`` no read (any flag
  digits may follow, e.g. ``R0``, ``N32``). An ``N`` reading loads as value NaN (never the
  ``0`` placeholder the head-end writes); an empty value also loads as NaN (quality ``N`` if
  the protocol text is empty). Any other class rejects the line.
- **Duplicates and catch-up rows**: lines re-delivering earlier windows load as they are,
  each reading with its own line; the newest-file-wins dedupe happens downstream. Registers
  arriving before their interval line need nothing special.
- An empty file (no records) is not an error: 0 records, nothing loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import BOM, Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.cmep_lines import (
    KNOWN_RECORD_TYPES,
    RECORD_TYPE,
    Fields,
    LineHeader,
    clip,
    split_fields,
)
from smartmdm_pipelines.adapters.cmep_readings import Triplets
from smartmdm_pipelines.adapters.csvtools import UNTERMINATED_QUOTE
from smartmdm_pipelines.adapters.validation import (
    RowReasons,
    may_have_space,
)
from smartmdm_pipelines.domain.readings import (
    REJECTED_COLUMNS,
    conform,
)


@dataclass(frozen=True)
class CmepAdapter(Adapter):
    """CMEP MEPMD01 interval and register lines (see the module docstring)."""

    name: str = "cmep"
    meter_id_prefix: str | None = None
    zone_in_source: ClassVar[bool] = True

    def sniff(self, head: bytes, path: Path) -> bool:
        text = head.removeprefix(BOM).decode("utf-8", "replace")
        for line in text.split("\n", 64)[:64]:
            if line.strip():
                first = line.split(",", 1)[0].strip().strip('"').strip().upper()
                return first in KNOWN_RECORD_TYPES
        return False

    # ------------------------------------------------------------------ lines and fields
    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        raw = pa.array(self.text(path).decode("utf-8").split("\n"), pa.string())
        raw = pc.utf8_rtrim(raw, characters="\r")
        keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(raw)), 0).to_numpy(zero_copy_only=False)
        line_no = np.flatnonzero(keep).astype(np.int64) + 1
        lines = raw.filter(pa.array(keep))
        n = len(lines)
        result.records = n
        if n == 0:
            return
        split, unbalanced = split_fields(lines)
        lengths = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = split.flatten()
        if may_have_space(flat):  # most exports hold no whitespace to trim
            flat = pc.utf8_trim_whitespace(flat)
        fields = Fields(flat, starts, lengths)

        rtype = fields.header(0)
        upper_type = rtype.str.upper()
        if not upper_type.isin(KNOWN_RECORD_TYPES).any():
            raise FileRejected(
                f"no CMEP record in the file: the first line starts with '{rtype.iloc[0][:20]}' "
                f"(expected {RECORD_TYPE} records, one meter and channel per line)",
                int(line_no[0]),
            )
        reasons = RowReasons(n)
        reasons.check(unbalanced, UNTERMINATED_QUOTE)
        reasons.check(
            upper_type.ne(RECORD_TYPE),
            "record type '"
            + clip(rtype)
            + f"' is not loaded (only {RECORD_TYPE} interval data; MEPMD02 TOU, MEPAD admin and MLA01 "
            "alarm records are not supported)",
        )
        line = LineHeader.validate(fields, lengths, reasons, self.meter_id_prefix)
        triplets = Triplets.explode(fields, line, reasons, source.timezone)
        bad = reasons.bad
        result.rejected = conform(
            pd.DataFrame(
                {
                    "line": line_no[bad],
                    "raw_text": lines.filter(pa.array(bad)).to_numpy(zero_copy_only=False),
                    "reason": reasons.reasons[bad],
                }
            ),
            REJECTED_COLUMNS,
        )
        if triplets is None:
            return
        ok = ~bad[triplets.line]
        result.intervals, result.registers = triplets.frames(ok, line, line_no)


ADAPTER = CmepAdapter()
