"""The VEE exception queue: list, inspect and resolve exceptions (accept, edit, estimate, dismiss).

Every resolution that touches data writes new interval versions carrying who, when, why, the
old value and the new one; the exception records its status, resolution, resolver and time, and
the same transaction appends its row to the audit log (services/audit.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.vee.quality import METHOD_CODES
from smartmdm_pipelines.services import audit
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.intervals import current_of
from smartmdm_pipelines.store.store import Store

ACTIONS = ("accept", "edit", "estimate", "dismiss")
ESTIMATION_METHODS = ("linear", "like_day", "class_profile", "average_daily_load", "zero_fill")


class ExceptionError(ValueError):
    pass


@dataclass
class Resolution:
    exception_id: str
    action: str
    by: str
    reason: str
    value: float | None = None  # edit: the value for every interval of the exception
    method: str | None = None  # estimate: the method to use


def _day_range(first: dt.date | None, last: dt.date | None) -> tuple[str, dict]:
    """A ``read_day`` filter for the days ``first..last`` (every day when ``first`` is None)."""
    if first is None:
        return "", {}
    return " AND read_day >= :first AND read_day <= :last", {"first": first, "last": last or first}


def queue_summary(store: Store, first: dt.date | None = None, last: dt.date | None = None) -> dict:
    """Open exceptions of the read days ``first..last`` (the whole queue when omitted): how many, by
    rule and severity, and the read day of the oldest."""
    days, params = _day_range(first, last)
    open_rows = store.read_frame(
        "SELECT rule, severity, count(*) AS n, min(read_day) AS oldest FROM vee_exceptions "
        f"WHERE status = 'open'{days} GROUP BY rule, severity",
        params,
    )
    oldest = open_rows["oldest"].min() if len(open_rows) else None
    return {
        "open": int(open_rows["n"].sum()) if len(open_rows) else 0,
        "open_by_rule": {r: int(n) for r, n in open_rows.groupby("rule")["n"].sum().items()},
        "open_by_severity": {s: int(n) for s, n in open_rows.groupby("severity")["n"].sum().items()},
        "oldest_open": pd.Timestamp(oldest).date().isoformat()
        if oldest is not None and pd.notna(oldest)
        else None,
    }


SEVERITY_ORDER = "CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


def open_queue(
    store: Store, first: dt.date | None = None, last: dt.date | None = None, limit: int = 100
) -> tuple[pd.DataFrame, int]:
    """The open exceptions an operator works through (worst first, oldest day first) and how many
    are open in all: id, read day, meter, channel, rule, severity, the sentence."""
    days, params = _day_range(first, last)
    rows = store.read_frame(
        "SELECT exception_id, read_day, meter_id, channel, rule, severity, detail FROM vee_exceptions "
        f"WHERE status = 'open'{days} ORDER BY {SEVERITY_ORDER}, read_day, meter_id, rule LIMIT :limit",
        {**params, "limit": limit},
    )
    total = store.scalar(f"SELECT count(*) FROM vee_exceptions WHERE status = 'open'{days}", params)
    rows["read_day"] = pd.to_datetime(rows["read_day"]).dt.date.astype(str)
    return rows, int(total or 0)


def days_waiting_for_master_data(store: Store) -> list[str]:
    """Read days holding reads of meters the master data did not know when VEE ran, but knows now:
    a re-run of those days validates them (the CIS sync requests it)."""
    rows = store.read_frame(
        "SELECT DISTINCT e.read_day FROM vee_exceptions e JOIN meters m ON m.meter_id = e.meter_id "
        "WHERE e.status = 'open' AND e.rule = 'unregistered_meter' ORDER BY e.read_day"
    )
    return [pd.Timestamp(d).date().isoformat() for d in rows["read_day"]]


def list_exceptions(
    store: Store,
    status: str | None = "open",
    rule: str | None = None,
    meter: str | None = None,
    day: dt.date | None = None,
    limit: int = 100,
) -> pd.DataFrame:
    clauses, params = [], {"limit": limit}
    for column, value in (("status", status), ("rule", rule), ("meter_id", meter), ("read_day", day)):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return store.read_frame(
        f"SELECT exception_id, read_day, meter_id, channel, rule, severity, intervals, status, detail "
        f"FROM vee_exceptions {where} ORDER BY read_day, meter_id, rule LIMIT :limit",
        params,
    )


def get_exception(store: Store, exception_id: str) -> dict:
    rows = store.read_frame("SELECT * FROM vee_exceptions WHERE exception_id = :id", {"id": exception_id})
    if rows.empty:
        raise ExceptionError(f"no exception {exception_id!r}")
    return rows.iloc[0].to_dict()


def exception_intervals(store: Store, exc: dict) -> pd.DataFrame:
    """Every version of the intervals the exception covers (its meter, channel and period)."""
    return store.read_frame(
        "SELECT interval_end, version, value, status, estimation_method, failed_rules, created_by, created_at, "
        "reason, previous_value FROM intervals WHERE meter_id = :m AND channel = :c AND read_day = :d "
        "AND interval_end >= :a AND interval_end <= :b ORDER BY interval_end, version",
        {
            "m": exc["meter_id"],
            "c": exc["channel"],
            "d": exc["read_day"],
            "a": exc["period_start"],
            "b": exc["period_end"],
        },
    )


def resolve(store: Store, cfg: UtilityConfig, res: Resolution) -> dict:
    if res.action not in ACTIONS:
        raise ExceptionError(f"action must be one of {ACTIONS}, got {res.action!r}")
    if not res.by or not res.reason:
        raise ExceptionError("who (by) and why (reason) are required for every resolution")
    exc = get_exception(store, res.exception_id)
    if exc["status"] != "open":
        raise ExceptionError(f"exception {res.exception_id} is {exc['status']}, not open")
    versions = exception_intervals(store, exc)
    current = current_of(versions)
    if res.action != "dismiss" and current.empty:
        raise ExceptionError(f"exception {res.exception_id} covers no stored intervals; dismiss it instead")
    now = pd.Timestamp.now(tz="UTC")
    new = _new_versions(store, cfg, exc, versions, current, res)
    status = {"accept": "accepted", "edit": "edited", "estimate": "edited", "dismiss": "dismissed"}[
        res.action
    ]
    with store.begin() as conn:
        if len(new):
            rows = new.assign(
                meter_id=exc["meter_id"],
                channel=exc["channel"],
                read_day=pd.Timestamp(exc["read_day"]),
                created_by=res.by,
                created_at=now,
            )
            store.bulk_insert("intervals", rows, conn)
            usage_rollup.refresh_written(conn, rows)  # the portal's hourly rollup
        store.execute(
            "UPDATE vee_exceptions SET status = :s, resolution = :r, resolved_by = :b, resolved_at = :t "
            "WHERE exception_id = :id",
            {"s": status, "r": f"{res.action}: {res.reason}", "b": res.by, "t": now, "id": res.exception_id},
            conn,
        )
        audit.record(
            store,
            conn,
            actor=res.by,
            action=f"exception.{res.action}",
            object_type="vee_exception",
            object_id=res.exception_id,
            reason=res.reason,
            at=now,
            details={
                "status": {"before": exc["status"], "after": status},
                "meter_id": exc["meter_id"],
                "channel": exc["channel"],
                "read_day": str(pd.Timestamp(exc["read_day"]).date()),
                "rule": exc["rule"],
                "new_versions": int(len(new)),
                **({"value": float(res.value)} if res.action == "edit" else {}),
                **({"method": res.method} if res.action == "estimate" else {}),
            },
        )
    return {"exception_id": res.exception_id, "status": status, "new_versions": len(new)}


def _new_versions(store, cfg, exc, versions, current, res: Resolution) -> pd.DataFrame:
    base = current[["interval_end", "version", "value"]].rename(columns={"value": "previous_value"})
    base["version"] = base["version"] + 1
    meta = store.read_frame(
        "SELECT interval_end, interval_seconds, unit, source_file_id, source_line FROM intervals "
        "WHERE meter_id = :m AND channel = :c AND read_day = :d AND version = 1",
        {"m": exc["meter_id"], "c": exc["channel"], "d": exc["read_day"]},
    )
    base = base.merge(meta, on="interval_end", how="left")
    if res.action == "dismiss":
        return base.head(0)
    if res.action == "accept":
        # verified as actual: the value as received (the latest validation version)
        received = versions[versions["created_by"] == "vee:validation"].drop_duplicates(
            "interval_end", keep="last"
        )
        base = base.merge(received[["interval_end", "value"]], on="interval_end", how="left")
        if base["value"].isna().any():
            raise ExceptionError("cannot accept intervals that were never received; edit or estimate them")
        return base.assign(
            status="verified", espi_quality=18, iec_quality="2.0.1", reason=f"accepted: {res.reason}"
        )
    if res.action == "edit":
        if res.value is None or not np.isfinite(res.value):
            raise ExceptionError("edit needs a finite value")
        return base.assign(
            value=float(res.value),
            status="edited",
            espi_quality=7,
            iec_quality="2.7.0",
            estimation_method="manual",
            reason=f"edited: {res.reason}",
        )
    if res.method not in ESTIMATION_METHODS:
        raise ExceptionError(f"estimation method must be one of {ESTIMATION_METHODS}")
    from smartmdm_pipelines.services.vee import estimate_with_method

    values = estimate_with_method(store, cfg, exc, base["interval_end"], res.method)
    base = base.merge(values, on="interval_end", how="left")
    if base["value"].isna().any():
        raise ExceptionError(f"method {res.method} could not estimate every interval (not enough data)")
    espi, iec = METHOD_CODES[res.method]
    return base.assign(
        status="estimated",
        espi_quality=espi,
        iec_quality=iec,
        estimation_method=res.method,
        reason=f"estimate requested ({res.method}): {res.reason}",
    )
