"""The portal's reads of the store: which service points and meters an account covers, and the
current interval versions of those meters over a local date range (clipped to the account's
occupancy: a new occupant never sees the previous one's usage).

Current intervals are read the way the other services read them today (the latest version per
meter, channel and interval end); the store's shared definition replaces it when it lands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.domain.portal.usage import bucket, bucket_hours, local_range
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
    installs: (
        pd.DataFrame
    )  # meter_id, service_point_id, installed_at, removed_at, channels, unit, interval_seconds

    @property
    def timezone(self) -> str:
        return self.points[0].timezone

    def only(self, service_point_id: str) -> Scope:
        """The scope of one of its service points (what ``account_scope(…, service_point_id)`` reads)."""
        points = [p for p in self.points if p.service_point_id == service_point_id]
        if not points:
            raise NotFound(self.account_id)
        installs = self.installs[self.installs["service_point_id"] == service_point_id].reset_index(drop=True)
        return Scope(self.account_id, points, installs)


_SCOPE_SQL = (
    "SELECT a.service_point_id, a.move_in, a.move_out, sp.timezone, sp.commodity, sp.rate_code, "
    "sp.billing_cycle, sp.status, i.meter_id, i.installed_at, i.removed_at, i.channels, i.unit, "
    "i.interval_seconds "
    "FROM accounts a JOIN service_points sp ON sp.service_point_id = a.service_point_id "
    "LEFT JOIN (SELECT mi.meter_id, mi.service_point_id, mi.installed_at, mi.removed_at, m.channels, m.unit, "
    "m.interval_seconds FROM meter_installs mi JOIN meters m ON m.meter_id = mi.meter_id) i "
    "ON i.service_point_id = a.service_point_id "
    "WHERE a.account_id = :a ORDER BY a.move_in, a.service_point_id, i.installed_at"
)
_POINT_COLS = ["service_point_id", "move_in", "move_out", "timezone", "commodity", "rate_code", "billing_cycle",
               "status"]  # fmt: skip
_INSTALL_COLS = ["meter_id", "service_point_id", "installed_at", "removed_at", "channels", "unit",
                 "interval_seconds"]  # fmt: skip


def account_scope(
    store: Store,
    account_id: str,
    service_point_id: str | None = None,
    meter_id: str | None = None,
    conn: sa.Connection | None = None,
) -> Scope:
    """The account's service points (by move-in) and the meters installed at them (by install
    time), in one statement (on ``conn`` when given: a request's reads share one connection)."""
    rows = store.read_frame(_SCOPE_SQL, {"a": account_id}, conn)
    if service_point_id is not None:
        rows = rows[rows["service_point_id"] == service_point_id]
    if rows.empty:
        raise NotFound(account_id)
    # one row per (occupancy, install): the occupancies are the distinct account rows (plain
    # Python over a handful of rows: pandas' own dedupe and sort cost more than the statement)
    cols = {c: rows[c].tolist() for c in _POINT_COLS}
    points, seen = [], set()
    for sp, move_in, move_out, tz, commodity, rate_code, cycle, status in zip(*cols.values(), strict=True):
        if (key := (sp, move_in, move_out)) in seen:
            continue
        seen.add(key)
        points.append(
            ServicePoint(
                sp,
                tz,
                commodity,
                None if pd.isna(rate_code) else rate_code,
                None if pd.isna(cycle) else cycle,
                status,
                pd.Timestamp(move_in).date(),
                None if pd.isna(move_out) else pd.Timestamp(move_out).date(),
            )
        )
    installs = rows.loc[rows["meter_id"].notna(), _INSTALL_COLS]
    if len(points) > 1:
        # a service point occupied twice by the account lists its installs once; by install time
        installs = installs.drop_duplicates(["meter_id", "service_point_id", "installed_at", "removed_at"])
        installs = installs.sort_values("installed_at", kind="stable")
    installs = installs.reset_index(drop=True)  # one occupancy: already by install time (ORDER BY)
    seconds = installs["interval_seconds"]
    if seconds.notna().all():  # the type a query of the installs alone gives
        installs["interval_seconds"] = seconds.astype("int64")
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
    store: Store,
    scope: Scope,
    first: dt.date,
    last: dt.date,
    channel: str | None = None,
    conn: sa.Connection | None = None,
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
        conn,
    )
    frame.insert(
        2, "interval_end", pd.to_datetime(frame.pop("end_epoch").astype("int64"), unit="s", utc=True)
    )
    if frame.empty:
        return frame.assign(service_point_id=pd.Series(dtype="object"))
    # clip to the install windows and the account's occupancy (few rows: a mask per install)
    end = frame["interval_end"]
    meters = frame["meter_id"].to_numpy()
    sp_of = np.empty(len(frame), dtype=object)
    keep = np.zeros(len(frame), dtype=bool)
    for meter, sp, lo, hi in _windows(scope):
        m = (meters == meter) & (end > lo).to_numpy()
        if hi is not None:
            m &= (end <= hi).to_numpy()
        keep |= m
        sp_of[m] = sp
    frame = frame.assign(service_point_id=sp_of)[keep]
    frame = frame.drop_duplicates(["meter_id", "channel", "interval_end"])
    return frame[[*cols, "service_point_id"]].sort_values(["interval_end", "meter_id"]).reset_index(drop=True)


