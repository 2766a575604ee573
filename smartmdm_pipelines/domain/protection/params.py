"""Thresholds of the revenue-protection indicators, with the defaults the code relies on.

Every value is a utility-tunable parameter, not a standard (docs/protection.md says why each
default was chosen). Strengths are the weight a signal carries on its own, 0..1; a case's score
combines them as independent evidence (noisy-OR), so two weak signals make a stronger case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# the channel that carries a commodity's billed consumption
MAIN_CHANNEL = {"electric": "kwh_delivered", "water": "water", "gas": "gas"}
RECEIVED_CHANNEL = "kwh_received"

INDICATORS = (
    "tamper_event",
    "reverse_flow",
    "consumption_drop",
    "zero_usage",
    "flat_meter_zone_rise",
    "vacant_usage",
    "register_interval_disagreement",
    "repeated_estimation",
)

STRENGTHS = {
    "tamper_event": 0.35,  # a tamper flag alone is mostly noise (cover opened for a meter test …)
    "reverse_flow": 0.8,  # received energy on a service point without generation
    "reverse_flow_event": 0.5,  # the meter's reverse-flow event without received energy
    "zero_usage": 0.6,
    "flat_meter_zone_rise": 0.8,
    "vacant_usage": 0.85,
    "register_interval_disagreement": 0.35,
    "repeated_estimation": 0.25,
}


@dataclass(frozen=True)
class ProtectionParams:
    """Thresholds of the indicators (defaults documented in docs/protection.md)."""

    window_days: int = 56  # days evaluated, ending on the evaluated operating day
    min_segment_days: int = 3  # days on each side of a consumption change point
    drop_ratio: float = 0.6  # peer-adjusted usage after / before the change point below this: a drop
    drop_t: float = 5.0  # and the step stands out of the day-to-day noise by this many standard errors
    min_drop_strength: float = 0.4
    max_drop_strength: float = 0.9  # a drop's strength is 1 − ratio, at most this (use alone proves no theft)
    min_peers: int = 5  # peer groups (commodity, class, rate) smaller than this fall back to the class
    zero_days: int = 3  # consecutive near-zero days on an occupied service point
    zero_share: float = 0.05  # "near zero": below this share of the service point's own baseline
    zero_floor: dict[str, float] = field(
        default_factory=lambda: {"electric": 0.5, "water": 1.0, "gas": 0.05}
    )  # per day, in the channel's unit: usage below this is zero whatever the baseline
    vacant_ratio: float = 0.5  # usage while vacant / usage while occupied above this is suspicious
    vacant_daily: dict[str, float] = field(
        default_factory=lambda: {"electric": 5.0, "water": 50.0, "gas": 1.0}
    )  # standby allowance per day when the premise has no occupied baseline in the window
    zone_rise_share: float = 0.5  # the zone's daily loss rose by at least this share of the meter's usual use
    reverse_epsilon: float = 0.01  # kWh per day received before reverse energy counts
    estimated_share: float = 0.5  # a day more than this share estimated counts as an estimated day
    estimated_days: int = 3  # that many estimated days in the window: repeated estimation
    tamper_drop_days: int = 2  # a tamper event this close before a drop dates the drop
    min_case_score: float = 0.3  # signals scoring less do not open a case
    high_score: float = 0.8  # the asset check warns on new cases at or above this score
    reopen_margin: float = 0.15  # a closed case reopens when its score rises by more than this
    excerpt_days: int = 14  # days of the usage series kept as evidence
    strengths: dict[str, float] = field(default_factory=lambda: dict(STRENGTHS))
