"""Non-revenue water per operating day: zone balances (hourly and daily), minimum night flow and
loss events, computed from the current interval versions and stored idempotently.

``run_days`` is what Dagster's ``nrw_day`` asset, ``smartmdm nrw run`` and ``smartmdm vee run`` call:
it rewrites the days' ``zone_balances`` and ``zone_night_flow`` rows in one transaction, then runs
every loss detector over the days (with the history each needs) and stores their events through
``services.loss_events`` (upsert by deterministic id, then cross-source merging). A detector is one
callable ``(store, first_day, last_day, zone_ids) -> DataFrame of loss_events rows`` in
``DETECTORS`` under its source name; the balance detector is built in, issue 16's inflow-only
detector (``services/inflow_detection.py``) is registered as ``DETECTORS["inflow"]``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.water.balance import assign_customers, hour_grid, zone_balances
from smartmdm_pipelines.domain.water.balance_events import EVENT_COLUMNS, detect_balance_events
from smartmdm_pipelines.domain.water.night_flow import night_flow, with_baseline
from smartmdm_pipelines.domain.water.operations import split_explained
from smartmdm_pipelines.domain.water.params import ZoneParams
from smartmdm_pipelines.services.inflow_detection import detect_inflow_events
from smartmdm_pipelines.services.loss_events import UpsertResult, merge_events, upsert_events, withdraw_events
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

Detector = Callable[..., pd.DataFrame]
# source -> detector(store, first_day, last_day, zone_ids=None); "balance" is added by run_days
DETECTORS: dict[str, Detector] = {"inflow": detect_inflow_events}
# detectors that store their own events: the inflow detector confirms a step days after it started
# and keeps events that start before the evaluated day, which the shared upsert would drop
SELF_STORING = {"inflow"}

_DAYS_AND_CHANNEL = "read_day >= :a AND read_day <= :b AND channel = :c"


@dataclass
class NrwRun:
    first: dt.date
    last: dt.date
    zones: list[str] = field(default_factory=list)
    hourly_rows: int = 0
    daily_rows: int = 0
    complete_days: int = 0
    incomplete_days: int = 0
    night_rows: int = 0
    events: dict[str, UpsertResult] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)

    @property
    def new_events(self) -> list[str]:
        """Events first stored by this run and still stored (not merged into another detector's)."""
        return [e for r in self.events.values() for e in r.new if e not in self.merged]


def day_window(first: dt.date, last: dt.date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC instants of local midnight before ``first`` and after ``last``."""
    hours = hour_grid(first, last, tz)
    return hours[0] - pd.Timedelta(hours=1), hours[-1]


def load_zones(store: Store, cfg: UtilityConfig, zone_ids: list[str] | None = None) -> pd.DataFrame:
    """Zones with their parameters (``params``: ZoneParams) and connection counts."""
    zones = store.read_frame(
        "SELECT zone_id, name, timezone, bulk_meter_ids, parent_zone_id, zone_class FROM zones ORDER BY zone_id"
    )
    if zone_ids:
        unknown = sorted(set(zone_ids) - set(zones["zone_id"]))
        if unknown:
            raise ValueError(f"unknown zone(s) {unknown}; known: {zones['zone_id'].tolist()}")
    nrw = cfg.nrw_config()
    zones["params"] = [nrw.for_zone(z, c) for z, c in zip(zones["zone_id"], zones["zone_class"], strict=True)]
    connections = store.read_frame(
        "SELECT zone_id, count(*) AS n FROM service_points s WHERE zone_id IS NOT NULL AND commodity = 'water' "
        "AND NOT EXISTS (SELECT 1 FROM meter_installs i JOIN meters m ON m.meter_id = i.meter_id "
        "WHERE i.service_point_id = s.service_point_id AND m.role = 'zone_bulk') GROUP BY zone_id"
    )
    zones["connections"] = zones["zone_id"].map(connections.set_index("zone_id")["n"]).fillna(0).astype(int)
    zones["timezone"] = zones["timezone"].fillna(cfg.utility.timezone)
    return zones


def _inputs(store: Store, cfg: UtilityConfig, zones: pd.DataFrame, first: dt.date, last: dt.date):
    meters = store.read_frame("SELECT meter_id, interval_seconds, role FROM meters")
    installs = store.read_frame(
        "SELECT i.meter_id, s.zone_id, i.installed_at, i.removed_at FROM meter_installs i "
        "JOIN service_points s ON s.service_point_id = i.service_point_id "
        "WHERE s.zone_id IS NOT NULL AND s.commodity = 'water'"
    )
    installs = installs[installs["zone_id"].isin(zones["zone_id"])]
    bulk = zones["bulk_meter_ids"].fillna("").str.split(";").explode().str.strip()
    wanted = sorted(set(bulk[bulk != ""]) | set(installs["meter_id"]))
    installs = installs[~installs["meter_id"].isin(set(bulk))]  # an inlet is never a customer
    reads = _current_reads(store, wanted, first, last, cfg.nrw_config().channel)
    return meters, installs, reads


def _current_reads(
    store: Store, meter_ids: list[str], first: dt.date, last: dt.date, channel: str
) -> pd.DataFrame:
    """Current versions of the meters' intervals on the days (the window keeps the scan to the days)."""
    columns = [
        "meter_id",
        "interval_end",
        "interval_seconds",
        "value",
        "status",
        "read_day",
        "unit",
        "previous_value",
        "failed_rules",
    ]
    if not meter_ids:
        return pd.DataFrame(columns=columns)
    cols = ", ".join(columns)
    frame = store.read_frame(
        f"SELECT {cols} FROM ({current_intervals_sql(_DAYS_AND_CHANNEL)}) v",
        {"a": first, "b": last, "c": channel},
    )
    frame = frame[frame["meter_id"].isin(meter_ids)]
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    return frame


def compute_balances(
    store: Store, cfg: UtilityConfig, first: dt.date, last: dt.date, zone_ids: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Hourly balances, daily balances and night flow of the days (computed, not stored)."""
    all_zones = load_zones(store, cfg)
    if all_zones.empty:
        empty = pd.DataFrame()
        return empty, empty, empty
    tz = cfg.utility.timezone
    meters, installs, reads = _inputs(store, cfg, all_zones, first, last)
    threshold = pd.Series([p.min_completeness for p in all_zones["params"]], index=all_zones["zone_id"])
    served = all_zones.set_index("zone_id")["connections"]
    hourly, daily = zone_balances(all_zones, meters, installs, reads, first, last, tz, threshold, served)
    params = dict(zip(all_zones["zone_id"], all_zones["params"], strict=True))
    nights = night_flow(
        hourly,
        dict(zip(all_zones["zone_id"], all_zones["timezone"], strict=True)),
        params,
        dict(zip(all_zones["zone_id"], all_zones["connections"], strict=True)),
    )
    if zone_ids:
        hourly, daily = hourly[hourly["zone_id"].isin(zone_ids)], daily[daily["zone_id"].isin(zone_ids)]
        nights = nights[nights["zone_id"].isin(zone_ids)]
    if not nights.empty:
        span = max(p.baseline_nights for p in params.values())
        before = store.read_frame(
            "SELECT zone_id, read_day, min_night_flow FROM zone_night_flow WHERE read_day >= :a AND read_day < :b",
            {"a": first - dt.timedelta(days=span), "b": first},
        )
        before["read_day"] = pd.to_datetime(before["read_day"]).dt.date
        both = pd.concat([before.assign(_new=False), nights.assign(_new=True)], ignore_index=True)
        both = with_baseline(both, span)
        nights = both[both["_new"].astype(bool)].drop(columns="_new")[nights.columns]
    return hourly, daily, nights


def store_balances(
    store: Store,
    hourly: pd.DataFrame,
    daily: pd.DataFrame,
    nights: pd.DataFrame,
    first: dt.date,
    last: dt.date,
) -> None:
    """Replace the days' balance and night-flow rows of the zones (one transaction)."""
    zones = sorted(set(daily["zone_id"])) if not daily.empty else []
    if not zones:
        return
    with store.begin() as conn:
        for table, frame in (
            ("zone_balances", pd.concat([hourly, daily], ignore_index=True)),
            ("zone_night_flow", nights),
        ):
            t = store.table(table)
            conn.execute(
                t.delete().where(t.c.read_day >= first, t.c.read_day <= last, t.c.zone_id.in_(zones))
            )
            if not frame.empty:
                store.bulk_insert(table, frame, conn)


def detect_from_balances(
    store: Store,
    first: dt.date,
    last: dt.date,
    zone_ids: list[str] | None = None,
    *,
    cfg: UtilityConfig,
) -> pd.DataFrame:
    """Balance loss events of the days, from the stored hourly balances with the history the
    baseline needs (and back to the start of any open balance event)."""
    zones = load_zones(store, cfg, zone_ids)
    if zone_ids:
        zones = zones[zones["zone_id"].isin(zone_ids)]
    tz = cfg.utility.timezone
    start, end = day_window(first, last, tz)
    opened = store.read_frame(
        "SELECT zone_id, min(start_at) AS start_at FROM loss_events WHERE source = 'balance' AND status = 'open' "
        "GROUP BY zone_id"
    )
    opened = opened.set_index("zone_id")["start_at"].map(lambda t: pd.Timestamp(t).tz_convert("UTC"))
    longest = max((p.baseline_hours + p.min_history_hours + 24 for p in zones["params"]), default=0)
    since_all = min([start - pd.Timedelta(hours=longest), *[t - pd.Timedelta(hours=longest) for t in opened]])
    repl = replaced_volume(store, cfg, since_all, end)
    frames = []
    for zone in zones.itertuples():
        p: ZoneParams = zone.params
        history = pd.Timedelta(hours=p.baseline_hours + p.min_history_hours + 24)
        since = start - history
        if zone.zone_id in opened.index:
            since = min(since, opened[zone.zone_id] - history)
        hourly = store.read_frame(
            "SELECT interval_end, input_volume, metered_volume, loss_volume, estimated_volume, complete, unit "
            "FROM zone_balances WHERE zone_id = :z AND interval_seconds = 3600 AND interval_end > :a AND interval_end <= :b "
            "ORDER BY interval_end",
            {"z": zone.zone_id, "a": since.to_pydatetime(), "b": end.to_pydatetime()},
        )
        replaced = repl[repl["zone_id"] == zone.zone_id].set_index("hour_end")["replaced"]
        frames.append(detect_balance_events(hourly, zone.zone_id, zone.timezone or tz, p, replaced=replaced))
    frames = [f for f in frames if not f.empty]
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EVENT_COLUMNS)
    kept, _explained = split_explained(events, cfg.nrw_config().operations)
    return kept.reset_index(drop=True)


def replaced_volume(store: Store, cfg: UtilityConfig, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """(zone_id, hour_end, replaced): customer volume VEE set aside in the window by replacing suspect
    reads with estimates (previous value - estimate of current estimated versions)."""
    tz = cfg.utility.timezone
    first, last = start.tz_convert(tz).date() - dt.timedelta(days=1), end.tz_convert(tz).date()
    frame = store.read_frame(
        "SELECT meter_id, interval_end, interval_seconds, value, previous_value "
        f"FROM ({current_intervals_sql(_DAYS_AND_CHANNEL)}) v "
        "WHERE status = 'estimated' AND previous_value IS NOT NULL",
        {"a": first, "b": last, "c": cfg.nrw_config().channel},
    )
    columns = ["zone_id", "hour_end", "replaced"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    installs = store.read_frame(
        "SELECT i.meter_id, s.zone_id, i.installed_at, i.removed_at FROM meter_installs i "
        "JOIN service_points s ON s.service_point_id = i.service_point_id JOIN meters m ON m.meter_id = i.meter_id "
        "WHERE s.zone_id IS NOT NULL AND m.role <> 'zone_bulk'"
    )
    inlets = (
        store.read_frame("SELECT bulk_meter_ids FROM zones")["bulk_meter_ids"]
        .fillna("")
        .str.split(";")
        .explode()
    )
    installs = installs[~installs["meter_id"].isin(set(inlets.str.strip()))]
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    frame = assign_customers(frame, installs)
    frame = frame.assign(
        hour_end=frame["interval_end"].dt.ceil("h"),
        replaced=frame["previous_value"] - frame["value"].fillna(0.0),
    )
    return frame.groupby(["zone_id", "hour_end"], as_index=False)["replaced"].sum()[columns]


def run_days(
    store: Store,
    cfg: UtilityConfig,
    first: dt.date,
    last: dt.date,
    zone_ids: list[str] | None = None,
    detectors: dict[str, Detector] | None = None,
) -> NrwRun:
    """Balances, night flow and loss events of the operating days ``first``..``last``."""
    run = NrwRun(first, last)
    hourly, daily, nights = compute_balances(store, cfg, first, last, zone_ids)
    store_balances(store, hourly, daily, nights, first, last)
    run.zones = sorted(set(daily["zone_id"])) if not daily.empty else []
    run.hourly_rows, run.daily_rows, run.night_rows = len(hourly), len(daily), len(nights)
    if not daily.empty:
        run.complete_days = int(daily["complete"].sum())
        run.incomplete_days = int((~daily["complete"].astype(bool)).sum())
    if not run.zones:
        return run
    window = day_window(first, last, cfg.utility.timezone)
    chosen = {"balance": lambda s, a, b, z=None: detect_from_balances(s, a, b, z, cfg=cfg), **DETECTORS}
    if detectors is not None:
        chosen = detectors
    for source, detector in chosen.items():
        events = detector(store, first, last, zone_ids)
        if source in SELF_STORING:
            events, explained = split_explained(events, cfg.nrw_config().operations)
            withdraw_events(store, explained["event_id"].tolist())
            first_seen = pd.to_datetime(events["detected_at"], utc=True) >= pd.to_datetime(
                events["updated_at"], utc=True
            )
            run.events[source] = UpsertResult(
                source,
                new=events.loc[first_seen, "event_id"].tolist(),
                updated=events.loc[~first_seen, "event_id"].tolist(),
            )
        else:
            run.events[source] = upsert_events(store, events, source, window, zone_ids or run.zones)
    run.merged = merge_events(store, zone_ids)
    return run


def daily_balance_summary(store: Store, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Daily zone balances with the night flow of the same day, rounded for display (one row per
    zone and day, loss_percent added)."""
    daily = store.read_frame(
        "SELECT b.zone_id, b.read_day, b.input_volume, b.metered_volume, b.estimated_volume, b.loss_volume, "
        "b.input_completeness, b.metered_completeness, b.complete, n.min_night_flow, n.excess_night_flow "
        "FROM zone_balances b LEFT JOIN zone_night_flow n ON n.zone_id = b.zone_id AND n.read_day = b.read_day "
        "WHERE b.interval_seconds = 86400 AND b.read_day >= :a AND b.read_day <= :b ORDER BY b.read_day, b.zone_id",
        {"a": first, "b": last},
    )
    daily["loss_percent"] = (100 * daily["loss_volume"] / daily["input_volume"]).round(2)
    for c in (
        "input_volume",
        "metered_volume",
        "estimated_volume",
        "loss_volume",
        "min_night_flow",
        "excess_night_flow",
    ):
        daily[c] = daily[c].astype(float).round(1)
    for c in ("input_completeness", "metered_completeness"):
        daily[c] = daily[c].astype(float).round(4)
    daily["read_day"] = daily["read_day"].astype(str)
    return daily


def finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
