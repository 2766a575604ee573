"""Canonical reading schemas, the quality enum and unit normalisation.

Every adapter turns a head-end file into these frames; everything downstream reads
only these. Times are UTC; an interval is identified by its end instant.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

UTC_TS = "datetime64[us, UTC]"

# column -> pandas dtype of the canonical frames an adapter returns
INTERVAL_READ_COLUMNS: dict[str, str] = {
    "line": "int64",
    "meter_id": "str",
    "channel": "str",
    "interval_end": UTC_TS,
    "interval_seconds": "int32",
    "value": "float64",  # NaN = no read (never a zero)
    "unit": "str",
    "source_unit": "str",
    "source_quality": "str",
}
REGISTER_READ_COLUMNS: dict[str, str] = {
    "line": "int64",
    "meter_id": "str",
    "channel": "str",
    "read_at": UTC_TS,
    "value": "float64",
    "unit": "str",
    "source_unit": "str",
    "source_quality": "str",
}
EVENT_COLUMNS: dict[str, str] = {
    "line": "int64",
    "meter_id": "str",
    "event_at": UTC_TS,
    "event_type": "str",
    "source_code": "str",
}
REJECTED_COLUMNS: dict[str, str] = {"line": "int64", "raw_text": "str", "reason": "str"}

EVENT_TYPES = frozenset(
    {"outage", "restore", "tamper", "reverse_flow", "clock_set", "meter_exchange", "leak", "other"}
)
CHANNELS = frozenset({"kwh_delivered", "kwh_received", "kwh_net", "kvarh", "kvarh_received", "water", "gas"})
INTERVAL_SECONDS = frozenset({60, 300, 600, 900, 1800, 3600, 86400})


class Quality(StrEnum):
    """Status of an interval version in the validated store."""

    VALID = "valid"
    ESTIMATED = "estimated"
    EDITED = "edited"
    SUSPECT = "suspect"
    MISSING = "missing"


# NAESB ESPI QualityOfReading for each status (estimated refines to 8 reference day / 9 linear).
ESPI_QUALITY: dict[Quality, int | None] = {
    Quality.VALID: 0,
    Quality.EDITED: 7,
    Quality.ESTIMATED: 8,
    Quality.SUSPECT: 10,
    Quality.MISSING: None,
}


# source unit -> (canonical unit, factor). Energy to kWh, reactive to kVARh, water to US
# gallons, gas volume to CCF; therms stay therms (an energy unit, converting needs heat content).
UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "kwh": ("kWh", 1.0),
    "wh": ("kWh", 0.001),
    "mwh": ("kWh", 1000.0),
    "kvarh": ("kVARh", 1.0),
    "varh": ("kVARh", 0.001),
    "gal": ("gal", 1.0),
    "gallons": ("gal", 1.0),
    "kgal": ("gal", 1000.0),
    "ft3": ("gal", 7.480519480519481),
    "cf": ("gal", 7.480519480519481),
    "ccf": ("gal", 748.0519480519481),
    "hcf": ("gal", 748.0519480519481),
    "m3": ("gal", 264.1720523581484),
    "l": ("gal", 0.26417205235814845),
    "therm": ("therm", 1.0),
    "therms": ("therm", 1.0),
}
# Gas is volume in CCF, not gallons: the same source units map differently by commodity.
GAS_UNIT_CONVERSIONS: dict[str, tuple[str, float]] = {
    "ft3": ("CCF", 0.01),
    "cf": ("CCF", 0.01),
    "ccf": ("CCF", 1.0),
    "hcf": ("CCF", 1.0),
    "mcf": ("CCF", 10.0),
    "m3": ("CCF", 0.3531466672148859),
    "therm": ("therm", 1.0),
    "therms": ("therm", 1.0),
}


def normalise_units(
    values: pd.Series, units: pd.Series, channels: pd.Series | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Convert values to canonical units, vectorised: (values, canonical unit, unknown-unit mask).

    Rows whose unit is unknown keep their value, get an empty unit and are flagged so
    the adapter can reject them with a reason.
    """
    key = units.astype("str").str.strip().str.lower()
    canon = key.map({k: v[0] for k, v in UNIT_CONVERSIONS.items()})
    factor = key.map({k: v[1] for k, v in UNIT_CONVERSIONS.items()})
    if channels is not None:
        is_gas = channels.astype("str").eq("gas").to_numpy()
        if is_gas.any():
            canon = canon.where(~is_gas, key.map({k: v[0] for k, v in GAS_UNIT_CONVERSIONS.items()}))
            factor = factor.where(~is_gas, key.map({k: v[1] for k, v in GAS_UNIT_CONVERSIONS.items()}))
    unknown = canon.isna()
    out = values.astype("float64") * factor.fillna(1.0).astype("float64")
    return out, canon.fillna("").astype("str"), unknown


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Select and cast a frame to a canonical schema (missing optional columns become null)."""
    out = {}
    for col, dtype in columns.items():
        series = frame[col] if col in frame else pd.Series(np.nan, index=frame.index)
        out[col] = series.astype(dtype)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)
