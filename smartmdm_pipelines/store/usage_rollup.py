"""The hourly usage rollup (``usage_hourly``): current intervals summed per meter, channel and
UTC hour of their start, with the counts and the worst portal status the portal needs.

It is maintained *incrementally*: every writer of interval versions calls :func:`refresh` in its
transaction with the meter-days it touched (VEE's ``run_day``, edits, scheduled reads, forward
estimates); the hours those versions fall in are rebuilt from the current intervals
(:mod:`smartmdm_pipelines.store.intervals`, the one definition of "current"). :func:`rebuild`
fills the table from scratch (migration 0007 and ``smartmdm rollup``).

A row's bucket is the UTC hour its intervals *start* in, the same rule as the portal's buckets
(domain/portal/usage.py); in a zone whose offset is a whole number of hours that is also the
local hour, so local hours, days and months (23/25-hour DST days) are sums of rollup rows.
``first_end`` / ``last_end`` let a reader tell whether a row lies wholly inside a window (an
install, an occupancy) or must be read from the intervals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.sql_filters import in_list

TABLE = "usage_hourly"
_KEYS = "_usage_hourly_keys"
# the UTC hour an interval starts in (sessions run in UTC: store/engine.py)
HOUR_SQL = "date_trunc('hour', interval_end - interval_seconds * INTERVAL '1 second')"
# the portal status rank of an interval (domain/portal/usage.py PORTAL_STATUS, _RANK)
RANK_SQL = "CASE WHEN value IS NULL THEN NULL WHEN status = 'estimated' THEN 2 WHEN status = 'edited' THEN 1 ELSE 0 END"
COLUMNS = (
    "meter_id, channel, hour_start, value_sum, value_count, interval_count, estimated_count, "
    "status_rank, first_end, last_end, interval_seconds, unit"
)


def _aggregate(where: str, join: str = "") -> str:
    """INSERT … SELECT of the rollup rows of the current intervals matching ``where`` (identity
    columns only, see :func:`current_intervals_sql`), restricted by ``join`` on ``c``."""
    cur = current_intervals_sql(
        where, "meter_id, channel, interval_end, interval_seconds, value, unit, status"
    )
    return (
        f"INSERT INTO {TABLE} ({COLUMNS}) "
        f"SELECT c.meter_id, c.channel, c.hour_start, sum(c.value), count(c.value), count(*), "
        f"sum(CASE WHEN c.status = 'estimated' THEN 1 ELSE 0 END), max(c.rank), "
        f"min(c.interval_end), max(c.interval_end), max(c.interval_seconds), max(c.unit) "
        f"FROM (SELECT cur.*, {HOUR_SQL} AS hour_start, {RANK_SQL} AS rank FROM ({cur}) cur) c {join} "
        f"GROUP BY c.meter_id, c.channel, c.hour_start"
    )


def rebuild(conn: sa.Connection) -> int:
    """Fill the rollup from every current interval (replacing what is there): rows written."""
    conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    return int(conn.execute(sa.text(_aggregate("1 = 1"))).rowcount or 0)


def refresh(
    conn: sa.Connection,
    days: dt.date | Iterable[dt.date],
    meters: Sequence[str] | None = None,
    written_at: dt.datetime | None = None,
) -> int:
    """Rebuild the rollup rows of the hours any interval version of ``days`` (``read_day``; of
    only ``meters`` when given) falls in, from the current intervals: rows written. Call it in
    the transaction that wrote the versions, after writing them.

    ``written_at``: only the hours of the versions created at that moment (the versions this
    transaction wrote; the real-time path's few new reads instead of the touched meters' whole
    day). The other hours' current intervals did not change, so their rows stand."""
    if isinstance(days, dt.date):
        days = [days]
    written = 0
    for day in sorted(set(days)):
        written += _refresh_day(conn, day, None if meters is None else sorted(set(meters)), written_at)
    return written


def _refresh_day(
    conn: sa.Connection, day: dt.date, meters: list[str] | None, written_at: dt.datetime | None = None
) -> int:
    params: dict = {"day": day}
    only = ""
    if meters is not None:
        if not meters:
            return 0
        only = f" AND {in_list(conn.dialect.name)}"
        params["meters"] = meters
    if written_at is not None:
        only += " AND created_at = :written_at"
        params["written_at"] = written_at
    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{_KEYS}"'))
    conn.execute(
        sa.text(
            f'CREATE TEMPORARY TABLE "{_KEYS}" AS SELECT meter_id, channel, {HOUR_SQL} AS hour_start, '
            f"max(interval_seconds) AS seconds FROM intervals WHERE read_day = :day{only} "
            "GROUP BY meter_id, channel, hour_start"
        ),
        params,
    )
    if conn.dialect.name == "postgresql":  # statistics for the planner: a fresh temporary table has none
        conn.execute(sa.text(f'ANALYZE "{_KEYS}"'))
    lo, hi, longest = conn.execute(
        sa.text(f'SELECT min(hour_start), max(hour_start), max(seconds) FROM "{_KEYS}"')
    ).one()
    if lo is None:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{_KEYS}"'))
        return 0
    conn.execute(
        sa.text(
            f'DELETE FROM {TABLE} WHERE hour_start >= :lo AND hour_start <= :hi AND EXISTS (SELECT 1 FROM "{_KEYS}" k '
            f"WHERE k.meter_id = {TABLE}.meter_id AND k.channel = {TABLE}.channel "
            f"AND k.hour_start = {TABLE}.hour_start)"
        ),
        {"lo": lo, "hi": hi},
    )
    # every interval starting in those hours ends after lo and at most an interval after hi
    span = dt.timedelta(hours=1) + dt.timedelta(seconds=max(int(longest or 0), 3600))
    days_span = span.days + 2
    keyed = f'meter_id IN (SELECT DISTINCT meter_id FROM "{_KEYS}")'
    where = "read_day >= :d0 AND read_day <= :d1 AND interval_end > :lo AND interval_end <= :hi_end" + (
        "" if meters is None else f" AND {in_list(conn.dialect.name, otherwise=keyed)}"
    )
    written = conn.execute(
        sa.text(
            _aggregate(
                where,
                f'JOIN "{_KEYS}" k ON k.meter_id = c.meter_id AND k.channel = c.channel '
                "AND k.hour_start = c.hour_start",
            )
        ),
        {
            "d0": day - dt.timedelta(days=days_span),
            "d1": day + dt.timedelta(days=days_span),
            "lo": lo,
            "hi_end": hi + span,
            "meters": meters,
        },
    ).rowcount
    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{_KEYS}"'))
    return int(written or 0)


def refresh_written(conn: sa.Connection, rows) -> int:
    """:func:`refresh` for the meter-days of version rows just written (a frame with
    ``meter_id`` and ``read_day``)."""
    if rows is None or len(rows) == 0:
        return 0
    days = pd.to_datetime(rows["read_day"]).dt.date
    written = 0
    for day, meters in rows["meter_id"].groupby(days.to_numpy()):
        written += refresh(conn, day, meters.unique().tolist())
    return written
