"""All indicators of one evaluation: the inputs as frames in, the signals frame out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.protection import event_signals as ev
from smartmdm_pipelines.domain.protection import usage_signals as us
from smartmdm_pipelines.domain.protection.params import MAIN_CHANNEL, ProtectionParams
from smartmdm_pipelines.domain.protection.series import day_range, day_starts_utc, peer_adjusted, usage_matrix
from smartmdm_pipelines.domain.protection.signals import SIGNAL_COLUMNS, empty_signals


@dataclass
class ProtectionInputs:
    """What one evaluation reads (frames as the store returns them).

    ``daily``: service_point_id, meter_id, channel, read_day, total, intervals, estimated_intervals,
    has_outage, unit (daily_usage of the window with each meter's service point);
    ``service_points``: service_point_id, commodity, customer_class, rate_code, zone_id, has_solar,
    status; ``accounts``: account_id, service_point_id, move_in, move_out; ``events``: meter_id,
    service_point_id, event_at, event_type; ``exceptions``: meter_id, service_point_id, read_day,
    rule; ``zone_daily``: zone_id, read_day, loss_volume, unit (daily zone-balance rows).
    """

    as_of: dt.date
    timezone: str
    daily: pd.DataFrame
    service_points: pd.DataFrame
    accounts: pd.DataFrame
    events: pd.DataFrame
    exceptions: pd.DataFrame
    zone_daily: pd.DataFrame | None = None


def _move_in_days(accounts: pd.DataFrame, sp_ids: pd.Index, days: list[dt.date]) -> np.ndarray:
    """True where a (second or later) account of the service point moved in that day."""
    out = np.zeros((len(sp_ids), len(days)), dtype=bool)
    acc = accounts[accounts["service_point_id"].isin(sp_ids)].copy()
    acc["move_in"] = pd.to_datetime(acc["move_in"]).dt.date
    acc = acc[acc.duplicated("service_point_id", keep=False)]  # a successor, not the only account
    col = pd.Index(days).get_indexer(acc["move_in"])
    keep = col >= 0
    out[sp_ids.get_indexer(acc["service_point_id"])[keep], col[keep]] = True
    return out


def find_signals(inputs: ProtectionInputs, params: ProtectionParams) -> pd.DataFrame:
    """Every signal of the window ending on ``inputs.as_of`` (``signals.SIGNAL_COLUMNS``)."""
    days = day_range(inputs.as_of, params.window_days)
    starts = day_starts_utc(days, inputs.timezone)
    window_end = day_starts_utc([inputs.as_of + dt.timedelta(days=1)], inputs.timezone)[0]
    day_start = pd.Series(starts, index=days)
    sps = inputs.service_points
    by_sp = sps.set_index("service_point_id")
    commodity = by_sp["commodity"]
    parts = []

    m = usage_matrix(inputs.daily, sps, days)
    if len(m.sp_ids):
        occupied, known = us.occupancy(inputs.accounts, sps, m.sp_ids, days)
        adjusted, peer_median = peer_adjusted(m, sps, params.min_peers)
        move_ins = _move_in_days(inputs.accounts, m.sp_ids, days)
        parts.append(
            us.consumption_drop(
                m, adjusted, peer_median, occupied, move_ins, starts, window_end, commodity, params
            )
        )
        runs = us.zero_runs(m, occupied, commodity, params)
        parts.append(us.zero_usage(m, runs, starts, window_end, params))
        water = commodity.reindex(m.sp_ids).eq("water").to_numpy()
        water_runs = tuple(np.where(water, r, -1 if r.dtype.kind == "i" else np.nan) for r in runs)
        parts.append(
            us.flat_meter_zone_rise(
                m, water_runs, by_sp["zone_id"], inputs.zone_daily, starts, window_end, params
            )
        )
        parts.append(
            us.vacant_usage(m, occupied, known, by_sp["status"], commodity, starts, window_end, params)
        )
    parts.append(ev.tamper_events(inputs.events, window_end, params))
    parts.append(ev.reverse_flow(inputs.daily, inputs.events, sps, day_start, window_end, params))
    parts.append(ev.register_interval_disagreement(inputs.exceptions, day_start, window_end, params))
    parts.append(
        ev.repeated_estimation(
            inputs.daily, inputs.exceptions, commodity.map(MAIN_CHANNEL), day_start, window_end, params
        )
    )
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_signals()
    return pd.concat(parts, ignore_index=True)[SIGNAL_COLUMNS]
