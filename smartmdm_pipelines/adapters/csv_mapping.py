"""The declarative CSV mapping of a source (the ``csv:`` block of a source in the utility YAML).

Most AMR/AMI exports are delimited text with their own columns. A mapping says how to read one:
the delimiter, the decimal mark, where the header is, which column holds the meter, the time and
the value (by header name or 1-based position), the time format, the unit and channel (fixed or
from a column), and whether a value is an interval quantity or a cumulative register. It is
validated when the configuration loads, so a typo fails at start-up with the field's path, never
half-way through a file. ``adapters/mapped_csv.py`` reads files with it; docs/mapped_csv.md
describes every key.
"""

from __future__ import annotations

import codecs
import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from smartmdm_pipelines.domain.readings import CHANNELS, GAS_UNIT_CONVERSIONS, UNIT_CONVERSIONS
from smartmdm_pipelines.domain.vee.day import CHANNEL_UNITS

ISO8601 = "ISO8601"
INTERVAL_MINUTES = (1, 5, 10, 15, 30, 60, 1440)
KNOWN_UNITS = sorted(set(UNIT_CONVERSIONS) | set(GAS_UNIT_CONVERSIONS))
_SAMPLE = dt.datetime(2019, 10, 27, 2, 59, 47, tzinfo=dt.timezone(dt.timedelta(hours=2)))

Column = str | int
GAS_UNITS = ("CCF", "therm")


def channel_units(channel: str) -> tuple[str, ...]:
    """The canonical units a channel's values may have (kWh for energy, gal for water …)."""
    return GAS_UNITS if channel == "gas" else (CHANNEL_UNITS[channel],)


def _one_character(value: str, key: str) -> str:
    value = "\t" if value in ("\\t", "tab", "TAB") else value
    if len(value) != 1:
        raise ValueError(f"csv.{key} must be one character (e.g. ';' or '\\t'), not {value!r}")
    return value


