"""Badger BEACON-style export writer (docs/formats.md §1.4; parsed by ``adapters/beacon_csv.py``).

Every field quoted, header row, ~48 columns of which the reading columns are filled and a few
meter columns carry constant realistic values (``Meter_Size_Desc`` is ``5/8"``, written with its
quote doubled). Times are naive local ``YYYY-MM-DD HH:MM`` in ``timezone`` and follow BEACON's
convention of stamping a period's last minute: an interval ending 01:00 has ``Flow_Time``
``00:59``, and a register read on a full hour is stamped one minute earlier too.

An interval delivery fills the Flow columns (Read columns empty), a register delivery the Read
columns (Flow columns empty): canonical intervals and registers arrive in separate deliveries,
so one row never carries both here (the adapter reads both when a real export has them).
Registers are written with ``Register_Resolution`` 0.01, ``Raw_Read`` the zero-padded dial digits
(at least 6 dials) and ``Read`` = ``Raw_Read`` x 0.01, so the register is rounded to 0.01 of its
unit. ``Estimated_Flag`` is 1 for quality ``E``; an empty value is a no-read.

What BEACON cannot say: anything but water (other channels are not written), events (an events
delivery is a header-only file), seconds (instants are truncated to the minute; a register read
at hh:59 reads back as the next full hour), the interval length (the reader derives it from
consecutive times of a meter; a meter with a single interval in a file reads back with the
3600 s default).

Files: ``headend/{headend}_{label}_{record}.csv``, re-deliveries
``headend/{headend}_{label}_redelivery.csv``, resends ``…_{record}_resend.csv`` (byte copies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .base import RECORD_EVENTS, RECORD_REGISTERS, CsvFileWriter, Delivery

COLUMNS = (
    "Account_ID",
    "Battery_Level",
    "Current_Leak_Rate",
    "Current_Leak_Start_Date",
    "Demand_Zone_ID",
    "Dials",
    "Endpoint_Install_Date",
    "Endpoint_SN",
    "Estimated_Flag",
    "Flow",
    "Flow_Time",
    "Flow_Unit",
    "Location_Address_Line1",
    "Location_Address_Line2",
    "Location_Address_Line3",
    "Location_City",
    "Location_Continuous_Flow",
    "Location_Country",
    "Location_ID",
    "Location_Irrigated_Area",
    "Location_Irrigation",
    "Location_Latitude",
    "Location_Longitude",
    "Location_Main_Use",
    "Location_Name",
    "Location_Pool",
    "Location_State",
    "Location_Water_Type",
    "Location_Year_Built",
    "Location_ZIP",
    "Meter_ID",
    "Meter_Install_Date",
    "Meter_Manufacturer",
    "Meter_Model",
    "Meter_Size",
    "Meter_Size_Desc",
    "Meter_Size_Unit",
    "Meter_SN",
    "Raw_Read",
    "Read",
    "Read_Time",
    "Read_Unit",
    "Register_Number",
    "Register_Resolution",
    "SA_Start_Date",
    "Service_Point_Class_Code",
    "Service_Point_Class_Code_Normalized",
    "Signal_Strength",
)
CONSTANT = {
    "Location_Country": "US",
    "Meter_Manufacturer": "BADGER",
    "Meter_Model": "T-10",
    "Meter_Size": "0.625",
    "Meter_Size_Desc": '5/8"',
    "Meter_Size_Unit": "INCHES",
}
UNITS = {"gal": "Gallons", "ft3": "CF", "CCF": "CCF"}
RESOLUTION_DIGITS = 2  # Register_Resolution 0.01
HEADER = (",".join(f'"{c}"' for c in COLUMNS) + "\n").encode()
_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", batch_size=65536)


def local_minutes(epochs: np.ndarray, timezone: str, minus_minute: np.ndarray | bool) -> np.ndarray:
    """Epoch seconds -> ``YYYY-MM-DD HH:MM`` local strings (one minute earlier where asked)."""
    shifted = epochs - np.where(minus_minute, 60, 0)
    codes, uniques = pd.factorize(shifted)
    local = pd.DatetimeIndex(uniques.view("datetime64[s]")).tz_localize("UTC").tz_convert(timezone)
    return local.strftime("%Y-%m-%d %H:%M").to_numpy(dtype=object)[codes]


def beacon_table(table: pa.Table, *, register: bool, timezone: str) -> pa.Table:
    """Canonical water intervals (or registers) -> a table of BEACON string columns."""
    frame = table.to_pandas()
    frame = frame.loc[frame["channel"].astype("str").eq("water")]
    n = len(frame)
    columns = {c: np.full(n, "", dtype=object) for c in COLUMNS}
    for column, text in CONSTANT.items():
        columns[column][:] = text
    if n == 0:
        return pa.table({c: pa.array(v, pa.string()) for c, v in columns.items()})
    meter = frame["meter_id"].astype("str").to_numpy(dtype=object)
    value = frame["value"].to_numpy(dtype="float64", na_value=np.nan)
    unit = frame["unit"].astype("str").map(lambda u: UNITS.get(u, u)).to_numpy(dtype=object)
    columns["Meter_ID"] = meter
    columns["Endpoint_SN"] = meter
    columns["Estimated_Flag"] = np.where(frame["quality"].astype("str").eq("E"), "1", "0").astype(object)
    no_read = np.isnan(value)
    if register:
        t = frame["read_at"].to_numpy(dtype="datetime64[s]").view(np.int64)
        local = pd.DatetimeIndex(t.view("datetime64[s]")).tz_localize("UTC").tz_convert(timezone)
        on_hour = (local.minute == 0) & (local.second == 0)
        raw = np.round(np.where(no_read, 0.0, value) * 10**RESOLUTION_DIGITS).astype(np.int64)
        digits = pd.Series(raw).astype("str")
        dials = np.maximum(digits.str.len().to_numpy(), 6)
        whole = pd.Series(raw // 10**RESOLUTION_DIGITS).astype("str")
        fraction = pd.Series(raw % 10**RESOLUTION_DIGITS).astype("str").str.zfill(RESOLUTION_DIGITS)
        columns["Read"] = np.where(no_read, "", (whole + "." + fraction).to_numpy(dtype=object))
        columns["Raw_Read"] = np.where(no_read, "", digits.str.zfill(6).to_numpy(dtype=object))
        columns["Dials"] = dials.astype(str).astype(object)
        columns["Register_Resolution"][:] = f"{10**-RESOLUTION_DIGITS:.{RESOLUTION_DIGITS}f}"
        columns["Read_Time"] = local_minutes(t, timezone, np.asarray(on_hour))
        columns["Read_Unit"] = unit
    else:
        t = frame["interval_end"].to_numpy(dtype="datetime64[s]").view(np.int64)
        text = pa.array(np.where(no_read, 0.0, value)).cast(pa.string()).to_numpy(zero_copy_only=False)
        columns["Flow"] = np.where(no_read, "", text.astype(object))
        columns["Flow_Time"] = local_minutes(t, timezone, True)
        columns["Flow_Unit"] = unit
    return pa.table({c: pa.array(np.asarray(v, dtype=object), pa.string()) for c, v in columns.items()})


class BeaconCsvWriter(CsvFileWriter):
    """Writes BEACON-style CSV files (one file per delivery; see ``FileWriter``)."""

    options = _OPTIONS

    def __init__(self, out_dir: Path, timezone: str = "America/Chicago") -> None:
        super().__init__(out_dir)
        self.timezone = timezone

    def header(self, delivery: Delivery) -> bytes:
        return HEADER

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        self._handle(delivery)
        if table.num_rows == 0 or delivery.record == RECORD_EVENTS:
            return
        rows = beacon_table(table, register=delivery.record == RECORD_REGISTERS, timezone=self.timezone)
        if rows.num_rows:
            self._write_rows(delivery, rows)
