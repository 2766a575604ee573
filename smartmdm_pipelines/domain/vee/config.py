"""VEE rule-set configuration: parameters per meter class, each with a documented default.

A meter class is (commodity, kind, interval length). Where a standard gives a value the
default cites it; where none could be found (docs/vee_rules.md §6 marks these "our choice") the default is
our choice, said so, and configurable in the utility YAML under ``vee:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True)
class RuleSet:
    # --- validation ---
    time_tolerance_seconds: int = 60
    """Clock drift a read may have and still be snapped to its grid slot (flag only). CA/IESO
    values not retrievable (docs/vee_rules.md §6): our choice. Beyond it the read is suspect."""
    spike_tolerance_pct: float = 300.0
    """Oracle spike: (max − 3rd highest) / 3rd highest of the day, in % (docs/vee_rules.md T5)."""
    spike_min_value: float = 0.5
    """A day whose 3rd-highest interval is below this is not spike-checked (noise floor; our choice)."""
    spike_history_factor: float = 4.0
    """Against history: a value above factor × the meter's highest value in the reference weeks (our choice)."""
    max_interval_value: float | None = None
    """Upper physical bound per interval in the canonical unit (None: derived from unit and length)."""
    min_interval_value: float = 0.0
    consecutive_zero_intervals: int | None = 8
    """T10: N consecutive zeros of delivered energy on an active service point without an outage
    (and without solar) are suspect. None disables the rule (the default for water and gas, whose
    consumption is legitimately zero for hours)."""
    flat_line_hours: float = 24.0
    """Identical non-zero values for this long (a stuck register); our choice."""
    sum_check_tolerance_pct: float = 2.0
    """Sum of intervals vs register advance × multiplier (T6 shows 1 % fails / 3 % passes; no standard)."""
    high_usage_factor: float = 3.0
    """Day total above factor × the like-day average of the reference weeks (Oracle High/Low; our value)."""
    low_usage_factor: float = 0.2
    replacement_change_pct: float = 1.0
    """A re-delivered actual differing by more than this from the stored actual raises an exception."""
    prolonged_estimation_days: int = 3
    """Consecutive days with estimated intervals before an exception (Oracle V21; our value)."""
    water_min_flow_hours: int = 24
    """Water that never reaches zero for this many hours: continuous-flow (leak) exception."""
    max_wait_hours: float = 48.0
    """Re-collection window: intervals after a meter's last received read are awaited, not estimated
    and not reported missing, until the newest data received from any meter is this much later
    (ERCOT retries collection over 5 days; our default)."""
    # --- estimation ---
    linear_max_gap_minutes: int = 120
    """CA DASMMD: gaps ≤ 2 h use point-to-point linear interpolation (docs/vee_rules.md §1.3, E1)."""
    outage_is_endpoint: bool = False
    """CA rule: a power-failure interval is not an interpolation end point (T4); switch for the contested variant."""
    like_days: int = 7
    """Like days (E2): the number of reference days the profile is built from, and the clean days of
    the matching kind a series needs for it. Itron Historical uses the 3 nearest (T11); on the
    simulator 7 beat the California baseline at every gap length while 3 lost to it at 24 h."""
    reference_weeks: int = 5
    """How far back like days, history spikes and high/low usage look."""
    like_day_mode: str = "day_type"
    """'day_type': weekday vs weekend/holiday; 'same_weekday': same day of the week only. At least
    ``like_days`` clean days of the matching kind must exist, else the multi-week average is used."""
    like_day_other_type_weight: float = 0.5
    """Weight of a clean day of the other kind (a weekend day for a weekday) against 1 for a matching
    day; 0 keeps matching days only (Itron). On real household meters a recent weekend day tells
    more about a weekday than one of three weeks before (docs/vee_accuracy.md)."""
    like_day_half_life_days: float = 7.0
    """Recency, for gaps whose day has no valid interval to compare reference days with (a whole day
    missing): a day's weight halves every this many days further than the day before; 0 weighs
    every day the same (Itron, T11). Where the day can be compared, the similarity weights
    replace recency (they measured better on real meters). See ``like_day_recency_check``."""
    like_day_recency_check: bool = True
    """Recency only for series whose own reference weeks say it helps: a self-backtest predicting
    each clean day's total from the earlier ones, recency-weighted against plain means. Real
    household levels drift (occupancy, weather spells); where days vary independently (the
    simulator's weather) recency only discards information. False: recency for every series."""
    like_day_next_day: bool = True
    """The day after, when VEE already holds it clean (a late run; the re-collection window), is a
    reference day too, weighted like the day before."""
    like_day_median_weight: float = 0.0
    """Robust aggregation of the reference days: the profile per slot is (1 − w) × their weighted
    mean + w × their weighted median (0: the mean alone). Household load is skewed (a kettle, an
    oven), so the median sits below the mean: on real meters each 0.1 of w lowered NMAE by about
    1 % of the baseline's and moved the bias by about −1 % (a trade, docs/vee_accuracy.md)."""
    like_day_similarity: float = 2.0
    """Similarity-weighted reference days: a day's weight × exp(−s × d), d = its mean absolute
    difference from the estimated day's valid intervals within ``anchor_window_minutes`` of the
    gaps, divided by their mean; 0 turns it off. The largest single gain on real meters."""
    anchor_window_minutes: int = 240
    """Valid intervals of the estimated day this close to a gap are compared with the reference days
    (similarity) and, when on, set the level."""
    anchor_level_weight: float = 0.0
    """Level anchoring: the profile × 1 + w × (observed / profile − 1) over the compared intervals
    (0: off, 1: the full observed ratio). Off by default: with similarity weights it added bias and
    no accuracy on real household meters (w = 0.2 measured; docs/vee_accuracy.md)."""
    anchor_level_max_factor: float = 3.0
    """The level factor stays within [1 / this, this]."""
    anchor_edge_half_life_minutes: float = 45.0
    """Edge anchoring: the difference between the valid interval at each edge of a gap and the
    profile there carries into the gap as the conditional mean of an AR(1) residual between two
    known points, halving every this many minutes at most — less where the series' own deviations
    from its reference days carry less from one interval to the next (their lag-1 correlation);
    0 turns it off. A time, not a count of intervals: hourly and half-hourly real data fit the
    same time constant."""
    linear_profile_weight: float = 0.5
    """Short gaps (≤ ``linear_max_gap_minutes``, both edges known) get (1 − w) × linear + w × the
    like-day profile (without its edge term) when like days exist; 0: the California rule alone."""
    scale_to_register: bool = True
    """E6: scale estimates so the day total equals the register advance when registers bracket it."""
    skip_scaling_on_failed_sum_check: bool = True
    """Do not scale estimates to a register advance that failed sum_check or multiplier_mismatch
    that day: scaling to a wrong advance spreads its error over the estimates (our choice)."""
    register_gap_factor: float = 4.0
    """Sum check on a day with unmeasured intervals (our choice): the register advance is implausible
    when the unmeasured intervals would each have to hold more than this × the day's highest valid
    interval, or when the measured intervals alone already exceed it (beyond the tolerance)."""
    register_gap_min_coverage: float = 0.5
    """Share of the day's intervals that must be valid for the upper bound above to be judged."""
    forward_max_days: float = 7.0
    """Forward estimates (E11) project a silent series at most this far past its last value; a
    longer silence is left to an operator (Oracle "Create Estimation IMD for Gap": Max hours; our value)."""
    register_read_window_days: int = 3
    """A manual/AMR read within this many days of the cycle's read date counts as the scheduled read
    (V2 Register Gap Check; our value)."""
    register_lookback_days: int = 45
    """Scheduled reads this far back from the as-of date are checked and estimated (our value)."""
    register_adu_sources: tuple[str, ...] = ("recent", "previous_year", "class")
    """ADU sources in order of preference (E10). AEMO prefers the previous year (type 51) when it
    exists: ``[previous_year, recent, class]`` in the YAML switches to that."""
    register_adu_days: int = 90
    """Recent ADU: actual reads in this many days before the previous actual read (Itron ARLP)."""
    register_adu_min_days: float = 20.0
    """An ADU needs reads at least this many days apart."""
    register_previous_year_tolerance_days: int = 10
    """Previous-year ADU: reads within this many days of the same span a year earlier."""
    register_estimate_decimals: int = 0
    """ADU × days is truncated to this many decimals of a dial unit (CPUC proposal: whole units)."""
    completeness_threshold: float = 0.98
    """Share of expected intervals with a valid or estimated value required in front of billing."""

    def override(self, values: dict) -> RuleSet:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown VEE parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return replace(self, **values)


