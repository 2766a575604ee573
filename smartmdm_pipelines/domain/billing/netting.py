"""Net metering / net billing: delivered and received channels netted per the tariff's rule.

Delivered (grid -> customer) and received (customer -> grid) stay separate non-negative
channels until here.

* ``per_period`` (NEM, URDB "Net Metering"): net = Σ delivered − Σ received over the billing
  period (per TOU period when the tariff has TOU); a positive net is billed, a negative net is
  excess generation credited at the sell rate.
* ``per_interval`` (net billing, "Net Billing Instantaneous"/"Hourly"): each interval (or
  clock hour for "Hourly") is netted first; imports are billed, exports credited at sell.
* ``buy_all_sell_all``: no netting; all delivered billed, all received credited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.billing.tariff import NETTING_RULES

PER_PERIOD, PER_INTERVAL, BUY_ALL_SELL_ALL = NETTING_RULES


@dataclass(frozen=True)
class Netted:
    imported: float  # billed at the buy rate(s)
    exported: float  # credited at the sell rate


def check_rule(rule: str) -> str:
    if rule not in NETTING_RULES:
        raise ValueError(f"netting must be one of {', '.join(NETTING_RULES)}, not {rule!r}")
    return rule


def interval_net(delivered: np.ndarray, received: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-interval import and export (both ≥ 0) after netting each interval."""
    net = np.asarray(delivered, dtype="float64") - np.asarray(received, dtype="float64")
    return np.clip(net, 0.0, None), np.clip(-net, 0.0, None)


def net_quantities(delivered, received, rule: str) -> Netted:
    """Billed import and credited export over one billing period (or one TOU period of it)."""
    check_rule(rule)
    d = np.asarray(delivered, dtype="float64")
    r = np.asarray(received, dtype="float64")
    if rule == PER_PERIOD:
        net = float(d.sum() - r.sum())
        return Netted(max(net, 0.0), max(-net, 0.0))
    if rule == PER_INTERVAL:
        imp, exp = interval_net(d, r)
        return Netted(float(imp.sum()), float(exp.sum()))
    return Netted(float(d.sum()), float(r.sum()))


def netting_charge(delivered, received, buy: float, sell: float, rule: str) -> float:
    """Energy charge of a single-rate tariff under ``rule`` (export credits reduce it)."""
    n = net_quantities(delivered, received, rule)
    return n.imported * buy - n.exported * sell


def net_frame(frame: pd.DataFrame, keys: list[str], rule: str) -> pd.DataFrame:
    """Vectorised netting of many series at once.

    ``frame`` has ``delivered`` and ``received`` per interval plus the grouping ``keys`` (e.g.
    account, month, TOU period). Returns one row per group with ``delivered``, ``received``,
    ``imported`` and ``exported``.
    """
    check_rule(rule)
    f = frame[[*keys, "delivered", "received"]].copy()
    if rule == PER_INTERVAL:
        f["imported"], f["exported"] = interval_net(f["delivered"].to_numpy(), f["received"].to_numpy())
    elif rule == BUY_ALL_SELL_ALL:
        f["imported"], f["exported"] = f["delivered"], f["received"]
    g = f.groupby(keys, sort=True, dropna=False).sum(numeric_only=True).reset_index()
    if rule == PER_PERIOD:
        net = g["delivered"] - g["received"]
        g["imported"] = net.clip(lower=0.0)
        g["exported"] = (-net).clip(lower=0.0)
    return g[[*keys, "delivered", "received", "imported", "exported"]]
