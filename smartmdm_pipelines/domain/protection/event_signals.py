"""Indicators read from meter events, the received channel and the VEE exception queue: tamper
events, reverse flow on a service point without generation, register/interval disagreement
(VEE's sum check) and repeated estimation. Set-based: group-bys over the window's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.protection.params import RECEIVED_CHANNEL, ProtectionParams
from smartmdm_pipelines.domain.protection.signals import empty_signals, rounded, signal_frame

REGISTER_RULES = ("sum_check", "multiplier_mismatch")


def _joined(values: pd.Series) -> str:
    return ";".join(sorted(set(values.astype(str))))


def tamper_events(events: pd.DataFrame, window_end: pd.Timestamp, params: ProtectionParams) -> pd.DataFrame:
    """Tamper events (cover opened, magnetic influence …) per service point: weak on their own."""
    rows = events[events["event_type"].eq("tamper") & events["service_point_id"].notna()]
    if rows.empty:
        return empty_signals()
    g = rows.groupby("service_point_id").agg(
        meter_id=("meter_id", _joined),
        first=("event_at", "min"),
        last=("event_at", "max"),
        n=("event_at", "size"),
    )
    evidence = [
        {"events": int(r.n), "first_event_at": r.first.isoformat(), "last_event_at": r.last.isoformat()}
        for r in g.itertuples()
    ]
    return signal_frame(
        "tamper_event",
        g.index,
        g["meter_id"],
        g["first"],
        g["last"],
        params.strengths["tamper_event"],
        0.0,
        "",
        evidence,
    )


def reverse_flow(
    daily: pd.DataFrame,
    events: pd.DataFrame,
    service_points: pd.DataFrame,
    day_start: pd.Series,
    window_end: pd.Timestamp,
    params: ProtectionParams,
) -> pd.DataFrame:
    """Energy received on an electric service point without generation (a reversed or bypassed
    meter running backwards), or the meter's reverse-flow event. The received energy was consumed
    and not billed."""
    sps = service_points.set_index("service_point_id")
    no_dg = sps.index[(sps["commodity"] == "electric") & ~sps["has_solar"].fillna(False).astype(bool)]
    rec = daily[daily["channel"].eq(RECEIVED_CHANNEL) & daily["service_point_id"].isin(no_dg)]
    rec = rec[rec["total"].fillna(0.0) > params.reverse_epsilon]
    energy = rec.groupby("service_point_id").agg(
        meter_id=("meter_id", _joined),
        kwh=("total", "sum"),
        days=("read_day", "nunique"),
        first_day=("read_day", "min"),
        last_day=("read_day", "max"),
    )
    ev = events[events["event_type"].eq("reverse_flow") & events["service_point_id"].isin(no_dg)]
    ev = ev.groupby("service_point_id").agg(
        ev_meter=("meter_id", _joined),
        ev_first=("event_at", "min"),
        ev_last=("event_at", "max"),
        ev_n=("event_at", "size"),
    )
    both = energy.join(ev, how="outer")
    if both.empty:
        return empty_signals()
    first_day = pd.to_datetime(both["first_day"]).dt.date.map(day_start)
    # the meter's event times the start better than the first day with received energy
    start = both["ev_first"].fillna(pd.to_datetime(first_day, utc=True))
    last_day = pd.to_datetime(both["last_day"]).dt.date
    next_day = last_day.map(lambda d: d + pd.Timedelta(days=1) if pd.notna(d) else d).map(day_start)
    end = (
        pd.concat([pd.to_datetime(next_day, utc=True), both["ev_last"]], axis=1)
        .max(axis=1)
        .fillna(window_end)
    )
    has_energy = both["kwh"].fillna(0.0).to_numpy() > 0
    strength = np.where(has_energy, params.strengths["reverse_flow"], params.strengths["reverse_flow_event"])
    evidence = [
        {
            "kwh_received": rounded(r.kwh if pd.notna(r.kwh) else 0.0),
            "days_with_received_energy": int(r.days) if pd.notna(r.days) else 0,
            "reverse_flow_events": int(r.ev_n) if pd.notna(r.ev_n) else 0,
            "has_solar": False,
        }
        for r in both.itertuples()
    ]
    meter = both["meter_id"].fillna(both["ev_meter"])
    return signal_frame(
        "reverse_flow",
        both.index,
        meter,
        start,
        end,
        strength,
        both["kwh"].fillna(0.0).to_numpy(),
        "kWh",
        evidence,
    )


def register_interval_disagreement(
    exceptions: pd.DataFrame, day_start: pd.Series, window_end: pd.Timestamp, params: ProtectionParams
) -> pd.DataFrame:
    """Days on which VEE found the intervals disagreeing with the register advance (sum check,
    multiplier mismatch): interval data that does not add up to what the register counted."""
    rows = exceptions[exceptions["rule"].isin(REGISTER_RULES) & exceptions["service_point_id"].notna()]
    if rows.empty:
        return empty_signals()
    g = rows.groupby("service_point_id").agg(
        meter_id=("meter_id", _joined),
        first=("read_day", "min"),
        last=("read_day", "max"),
        days=("read_day", "nunique"),
        rules=("rule", _joined),
    )
    base = params.strengths["register_interval_disagreement"]
    strength = np.minimum(base + 0.05 * (g["days"].to_numpy() - 1), 0.6)
    evidence = [{"days": int(r.days), "rules": r.rules} for r in g.itertuples()]
    return signal_frame(
        "register_interval_disagreement",
        g.index,
        g["meter_id"],
        pd.to_datetime(g["first"]).dt.date.map(day_start),
        [window_end] * len(g),
        strength,
        0.0,
        "",
        evidence,
    )


def repeated_estimation(
    daily: pd.DataFrame,
    exceptions: pd.DataFrame,
    main_channel: pd.Series,
    day_start: pd.Series,
    window_end: pd.Timestamp,
    params: ProtectionParams,
) -> pd.DataFrame:
    """A billed channel mostly estimated on ``estimated_days`` days or more of the window (or VEE's
    prolonged-estimation rule): a meter that stopped reporting is a classic way to hide a bypass."""
    billed = daily[daily["channel"].eq(daily["service_point_id"].map(main_channel))]
    share = billed["estimated_intervals"] / billed["intervals"].where(billed["intervals"] > 0)
    est = billed[share.fillna(0.0) > params.estimated_share][["service_point_id", "meter_id", "read_day"]]
    prolonged = exceptions[exceptions["rule"].eq("prolonged_estimation")][
        ["service_point_id", "meter_id", "read_day"]
    ]
    rows = pd.concat([est, prolonged], ignore_index=True).dropna(subset=["service_point_id"])
    if rows.empty:
        return empty_signals()
    g = rows.groupby("service_point_id").agg(
        meter_id=("meter_id", _joined), first=("read_day", "min"), days=("read_day", "nunique")
    )
    g = g[g["days"] >= params.estimated_days]
    if g.empty:
        return empty_signals()
    evidence = [{"estimated_days": int(r.days)} for r in g.itertuples()]
    return signal_frame(
        "repeated_estimation",
        g.index,
        g["meter_id"],
        pd.to_datetime(g["first"]).dt.date.map(day_start),
        [window_end] * len(g),
        params.strengths["repeated_estimation"],
        0.0,
        "",
        evidence,
    )