def _windows(scope: Scope) -> list[tuple[str, str, pd.Timestamp, pd.Timestamp | None]]:
    """(meter, service point, lo, hi) per install: its intervals with ``lo < interval_end <= hi``
    (``hi`` None: open) are the account's (the install window and the account's occupancy)."""
    occupancy = {
        p.service_point_id: (
            local_range(p.move_in, p.move_in, p.timezone)[0],
            None if p.move_out is None else local_range(p.move_out, p.move_out, p.timezone)[0],
        )
        for p in scope.points
    }
    out = []
    for row in scope.installs.itertuples(index=False):
        occ_from, occ_to = occupancy[row.service_point_id]
        lo = max(pd.Timestamp(row.installed_at).tz_convert("UTC"), occ_from)
        his = [
            pd.Timestamp(t).tz_convert("UTC")
            for t in (row.removed_at, occ_to)
            if t is not None and not pd.isna(t)
        ]
        out.append((row.meter_id, row.service_point_id, lo, min(his) if his else None))
    return out


LONGEST_UNKNOWN = 40 * 86400  # a meter without an interval length: reads up to a month and more


def hourly_rollup(
    store: Store,
    scope: Scope,
    first: dt.date,
    last: dt.date,
    channel: str | None = None,
    conn: sa.Connection | None = None,
) -> pd.DataFrame | None:
    """The scope's ``usage_hourly`` rows (store/usage_rollup.py) for local days ``first``..``last``
    — columns meter_id, hour_start (epoch s), value_sum, value_count, interval_count,
    estimated_count, status_rank, interval_seconds, unit — or None when the rollup cannot give
    what :func:`current_intervals` would: an hour cut by an install or occupancy boundary, or a
    zone whose local hours are not UTC hours (offsets like +05:30)."""
    inst = scope.installs
    if inst.empty:
        return None
    a, b = local_range(first, last, scope.timezone)
    channels = sorted({channel} if channel else {primary_channel(c) for c in inst["channels"]})
    longest = pd.to_numeric(inst["interval_seconds"], errors="coerce").fillna(LONGEST_UNKNOWN).max()
    frame = store.read_frame(
        "SELECT meter_id, CAST(extract(epoch FROM hour_start) AS BIGINT) AS hour_start, value_sum, "
        "value_count, interval_count, estimated_count, status_rank, interval_seconds, unit, "
        "CAST(extract(epoch FROM first_end) AS BIGINT) AS first_end, "
        "CAST(extract(epoch FROM last_end) AS BIGINT) AS last_end FROM usage_hourly "
        "WHERE meter_id IN (SELECT unnest(:m)) AND channel IN (SELECT unnest(:c)) "
        "AND hour_start >= :lo AND hour_start < :b ORDER BY hour_start",
        {
            "m": sorted(inst["meter_id"].unique().tolist()),
            "c": channels,
            "lo": (a - pd.Timedelta(seconds=max(int(longest), 3600))).to_pydatetime(),
            "b": b.to_pydatetime(),
        },
        conn,
    )
    if frame.empty:
        return frame
    meters = frame["meter_id"].to_numpy()
    e0 = frame["first_end"].to_numpy(dtype="int64")
    e1 = frame["last_end"].to_numpy(dtype="int64")
    inside = np.zeros(len(frame), dtype=bool)
    touched = np.zeros(len(frame), dtype=bool)
    a_s, b_s = int(a.timestamp()), int(b.timestamp())
    for meter, _, lo, hi in _windows(scope):
        lo_s = max(int(lo.timestamp()), a_s)
        hi_s = b_s if hi is None else min(int(hi.timestamp()), b_s)
        mine = meters == meter
        inside |= mine & (e0 > lo_s) & (e1 <= hi_s)
        touched |= mine & (e1 > lo_s) & (e0 <= hi_s)
    if (touched & ~inside).any():
        return None  # an hour cut by a boundary: only the intervals can say
    frame = frame[inside]
    # a UTC hour that is not a local hour (+05:30 …) is not a bucket of the local hours
    local = pd.to_datetime(frame["hour_start"].drop_duplicates(), unit="s", utc=True).dt.tz_convert(
        scope.timezone
    )
    if (local.dt.minute != 0).any():
        return None
    return frame.drop(columns=["first_end", "last_end"]).reset_index(drop=True)


