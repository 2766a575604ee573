"""Inflow-only loss detection for zones (issue 16): store in, ``loss_events`` and ``zone_night_flow`` out.

``detect_inflow_events(store, start_day, end_day)`` reads the current intervals of every zone's
inlet/bulk meters (and of the child zones' inlets and the feed tank's level meter) from
``lookback_days`` before ``start_day`` to ``end_day``, builds the hourly zone inflow
(``domain.water.inflow``), runs the detector with the zone class's parameters
(``domain.water.inflow_events``) and writes:

* ``loss_events`` rows ``kind`` abrupt|gradual, ``source='inflow'``, for events that touch the
  days evaluated. ``event_id`` is a hash of zone, kind and start, so a re-run updates a row and
  never duplicates it (``detected_at`` is kept, ``updated_at`` moves); inflow events of those
  zones starting within the days that the re-run no longer finds are removed.
* ``zone_night_flow`` for the days evaluated of the zones with no interval customer meter (the
  zones whose balance cannot be computed hourly).

Only measured intervals count (``valid``/``edited``): an estimate is built from the past and
cannot show a leak that starts inside it, so estimated, suspect and missing intervals are gaps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.water.balance_events import EVENT_COLUMNS
from smartmdm_pipelines.domain.water.inflow import (
    M3_PER,
    hour_index,
    hourly_volumes,
    tank_storage_change,
    zone_inflow,
)
from smartmdm_pipelines.domain.water.inflow_events import InflowParams, detect_zone_events, tank_noise_floor
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

SOURCE = "inflow"
MEASURED = ("valid", "edited")
LOSS_EVENT_COLUMNS = [*EVENT_COLUMNS, "detected_at", "updated_at"]
Params = InflowParams | Mapping[str, InflowParams] | None


def event_id(zone_id: str, kind: str, start: pd.Timestamp) -> str:
    key = f"{zone_id}|{kind}|{pd.Timestamp(start).tz_convert('UTC').isoformat()}"
    return "inflow-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def _params_of(zone_class: str | None, params: Params) -> InflowParams:
    if isinstance(params, InflowParams):
        return params
    if isinstance(params, Mapping):
        return params.get(zone_class or "", params.get("dma", InflowParams()))
    from smartmdm_pipelines.config import default_config

    return default_config().water_detection.params_for(zone_class)


def _zones(store: Store) -> pd.DataFrame:
    zones = store.read_frame(
        "SELECT zone_id, timezone, bulk_meter_ids, parent_zone_id, zone_class, tank_level_meter_id, "
        "tank_area_m2 FROM zones ORDER BY zone_id"
    )
    zones["parent_zone_id"] = zones["parent_zone_id"].replace("", None)
    return zones


def _current_intervals(store: Store, meter_id: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    return store.read_frame(
        current_intervals_sql(
            "meter_id = :m AND read_day >= :a AND read_day <= :b",
            ["meter_id", "interval_end", "interval_seconds", "value", "unit", "status"],
        )
        + " ORDER BY interval_end",
        {"m": meter_id, "a": first, "b": last},
    )


def _meters(ids: object) -> list[str]:
    return [m.strip() for m in str(ids or "").split(";") if m.strip()]


def _without_customer_intervals(store: Store, zone_ids: list[str]) -> list[str]:
    """Zones none of whose service points has an interval customer meter installed."""
    with_intervals = store.read_frame(
        "SELECT DISTINCT sp.zone_id FROM service_points sp JOIN meter_installs mi "
        "ON mi.service_point_id = sp.service_point_id JOIN meters m ON m.meter_id = mi.meter_id "
        "WHERE m.role = 'customer' AND m.interval_seconds IS NOT NULL AND m.interval_seconds > 0"
    )
    taken = set(with_intervals["zone_id"].dropna())
    return [z for z in zone_ids if z not in taken]


def _properties(store: Store) -> dict[str, int]:
    """Active service points per zone, those hosting a zone bulk (inlet, level) meter left out."""
    counts = store.read_frame(
        "SELECT zone_id, count(*) AS n FROM service_points sp WHERE status = 'active' AND NOT EXISTS ("
        " SELECT 1 FROM meter_installs mi JOIN meters m ON m.meter_id = mi.meter_id"
        " WHERE mi.service_point_id = sp.service_point_id AND m.role = 'zone_bulk') GROUP BY zone_id"
    )
    return dict(zip(counts["zone_id"], counts["n"].astype(int), strict=True))


def detect_inflow_events(
    store: Store,
    start_day: dt.date,
    end_day: dt.date,
    zone_ids: list[str] | None = None,
    params: Params = None,
    write_events: bool = True,
) -> pd.DataFrame:
    """Detect, store and return the inflow-only loss events of ``start_day``..``end_day`` (local days).

    ``write_events=False`` leaves ``loss_events`` to the caller (the NRW pipeline stores every
    detector's events through ``services/loss_events.upsert_events``); night flow is written either way.

    ``params``: one ``InflowParams`` for every zone, a mapping zone class -> params, or None for
    the utility YAML's ``water_detection`` classes. Returns the ``loss_events`` rows written.
    """
    zones = _zones(store)
    targets = [
        z
        for z, ids in zip(zones["zone_id"], zones["bulk_meter_ids"], strict=True)
        if _meters(ids) and (zone_ids is None or z in zone_ids)
    ]
    if not targets:
        return pd.DataFrame(columns=LOSS_EVENT_COLUMNS)
    info = zones.set_index("zone_id")
    per_zone = {z: _params_of(info.at[z, "zone_class"], params) for z in targets}
    lookback = max(p.lookback_days for p in per_zone.values())
    first_day = start_day - dt.timedelta(days=lookback)
    lo = min(local_day_bounds(first_day, info.at[z, "timezone"])[0] for z in targets)
    hi = max(local_day_bounds(end_day, info.at[z, "timezone"])[1] for z in targets)
    hours = hour_index(lo, hi)

    needed = set()
    for z in targets:
        needed.update(_meters(info.at[z, "bulk_meter_ids"]))
        needed.update(
            m for child in zones.loc[zones["parent_zone_id"] == z, "bulk_meter_ids"] for m in _meters(child)
        )
    # read days one either side: an interval's read_day is its local day, whatever the zone
    reads = {
        m: _current_intervals(store, m, first_day - dt.timedelta(days=1), end_day + dt.timedelta(days=1))
        for m in sorted(needed)
    }
    frames = [f for f in reads.values() if len(f)]
    columns = ["meter_id", "interval_end", "interval_seconds", "value", "unit", "status"]
    intervals = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    units = intervals.groupby("meter_id")["unit"].first().to_dict() if len(intervals) else {}
    measured = intervals.assign(value=intervals["value"].where(intervals["status"].isin(MEASURED)))
    volumes = hourly_volumes(measured, hours) if len(intervals) else pd.DataFrame(index=hours)

    storage, floors = {}, {}
    for z in targets:
        level_meter, area = info.at[z, "tank_level_meter_id"], info.at[z, "tank_area_m2"]
        if not level_meter or pd.isna(area):
            continue
        unit = units.get(_meters(info.at[z, "bulk_meter_ids"])[0], "gal")
        levels = _current_intervals(store, level_meter, first_day - dt.timedelta(days=1), end_day)
        levels = levels[levels["status"].isin(MEASURED)]
        storage[z] = tank_storage_change(levels, hours, float(area), unit)
        floors[z] = tank_noise_floor(float(area), per_zone[z], M3_PER.get(unit, 1.0))
    inflow = zone_inflow(volumes, zones, storage)[targets]

    now = pd.Timestamp.now(tz="UTC").floor("s")
    events, nights = [], []
    for z in targets:
        tz = info.at[z, "timezone"]
        unit = units.get(_meters(info.at[z, "bulk_meter_ids"])[0], "")
        found, night = detect_zone_events(inflow[z], tz, per_zone[z], z, unit, floors.get(z, 0.0))
        day_lo, _ = local_day_bounds(start_day, tz)
        _, day_hi = local_day_bounds(end_day, tz)
        if len(found):
            touches = (found["start_at"] < day_hi) & (found["end_at"].isna() | (found["end_at"] >= day_lo))
            events.append(found[touches.to_numpy()])
        nights.append(night.assign(zone_id=z, unit=unit))
    rows = _event_rows(pd.concat(events, ignore_index=True) if events else pd.DataFrame(), now)
    if write_events:
        _write_events(store, rows, targets, start_day, end_day, info)
    _write_nights(store, pd.concat(nights), targets, start_day, end_day, per_zone, info)
    return rows


def _event_rows(found: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    if found.empty:
        return pd.DataFrame(columns=LOSS_EVENT_COLUMNS)
    rows = pd.DataFrame(
        {
            "event_id": [
                event_id(z, k, s)
                for z, k, s in zip(found["zone_id"], found["kind"], found["start_at"], strict=True)
            ],
            "zone_id": found["zone_id"],
            "meter_id": None,
            "kind": found["kind"],
            "start_at": pd.to_datetime(found["start_at"], utc=True),
            "end_at": pd.to_datetime(found["end_at"], utc=True),
            "rate": found["rate"].astype("float64"),
            "unit": found["unit"],
            "detail": [_detail(r) for r in found.itertuples()],
            "volume": found["volume"].astype("float64"),
            "confidence": found["confidence"].astype("float64"),
            "source": SOURCE,
            "evidence": [
                json.dumps({**e, "detected_day": str(d)}, sort_keys=True)
                for e, d in zip(found["evidence"], found["detected_day"], strict=True)
            ],
            "status": found["status"],
            "detected_at": now,
            "updated_at": now,
        }
    )
    return rows.drop_duplicates("event_id", keep="last").reset_index(drop=True)


def _detail(row) -> str:
    what = "step up in night flow" if row.kind == "abrupt" else "sustained rise in night flow"
    text = f"inflow-only: {what} of {row.rate:.3g} {row.unit}/h"
    if row.status == "ended":
        text += ", ended by a step down (repair)"
    return text


def _write_events(
    store: Store,
    rows: pd.DataFrame,
    zones: list[str],
    start_day: dt.date,
    end_day: dt.date,
    info: pd.DataFrame,
) -> None:
    table = store.table("loss_events")
    lo = min(local_day_bounds(start_day, info.at[z, "timezone"])[0] for z in zones)
    hi = max(local_day_bounds(end_day, info.at[z, "timezone"])[1] for z in zones)
    ids = rows["event_id"].tolist()
    with store.begin() as conn:
        if ids:
            kept = store.read_frame(
                "SELECT event_id, detected_at FROM loss_events WHERE source = :s", {"s": SOURCE}, conn
            )
            first_seen = dict(
                zip(kept["event_id"], pd.to_datetime(kept["detected_at"], utc=True), strict=True)
            )
            rows["detected_at"] = [
                first_seen.get(i, at) for i, at in zip(ids, rows["detected_at"], strict=True)
            ]
            rows["detected_at"] = pd.to_datetime(rows["detected_at"], utc=True)
        stale = sa.and_(
            table.c.source == SOURCE,
            table.c.zone_id.in_(zones),
            table.c.start_at >= lo.to_pydatetime(),
            table.c.start_at < hi.to_pydatetime(),
        )
        store.delete("loss_events", sa.or_(stale, table.c.event_id.in_(ids)) if ids else stale, conn)
        store.bulk_insert("loss_events", rows, conn)


def _write_nights(
    store: Store,
    nights: pd.DataFrame,
    zones: list[str],
    start_day: dt.date,
    end_day: dt.date,
    per_zone: Mapping[str, InflowParams],
    info: pd.DataFrame,
) -> None:
    """``zone_night_flow`` of the evaluated days, for zones without interval customer meters."""
    plain = _without_customer_intervals(store, zones)
    properties = _properties(store)
    frame = nights.reset_index()
    frame = frame[frame["zone_id"].isin(plain)]
    frame = frame[(frame["day"].dt.date >= start_day) & (frame["day"].dt.date <= end_day)]
    allowance_m3 = np.array(
        [
            properties.get(z, 0) * per_zone[z].legitimate_night_use_l_per_property_h / 1000.0
            for z in frame["zone_id"]
        ]
    )
    legit = (
        allowance_m3 / np.array([M3_PER.get(u, 1.0) for u in frame["unit"]]) if len(frame) else allowance_m3
    )
    out = pd.DataFrame(
        {
            "zone_id": frame["zone_id"],
            "read_day": frame["day"].dt.date,
            "min_night_flow": frame["night_flow"],
            "legitimate_night_use": legit,
            "excess_night_flow": frame["night_flow"] - legit,
            "baseline": frame["baseline"],
            "unit": frame["unit"],
            "completeness": frame["completeness"],
        }
    )
    table = store.table("zone_night_flow")
    where = sa.and_(table.c.zone_id.in_(plain), table.c.read_day >= start_day, table.c.read_day <= end_day)
    if plain:
        store.replace_partition("zone_night_flow", where, out)