# Physical upper bounds per interval-hour by unit (a generous service size; our choice).
MAX_PER_HOUR = {"kWh": 1000.0, "kVARh": 1000.0, "gal": 20000.0, "CCF": 500.0, "therm": 500.0}


# Built-in adjustments per commodity when no class is configured (our choices, measured on the
# simulator: hourly water use is spiky — the 99.9th percentile of (max − 3rd) / 3rd is ~800 % —
# and water and gas are legitimately zero for hours).
COMMODITY_DEFAULTS: dict[str, dict] = {
    # bursty hourly use: blending the profile into short gaps measured worse than linear alone
    "water": {
        "spike_tolerance_pct": 1000.0,
        "consecutive_zero_intervals": None,
        "linear_profile_weight": 0.0,
    },
    "gas": {"spike_tolerance_pct": 1000.0, "consecutive_zero_intervals": None},
}


@dataclass(frozen=True)
class VeeConfig:
    """The default rule set plus overrides per class key 'commodity/kind' or 'commodity/kind/seconds'."""

    default: RuleSet = field(default_factory=RuleSet)
    classes: dict[str, RuleSet] = field(default_factory=dict)

    def for_class(self, commodity: str, kind: str, interval_seconds: int | None) -> RuleSet:
        for key in (f"{commodity}/{kind}/{interval_seconds}", f"{commodity}/{kind}", commodity):
            if key in self.classes:
                return self.classes[key]
        return replace(self.default, **COMMODITY_DEFAULTS.get(commodity, {}))

    @classmethod
    def from_dict(cls, raw: dict | None) -> VeeConfig:
        raw = dict(raw or {})
        default = RuleSet().override(raw.pop("default", {}) or {})
        classes = {
            key: default.override(values or {}) for key, values in (raw.pop("classes", {}) or {}).items()
        }
        if raw:
            raise ValueError(f"unknown keys in vee config: {sorted(raw)} (expected 'default', 'classes')")
        return cls(default=default, classes=classes)
