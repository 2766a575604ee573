"""What the NRW engineer reads: a zone's balance rows with totals and night flow, and the IWA
water balance with ILI per zone and for the system (read from the stored balances)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.water.iwa import uarl_litres_per_day, water_balance
from smartmdm_pipelines.domain.water.night_flow import trend_per_day
from smartmdm_pipelines.domain.water.params import litres_per
from smartmdm_pipelines.services.nrw import day_window, finite, load_zones
from smartmdm_pipelines.store.store import Store

IWA_SUMMED = (
    "system_input_volume",
    "authorized_consumption",
    "billed_authorized",
    "billed_metered",
    "billed_unmetered",
    "unbilled_authorized",
    "unbilled_metered",
    "unbilled_unmetered",
    "water_losses",
    "apparent_losses",
    "unauthorized_consumption",
    "customer_metering_inaccuracies",
    "systematic_data_handling_errors",
    "real_losses",
    "non_revenue_water",
)


def _zone(store: Store, cfg: UtilityConfig, zone_id: str) -> pd.Series:
    zones = load_zones(store, cfg, [zone_id])
    return zones[zones["zone_id"] == zone_id].iloc[0]


def balance_report(
    store: Store, cfg: UtilityConfig, zone_id: str, first: dt.date, last: dt.date, hourly: bool = False
) -> dict:
    """The zone's daily (or hourly) balance rows, totals, and its night flow with trend."""
    _zone(store, cfg, zone_id)
    rows = store.read_frame(
        "SELECT * FROM zone_balances WHERE zone_id = :z AND interval_seconds = :s AND read_day >= :a "
        "AND read_day <= :b ORDER BY interval_end",
        {"z": zone_id, "s": 3600 if hourly else 86400, "a": first, "b": last},
    )
    nights = store.read_frame(
        "SELECT * FROM zone_night_flow WHERE zone_id = :z AND read_day >= :a AND read_day <= :b ORDER BY read_day",
        {"z": zone_id, "a": first, "b": last},
    )
    nights["read_day"] = pd.to_datetime(nights["read_day"]).dt.date
    night_of = nights.set_index("read_day")
    out_rows = []
    for r in rows.itertuples():
        end = pd.Timestamp(r.interval_end).tz_convert(cfg.utility.timezone)
        day = pd.Timestamp(r.read_day).date()
        row = {
            "zone_id": zone_id,
            "start": (end - pd.Timedelta(seconds=0 if not hourly else 3600)).isoformat()
            if hourly
            else pd.Timestamp(day).tz_localize(cfg.utility.timezone).isoformat(),
            "end": end.isoformat(),
            "input_volume": finite(r.input_volume),
            "metered_volume": finite(r.metered_volume),
            "estimated_volume": finite(r.estimated_volume),
            "loss_volume": finite(r.loss_volume),
            "loss_percent": (100 * r.loss_volume / r.input_volume) if finite(r.input_volume) else None,
            "unit": r.unit,
            "input_completeness": finite(r.input_completeness),
            "metered_completeness": finite(r.metered_completeness),
            "complete": bool(r.complete),
        }
        if not hourly and day in night_of.index:
            n = night_of.loc[day]
            row |= {
                "min_night_flow": finite(n["min_night_flow"]),
                "legitimate_night_use": finite(n["legitimate_night_use"]),
                "excess_night_flow": finite(n["excess_night_flow"]),
                "night_flow_baseline": finite(n["baseline"]),
            }
        out_rows.append(row)
    totals = {
        "input_volume": finite(rows["input_volume"].sum()) if not rows.empty else None,
        "metered_volume": finite(rows["metered_volume"].sum()) if not rows.empty else None,
        "estimated_volume": finite(rows["estimated_volume"].sum()) if not rows.empty else None,
        "loss_volume": finite(rows["loss_volume"].sum()) if not rows.empty else None,
        "complete_rows": int(rows["complete"].fillna(False).astype(bool).sum()),
        "rows": len(rows),
    }
    if totals["input_volume"]:
        totals["loss_percent"] = 100 * (totals["loss_volume"] or 0) / totals["input_volume"]
        totals["estimated_share"] = (totals["estimated_volume"] or 0) / max(
            totals["metered_volume"] or 0, 1e-9
        )
    return {
        "zone_id": zone_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "resolution": "hour" if hourly else "day",
        "unit": rows["unit"].dropna().iloc[0] if rows["unit"].notna().any() else None,
        "totals": totals,
        "night_flow_trend_per_day": trend_per_day(nights),
        "rows": out_rows,
    }


