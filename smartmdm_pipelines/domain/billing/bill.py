"""A month's bill and its lines: ``ChargeLine`` (quantity × rate = amount), ``MonthBill``, the
bill-month keys and the tiered lines that demand and energy charges are written as."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing.numbers import cents, plain
from smartmdm_pipelines.domain.billing.tariff import Tier
from smartmdm_pipelines.domain.billing.tiers import above_last_bound, tier_quantities


@dataclass
class ChargeLine:
    """One line of a bill: quantity (in ``unit``) × rate = amount.

    ``amount`` is exact; :attr:`billed_amount` is the amount to the cent (the only rounding).
    ``quantity_label`` is the exact form of a prorated quantity (``1/31`` month); ``note``
    explains anything unusual about the line (e.g. demand above the last tier's limit).
    """

    category: str  # energy | export_credit | demand | flat_demand | coincident | reactive | fixed | minimum
    description: str
    quantity: float
    unit: str
    rate: float
    amount: float
    period: int | None = None
    tier: int | None = None
    note: str | None = None
    quantity_label: str | None = None

    @classmethod
    def of(
        cls, category: str, description: str, quantity: float, unit: str, rate: float, **extra: Any
    ) -> ChargeLine:
        """A line whose amount is quantity × rate."""
        quantity, rate = float(quantity), float(rate)
        return cls(category, description, quantity, unit, rate, quantity * rate, **extra)

    @property
    def billed_amount(self) -> float:
        return cents(self.amount)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["amount"] = self.billed_amount  # quantity and rate stay exact: quantity × rate = amount
        return d


@dataclass
class MonthBill:
    month: str  # YYYY-MM (local calendar month)
    start: dt.date  # first billed local day (inclusive)
    end: dt.date  # last billed local day (inclusive)
    days: int
    days_in_month: int
    unit: str
    energy: list[dict[str, Any]] = field(default_factory=list)  # per TOU period
    demand: list[dict[str, Any]] = field(default_factory=list)  # per kind and period
    lines: list[ChargeLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(line.amount for line in self.lines))

    def amount(self, category: str) -> float:
        return float(sum(line.amount for line in self.lines if line.category == category))

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "days_in_month": self.days_in_month,
            "unit": self.unit,
            "energy": self.energy,
            "demand": self.demand,
            "lines": [line.to_dict() for line in self.lines],
            "notes": self.notes,
            "total": cents(self.total),
        }


def month_key(start: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(start.year, dtype="int64") * 12 + np.asarray(start.month, dtype="int64") - 1


def key_label(key: int) -> str:
    return f"{key // 12:04d}-{key % 12 + 1:02d}"


def tiered_lines(
    category: str,
    what: str,
    quantity: float | np.ndarray,
    unit: str,
    tiers: list[Tier],
    bounds: np.ndarray,
    period: int | None,
) -> list[ChargeLine]:
    """One line per tier used: Σ of the tier's block over ``quantity`` (a month's value, or the
    daily peaks of a ``… daily`` unit) × the tier's rate. A quantity above a capped last tier is
    billed at the last tier's rate, with a note on that line."""
    values = np.atleast_1d(np.asarray(quantity, dtype="float64"))
    qty = tier_quantities(values, bounds).sum(axis=0)
    excess = np.asarray(above_last_bound(values, bounds), dtype="float64")
    total = float(values.sum())
    lines = []
    for k, (q, tier) in enumerate(zip(qty, tiers, strict=True)):
        if q <= 0 and not (k == 0 and total <= 0):
            continue
        note = None
        if k == len(tiers) - 1 and excess.sum() > 0:
            note = _above_last_note(what, values, excess, float(bounds[-1]), unit, tier.rate)
        tier_text = f" tier {k + 1}" if len(tiers) > 1 else ""
        lines.append(
            ChargeLine.of(
                category, f"{what}{tier_text}", q, unit, tier.rate, period=period, tier=k, note=note
            )
        )
    return lines


def _above_last_note(
    what: str, values: np.ndarray, excess: np.ndarray, limit: float, unit: str, rate: float
) -> str:
    """The note on a line that holds a quantity above the last tier's limit."""
    over = excess > 0
    base = unit.removesuffix(" daily")  # a daily peak is in kW; the rate is per kW and day
    if len(values) == 1:
        head = f"{what}: {plain(values[0])} {base} is above the last tier's limit of {plain(limit)} {base}"
    else:
        head = (
            f"{what}: {int(over.sum())} daily peak(s) up to {plain(values[over].max())} {base} are above "
            f"the last tier's limit of {plain(limit)} {base}"
        )
    return (
        f"{head}; the {plain(excess.sum())} {base} above it is billed at the last tier's rate "
        f"({plain(rate)} per {unit}), as the tariff gives no rate beyond its last tier"
    )
