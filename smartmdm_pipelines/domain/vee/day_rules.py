"""Day-level rules: a typed check ``(DayContext, rule id) -> exception rows`` (meter_id, channel,
rule, severity, detail, intervals, period_start, period_end) per rule.

A check is registered with ``@day_rule("<id>", ...)`` for the rules it judges (sibling rules
that share one computation, e.g. high and low usage, share one check), each described in
``rules.DAY_RULES``; ``day_exceptions`` runs every registered rule in registration order.
``register_decrease`` is the one day rule found before validation (while deriving intervals
from registers) and arrives in ``DayInputs.exceptions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.readings import SPREAD_QUALITY
from smartmdm_pipelines.domain.vee import rules
from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.day import EXCEPTION_COLUMNS, DayInputs
from smartmdm_pipelines.domain.vee.history import day_type
from smartmdm_pipelines.domain.vee.keys import N_CHANNELS, Catalog
from smartmdm_pipelines.domain.vee.totals import day_totals

# consumption a vacant premise may show per day before it is reported (standby loads; our choice)
VACANT_DAILY_THRESHOLD = {"kwh_delivered": 5.0, "water": 50.0, "gas": 1.0}
FOUND_BEFORE_VALIDATION = frozenset({"register_decrease"})


@dataclass
class DayContext:
    """What the day rules read; the pieces several rules share are computed once, on first use."""

    frame: pd.DataFrame  # the day's expected intervals with first-pass status and attributes
    inp: DayInputs
    conflicts: pd.DataFrame  # intervals received with different values (prepare.resolve_reads)
    outside: pd.DataFrame  # received reads on no expected interval (prepare.align)
    daily: pd.DataFrame  # daily_usage of the reference weeks (history.prepare_daily_history)
    tolerance: int  # time tolerance, seconds

    @cached_property
    def today_type(self) -> str:
        return day_type(pd.Series([self.inp.day]), self.inp.holidays).iloc[0]

    @cached_property
    def outside_by_rule(self) -> dict[str, pd.DataFrame]:
        """Reads outside the grid: a meter the master data does not know yet (they wait for the
        CIS sync; a re-run of the day validates them), clock drift beyond tolerance, or nothing
        expected there."""
        outside = self.outside
        if not len(outside):
            return {}
        # a hash lookup (np.isin sorts millions of Python strings)
        known = pd.Index(self.inp.meters["meter_id"].astype(str))
        unknown = ~outside["meter_id"].astype(str).isin(known).to_numpy(dtype=bool)
        drift = (outside["drift_s"].abs() > self.tolerance).to_numpy() & ~unknown
        return {
            "unregistered_meter": outside[unknown],
            "clock_drift": outside[drift],
            "usage_on_inactive": outside[~drift & ~unknown],
        }

    @cached_property
    def ruleset_totals(self) -> list[tuple[RuleSet, pd.DataFrame]]:
        """The day totals (totals.day_totals) per rule set of commodity and meter kind."""
        totals = day_totals(self.frame, self.inp)
        if not len(totals):
            return []
        return [
            (self.inp.config.for_class(commodity, kind, None), group)
            for (commodity, kind), group in totals.groupby(["commodity", "kind"], sort=False)
        ]

    @cached_property
    def register_failures(self) -> pd.DataFrame:
        """Series whose intervals disagree with the register advance (full and partial sum check)."""
        parts = [
            part
            for ruleset, group in self.ruleset_totals
            for part in (rules.sum_check(group, ruleset), _partial_sum_check(group, ruleset))
            if len(part)
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["rule", "detail"])


# a check takes the day and the id of the rule it is run for (one check may serve sibling rules)
DayRule = Callable[[DayContext, str], pd.DataFrame]
DAY_RULE_CHECKS: dict[str, DayRule] = {}


def day_rule(*rule_ids: str) -> Callable[[DayRule], DayRule]:
    """Register the check of each rule in ``rule_ids`` (which ``rules.DAY_RULES`` must describe)."""

    def register(check: DayRule) -> DayRule:
        for rule in rule_ids:
            if rule not in rules.DAY_RULES:
                raise KeyError(f"day rule {rule!r} is not described in rules.DAY_RULES")
            DAY_RULE_CHECKS[rule] = check
        return check

    return register


def day_exceptions(ctx: DayContext) -> pd.DataFrame:
    """The exception rows of every registered day rule."""
    return _concat([check(ctx, rule) for rule, check in DAY_RULE_CHECKS.items()])


def exception_rows(
    df: pd.DataFrame, rule: str, detail: pd.Series | str, intervals: np.ndarray | None = None
) -> pd.DataFrame:
    """Exception rows of ``rule`` for the series in ``df`` (meter_id, channel, optional period)."""
    if df.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    out = df[["meter_id", "channel"]].copy()
    out["rule"], out["severity"], out["detail"] = rule, rules.DAY_RULES[rule][0], detail
    out["intervals"] = intervals if intervals is not None else 0
    out["period_start"] = df.get("period_start", pd.NaT)
    out["period_end"] = df.get("period_end", pd.NaT)
    return out


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXCEPTION_COLUMNS)


def _series_spans(rows: pd.DataFrame, **extra) -> pd.DataFrame:
    """Per meter and channel: first and last interval end and how many rows (plus ``extra`` aggregates)."""
    return (
        rows.groupby(["meter_id", "channel"], observed=True)
        .agg(
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
            n=("interval_end", "size"),
            **extra,
        )
        .reset_index()
    )


_OFF_GRID_TEXT = {
    "unregistered_meter": " read(s) of a meter the master data does not know yet: they wait for the CIS sync",
    "clock_drift": " s off the interval grid",
    "usage_on_inactive": " read(s) for a meter/channel not installed at that time",
}


@day_rule("unregistered_meter", "clock_drift")
def off_grid_reads(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Received reads on no expected interval, by why (``DayContext.outside_by_rule``)."""
    subset = ctx.outside_by_rule.get(rule)
    if subset is None or subset.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    # the largest drift per series by a vectorised max of |drift| (not a Python call per series)
    g = _series_spans(subset.assign(drift_s=subset["drift_s"].abs()), drift=("drift_s", "max"))
    counted = g["n"].astype(str)
    if rule == "clock_drift":
        counted = counted + " read(s) up to " + g["drift"].astype("int64").astype(str)
    return exception_rows(g, rule, counted + _OFF_GRID_TEXT[rule], g["n"].to_numpy())


