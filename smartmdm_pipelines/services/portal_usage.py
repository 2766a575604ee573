"""The portal's reads of the store: which service points and meters an account covers, and the
current interval versions of those meters over a local date range (clipped to the account's
occupancy: a new occupant never sees the previous one's usage).

Current intervals are read the way the other services read them today (the latest version per
meter, channel and interval end); the store's shared definition replaces it when it lands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.portal.usage import bucket, local_range
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

MAX_DAYS = {"interval": 93, "hour": 400, "day": 3700, "month": 3700}
SECONDARY = ("received", "kvarh", "net", "bypassed", "after_move_out")


class NotFound(LookupError):
    """The account (or service point/meter of it) does not exist, or is not the caller's."""


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class ServicePoint:
    service_point_id: str
    timezone: str
    commodity: str
    rate_code: str | None
    billing_cycle: str | None
    status: str
    move_in: dt.date
    move_out: dt.date | None


@dataclass
class Scope:
    account_id: str
    points: list[ServicePoint]
    installs: pd.DataFrame  # meter_id, service_point_id, installed_at, removed_at, channels, unit

    @property
    def timezone(self) -> str:
        return self.points[0].timezone


def account_scope(
    store: Store, account_id: str, service_point_id: str | None = None, meter_id: str | None = None
) -> Scope:
    rows = store.read_frame(
        "SELECT a.service_point_id, a.move_in, a.move_out, sp.timezone, sp.commodity, sp.rate_code, "
        "sp.billing_cycle, sp.status FROM accounts a JOIN service_points sp "
        "ON sp.service_point_id = a.service_point_id WHERE a.account_id = :a ORDER BY a.move_in, a.service_point_id",
        {"a": account_id},
    )
    if service_point_id is not None:
        rows = rows[rows["service_point_id"] == service_point_id]
    if rows.empty:
        raise NotFound(account_id)
    points = [
        ServicePoint(
            r.service_point_id,
            r.timezone,
            r.commodity,
            None if pd.isna(r.rate_code) else r.rate_code,
            None if pd.isna(r.billing_cycle) else r.billing_cycle,
            r.status,
            pd.Timestamp(r.move_in).date(),
            None if pd.isna(r.move_out) else pd.Timestamp(r.move_out).date(),
        )
        for r in rows.itertuples()
    ]
    installs = store.read_frame(
        "SELECT mi.meter_id, mi.service_point_id, mi.installed_at, mi.removed_at, m.channels, m.unit "
        "FROM meter_installs mi JOIN meters m ON m.meter_id = mi.meter_id "
        "WHERE mi.service_point_id IN (SELECT unnest(:sp)) ORDER BY mi.installed_at",
        {"sp": [p.service_point_id for p in points]},
    )
    if meter_id is not None:
        installs = installs[installs["meter_id"] == meter_id]
        if installs.empty:
            raise NotFound(meter_id)
    return Scope(account_id, points, installs)


def primary_channel(channels: str) -> str:
    """The consumption channel of a meter: its first channel that is not received/reactive/net."""
    names = [c for c in str(channels or "").split(";") if c]
    for name in names:
        if not any(s in name for s in SECONDARY):
            return name
    return names[0] if names else "kwh_delivered"


EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(2200, 12, 31)


def check_range(first: dt.date, last: dt.date, resolution: str) -> None:
    for name, day in (("from", first), ("to", last)):
        if not EARLIEST <= day <= LATEST:
            raise BadRequest(f"'{name}' ({day}) must be between {EARLIEST} and {LATEST}")
    if last < first:
        raise BadRequest(f"'to' ({last}) is before 'from' ({first})")
    days = (last - first).days + 1
    limit = MAX_DAYS.get(resolution)
    if limit is None:
        raise BadRequest(f"resolution must be one of {', '.join(MAX_DAYS)}, not {resolution!r}")
    if days > limit:
        raise BadRequest(f"a {resolution} range is at most {limit} days; asked for {days}")


