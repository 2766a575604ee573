"""CMEP MEPMD01 writer (docs/formats.md §1.1; parsed by ``adapters/cmep.py``).

One line per run of rows of one meter, channel, unit and interval length (normally a meter's
day per channel); registers go on ``…REG`` lines. Times are interval ends in local prevailing
time of ``timezone``; with ``blank_timestamps`` (the default) a triplet whose time is
"previous + interval" leaves it blank, as RNI feeds do. Quality: actual -> ``R0``, ``E`` ->
``E0``, no read (empty value) -> ``N32`` with the head-end's ``0`` placeholder value; a code that
already has a CMEP class letter (R/E/A/N) is written as is.

Files: ``headend/{headend}_{label}_{record}.txt``; re-deliveries
``headend/{headend}_{label}_redelivery.txt`` with purpose ``RESEND``; resends
``headend/{headend}_{label}_{record}_resend.txt`` (byte copies).

A line that starts inside the repeated fall-back hour keeps explicit times up to its first
unambiguous reading, so that the reader can anchor it; a line made *only* of readings of the
repeated hour cannot be placed by any reader (CMEP times carry no offset) and reads back as the
daylight-time pass.

What CMEP cannot say: channels ``kwh_received``, ``kvarh_received`` and ``kwh_net`` (MEPMD01 has
no flow-direction units), and events (MLA01 alarms are a vendor extension). Those rows are not
written; an events delivery is an empty file. Times have minute resolution: register read
instants are truncated to the minute, and a single register read inside the repeated fall-back
hour reads back as the daylight-time instant (nothing in CMEP tells the two apart).

Speed: strings are built with Arrow compute kernels (one join per triplet, one per line);
local times are formatted once per distinct instant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .base import RECORD_EVENTS, RECORD_REGISTERS, VARIANT_REDELIVERY, Delivery, TextFileWriter

RECORD_VERSION = "20080501"
SENDER = "SMARTMDM-SIM"
DAY = 86400

COMMODITY = {"kwh_delivered": "E", "kvarh": "E", "water": "W", "gas": "G"}
UNITS = {
    "kWh": "KWH",
    "Wh": "WH",
    "kVARh": "KVARH",
    "gal": "GAL",
    "ft3": "CF",
    "CCF": "CCF",
    "therm": "THERM",
}
QUALITY = {"": "R0", "A": "R0", "E": "E0", "N": "N32"}


def interval_field(seconds: int) -> str:
    """Interval length in seconds -> CMEP ``MMDDHHMM``."""
    days, rest = divmod(int(seconds), DAY)
    return f"00{days:02d}{rest // 3600:02d}{rest % 3600 // 60:02d}"


def cmep_lines(
    table: pa.Table,
    *,
    register: bool,
    timezone: str,
    headend: str,
    created: str,
    purpose: str = "OK",
    blank_timestamps: bool = True,
) -> list[str]:
    """Canonical interval (or register) rows -> CMEP MEPMD01 lines (without line ends)."""
    time_column = "read_at" if register else "interval_end"
    frame = table.to_pandas()
    frame = frame.loc[frame["channel"].astype("str").isin(list(COMMODITY))]
    if frame.empty:
        return []
    meter = frame["meter_id"].astype("str").to_numpy(dtype=object)
    channel = frame["channel"].astype("str").to_numpy(dtype=object)
    unit = frame["unit"].astype("str").to_numpy(dtype=object)
    t = frame[time_column].to_numpy(dtype="datetime64[s]").view(np.int64)
    step = np.zeros(len(frame), np.int64) if register else frame["interval_seconds"].to_numpy(np.int64)
    value = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
    quality = frame["quality"].astype("str").to_numpy(dtype=object)

    codes, uniques = pd.factorize(t)
    local = pd.DatetimeIndex(uniques.view("datetime64[s]")).tz_localize("UTC").tz_convert(timezone)
    stamp = local.strftime("%Y%m%d%H%M").to_numpy(dtype=object)[codes]
    naive = local.tz_localize(None)
    local_day = naive.to_numpy(dtype="datetime64[s]").view(np.int64)[codes]
    # local times that occur twice (fall-back): the reader tells them apart from their neighbours
    repeated = np.asarray(naive.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").isna())[codes]

    n = len(frame)
    start = np.ones(n, dtype=bool)
    start[1:] = (
        (meter[1:] != meter[:-1])
        | (channel[1:] != channel[:-1])
        | (unit[1:] != unit[:-1])
        | (step[1:] != step[:-1])
        | (t[1:] <= t[:-1])
    )
    if blank_timestamps and not register:
        follows = np.zeros(n, dtype=bool)
        follows[1:] = np.where(
            step[1:] >= DAY, local_day[1:] - local_day[:-1] == DAY, t[1:] - t[:-1] == step[1:]
        )
        # a line starting in the repeated hour keeps its times up to its first unambiguous one,
        # so the reader can anchor the blanks that follow
        run = np.cumsum(start) - 1
        clear = np.flatnonzero(~repeated)
        first_clear = np.full(run[-1] + 1, n)
        np.minimum.at(first_clear, run[clear], clear)
        keep = repeated[np.flatnonzero(start)][run] & (np.arange(n) <= first_clear[run])
        stamp = np.where(~start & follows & ~keep, "", stamp)

    no_read = np.isnan(value)
    code = pd.Series(quality).map(QUALITY).to_numpy(dtype=object)
    has_class = pd.Series(quality).str.slice(0, 1).isin(["R", "E", "A", "N"]).to_numpy(dtype=bool)
    code = np.where(pd.isna(code), np.where(has_class, quality, "R0"), code)
    code = np.where(no_read, "N32", code)
    text = pa.array(np.where(no_read, 0.0, value)).cast(pa.string())
    triplets = pc.binary_join_element_wise(
        pa.array(stamp, pa.string()), pa.array(code, pa.string()), text, ","
    )
    first = np.flatnonzero(start)
    count = np.diff(np.append(first, n))
    offsets = pa.array(np.append(first, n).astype(np.int32))
    body = pc.binary_join(pa.ListArray.from_arrays(offsets, triplets), ",")

    m = meter[first]
    units = pd.Series(unit[first]).map(lambda u: UNITS.get(u, u.upper())).to_numpy(dtype=object)
    if register:
        units = units + "REG"
        interval = np.full(len(first), "", dtype=object)
    else:
        interval = np.array([interval_field(s) for s in step[first]], dtype=object)
    header = pc.binary_join_element_wise(
        *[
            pa.array(np.broadcast_to(np.asarray(part, dtype=object), len(first)).tolist(), pa.string())
            for part in (
                "MEPMD01",
                RECORD_VERSION,
                SENDER,
                headend[:16],
                "MDM",
                m,
                created,
                m,
                purpose,
                pd.Series(channel[first]).map(COMMODITY).to_numpy(dtype=object),
                units,
                "1",
                interval,
                count.astype(str).astype(object),
            )
        ],
        ",",
    )
    return pc.binary_join_element_wise(header, body, ",").to_pylist()


class CmepWriter(TextFileWriter):
    """Writes CMEP files (one file per delivery; see ``FileWriter``)."""

    suffix = ".txt"

    def __init__(
        self, out_dir: Path, timezone: str = "America/Chicago", blank_timestamps: bool = True
    ) -> None:
        super().__init__(out_dir)
        self.timezone = timezone
        self.blank_timestamps = blank_timestamps

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        handle = self._handle(delivery)
        if table.num_rows == 0 or delivery.record == RECORD_EVENTS:
            return
        lines = cmep_lines(
            table,
            register=delivery.record == RECORD_REGISTERS,
            timezone=self.timezone,
            headend=delivery.headend,
            created=(delivery.label + "01")[:8] + "0600",
            purpose="RESEND" if delivery.variant == VARIANT_REDELIVERY else "OK",
            blank_timestamps=self.blank_timestamps,
        )
        if lines:
            handle.write("\n".join(lines) + "\n")
