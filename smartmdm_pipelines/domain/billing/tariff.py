"""A validated tariff (:class:`Tariff`: URDB's rate structures, schedules, demand rules, charges
and netting rule as typed fields), its tiers, and its schedules and holidays as store frames.
urdb.py parses OpenEI URDB JSON into it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

UNLIMITED = math.inf
UNLIMITED_FROM = 1e37  # URDB / SAM write "no upper bound" as 1e38 (or 9.99e37)

ENERGY_UNITS = {
    "kwh": "kWh",
    "kwh/kw": "kWh/kW",
    "kwh daily": "kWh daily",
    "kwh/kw daily": "kWh/kW daily",
    # volume / gas units for water and gas tariffs (same URDB structure, other commodities)
    "gal": "gal",
    "kgal": "kgal",
    "mgal": "Mgal",
    "ccf": "CCF",
    "hcf": "CCF",
    "cf": "ft3",
    "ft3": "ft3",
    "mcf": "MCF",
    "m3": "m3",
    "l": "L",
    "therm": "therm",
    "therms": "therm",
}
DEMAND_UNITS = {
    "kw": "kW",
    "hp": "hp",
    "kva": "kVA",
    "kw daily": "kW daily",
    "hp daily": "hp daily",
    "kva daily": "kVA daily",
}
CHARGE_UNITS = {"$/month": "$/month", "$/day": "$/day", "$/year": "$/year"}
NETTING_RULES = ("per_period", "per_interval", "buy_all_sell_all")
DG_RULES = {
    "net metering": ("per_period", None),
    "net billing instantaneous": ("per_interval", None),
    "net billing hourly": ("per_interval", 3600),
    "buy all sell all": ("buy_all_sell_all", None),
}


class TariffError(ValueError):
    """A URDB tariff that cannot be used; the message names the source and the field path."""


@dataclass(frozen=True)
class Tier:
    """One block of a rate structure. ``max`` is the cumulative upper bound in the billing period
    (``inf`` = unlimited); ``rate`` is the effective price ``rate + adj``."""

    max: float
    rate: float
    base_rate: float = 0.0
    adj: float = 0.0
    sell: float = 0.0
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max": None if math.isinf(self.max) else self.max,
            "rate": self.rate,
            "base_rate": self.base_rate,
            "adj": self.adj,
            "sell": self.sell,
            "unit": self.unit,
        }


def tier_bounds(tiers: list[Tier]) -> np.ndarray:
    return np.array([t.max for t in tiers], dtype="float64")


def tier_rates(tiers: list[Tier]) -> np.ndarray:
    return np.array([t.rate for t in tiers], dtype="float64")


@dataclass
class Tariff:
    source: str
    label: str | None = None
    name: str | None = None
    utility: str | None = None
    sector: str | None = None
    servicetype: str | None = None
    startdate: dt.date | None = None  # the date in ``timezone`` (URDB gives epoch seconds)
    enddate: dt.date | None = None
    timezone: str = "UTC"  # the utility's zone the dates are shown in
    start_instant: dt.datetime | None = None  # the epoch as written (UTC), None for a plain date
    end_instant: dt.datetime | None = None
    energy_periods: list[list[Tier]] = field(default_factory=list)
    energy_weekday: np.ndarray | None = None  # (12, 24) int
    energy_weekend: np.ndarray | None = None
    energy_labels: list[str] | None = None
    demand_periods: list[list[Tier]] = field(default_factory=list)  # TOU demand
    demand_weekday: np.ndarray | None = None
    demand_weekend: np.ndarray | None = None
    demand_unit: str = "kW"
    flat_demand_periods: list[list[Tier]] = field(default_factory=list)
    flat_demand_months: list[int] | None = None  # 12 period indices
    flat_demand_unit: str = "kW"
    coincident_periods: list[list[Tier]] = field(default_factory=list)
    coincident_schedule: np.ndarray | None = None
    coincident_unit: str = "kW"
    demand_window: int | None = None  # minutes
    ratchet_percentages: list[float] | None = None  # 12 fractions (0..1)
    lookback_percent: float | None = None  # fraction
    lookback_range: int | None = None  # months
    lookback_months: list[bool] | None = None
    reactive_charge: float | None = None  # $/kVAR
    fixed_charge: float = 0.0
    fixed_charge_unit: str = "$/month"
    min_charge: float = 0.0
    min_charge_unit: str = "$/month"
    annual_min_charge: float = 0.0
    dgrules: str | None = None
    netting: str = "per_period"
    netting_interval_seconds: int | None = None  # None = the meter's interval
    use_net_metering: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def energy_unit(self) -> str:
        """The unit energy/volume quantities are billed in (tier units; kWh unless a volume unit)."""
        for tiers in self.energy_periods:
            for t in tiers:
                if t.unit and not t.unit.startswith("kWh"):
                    return t.unit
        return "kWh"

    @property
    def has_energy(self) -> bool:
        return bool(self.energy_periods)

    @property
    def has_ratchet(self) -> bool:
        pct = self.ratchet_percentages
        return bool(pct and any(p > 0 for p in pct)) or bool(self.lookback_percent)

    def to_dict(self) -> dict[str, Any]:
        def periods(ps: list[list[Tier]]) -> list[dict[str, Any]]:
            return [{"period": i, "tiers": [t.to_dict() for t in tiers]} for i, tiers in enumerate(ps)]

        def sched(a: np.ndarray | None) -> list[list[int]] | None:
            return None if a is None else a.astype(int).tolist()

        return {
            "source": self.source,
            "label": self.label,
            "name": self.name,
            "utility": self.utility,
            "sector": self.sector,
            "servicetype": self.servicetype,
            "startdate": self.startdate.isoformat() if self.startdate else None,
            "enddate": self.enddate.isoformat() if self.enddate else None,
            "timezone": self.timezone,
            "start_instant": self.start_instant.isoformat() if self.start_instant else None,
            "end_instant": self.end_instant.isoformat() if self.end_instant else None,
            "energy": {
                "unit": self.energy_unit,
                "labels": self.energy_labels,
                "periods": periods(self.energy_periods),
                "weekday_schedule": sched(self.energy_weekday),
                "weekend_schedule": sched(self.energy_weekend),
            },
            "demand": {
                "unit": self.demand_unit,
                "window_minutes": self.demand_window,
                "periods": periods(self.demand_periods),
                "weekday_schedule": sched(self.demand_weekday),
                "weekend_schedule": sched(self.demand_weekend),
                "flat_unit": self.flat_demand_unit,
                "flat_periods": periods(self.flat_demand_periods),
                "flat_months": self.flat_demand_months,
                "ratchet_percentages": self.ratchet_percentages,
                "lookback_percent": self.lookback_percent,
                "lookback_range": self.lookback_range,
                "lookback_months": self.lookback_months,
                "reactive_charge_per_kvar": self.reactive_charge,
                "coincident_unit": self.coincident_unit,
                "coincident_periods": periods(self.coincident_periods),
                "coincident_schedule": sched(self.coincident_schedule),
            },
            "fixed_charge": {"amount": self.fixed_charge, "unit": self.fixed_charge_unit},
            "min_charge": {"amount": self.min_charge, "unit": self.min_charge_unit},
            "annual_min_charge": self.annual_min_charge,
            "dgrules": self.dgrules,
            "netting": self.netting,
            "netting_interval_seconds": self.netting_interval_seconds,
        }


# --------------------------------------------------------------------------- store frames

SCHEDULE_COLUMNS = ["rate_code", "effective_from", "kind", "month", "daytype", "hour", "period"]
HOLIDAY_COLUMNS = ["rate_code", "effective_from", "holiday", "name"]


def schedule_frame(tariff: Tariff, rate_code: str, effective_from: dt.date) -> pd.DataFrame:
    """The 12x24 weekday/weekend schedules in long form, for the ``tariff_schedules`` table."""
    parts = []
    month = np.repeat(np.arange(1, 13), 24)
    hour = np.tile(np.arange(24), 12)
    for kind, wd, we in (
        ("energy", tariff.energy_weekday, tariff.energy_weekend),
        ("demand", tariff.demand_weekday, tariff.demand_weekend),
    ):
        if wd is None or we is None:
            continue
        for daytype, sched in (("weekday", wd), ("weekend", we)):
            parts.append(
                pd.DataFrame(
                    {"kind": kind, "month": month, "daytype": daytype, "hour": hour, "period": sched.ravel()}
                )
            )
    if not parts:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SCHEDULE_COLUMNS})
    else:
        frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "effective_from", effective_from)
    frame.insert(0, "rate_code", rate_code)
    for col in ("month", "hour", "period"):
        frame[col] = frame[col].astype("int16")
    return frame[SCHEDULE_COLUMNS]


def holiday_frame(
    rate_code: str, effective_from: dt.date, calendar: str, first_year: int, last_year: int
) -> pd.DataFrame:
    """The tariff's holidays (mapped to the weekend schedule), for the ``tariff_holidays`` table."""
    from smartmdm_pipelines.domain.billing.tou import holiday_names

    names = holiday_names(calendar, first_year, last_year)
    days = sorted(names)
    return pd.DataFrame(
        {
            "rate_code": pd.Series([rate_code] * len(days), dtype="object"),
            "effective_from": pd.Series([effective_from] * len(days), dtype="object"),
            "holiday": pd.Series(days, dtype="object"),
            "name": pd.Series([names[d] for d in days], dtype="object"),
        },
        columns=HOLIDAY_COLUMNS,
    )