def current_intervals(
    store: Store, scope: Scope, first: dt.date, last: dt.date, channel: str | None = None
) -> pd.DataFrame:
    """Current versions of the scope's meters in local days ``first``..``last``, clipped to the
    install windows and the account's occupancy. Columns: meter_id, service_point_id, channel,
    interval_end, interval_seconds, value, unit, status, espi_quality."""
    cols = [
        "meter_id",
        "channel",
        "interval_end",
        "interval_seconds",
        "value",
        "unit",
        "status",
        "espi_quality",
    ]
    a, b = local_range(first, last, scope.timezone)
    inst = scope.installs
    if inst.empty:
        return pd.DataFrame(columns=[*cols, "service_point_id"])
    channels = sorted({channel} if channel else {primary_channel(c) for c in inst["channels"]})
    # the end as epoch seconds: converting timestamptz values row by row is most of a read's time
    picked = ", ".join("CAST(extract(epoch FROM interval_end) AS BIGINT) AS end_epoch" if c == "interval_end" else c
                       for c in cols)  # fmt: skip
    frame = store.read_frame(
        f"SELECT {picked} FROM ("
        + current_intervals_sql(
            "meter_id IN (SELECT unnest(:m)) AND channel IN (SELECT unnest(:c)) "
            "AND interval_end > :a AND interval_end <= :b",
            cols,
        )
        + ") cur",
        {
            "m": sorted(inst["meter_id"].unique().tolist()),
            "c": channels,
            "a": a.to_pydatetime(),
            "b": b.to_pydatetime(),
        },
    )
    frame.insert(
        2, "interval_end", pd.to_datetime(frame.pop("end_epoch").astype("int64"), unit="s", utc=True)
    )
    if frame.empty:
        return frame.assign(service_point_id=pd.Series(dtype="object"))
    # clip to the install windows and the account's occupancy (few rows: a mask per install)
    occupancy = {
        p.service_point_id: (
            local_range(p.move_in, p.move_in, p.timezone)[0],
            None if p.move_out is None else local_range(p.move_out, p.move_out, p.timezone)[0],
        )
        for p in scope.points
    }
    end = frame["interval_end"]
    meters = frame["meter_id"].to_numpy()
    sp_of = np.empty(len(frame), dtype=object)
    keep = np.zeros(len(frame), dtype=bool)
    for row in inst.itertuples(index=False):
        occ_from, occ_to = occupancy[row.service_point_id]
        lo = max(pd.Timestamp(row.installed_at).tz_convert("UTC"), occ_from)
        his = [t for t in (row.removed_at, occ_to) if t is not None and not pd.isna(t)]
        m = (meters == row.meter_id) & (end > lo).to_numpy()
        if his:
            m &= (end <= min(pd.Timestamp(t).tz_convert("UTC") for t in his)).to_numpy()
        keep |= m
        sp_of[m] = row.service_point_id
    frame = frame.assign(service_point_id=sp_of)[keep]
    frame = frame.drop_duplicates(["meter_id", "channel", "interval_end"])
    return frame[[*cols, "service_point_id"]].sort_values(["interval_end", "meter_id"]).reset_index(drop=True)


def usage(
    store: Store,
    account_id: str,
    first: dt.date,
    last: dt.date,
    resolution: str = "hour",
    service_point_id: str | None = None,
    meter_id: str | None = None,
) -> dict:
    """The usage document of ``GET /v1/accounts/{id}/usage`` (all items; the router pages)."""
    check_range(first, last, resolution)
    scope = account_scope(store, account_id, service_point_id, meter_id)
    frame = current_intervals(store, scope, first, last)
    units = sorted(frame["unit"].dropna().unique().tolist()) if not frame.empty else []
    if len(units) > 1:
        raise BadRequest(
            f"account {account_id} has meters in {', '.join(units)}: ask for one service_point_id or meter_id"
        )
    unit = units[0] if units else (scope.installs["unit"].iloc[0] if not scope.installs.empty else None)
    items = bucket(frame, resolution, scope.timezone)
    return {
        "account_id": account_id,
        "service_point_ids": [p.service_point_id for p in scope.points],
        "resolution": resolution,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "unit": unit,
        "timezone": scope.timezone,
        "items": items,
    }
