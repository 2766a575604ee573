"""The outbox of interval versions for the CIS and the portal (contract: docs/cis.md).

``emit_versions`` runs inside the transaction that writes new interval versions (services/vee.py),
so a version is in the outbox exactly when it is in the store. One row per record and push
destination (``cis``, ``portal``: those with a URL configured); ``services/dispatch.py`` delivers
them. A record's ``message_id`` is a hash of its identity and content: the same version always
has the same id, a new version a new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.store.intervals import current_intervals_sql, version_rank
from smartmdm_pipelines.store.sql_filters import in_list
from smartmdm_pipelines.store.store import Store

DESTINATIONS = {
    "cis": ("SMARTMDM_CIS_PUSH_URL", "SMARTMDM_CIS_PUSH_TOKEN"),
    "portal": ("SMARTMDM_PORTAL_PUSH_URL", "SMARTMDM_PORTAL_PUSH_TOKEN"),
}
RECORD_FIELDS = [
    "message_id",
    "meter_id",
    "service_point_id",
    "account_id",
    "channel",
    "interval_end",
    "interval_seconds",
    "value",
    "unit",
    "status",
    "quality",
    "version",
]


@dataclass(frozen=True)
class PushTarget:
    destination: str
    url: str
    token: str | None = None


def push_targets(env: dict | None = None) -> list[PushTarget]:
    """The configured push destinations ($SMARTMDM_CIS_PUSH_URL, $SMARTMDM_PORTAL_PUSH_URL)."""
    env = os.environ if env is None else env
    return [
        PushTarget(name, env[url], env.get(token) or None)
        for name, (url, token) in DESTINATIONS.items()
        if env.get(url)
    ]


def message_ids(frame: pd.DataFrame) -> list[str]:
    """Stable ids: a hash of the interval's identity, version and content."""
    ends = _strftime(frame["interval_end"], "%Y-%m-%dT%H:%M:%S%z")
    keys = (
        frame["meter_id"].astype(str)
        + "|"
        + frame["channel"].astype(str)
        + "|"
        + ends
        + "|"
        + frame["version"].astype(str)
        + "|"
        + frame["value"].map(
            lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v)
        )
        + "|"
        + frame["status"].astype(str)
    )
    return [hashlib.sha256(k.encode()).hexdigest()[:32] for k in keys]


def _strftime(values: pd.Series, fmt: str) -> pd.Series:
    """UTC instants as text, each distinct instant formatted once (a batch holds a few thousand
    interval ends across millions of rows; pandas formats element by element)."""
    codes, uniques = pd.factorize(pd.to_datetime(values, utc=True))
    text = pd.Series(uniques).dt.strftime(fmt).to_numpy(dtype=object)
    return pd.Series(text[codes], index=values.index, dtype=object)


def emit_versions(
    store: Store,
    conn: sa.Connection,
    day: dt.date,
    now: pd.Timestamp,
    meters: list[str] | None = None,
    targets: list[PushTarget] | None = None,
) -> int:
    """Queue the current versions VEE wrote at ``now`` for ``day`` (a version that only says an
    interval is missing is not sent). Runs in the caller's transaction; returns the rows queued."""
    targets = push_targets() if targets is None else targets
    if not targets:
        return 0
    only = "" if meters is None else f" AND {in_list(store.backend)}"
    rows = store.read_frame(
        "SELECT i.meter_id, i.channel, i.interval_end, i.interval_seconds, i.value, i.unit, i.status, "
        "i.iec_quality AS quality, i.version, i.read_day, mi.service_point_id, a.account_id "
        f"FROM (SELECT *, {version_rank()} AS rn "  # the newest of the versions written at `now`
        f"      FROM intervals WHERE read_day = :day AND created_at = :now{only}) i "
        "LEFT JOIN meter_installs mi ON mi.meter_id = i.meter_id AND mi.installed_at < i.interval_end "
        "     AND (mi.removed_at IS NULL OR mi.removed_at >= i.interval_end) "
        "LEFT JOIN accounts a ON a.service_point_id = mi.service_point_id AND a.move_in <= :day "
        "     AND (a.move_out IS NULL OR a.move_out > :day) "
        "WHERE i.rn = 1 AND i.status <> 'missing'",
        {"day": day, "now": now.to_pydatetime(), "meters": meters},
        conn,
    )
    if rows.empty:
        return 0
    rows = rows.drop_duplicates(["meter_id", "channel", "interval_end"]).sort_values(
        ["interval_end", "meter_id", "channel"], kind="stable"
    )
    rows["message_id"] = message_ids(rows)
    rows["state"] = "pending"
    rows["attempts"] = 0
    rows["created_at"] = now
    written = 0
    for target in targets:
        written += store.bulk_insert("outbox", rows.assign(destination=target.destination), conn)
    return written


