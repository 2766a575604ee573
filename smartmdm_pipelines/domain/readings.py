"""Canonical reading schemas, the quality enum and unit normalisation.

Every adapter turns a head-end file into these frames; everything downstream reads
only these. Times are UTC; an interval is identified by its end instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
# source_quality of interval reads derived from cumulative register reads (domain/register_intervals.py):
# every covering pair of reads at most two intervals apart, or apportioned across a longer gap
DERIVED_QUALITY = "derived"
SPREAD_QUALITY = "derived:spread"


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


# canonical unit names, indexed by the codes ``unit_conversion`` returns ('' = unknown unit)
CANONICAL_UNITS = ["", *sorted({u for u, _ in (*UNIT_CONVERSIONS.values(), *GAS_UNIT_CONVERSIONS.values())})]


def normalise_units(
    values: pd.Series, units: pd.Series, channels: pd.Series | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Convert values to canonical units, vectorised: (values, canonical unit, unknown-unit mask).

    Rows whose unit is unknown keep their value, get an empty unit and are flagged so
    the adapter can reject them with a reason.
    """
    codes, uniques = pd.factorize(units.astype("str"))
    is_gas = None if channels is None else channels.astype("str").eq("gas").to_numpy()
    factor, canon = unit_conversion(codes, uniques, is_gas)
    unknown = np.isnan(factor)
    out = values.astype("float64") * pd.Series(np.where(unknown, 1.0, factor), index=units.index)
    unit = pd.Series(pc.take(pa.array(CANONICAL_UNITS), pa.array(canon)), index=units.index, dtype="str")
    return out, unit, pd.Series(unknown, index=units.index)


def unit_conversion(
    codes: np.ndarray, uniques: Sequence[object] | pa.Array, is_gas: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, from its source unit given as ``uniques[codes]`` (code -1 = missing): the factor to
    the canonical unit (NaN = unknown unit) and the code of the canonical unit in
    ``CANONICAL_UNITS`` (0 = unknown). Gas rows (``is_gas``) use the gas conversions.

    The work is per distinct unit (a file holds a handful), then one numpy take per row.
    """
    names = (
        uniques if isinstance(uniques, pa.Array) else pa.array(list(uniques), pa.string(), from_pandas=True)
    )
    keys = pc.utf8_lower(pc.utf8_trim_whitespace(names)).to_pylist() + [None]  # the last: missing
    index = {name: i for i, name in enumerate(CANONICAL_UNITS)}

    def table(conversions: dict[str, tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        found = [conversions.get(k) if k is not None else None for k in keys]
        factor = np.array([f[1] if f else np.nan for f in found], dtype=np.float64)
        canon = np.array([index[f[0]] if f else 0 for f in found], dtype=np.int8)
        return factor, canon

    rows = np.where(codes < 0, len(keys) - 1, codes) if (codes < 0).any() else codes
    factor, canon = (a[rows] for a in table(UNIT_CONVERSIONS))
    if is_gas is not None and is_gas.any():
        gas_factor, gas_canon = table(GAS_UNIT_CONVERSIONS)
        factor = np.where(is_gas, gas_factor[rows], factor)
        canon = np.where(is_gas, gas_canon[rows], canon)
    return factor, canon


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes (a copy of one built once per
    schema: building it costs milliseconds, and every parsed delivery needs several)."""
    key = tuple(columns.items())
    template = _EMPTY.get(key)
    if template is None:
        template = _EMPTY[key] = pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return template.copy()


_EMPTY: dict[tuple, pd.DataFrame] = {}


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Select and cast a frame to a canonical schema (missing optional columns become null).
    Columns that already have their dtype are not copied."""
    out = {}
    for col, dtype in columns.items():
        series = frame[col] if col in frame else pd.Series(np.nan, index=frame.index)
        out[col] = series if series.dtype == dtype else series.astype(dtype)
    return pd.DataFrame(out, index=frame.index, copy=False).reset_index(drop=True)