@day_rule("usage_on_inactive")
def usage_on_inactive(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Reads where no meter/channel was installed, and consumption on a vacant service point."""
    vacant = _vacant_usage(ctx.frame, ctx.inp)
    on_vacant = exception_rows(
        vacant,
        rule,
        "consumption "
        + vacant.get("total", pd.Series(dtype=float)).round(3).astype(str)
        + " on a service point with no active account",
    )
    return _concat([off_grid_reads(ctx, rule), on_vacant])


@day_rule("conflicting_duplicates", "replaced_value")
def conflicting_reads(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Intervals received with different values: within one delivery, or replaced by a later one."""
    conflicts = ctx.conflicts
    if not len(conflicts):
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    subset = conflicts[(conflicts["files"] == 1) == (rule == "conflicting_duplicates")]
    if subset.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    g = _series_spans(subset)
    return exception_rows(
        g,
        rule,
        g["n"].astype(str) + " interval(s) received with different values; the latest delivery wins",
        g["n"].to_numpy(),
    )


@day_rule("sum_check", "multiplier_mismatch")
def register_advance(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Interval sums that disagree with the register advance × multiplier (``register_failures``)."""
    failed = ctx.register_failures
    hit = failed[failed["rule"] == rule]
    return exception_rows(hit, rule, hit["detail"])


@day_rule("high_usage", "low_usage")
def usage_vs_history(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Oracle High/Low (V6): the day total against the like-day average of clean reference days."""
    daily = ctx.daily
    if daily is None or daily.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    ref = daily[daily["clean"] & (daily["day_type"] == ctx.today_type)]
    ref = (
        ref.groupby(["meter_id", "channel"]).agg(avg=("total", "mean"), days=("total", "size")).reset_index()
    )
    parts = []
    for ruleset, group in ctx.ruleset_totals:
        g = group[group["complete"]].merge(ref[ref["days"] >= 3], on=["meter_id", "channel"])
        if rule == "high_usage":
            rows = g[(g["avg"] > 0) & (g["interval_sum"] > ruleset.high_usage_factor * g["avg"])]
        else:
            rows = g[(g["avg"] > 0) & (g["interval_sum"] < ruleset.low_usage_factor * g["avg"])]
        detail = (
            "day total "
            + rows["interval_sum"].round(2).astype(str)
            + " vs like-day average "
            + rows["avg"].round(2).astype(str)
        )
        parts.append(exception_rows(rows, rule, detail))
    return _concat(parts)


@day_rule("continuous_flow")
def continuous_flow(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Customer water meters whose flow never reached zero (a zone's bulk meter carries the
    network's night flow by design)."""
    frame = ctx.frame
    spread = frame["source_quality"].eq(SPREAD_QUALITY)  # apportioned across a gap: flat, not a flow
    water = frame[frame["channel"].eq("water") & frame["role"].eq("customer") & ~spread]
    if not len(water):
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    g = (
        water.groupby(["meter_id", "channel"])
        .agg(
            low=("value", "min"),
            n=("value", "count"),
            secs=("interval_seconds", "first"),
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
        )
        .reset_index()
    )
    hours = g["n"] * g["secs"] / 3600
    leak = g[(g["low"] > 0) & (hours >= ctx.inp.config.default.water_min_flow_hours * 0.95)]
    return exception_rows(
        leak, rule, "flow never dropped below " + leak["low"].round(2).astype(str) + " gal per interval"
    )


@day_rule("reverse_flow")
def reverse_flow(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Energy received on a service point without generation, and the meters' reverse-flow events."""
    frame = ctx.frame
    received = frame[frame["channel"].eq("kwh_received") & ~frame["has_solar"]]
    measured = pd.DataFrame(columns=EXCEPTION_COLUMNS)
    if len(received):
        g = (
            received.groupby(["meter_id", "channel"])
            .agg(
                total=("value", "sum"),
                period_start=("interval_end", "min"),
                period_end=("interval_end", "max"),
            )
            .reset_index()
        )
        g = g[g["total"] > 0]
        measured = exception_rows(
            g, rule, g["total"].round(3).astype(str) + " kWh received on a service point without generation"
        )
    return _concat([measured, meter_events(ctx, rule)])


_EVENT_CHANNEL = {"tamper": "kwh_delivered", "reverse_flow": "kwh_received"}


@day_rule("tamper")
def meter_events(ctx: DayContext, rule: str) -> pd.DataFrame:
    """The meter's own events of type ``rule``, reported on the channel they concern."""
    events = ctx.inp.events
    if events is None or not len(events):
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    ev = events[events["event_type"] == rule].copy()
    if ev.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    ev["event_at"] = pd.to_datetime(ev["event_at"], utc=True)
    g = (
        ev.groupby(["meter_id", "event_type"])
        .agg(period_start=("event_at", "min"), period_end=("event_at", "max"), n=("event_at", "size"))
        .reset_index()
    )
    g["channel"] = _EVENT_CHANNEL[rule]
    return exception_rows(g, rule, g["n"].astype(str) + f" {rule.replace('_', ' ')} event(s) from the meter")


@day_rule("missing_channel")
def missing_channel(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Some channel of a meter sent data, another configured one nothing."""
    frame = ctx.frame
    got = pd.Series(frame["received"].to_numpy(dtype=bool)).groupby(frame["sid"].to_numpy()).any()
    sids, received = got.index.to_numpy(), got.to_numpy()
    meter_any = pd.Series(received).groupby(sids // N_CHANNELS).transform("any").to_numpy()
    quiet = sids[~received & meter_any]
    silent = pd.DataFrame({"meter_id": ctx.inp.catalog.meter_of(quiet), "channel": Catalog.channel_of(quiet)})
    return exception_rows(
        silent,
        rule,
        "channel " + silent["channel"].astype(str) + " sent no data while the meter's other channels did",
    )


@day_rule("prolonged_estimation")
def prolonged_estimation(ctx: DayContext, rule: str) -> pd.DataFrame:
    """Oracle V21: the channel needed estimates on each of the previous n−1 days and needs them again."""
    empty = pd.DataFrame(columns=EXCEPTION_COLUMNS)
    n = ctx.inp.config.default.prolonged_estimation_days
    daily = ctx.daily
    if daily is None or daily.empty or n < 2:
        return empty
    frame = ctx.frame
    today = frame[frame["status"].isin(["suspect", "missing"])][["meter_id", "channel"]].drop_duplicates()
    if today.empty:
        return empty
    recent = daily[
        (daily["estimated_intervals"] > 0) & (daily["read_day"] >= ctx.inp.day - dt.timedelta(days=n - 1))
    ]
    days = recent.groupby(["meter_id", "channel"])["read_day"].nunique().reset_index(name="days")
    prolonged = today.merge(days[days["days"] >= n - 1], on=["meter_id", "channel"])
    return exception_rows(prolonged, rule, "estimated on each of the previous days too")


def _partial_sum_check(totals: pd.DataFrame, ruleset: RuleSet) -> pd.DataFrame:
    """The sum check of a day with unmeasured (missing or suspect) intervals, which the full sum
    check cannot judge. Their true values are unknown but bounded: they cannot be negative, so a
    register advance × multiplier below the measured intervals (beyond the tolerance) is wrong;
    and when most of the day was measured, an advance that would need each unmeasured interval to
    hold more than ``register_gap_factor`` × the day's highest valid interval is implausible. A
    failing advance whose extrapolated day total matches it with another common multiplier is a
    ``multiplier_mismatch``, any other a ``sum_check``. Estimates are then not scaled to it."""
    cols = ["meter_id", "channel", "rule", "detail", "expected", "interval_sum"]
    t = totals.dropna(subset=["reg_start", "reg_end"])
    if "valid_intervals" not in t:
        return pd.DataFrame(columns=cols)
    t = t[~t["complete"] & (t["valid_intervals"] > 0) & ~t["channel"].isin(rules.CAN_RUN_BACKWARDS)]
    if t.empty:
        return pd.DataFrame(columns=cols)
    dials = t["dials"].fillna(0).astype("int64").to_numpy()
    advance = (t["reg_end"] - t["reg_start"]).to_numpy(dtype="float64")
    advance = np.where((advance < 0) & (dials > 0), advance + np.power(10.0, dials), advance)
    expected = advance * t["multiplier"].fillna(1.0).to_numpy(dtype="float64")
    measured = t["valid_sum"].to_numpy(dtype="float64")
    n, n_valid = t["intervals"].to_numpy(dtype="float64"), t["valid_intervals"].to_numpy(dtype="float64")
    tol = ruleset.sum_check_tolerance_pct / 100.0
    too_low = measured > expected * (1 + tol) + 1e-9
    cap = ruleset.register_gap_factor * t["valid_max"].to_numpy(dtype="float64") * (n - n_valid)
    too_high = (n_valid >= ruleset.register_gap_min_coverage * n) & (expected - measured > cap * (1 + tol))
    bad = too_low | too_high
    if not bad.any():
        return pd.DataFrame(columns=cols)
    f = t[bad]
    extrapolated = measured[bad] * n[bad] / n_valid[bad]
    classify = rules.sum_check(
        f.assign(interval_sum=extrapolated, complete=True), ruleset.override({"sum_check_tolerance_pct": 0.0})
    )
    mismatch = classify[classify["rule"] == "multiplier_mismatch"][["meter_id", "channel", "detail"]]
    gaps = (n[bad] - n_valid[bad]).astype("int64").astype(str)
    detail = (
        "register advance × multiplier = "
        + pd.Series(expected[bad]).round(3).astype(str).to_numpy()
        + " is implausible for the "
        + gaps
        + " unmeasured interval(s): the measured intervals sum to "
        + pd.Series(measured[bad]).round(3).astype(str).to_numpy()
    )
    out = pd.DataFrame(
        {
            "meter_id": f["meter_id"].to_numpy(),
            "channel": f["channel"].to_numpy(),
            "rule": "sum_check",
            "detail": detail,
            "expected": expected[bad],
            "interval_sum": measured[bad],
        }
    )
    if len(mismatch):
        m = out.merge(mismatch, on=["meter_id", "channel"], how="left", suffixes=("", "_m"))
        hit = m["detail_m"].notna().to_numpy()
        out.loc[hit, "rule"] = "multiplier_mismatch"
        out.loc[hit, "detail"] = (
            "extrapolated over unmeasured intervals, " + m.loc[hit, "detail_m"].to_numpy()
        )
    return out[cols]


def _vacant_usage(frame: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
    empty = pd.DataFrame(columns=["meter_id", "channel", "total"])
    if inp.accounts is None or inp.accounts.empty or "service_point_id" not in frame:
        return empty
    acc = inp.accounts.copy()
    day = pd.Timestamp(inp.day)
    move_in = pd.to_datetime(acc["move_in"])
    move_out = pd.to_datetime(acc["move_out"])
    # move-out is the last day of service
    occupied = set(acc.loc[(move_in <= day) & (move_out.isna() | (move_out >= day)), "service_point_id"])
    known = set(acc["service_point_id"])
    day_rows = frame[
        frame["service_point_id"].isin(known - occupied)
        & frame["channel"].isin(["kwh_delivered", "water", "gas"])
    ]
    if day_rows.empty:
        return empty
    g = (
        day_rows.groupby(["meter_id", "channel"])
        .agg(total=("value", "sum"), period_start=("interval_end", "min"), period_end=("interval_end", "max"))
        .reset_index()
    )
    threshold = g["channel"].map(VACANT_DAILY_THRESHOLD).fillna(0.0)
    return g[g["total"] > threshold]