def records(frame: pd.DataFrame) -> list[dict]:
    """Outbox rows as the JSON records of the push contract. Column by column (a batch holds a
    few distinct interval ends, each formatted once), not row by row through pandas."""
    if frame.empty:
        return []
    codes, ends = pd.factorize(pd.to_datetime(frame["interval_end"], utc=True))
    iso = [t.isoformat() for t in ends]
    cols = {f: frame[f].tolist() for f in RECORD_FIELDS if f != "interval_end"}
    cols["interval_end"] = [iso[c] for c in codes]
    cols["value"] = [_none(v) for v in cols["value"]]
    cols["interval_seconds"] = [None if pd.isna(v) else int(v) for v in cols["interval_seconds"]]
    cols["version"] = [int(v) for v in cols["version"]]
    for key in ("service_point_id", "account_id", "unit", "quality", "status"):
        cols[key] = [_none(v) for v in cols[key]]
    return [
        dict(zip(RECORD_FIELDS, row, strict=True))
        for row in zip(*(cols[f] for f in RECORD_FIELDS), strict=True)
    ]


def _none(value):
    """None for a missing value (None or a float NaN), else the value."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass
class DestinationStatus:
    destination: str
    pending: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    oldest_pending_age_seconds: float | None = None


@dataclass
class OutboxStatus:
    pending: int
    delivered: int
    dead_lettered: int
    oldest_pending_age_seconds: float | None
    destinations: list[DestinationStatus]

    def to_dict(self) -> dict:
        return asdict(self)


def status(store: Store, now: pd.Timestamp | None = None) -> OutboxStatus:
    """Pending, delivered and dead-lettered counts and the oldest pending record's age."""
    now = now or pd.Timestamp.now(tz="UTC")
    frame = store.read_frame(
        "SELECT destination, state, count(*) AS n, min(created_at) AS oldest FROM outbox GROUP BY destination, state"
    )
    per: dict[str, DestinationStatus] = {}
    for row in frame.itertuples(index=False):
        d = per.setdefault(row.destination, DestinationStatus(row.destination))
        n = int(row.n)
        if row.state == "pending":
            d.pending = n
            d.oldest_pending_age_seconds = round((now - pd.Timestamp(row.oldest)).total_seconds(), 3)
        elif row.state == "delivered":
            d.delivered = n
        elif row.state == "dead":
            d.dead_lettered = n
    dests = sorted(per.values(), key=lambda d: d.destination)
    ages = [d.oldest_pending_age_seconds for d in dests if d.oldest_pending_age_seconds is not None]
    return OutboxStatus(
        pending=sum(d.pending for d in dests),
        delivered=sum(d.delivered for d in dests),
        dead_lettered=sum(d.dead_lettered for d in dests),
        oldest_pending_age_seconds=max(ages) if ages else None,
        destinations=dests,
    )


def dead_letters(store: Store, limit: int = 100) -> pd.DataFrame:
    return store.read_frame(
        "SELECT seq, destination, message_id, meter_id, channel, interval_end, version, attempts, last_error "
        "FROM outbox WHERE state = 'dead' ORDER BY seq LIMIT :n",
        {"n": limit},
    )


def replay(store: Store, message_ids: list[str] | None = None, destination: str | None = None) -> int:
    """Put dead-lettered records back in the queue (all, or those ids): returns how many."""
    where = "state = 'dead'"
    params: dict = {}
    if message_ids:
        where += " AND message_id IN (SELECT unnest(:ids))"
        params["ids"] = list(message_ids)
    if destination:
        where += " AND destination = :d"
        params["d"] = destination
    with store.begin() as conn:  # counted first: DuckDB reports no rowcount for an UPDATE
        n = int(store.execute(f"SELECT count(*) FROM outbox WHERE {where}", params, conn).scalar_one())
        store.execute(
            "UPDATE outbox SET state = 'pending', batch_key = NULL, attempts = 0, last_error = NULL "
            f"WHERE {where}",
            params,
            conn,
        )
    return n


def record_json(rows: list[dict]) -> bytes:
    return json.dumps({"records": rows}, separators=(",", ":")).encode()


def backlog_verdict(st: OutboxStatus, max_age_seconds: float) -> tuple[bool, str]:
    """Whether the outbox drains in time: (passed, a sentence for operators)."""
    age = st.oldest_pending_age_seconds
    if age is not None and age > max_age_seconds:
        return False, (
            f"{st.pending:,} records wait to be pushed; the oldest for {age:,.0f}s "
            f"(more than {max_age_seconds:,.0f}s): is the CIS or the portal down?"
        )
    dead = f"; {st.dead_lettered:,} dead-lettered (smartmdm outbox dead)" if st.dead_lettered else ""
    return True, f"{st.pending:,} pending, oldest {age or 0:,.0f}s (limit {max_age_seconds:,.0f}s){dead}"


def status_from_dict(data: dict) -> OutboxStatus:
    return OutboxStatus(
        pending=data["pending"],
        delivered=data["delivered"],
        dead_lettered=data["dead_lettered"],
        oldest_pending_age_seconds=data["oldest_pending_age_seconds"],
        destinations=[DestinationStatus(**d) for d in data.get("destinations", [])],
    )


# --- the batch file at cycle close reads the same outbox ---------------------------------------------