def _registered_elsewhere(store: Store, cfg: UtilityConfig, first: dt.date, last: dt.date) -> pd.Series:
    """Metered volume per zone at service points that are not active (unbilled metered)."""
    frame = store.read_frame(
        "SELECT s.zone_id, sum(d.total) AS volume FROM daily_usage d "
        "JOIN meter_installs i ON i.meter_id = d.meter_id JOIN service_points s ON s.service_point_id = "
        "i.service_point_id WHERE s.zone_id IS NOT NULL AND s.status <> 'active' AND d.channel = :c "
        "AND d.read_day >= :a AND d.read_day <= :b GROUP BY s.zone_id",
        {"c": cfg.nrw_config().channel, "a": first, "b": last},
    )
    return frame.set_index("zone_id")["volume"].astype(float)


def _restated(store: Store, cfg: UtilityConfig, first: dt.date, last: dt.date) -> pd.Series:
    """Per zone: volume by which estimated customer intervals were later restated by actual reads."""
    frame = store.read_frame(
        "SELECT s.zone_id, sum(abs(c.value - p.value)) AS volume FROM intervals c "
        "JOIN intervals p ON p.meter_id = c.meter_id AND p.channel = c.channel AND p.interval_end = c.interval_end "
        "AND p.version = c.version - 1 "
        "JOIN meter_installs i ON i.meter_id = c.meter_id JOIN service_points s ON s.service_point_id = "
        "i.service_point_id "
        "WHERE p.status = 'estimated' AND c.status IN ('valid', 'edited') AND c.channel = :c "
        "AND c.read_day >= :a AND c.read_day <= :b AND s.zone_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM intervals n WHERE n.meter_id = c.meter_id AND n.channel = c.channel "
        "AND n.interval_end = c.interval_end AND n.version > c.version) GROUP BY s.zone_id",
        {"c": cfg.nrw_config().channel, "a": first, "b": last},
    )
    return frame.set_index("zone_id")["volume"].astype(float)


def water_balance_report(
    store: Store, cfg: UtilityConfig, first: dt.date, last: dt.date, zone_id: str | None = None
) -> dict:
    """IWA components and ILI per zone (all zones, or one) and for the system (their sum)."""
    zones = load_zones(store, cfg, [zone_id] if zone_id else None)
    if zone_id:
        zones = zones[zones["zone_id"] == zone_id]
    daily = store.read_frame(
        "SELECT zone_id, input_volume, metered_volume, unit, complete FROM zone_balances "
        "WHERE interval_seconds = 86400 AND read_day >= :a AND read_day <= :b",
        {"a": first, "b": last},
    )
    days = (last - first).days + 1
    unbilled = _registered_elsewhere(store, cfg, first, last)
    restated = _restated(store, cfg, first, last)
    out = []
    for zone in zones.itertuples():
        rows = daily[daily["zone_id"] == zone.zone_id]
        unit = rows["unit"].dropna().iloc[0] if rows["unit"].notna().any() else "gal"
        metered = float(rows["metered_volume"].sum())
        umc = float(unbilled.get(zone.zone_id, 0.0))
        wb = water_balance(
            float(rows["input_volume"].sum()),
            metered - umc,
            umc,
            float(restated.get(zone.zone_id, 0.0)),
            days,
            int(zone.connections),
            unit,
            zone.params,
        )
        wb |= {
            "zone_id": zone.zone_id,
            "complete_days": int(rows["complete"].fillna(False).astype(bool).sum()),
        }
        wb["params"] = {
            k: getattr(zone.params, k)
            for k in (
                "meter_under_registration",
                "unauthorized_share",
                "unbilled_unmetered_share",
                "mains_km",
                "private_pipe_km",
                "pressure_m",
            )
        }
        out.append(wb)
    system = None
    if out and not zone_id:
        system = {k: sum(z[k] for z in out) for k in IWA_SUMMED}
        system |= {"unit": out[0]["unit"], "days": days, "connections": sum(z["connections"] for z in out)}
        system["nrw_percent"] = (
            100 * system["non_revenue_water"] / system["system_input_volume"]
            if system["system_input_volume"]
            else None
        )
        attrs = [
            (
                z["params"]["mains_km"],
                z["params"]["private_pipe_km"],
                z["params"]["pressure_m"],
                z["connections"],
            )
            for z in out
        ]
        carl = system["real_losses"] * litres_per(system["unit"]) / days
        if all(None not in a[:3] for a in attrs):
            pressure = sum(a[2] * a[3] for a in attrs) / max(sum(a[3] for a in attrs), 1)  # by connections
            uarl = uarl_litres_per_day(
                sum(a[0] for a in attrs), system["connections"], sum(a[1] for a in attrs), pressure
            )
            system |= {"uarl_l_per_day": uarl, "carl_l_per_day": carl, "ili": carl / uarl if uarl else None}
        else:
            system |= {"uarl_l_per_day": None, "carl_l_per_day": carl, "ili": None}
    start, end = day_window(first, last, cfg.utility.timezone)
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "zones": out,
        "system": system,
        "window": [start.isoformat(), end.isoformat()],
    }
