"""Money to the cent and numbers as people read them on a bill.

* :func:`cents` rounds an amount half-up on its decimal value (0.125 → 0.13, not 0.12 as
  binary ``round`` gives), the one rounding a charge line gets.
* :func:`plain` writes a quantity or a rate with thousands separators and every significant
  digit it has, without binary noise (249,720.88 stays 249,720.88; 0.07531 + 0.0119 shows as
  0.08721; 2000.0000000000002 shows as 2,000).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

SIGNIFICANT = 12  # digits kept when a number is written out (float noise lives in digits 16-17)
_CENT = Decimal("0.01")


def cents(amount: float) -> float:
    """``amount`` rounded half-up to the cent (non-finite values are returned as they are)."""
    if not math.isfinite(amount):
        return amount
    return float(Decimal(repr(float(amount))).quantize(_CENT, rounding=ROUND_HALF_UP))


def plain(value: float, significant: int = SIGNIFICANT) -> str:
    """``value`` with thousands separators and up to ``significant`` significant digits, no exponent."""
    if not math.isfinite(value):
        return str(value)
    text = format(Decimal(f"{value:.{significant}g}").normalize(), ",f")
    return "0" if text in ("-0", "0") else text


def money(amount: float) -> str:
    """An amount to the cent with thousands separators (``1,234.50``)."""
    return f"{cents(amount):,.2f}"
