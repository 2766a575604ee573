"""Billing: URDB tariffs, TOU calendar, demand, net metering, tiers, proration, shadow bills.

Pure functions on pandas/numpy; no Dagster, no database. See docs/billing.md.
"""

from smartmdm_pipelines.domain.billing.bill import ChargeLine, MonthBill
from smartmdm_pipelines.domain.billing.netting import net_frame, net_quantities, netting_charge
from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.tariff import Tariff, TariffError, Tier, holiday_frame, schedule_frame
from smartmdm_pipelines.domain.billing.tiers import convert, tier_quantities, tiered_charge
from smartmdm_pipelines.domain.billing.tou import tou_period
from smartmdm_pipelines.domain.billing.urdb import load_tariff, parse_urdb

__all__ = [
    "ChargeLine",
    "MonthBill",
    "Tariff",
    "TariffError",
    "Tier",
    "convert",
    "holiday_frame",
    "load_tariff",
    "net_frame",
    "net_quantities",
    "netting_charge",
    "parse_urdb",
    "schedule_frame",
    "shadow_bill",
    "tier_quantities",
    "tiered_charge",
    "tou_period",
]