def buckets(
    store: Store,
    scope: Scope,
    first: dt.date,
    last: dt.date,
    resolution: str,
    conn: sa.Connection | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scope's usage per local ``resolution`` bucket (domain/portal/usage.py ``bucket``) and
    the frame it was summed from: the hourly rollup when it can serve (hour, day, month),
    else the current intervals."""
    if (
        resolution != "interval"
        and (hours := hourly_rollup(store, scope, first, last, conn=conn)) is not None
    ):
        return hours, bucket_hours(hours, resolution, scope.timezone)
    frame = current_intervals(store, scope, first, last, conn=conn)
    return frame, bucket(frame, resolution, scope.timezone)


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
    with store.engine.connect() as conn:  # one connection for the request's reads
        scope = account_scope(store, account_id, service_point_id, meter_id, conn)
        frame, items = buckets(store, scope, first, last, resolution, conn)
    units = sorted(frame["unit"].dropna().unique().tolist()) if not frame.empty else []
    if len(units) > 1:
        raise BadRequest(
            f"account {account_id} has meters in {', '.join(units)}: ask for one service_point_id or meter_id"
        )
    unit = units[0] if units else (scope.installs["unit"].iloc[0] if not scope.installs.empty else None)
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


# --- the hourly history in one PostgreSQL statement ---------------------------------------------
#
# A year of hours is 8,784 items: reading them into pandas and formatting them in Python costs
# far more than the query. On PostgreSQL the statement below sums the rollup per hour, formats the
# local ISO times and builds the page's JSON items; Python passes the text through. It gives
# what ``bucket_hours(hourly_rollup(...), "hour")`` gives, and says when it cannot (an hour cut
# by a window boundary, a zone whose local hours are not UTC hours): the caller then falls back.


def _iso_sql(instant: str) -> str:
    """ISO text of a timestamptz in the session's time zone (set to the account's zone): the
    server's own output ``2024-11-03 01:00:00-05`` made ``2024-11-03T01:00:00-05:00`` (whole-hour
    offsets only: :func:`hourly_json` refuses other zones)."""
    return f"replace(CAST({instant} AS text), ' ', 'T') || '\\:00'"  # the backslash: no bind parameter


# the value's JSON: PostgreSQL's ``round(CAST(v AS numeric), 6)`` as a double, the general
# path's rounding. The numeric round is the dearest step of the statement, so it is skipped where
# it cannot change the text: a value whose shortest text has at most 15 digits, no exponent and at
# most 6 decimals is that text (its %.15g numeric is the same decimal; -0 is printed 0, as numeric
# prints it). Checked against the numeric round on 720,000 values (NaN, ±Infinity, tiny, huge).
_VALUE_SQL = (
    "CASE WHEN v IS NULL THEN 'null' WHEN v = 0 THEN '0' "
    "WHEN length(t) <= 15 AND strpos(t, 'e') = 0 AND (strpos(t, '.') = 0 OR length(t) - strpos(t, '.') <= 6) "
    "THEN t ELSE CAST(CAST(round(CAST(v AS numeric), 6) AS double precision) AS text) END"
)

_ITEMS_SQL = f"""
  string_agg(
      '{{"start":"' || {_iso_sql("hour_start")} || '","end":"' || {_iso_sql("(hour_start + INTERVAL '1 hour')")}
      || '","value":' || {_VALUE_SQL} || ',"status":"'
      || CASE k WHEN 2 THEN 'estimated' WHEN 1 THEN 'edited' WHEN 0 THEN 'actual' ELSE 'missing' END || '"}}',
      ',' ORDER BY hour_start) FILTER (WHERE kept AND i > :offset AND i <= :offset + :limit) AS items"""

_HOUR_JSON_SQL = f"""
WITH w AS (
  SELECT * FROM unnest(CAST(:wm AS text[]), CAST(:wlo AS timestamptz[]), CAST(:whi AS timestamptz[]))
    AS w(meter_id, lo, hi)
), r AS (
  SELECT u.hour_start, u.value_sum, u.value_count, u.status_rank, u.unit,
         u.first_end > w.lo AND u.last_end <= w.hi AS inside,
         u.last_end > w.lo AND u.first_end <= w.hi AS touched
  FROM usage_hourly u JOIN w ON w.meter_id = u.meter_id  -- one window per meter (hourly_json checks)
  WHERE u.meter_id = ANY(CAST(:m AS text[])) AND u.channel = ANY(CAST(:c AS text[]))
    AND u.hour_start >= :lo AND u.hour_start < :b
), h AS (
  SELECT hour_start, sum(value_sum) FILTER (WHERE inside AND value_count > 0) AS v,
         max(status_rank) FILTER (WHERE inside AND value_count > 0) AS k,
         bool_or(inside) AS kept, bool_or(touched AND NOT inside) AS cut,
         min(unit) FILTER (WHERE inside) AS unit_lo, max(unit) FILTER (WHERE inside) AS unit_hi
  FROM r GROUP BY hour_start
), n AS (
  SELECT h.*, CAST(v AS text) AS t, count(*) FILTER (WHERE kept) OVER (ORDER BY hour_start) AS i FROM h
)
SELECT
  bool_or(cut) AS cut,
  count(*) FILTER (WHERE kept) AS total,
  min(unit_lo) AS unit_lo,
  max(unit_hi) AS unit_hi,{_ITEMS_SQL}
