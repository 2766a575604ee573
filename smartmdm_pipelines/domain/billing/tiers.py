"""Tiered (block) charges with cumulative bounds, and exact volume-unit conversions.

Tier bounds are **cumulative upper bounds over the billing period** (URDB ``max``): the
quantity is accumulated over the month (per TOU period when tiers are per period) and only
then split into blocks — never per interval. Everything here broadcasts over arrays, so
one call prices many accounts at once.

    charge = Σ_k (min(Q, ub_k) − ub_{k−1})⁺ × rate_k        (ub_{−1} = 0, last ub = ∞)

The last block is always open: a quantity above the last tier's ``max`` (a URDB structure
whose last tier is capped, e.g. 600 kW on tiers ending at 500 kW) is billed at the last
tier's rate, as SAM/PySAM do, never dropped; :func:`above_last_bound` tells how much that is
so the bill can say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

ArrayLike = float | Sequence[float] | np.ndarray


def _bounds(bounds: ArrayLike) -> np.ndarray:
    b = np.array(bounds, dtype="float64")
    b = np.where(np.isnan(b), np.inf, b)  # None -> unlimited
    return b


def tier_quantities(quantity: ArrayLike, bounds: ArrayLike) -> np.ndarray:
    """Split quantities into blocks: shape ``quantity.shape + (k,)``.

    ``bounds`` are the k cumulative upper bounds (``None``/``inf`` = unlimited), either one row
    shared by all quantities or one row per quantity (e.g. prorated or kWh/kW thresholds).
    The last block takes everything above the bound before it, whatever its own bound says.
    Negative quantities put nothing in any block.
    """
    q = np.asarray(quantity, dtype="float64")
    ub = _bounds(bounds).copy()
    lb = np.concatenate([np.zeros(ub.shape[:-1] + (1,)), ub[..., :-1]], axis=-1)
    ub[..., -1] = np.inf
    return np.clip(np.minimum(q[..., None], ub) - lb, 0.0, None)


def above_last_bound(quantity: ArrayLike, bounds: ArrayLike) -> float | np.ndarray:
    """How much of the quantity lies above the last tier's bound (0 when the last tier is unlimited)."""
    q = np.asarray(quantity, dtype="float64")
    last = _bounds(bounds)[..., -1]
    out = np.clip(q - last, 0.0, None)
    return float(out) if np.ndim(out) == 0 else out


def tiered_charge(quantity: ArrayLike, bounds: ArrayLike, rates: ArrayLike) -> float | np.ndarray:
    """Σ over blocks of block quantity × block rate (a float for a scalar quantity)."""
    amounts = tier_quantities(quantity, bounds) * np.asarray(rates, dtype="float64")
    out = amounts.sum(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def scale_bounds(bounds: ArrayLike, factor: ArrayLike) -> np.ndarray:
    """Bounds × factor (proration, 'daily' units × days, 'kWh/kW' units × billing demand)."""
    ub = _bounds(bounds)
    f = np.asarray(factor, dtype="float64")
    return ub * f[..., None] if f.ndim else ub * float(f)


# ------------------------------------------------------------------ units (exact definitions)

# Each unit as an exact fraction of a cubic metre: 1 US gal = 231 in³ = 3.785411784 L;
# 1 ft³ = 0.028316846592 m³ (exact); 1 CCF = 100 ft³.
_GAL = Fraction("0.003785411784")
_FT3 = Fraction("0.028316846592")
VOLUME_M3: dict[str, Fraction] = {
    "m3": Fraction(1),
    "L": Fraction(1, 1000),
    "gal": _GAL,
    "kgal": _GAL * 1000,
    "Mgal": _GAL * 1_000_000,
    "ft3": _FT3,
    "CCF": _FT3 * 100,
    "MCF": _FT3 * 1000,
}
_ALIASES = {"hcf": "CCF", "ccf": "CCF", "cf": "ft3", "ft3": "ft3", "m³": "m3", "m3": "m3", "l": "L"}
_ALIASES.update({"gal": "gal", "gallon": "gal", "gallons": "gal", "kgal": "kgal", "mgal": "Mgal"})
_ALIASES.update({"mcf": "MCF", "kwh": "kWh", "therm": "therm", "therms": "therm"})


def canonical_unit(unit: str) -> str:
    key = unit.strip()
    return _ALIASES.get(key.lower(), key)


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """Exact factor such that ``value_in_to_unit = value_in_from_unit × factor``."""
    a, b = canonical_unit(from_unit), canonical_unit(to_unit)
    if a == b:
        return 1.0
    if a in VOLUME_M3 and b in VOLUME_M3:
        return float(VOLUME_M3[a] / VOLUME_M3[b])
    raise ValueError(f"cannot convert {from_unit} to {to_unit} (no exact conversion; give a factor)")


def convert(value: ArrayLike, from_unit: str, to_unit: str) -> float | np.ndarray:
    """Convert quantities between volume units with exact factors (gal, kgal, CCF, ft³, m³, L)."""
    a, b = canonical_unit(from_unit), canonical_unit(to_unit)
    if np.ndim(value) == 0 and a in VOLUME_M3 and b in VOLUME_M3:
        exact = Fraction(str(float(value))) * VOLUME_M3[a] / VOLUME_M3[b]
        return float(exact)
    out = np.asarray(value, dtype="float64") * conversion_factor(a, b)
    return float(out) if np.ndim(out) == 0 else out
