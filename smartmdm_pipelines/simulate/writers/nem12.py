"""AEMO MDFF NEM12 files (read back by ``adapters/nem12.py``).

Files: ``headend/{headend}_{label}_{record}.csv`` (re-deliveries ``..._{label}_redelivery.csv``,
resends ``..._{record}_resend.csv``): a ``100,NEM12,...`` header at ``open``, one 200 record per
(meter, channel, interval length, unit) and append, its 300 records (one per NEM day) with 400
records where a day mixes qualities, and ``900`` at ``close()``.

What NEM12 can express, and how the writer maps canonical rows:
- NMI = meter id (no meter serial number, so the adapter's meter id is the meter id again);
  NMI suffix E1 kwh_delivered, B1 kwh_received, Q1 kvarh, K1 kvarh_received; UOM = the row's
  unit verbatim (kWh, kVARh); interval length = interval_seconds / 60.
- Days are NEM days (default ``Etc/GMT-10``, AEST, as the AEMO specification and the MDM's
  adapter have it; pass ``timezone`` for another fixed-offset zone, matching the source's
  ``nem12_timezone`` in the MDM config). A 300 record always holds the whole day: intervals
  without a row are written as ``0`` with quality ``N`` (null), which the adapter loads as no-read
  placeholders (NaN); so the mixed writer hands it whole NEM days only.
- Values are written rounded to 0.001 of the unit. A null value is ``0`` with quality N.
- Quality: empty → ``A``; codes already in NEM12 form (``A``, ``E52``, ``F``, ``S14``, ``N``…) verbatim;
  other codes by their first letter (E → E, N → N, else A). A day whose intervals differ in
  quality gets quality ``V`` and one 400 record per run of equal quality.
- Not expressible, hence not written: register reads (NEM13 territory), meter events, water and
  gas channels, kwh_net, and interval lengths that are not 1, 5, 10, 15, 30 or 60 minutes. Such
  deliveries still produce a valid file (100 and 900 only).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .base import RECORD_INTERVALS, Delivery, TextFileWriter

NEM_TIME = "Etc/GMT-10"
SUFFIX = {"kwh_delivered": "E1", "kwh_received": "B1", "kvarh": "Q1", "kvarh_received": "K1"}
MINUTES = {1, 5, 10, 15, 30, 60}
NEM_QUALITY = re.compile(r"^[AEFNS]\d{0,2}$", re.IGNORECASE)


def nem_quality(quality: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Canonical quality codes -> NEM12 quality methods (object array)."""
    codes, uniques = pd.factorize(pd.Series(quality, dtype=object).fillna("").astype(str).str.strip())
    mapped = []
    for code in uniques:  # a handful of distinct codes
        if code == "":
            mapped.append("A")
        elif NEM_QUALITY.match(code):
            mapped.append(code)
        else:
            mapped.append({"E": "E", "N": "N"}.get(code[:1].upper(), "A"))
    out = (
        np.asarray(mapped, dtype=object)[codes] if len(uniques) else np.full(len(quality), "A", dtype=object)
    )
    return np.where(null, "N", out)


class Nem12Writer(TextFileWriter):
    """Writes NEM12 (one file per delivery, ``100`` header to ``900`` end; see ``FileWriter``)."""

    suffix = ".csv"

    def __init__(self, out_dir: Path, timezone: str = NEM_TIME) -> None:
        super().__init__(out_dir)
        self.timezone = timezone

    def header(self, delivery: Delivery) -> str:
        return f"100,NEM12,{_stamp(delivery.label)},{_participant(delivery.headend)},SMARTMDM\n"

    def _trailer(self, delivery: Delivery) -> str:
        return "900\n"

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        handle = self._handle(delivery)
        if table.num_rows == 0 or delivery.record != RECORD_INTERVALS:
            return
        handle.write(_records(table, self.timezone, _stamp(delivery.label) + "00"))


def _stamp(label: str) -> str:
    """CCYYMMDDhhmm of the delivery (midnight of its operating day or month)."""
    digits = label[:8] if label[:8].isdigit() else (label[:6] + "01" if label[:6].isdigit() else "19700101")
    return digits.ljust(8, "0") + "0000"