BATCH_DESTINATION = "cis_batch"  # records a cycle-close batch file carried (state delivered)
_PUSHED_COLUMNS = [*RECORD_FIELDS, "read_day"]


def batch_records(
    store: Store,
    conn: sa.Connection,
    meters_sql: str,
    params: dict,
    first_day: dt.date,
    last_day: dt.date,
) -> pd.DataFrame:
    """The records a cycle-close batch file carries for the meters of ``meters_sql`` (a SELECT of
    meter ids, with ``params``) on operating days ``first_day``..``last_day``: the current version
    of every interval, under the push rules (a version that only says an interval is missing is
    not sent), minus the records an earlier batch file carried.

    A record already queued for a push (``cis`` or ``portal``) is read back from the outbox, so the
    file and the push carry the same ``message_id`` and the same content; a version never queued
    (no push configured, or written before it was) is built as ``emit_versions`` builds it, with
    the same ``message_ids``. Returns the :data:`RECORD_FIELDS` and ``read_day``, ordered by meter,
    channel and interval end."""
    scope = {**params, "d0": first_day, "d1": last_day}
    where = f"read_day BETWEEN :d0 AND :d1 AND meter_id IN ({meters_sql})"
    current = store.read_frame(
        "SELECT i.meter_id, i.channel, i.interval_end, i.interval_seconds, i.value, i.unit, i.status, "
        "i.iec_quality AS quality, i.version, i.read_day, mi.service_point_id, a.account_id "
        f"FROM ({current_intervals_sql(where)}) i "
        "LEFT JOIN meter_installs mi ON mi.meter_id = i.meter_id AND mi.installed_at < i.interval_end "
        "     AND (mi.removed_at IS NULL OR mi.removed_at >= i.interval_end) "
        "LEFT JOIN accounts a ON a.service_point_id = mi.service_point_id AND a.move_in <= i.read_day "
        "     AND (a.move_out IS NULL OR a.move_out > i.read_day) "
        "WHERE i.status <> 'missing'",
        scope,
        conn,
    )
    if current.empty:
        return pd.DataFrame(columns=_PUSHED_COLUMNS)
    current = current.drop_duplicates(["meter_id", "channel", "interval_end"])
    current["message_id"] = message_ids(current)
    queued = store.read_frame(
        f"SELECT destination, {', '.join(_PUSHED_COLUMNS)} FROM outbox "
        f"WHERE read_day BETWEEN :d0 AND :d1 AND meter_id IN ({meters_sql}) ORDER BY seq",
        scope,
        conn,
    )
    batched = queued.loc[queued["destination"].eq(BATCH_DESTINATION), "message_id"]
    pushed = queued[queued["destination"].ne(BATCH_DESTINATION)].drop_duplicates("message_id")
    todo = current[~current["message_id"].isin(batched)]
    from_outbox = pushed[pushed["message_id"].isin(todo["message_id"])]
    built = todo[~todo["message_id"].isin(from_outbox["message_id"])]
    parts = [p[_PUSHED_COLUMNS] for p in (from_outbox, built) if len(p)]
    if not parts:
        return pd.DataFrame(columns=_PUSHED_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["interval_end"] = pd.to_datetime(out["interval_end"], utc=True)
    return out.sort_values(["meter_id", "channel", "interval_end"], kind="stable").reset_index(drop=True)


def mark_batched(
    store: Store, conn: sa.Connection, frame: pd.DataFrame, batch_name: str, now: pd.Timestamp
) -> int:
    """Record that batch file ``batch_name`` carried ``frame``'s records: outbox rows of
    destination :data:`BATCH_DESTINATION`, delivered now (the batch name as their batch key), so
    the next close carries only newer versions. Runs in the caller's transaction."""
    if frame.empty:
        return 0
    rows = frame[_PUSHED_COLUMNS].assign(
        destination=BATCH_DESTINATION,
        state="delivered",
        batch_key=batch_name,
        attempts=1,
        created_at=now,
        delivered_at=now,
    )
    return store.bulk_insert("outbox", rows, conn)


def records_csv(frame: pd.DataFrame, header: bool = True) -> bytes:
    """Records as CSV (Arrow's writer): the :data:`RECORD_FIELDS` columns, ``interval_end`` ISO 8601
    with its UTC offset as in the push (``2024-03-12T15:15:00+00:00``), empty for NULL."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = frame[RECORD_FIELDS].copy()
    out["interval_end"] = _strftime(out["interval_end"], "%Y-%m-%dT%H:%M:%S+00:00")
    out["interval_seconds"] = out["interval_seconds"].astype("Int64")
    out["version"] = out["version"].astype("int64")
    out["value"] = out["value"].astype("float64")
    for col in (
        "message_id",
        "meter_id",
        "service_point_id",
        "account_id",
        "channel",
        "unit",
        "status",
        "quality",
    ):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    table = pa.Table.from_pandas(out, preserve_index=False)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        table, sink, pacsv.WriteOptions(include_header=header, quoting_style="needed", delimiter=",")
    )
    return sink.getvalue().to_pybytes()