class CsvColumns(BaseModel):
    """Where each field is: a header name, or a 1-based column position."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter: Column
    time: Column
    value: Column
    channel: Column | None = None
    unit: Column | None = None
    quality: Column | None = None

    @field_validator("*")
    @classmethod
    def _column(cls, value: Column | None) -> Column | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"a column position counts from 1, not {value}")
        if isinstance(value, str) and not value.strip():
            raise ValueError("a column name cannot be empty")
        return value.strip() if isinstance(value, str) else value

    def roles(self) -> dict[str, Column]:
        """role -> column of every mapped field."""
        return {role: column for role, column in self.model_dump().items() if column is not None}


class CsvMapping(BaseModel):
    """How to read one source's delimited export (docs/mapped_csv.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: CsvColumns
    time_format: str
    """strptime format of the time column (``%d/%m/%Y %H:%M:%S``) or ``ISO8601``. Without ``%z``
    (or an offset in ISO-8601 text) times are naive local times of the source's ``timezone``."""
    value_kind: Literal["interval", "register"]
    """``interval``: the value is the quantity of one interval; ``register``: a cumulative reading."""
    delimiter: str = ","
    decimal: str = "."
    thousands: str | None = None
    quote: str | None = '"'
    encoding: str = "utf-8"
    header: bool = True
    skip_rows: int = 0
    """Lines before the header (or, without a header, before the first record): a preamble."""
    unit: str | None = None
    """Unit of every value (``L``, ``m3``, ``gal``, ``kWh`` …) unless ``columns.unit`` gives it per row."""
    channel: str | None = None
    """Channel of every value (``water``, ``gas``, ``kwh_delivered`` …) unless ``columns.channel`` does."""
    interval_minutes: int | None = None
    """Interval values only: the interval length (1, 5, 10, 15, 30, 60 or 1440)."""
    time_marks: Literal["end", "start"] = "end"
    """Interval values only: whether the time is the interval's end (the MDM's convention) or start."""
    error_values: tuple[float, ...] = ()
    """Numbers the head-end writes instead of a reading (e.g. 99999999): such rows are rejected."""
    derive_intervals: bool = True
    """Register values only: derive interval consumption on the meter's grid (docs/mapped_csv.md)."""
    max_gap_hours: float = 72.0
    """Register values only: two reads further apart than this are not apportioned (VEE estimates)."""

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        return _one_character(value, "delimiter")

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _one_character(value, "quote")

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, value: str) -> str:
        if value not in (".", ","):
            raise ValueError(f"csv.decimal must be '.' or ',', not {value!r}")
        return value

    @field_validator("thousands")
    @classmethod
    def _thousands(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _one_character(value, "thousands")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            return codecs.lookup(value).name
        except LookupError:
            raise ValueError(
                f"csv.encoding {value!r} is not a known text encoding (e.g. utf-8, latin-1)"
            ) from None

    @field_validator("skip_rows")
    @classmethod
    def _skip_rows(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"csv.skip_rows cannot be negative ({value})")
        return value

    @field_validator("time_format")
    @classmethod
    def _time_format(cls, value: str) -> str:
        if value.upper() == ISO8601:
            return ISO8601
        try:
            text = _SAMPLE.strftime(value)
            back = dt.datetime.strptime(text, value)
        except ValueError as exc:
            raise ValueError(f"csv.time_format {value!r} is not a strptime format: {exc}") from None
        fields = ("year", "month", "day", "hour")
        if any(getattr(back, name) != getattr(_SAMPLE, name) for name in fields):
            raise ValueError(
                f"csv.time_format {value!r} does not carry a full date and hour "
                "(expected e.g. '%d/%m/%Y %H:%M:%S')"
            )
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in KNOWN_UNITS:
            raise ValueError(f"csv.unit {value!r} is not a known unit (one of {KNOWN_UNITS}, any case)")
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and value not in CHANNELS:
            raise ValueError(f"csv.channel {value!r} is not a channel code (one of {sorted(CHANNELS)})")
        return value

    @field_validator("max_gap_hours")
    @classmethod
    def _max_gap(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"csv.max_gap_hours must be positive, not {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CsvMapping:
        roles = self.columns.roles()
        if not self.header:
            named = sorted(role for role, column in roles.items() if isinstance(column, str))
            if named:
                raise ValueError(
                    f"csv.header is false, so columns {named} must be 1-based positions, not names"
                )
        seen: dict[Column, str] = {}
        for role, column in roles.items():
            if column in seen:
                raise ValueError(
                    f"csv.columns.{role} and csv.columns.{seen[column]} both map column {column!r}"
                )
            seen[column] = role
        if self.decimal == self.delimiter:
            raise ValueError(f"csv.decimal {self.decimal!r} cannot also be the delimiter")
        if self.thousands is not None and self.thousands in (self.decimal, self.delimiter):
            raise ValueError(f"csv.thousands {self.thousands!r} cannot be the decimal mark or the delimiter")
        if self.quote is not None and self.quote == self.delimiter:
            raise ValueError(f"csv.quote {self.quote!r} cannot also be the delimiter")
        for role in ("unit", "channel"):
            given, column = getattr(self, role), roles.get(role)
            if (given is None) == (column is None):
                example = "L, m3, gal, kWh" if role == "unit" else "water, gas, kwh_delivered"
                raise ValueError(
                    f"give either csv.{role} (every row, e.g. {example}) or csv.columns.{role} (per row), "
                    "exactly one of them"
                )
        if self.unit is not None and self.channel is not None:
            conversions = GAS_UNIT_CONVERSIONS if self.channel == "gas" else UNIT_CONVERSIONS
            canonical = conversions.get(self.unit.strip().lower(), ("",))[0]
            if canonical not in channel_units(self.channel):
                raise ValueError(
                    f"csv.unit {self.unit!r} does not fit csv.channel {self.channel!r} "
                    f"(expected a unit of {' or '.join(channel_units(self.channel))})"
                )
        if self.value_kind == "interval":
            if self.interval_minutes not in INTERVAL_MINUTES:
                raise ValueError(
                    f"csv.interval_minutes must be one of {list(INTERVAL_MINUTES)} for interval values, "
                    f"not {self.interval_minutes!r}"
                )
        elif self.interval_minutes is not None:
            raise ValueError(
                "csv.interval_minutes applies to interval values only: register values are derived onto the "
                "meter's own interval grid (meters.interval_seconds)"
            )
        return self

    @property
    def derives(self) -> bool:
        """Whether interval consumption is derived from this source's register reads."""
        return self.value_kind == "register" and self.derive_intervals

    @property
    def aware(self) -> bool:
        """Whether the time format carries its own UTC offset (``%z``)."""
        return "%z" in self.time_format