def _participant(headend: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", headend.upper())[:10] or "HEADEND"


def _records(table: pa.Table, tz: str, updated: str) -> str:
    """200/300/400 lines for one append of interval rows."""
    channel = table["channel"].combine_chunks().cast(pa.string()).to_numpy(zero_copy_only=False)
    secs = table["interval_seconds"].combine_chunks().to_numpy(zero_copy_only=False).astype(np.int64)
    keep = np.isin(channel, list(SUFFIX)) & np.isin(secs, [m * 60 for m in MINUTES])
    if not keep.any():
        return ""
    rows = np.flatnonzero(keep)
    channel, secs = channel[rows], secs[rows]
    meter = table["meter_id"].combine_chunks().cast(pa.string()).to_numpy(zero_copy_only=False)[rows]
    unit = table["unit"].combine_chunks().cast(pa.string()).to_numpy(zero_copy_only=False)[rows]
    end = table["interval_end"].combine_chunks().cast(pa.int64()).to_numpy()[rows]
    value = table["value"].combine_chunks().to_numpy(zero_copy_only=False)[rows]
    quality = table["quality"].combine_chunks().cast(pa.string()).to_numpy(zero_copy_only=False)[rows]
    bad_ids = [m for m in pd.unique(meter) if re.search(r"[,\r\n]", str(m))]
    if bad_ids:
        raise ValueError(f"NEM12 cannot express meter ids containing a comma or newline: {bad_ids[:3]}")

    # NEM day and slot of each interval (local wall time of its start, fixed-offset zone)
    start = end - secs
    uniq, inverse = np.unique(start, return_inverse=True)
    local = (
        pd.DatetimeIndex(uniq.astype("datetime64[s]"), tz="UTC")
        .tz_convert(tz)
        .tz_localize(None)
        .to_numpy(dtype="datetime64[s]")
        .astype(np.int64)[inverse]
    )
    day = local // 86400
    slot = (local % 86400) // secs

    block_key = pd.Series(meter, dtype=object) + "\x1f" + channel + "\x1f" + secs.astype(str) + "\x1f" + unit
    block, _ = pd.factorize(block_key, sort=False)
    record_key = block.astype(np.int64) * 1_000_000 + (day - day.min())
    order = np.lexsort((slot, record_key))
    record_codes, record_uniques = pd.factorize(record_key[order], sort=True)
    record = np.empty(len(order), dtype=np.int64)
    record[order] = record_codes
    n_rec = len(record_uniques)
    first = np.zeros(n_rec, dtype=np.int64)
    first[record] = np.arange(len(record))  # any row of the record
    rec_secs = secs[first]
    per_day = 86400 // rec_secs
    rec_start = np.cumsum(per_day) - per_day

    null = ~np.isfinite(value)
    slot_value = np.full(int(per_day.sum()), "0", dtype=object)
    slot_quality = np.full(len(slot_value), "N", dtype=object)
    at = rec_start[record] + slot
    rounded = np.where(null, 0.0, np.round(np.where(null, 0.0, value), 3)) + 0.0  # + 0.0: no "-0"
    slot_value[at] = pa.array(rounded).cast(pa.string()).to_numpy(zero_copy_only=False)
    slot_quality[at] = nem_quality(quality, null)

    offsets = np.concatenate([[0], np.cumsum(per_day)]).astype(np.int32)
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array(offsets), pa.array(slot_value, pa.string())), ","
    ).to_numpy(zero_copy_only=False)
    # one quality per record, or V and runs
    change = np.ones(len(slot_quality), dtype=bool)
    change[1:] = slot_quality[1:] != slot_quality[:-1]
    change[rec_start] = True
    run_start = np.flatnonzero(change)
    run_record = np.searchsorted(rec_start, run_start, side="right") - 1
    runs_per_record = np.bincount(run_record, minlength=n_rec)

    rec_block = block[first]
    rec_day = day[first]
    dates = pd.to_datetime(rec_day * 86400, unit="s").strftime("%Y%m%d").to_numpy()
    suffixes: dict[str, list[str]] = {}
    for m, c in zip(meter[first], channel[first], strict=True):
        if SUFFIX[c] not in suffixes.setdefault(m, []):
            suffixes[m].append(SUFFIX[c])
    out: list[str] = []
    previous_block = -1
    run_cursor = 0
    run_end = np.append(run_start[1:], len(slot_quality))
    for r in range(n_rec):  # one iteration per 300 record (a meter-day), not per value
        row = first[r]
        if rec_block[r] != previous_block:
            previous_block = rec_block[r]
            m, c = meter[row], channel[row]
            out.append(
                f"200,{m},{''.join(suffixes[m])},{SUFFIX[c]},{SUFFIX[c]},N1,,{unit[row]},{rec_secs[r] // 60},\n"
            )
        k = runs_per_record[r]
        runs = range(run_cursor, run_cursor + k)
        run_cursor += k
        q = slot_quality[run_start[runs[0]]] if k == 1 else "V"
        out.append(f"300,{dates[r]},{joined[r]},{q},,,{updated},\n")
        if k > 1:
            for i in runs:
                a, b = run_start[i] - rec_start[r] + 1, run_end[i] - rec_start[r]
                out.append(f"400,{a},{b},{slot_quality[run_start[i]]},,\n")
    return "".join(out)