FROM n
"""

# one meter and one channel (most accounts): a rollup row is an hour, so no grouping and no sort
# (the key index gives the hours in order); the same result as _HOUR_JSON_SQL
_HOUR_JSON_ONE_METER_SQL = f"""
WITH r AS (
  SELECT u.hour_start, u.unit,
         CASE WHEN u.value_count > 0 THEN u.value_sum END AS v,
         CASE WHEN u.value_count > 0 THEN u.status_rank END AS k,
         u.first_end > :wlo1 AND u.last_end <= :whi1 AS kept,
         u.last_end > :wlo1 AND u.first_end <= :whi1 AS touched
  FROM usage_hourly u
  WHERE u.meter_id = :m1 AND u.channel = :c1 AND u.hour_start >= :lo AND u.hour_start < :b
), n AS (
  SELECT r.*, CAST(v AS text) AS t, count(*) FILTER (WHERE kept) OVER (ORDER BY hour_start) AS i FROM r
)
SELECT
  bool_or(touched AND NOT kept) AS cut,
  count(*) FILTER (WHERE kept) AS total,
  min(unit) FILTER (WHERE kept) AS unit_lo,
  max(unit) FILTER (WHERE kept) AS unit_hi,{_ITEMS_SQL}
FROM n
"""


@lru_cache(maxsize=4096)  # a pure function of its arguments
def _whole_hours(tz: str, a: pd.Timestamp, b: pd.Timestamp) -> bool:
    """Whether ``tz``'s UTC offsets between ``a`` and ``b`` are whole hours (sampled daily: the
    offsets of real zones change for months, not hours)."""
    days = pd.date_range(a, b, freq="D").append(pd.DatetimeIndex([b]))
    offset = days.tz_convert(tz).tz_localize(None) - days.tz_localize(None)
    return bool((offset.total_seconds().astype("int64") % 3600 == 0).all())


def hourly_json(
    store: Store,
    account_id: str,
    first: dt.date,
    last: dt.date,
    service_point_id: str | None = None,
    meter_id: str | None = None,
    offset: int = 0,
    limit: int = 10_000,
) -> tuple[dict, int, str] | None:
    """The hour-resolution usage document of ``usage`` without its items, the number of items and
    the JSON text of the page ``offset``..``offset + limit`` of them (``[…]`` without brackets),
    built by PostgreSQL from the rollup; None where the rollup cannot serve (or on DuckDB)."""
    if store.backend != "postgresql":
        return None
    check_range(first, last, "hour")
    with store.begin() as conn:  # one connection for the request's two statements
        scope = account_scope(store, account_id, service_point_id, meter_id, conn)
        inst = scope.installs
        if inst.empty:
            return None
        a, b = local_range(first, last, scope.timezone)
        if not _whole_hours(scope.timezone, a, b):
            return None
        windows = [(m, max(lo, a), b if hi is None else min(hi, b)) for m, _, lo, hi in _windows(scope)]
        if len({w[0] for w in windows}) < len(windows):
            return None  # a meter installed twice for the account: the rollup path in pandas sorts it out
        # local times are the session's: the account's zone, for this transaction only
        conn.execute(sa.text("SELECT set_config('TimeZone', :tz, true)"), {"tz": scope.timezone})
        row = _hour_json_row(store, conn, windows, inst, a, b, offset, limit)
    if row["cut"]:
        return None
    units = sorted({row["unit_lo"], row["unit_hi"]} - {None})
    if len(units) > 1:
        raise BadRequest(
            f"account {account_id} has meters in {', '.join(units)}: ask for one service_point_id or meter_id"
        )
    doc = {
        "account_id": account_id,
        "service_point_ids": [p.service_point_id for p in scope.points],
        "resolution": "hour",
        "from": first.isoformat(),
        "to": last.isoformat(),
        "unit": units[0] if units else inst["unit"].iloc[0],
        "timezone": scope.timezone,
    }
    return doc, int(row["total"]), row["items"] or ""


def _hour_json_row(store, conn, windows, inst, a, b, offset, limit):
    longest = pd.to_numeric(inst["interval_seconds"], errors="coerce").fillna(LONGEST_UNKNOWN).max()
    meters = sorted(inst["meter_id"].unique().tolist())
    channels = sorted({primary_channel(c) for c in inst["channels"]})
    params = {
        "lo": (a - pd.Timedelta(seconds=max(int(longest), 3600))).to_pydatetime(),
        "b": b.to_pydatetime(),
        "offset": int(offset),
        "limit": int(limit),
    }
    if len(windows) == 1 and len(meters) == 1 and len(channels) == 1:
        sql = _HOUR_JSON_ONE_METER_SQL
        params |= {
            "m1": meters[0],
            "c1": channels[0],
            "wlo1": windows[0][1].to_pydatetime(),
            "whi1": windows[0][2].to_pydatetime(),
        }
    else:
        sql = _HOUR_JSON_SQL
        params |= {
            "wm": [w[0] for w in windows],
            "wlo": [w[1].to_pydatetime() for w in windows],
            "whi": [w[2].to_pydatetime() for w in windows],
            "m": meters,
            "c": channels,
        }
    return store.read_frame(sql, params, conn).iloc[0]
