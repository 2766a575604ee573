"""Power factor from kWh and kVARh, and the common tariff adjustments."""

from __future__ import annotations

import numpy as np


def average_power_factor(kwh, kvarh):
    """Average PF of a period: kWh / sqrt(kWh² + kVARh²) (1.0 where both are zero)."""
    p = np.asarray(kwh, dtype="float64")
    q = np.asarray(kvarh, dtype="float64")
    s = np.hypot(p, q)
    out = np.divide(p, s, out=np.ones_like(s), where=s > 0)
    return float(out) if out.ndim == 0 else out


def kva_demand(kw_peak, pf):
    """Billed demand in kVA = kW / PF."""
    out = np.asarray(kw_peak, dtype="float64") / np.asarray(pf, dtype="float64")
    return float(out) if out.ndim == 0 else out


def pf_adjusted_demand(kw_peak, pf, base: float = 0.90):
    """``kW × base / PF`` when PF is below the base, else kW (500 kW at PF 0.8, base 0.9 -> 562.5)."""
    kw = np.asarray(kw_peak, dtype="float64")
    f = np.asarray(pf, dtype="float64")
    out = np.where(f < base, kw * base / f, kw)
    return float(out) if out.ndim == 0 else out


def _points(delta) -> np.ndarray:
    """Whole hundredths of PF (rounded first so 0.9 − 0.8 counts as 10, not 9.999…)."""
    return np.floor(np.round(np.asarray(delta, dtype="float64") * 100.0, 9))


def pf_surcharge_fraction(
    pf,
    base: float = 0.90,
    pct_per_point: float = 1.0,
    credit_from: float | None = 0.95,
    credit_to: float = 0.97,
    credit_pct_per_point: float = 0.5,
):
    """Surcharge (+) or credit (−) as a fraction of energy charges.

    ``pct_per_point`` % per whole 0.01 PF below ``base``; ``credit_pct_per_point`` % credit per
    0.01 above ``credit_from`` up to ``credit_to``. PF 0.80 against 0.90 at 1 %/0.01 -> +0.10.
    """
    f = np.asarray(pf, dtype="float64")
    surcharge = _points(np.clip(base - f, 0.0, None)) * pct_per_point / 100.0
    credit = np.zeros_like(f)
    if credit_from is not None:
        above = np.clip(np.minimum(f, credit_to) - credit_from, 0.0, None)
        credit = _points(above) * credit_pct_per_point / 100.0
    out = surcharge - credit
    return float(out) if out.ndim == 0 else out


def reactive_charge(kvar_peak: float, rate_per_kvar: float) -> float:
    """URDB ``demandreactivepowercharge``: $/kVAR × the period's peak kVAR demand."""
    return float(kvar_peak) * float(rate_per_kvar)
