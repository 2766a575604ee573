"""Bill-to-date and projected bill of an account's current billing period: the shadow-bill
engine (domain/billing) on the period's current intervals (validated, estimated and edited
alike) under each service point's tariff, and on those intervals plus the rest of the period
projected from like days (domain/portal/projection.py).

The period is the service point's billing cycle that contains ``as_of`` (``billing_cycles``),
else the calendar month. The engine bills per calendar month, so a period across two months
is the sum of its two prorated month bills; every line says which month it belongs to.

The engine's results are memoised per process on the *content* of their inputs (the tariff row,
the zone, the period's end and the usage series read fresh on every request): a second request
with the same to-date usage skips both engine runs, and a new interval version (a changed or
added value, status or hour) changes the key, so nothing is ever served stale and nothing needs
invalidating. ``$SMARTMDM_PORTAL_BILL_CACHE`` entries (default 4096, 0: off; a few kB each).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.domain.billing.numbers import cents
from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.urdb import parse_urdb
from smartmdm_pipelines.domain.portal.projection import project
from smartmdm_pipelines.domain.portal.usage import local_range
from smartmdm_pipelines.services.portal_usage import (
    EARLIEST,
    LATEST,
    BadRequest,
    ServicePoint,
    account_scope,
    current_intervals,
    hourly_rollup,
)
from smartmdm_pipelines.store.store import Store


def billing_period(
    store: Store, sp: ServicePoint, as_of: dt.date, conn: sa.Connection | None = None
) -> tuple[dt.date, dt.date]:
    if sp.billing_cycle:
        rows = store.read_frame(
            "SELECT period_start, period_end FROM billing_cycles WHERE cycle_id = :c "
            "AND period_start <= :d AND period_end >= :d ORDER BY period_start DESC LIMIT 1",
            {"c": sp.billing_cycle, "d": as_of},
            conn,
        )
        if not rows.empty:
            return pd.Timestamp(rows["period_start"].iloc[0]).date(), pd.Timestamp(
                rows["period_end"].iloc[0]
            ).date()
    first = as_of.replace(day=1)
    last = (pd.Timestamp(first) + pd.offsets.MonthEnd(1)).date()
    return first, last


def tariff_row(store: Store, rate_code: str | None, day: dt.date, conn: sa.Connection | None = None):
    if not rate_code:
        return None
    rows = store.read_frame(
        "SELECT rate_code, holidays, netting, demand_method, billing_unit, urdb_json FROM tariffs "
        "WHERE rate_code = :r AND effective_from <= :d AND (effective_to IS NULL OR effective_to > :d) "
        "ORDER BY effective_from DESC LIMIT 1",
        {"r": rate_code, "d": day},
        conn,
    )
    return None if rows.empty else rows.iloc[0]


def _bill(row, tz: str, usage: pd.DataFrame, seconds: int, unit: str):
    tariff = _parsed(row["rate_code"], row["urdb_json"], tz)
    return shadow_bill(
        tariff,
        usage,
        tz,
        row["holidays"] or "NERC",
        interval_seconds=seconds,
        demand_method=row["demand_method"] or "block",
        netting=row["netting"],
        usage_unit=None if unit == "kWh" else unit,
        billing_unit=row["billing_unit"],
    )


@dataclass
class PeriodUsage:
    usage: pd.DataFrame | None  # interval_end, kwh (NaN: missing); None: no reads
    seconds: int = 0
    unit: str = ""
    intervals: int = 0
    estimated: int = 0
    source: str = "intervals"


def _no_demand(row) -> bool:
    """Whether the tariff bills energy and fixed charges only (no TOU, flat or coincident demand):
    then hourly sums bill as the intervals do (URDB schedules are hourly)."""
    tariff = _parsed(row["rate_code"], row["urdb_json"], "UTC")
    return not (tariff.demand_periods or tariff.flat_demand_periods or tariff.coincident_periods)


@lru_cache(maxsize=256)
def _parsed(rate_code: str, urdb_json: str, tz: str):
    return parse_urdb(json.loads(urdb_json), source=rate_code, tz=tz)


def _period_usage(
    store: Store, scope, first: dt.date, last: dt.date, row, conn: sa.Connection | None = None
) -> PeriodUsage:
    """The period's usage to bill: hourly sums from the rollup when the tariff has no demand
    charges, the rollup can serve (portal_usage.hourly_rollup) and every hour is whole, else the
    current intervals."""
    if row is not None and _no_demand(row):
        hours = hourly_rollup(store, scope, first, last, conn=conn)
        # whole hours only (every interval of the hour stored, all present or all missing): then the
        # bill and the like-day projection of the hourly sums equal those of the intervals
        whole = (
            hours is not None
            and (
                (hours["interval_count"] * hours["interval_seconds"] == 3600)
                & ((hours["value_count"] == hours["interval_count"]) | (hours["value_count"] == 0))
            ).all()
        )
        if whole:
            if hours.empty:
                return PeriodUsage(None, source="rollup")
            ends = pd.to_datetime(hours["hour_start"].to_numpy() + 3600, unit="s", utc=True)
            kwh = hours["value_sum"].where(hours["value_count"] > 0).astype("float64")
            return PeriodUsage(
                pd.DataFrame({"interval_end": ends, "kwh": kwh.to_numpy()}),
                3600,
                str(hours["unit"].iloc[0]),
                int(hours["interval_count"].sum()),
                int(hours["estimated_count"].sum()),
                "rollup",
            )
    frame = current_intervals(store, scope, first, last, conn=conn)
    if frame.empty:
        return PeriodUsage(None)
    seconds = int(frame["interval_seconds"].mode().iloc[0])
    usage = pd.DataFrame({"interval_end": frame["interval_end"], "kwh": frame["value"].astype("float64")})
    usage = usage[frame["interval_seconds"].to_numpy() == seconds]
    return PeriodUsage(
        usage,
        seconds,
        str(frame["unit"].iloc[0]),
        len(frame),
        int(frame["status"].isin(["estimated"]).sum()),
    )


@dataclass(frozen=True)
class _Priced:
    """What the engine gives a service point's period: the to-date bill (each month's total and
    its lines with their month) and the projected bill's total and usage."""

    to_totals: tuple[float, ...]
    to_lines: tuple[tuple[dict, str], ...]
    proj_total: float
    proj_usage: float


_PRICED: OrderedDict[bytes, _Priced] = OrderedDict()
_PRICED_LOCK = threading.Lock()


def _cache_size() -> int:
    return int(os.environ.get("SMARTMDM_PORTAL_BILL_CACHE") or 4096)


def _key(row, tz: str, usage: pd.DataFrame, seconds: int, unit: str, end: pd.Timestamp) -> bytes:
    """A digest of everything :func:`_price` reads: equal digests, equal results."""
    h = hashlib.blake2b(digest_size=32)
    fields = [
        row[c] for c in ("rate_code", "holidays", "netting", "demand_method", "billing_unit", "urdb_json")
    ]
    h.update(repr((fields, tz, int(seconds), unit, end.value)).encode())
    ends = pd.DatetimeIndex(usage["interval_end"]).tz_convert("UTC").as_unit("ns").asi8
    h.update(np.ascontiguousarray(ends, dtype="int64").tobytes())
    h.update(np.ascontiguousarray(usage["kwh"].to_numpy(dtype="float64")).tobytes())
    return h.digest()


def _price(row, tz: str, usage: pd.DataFrame, seconds: int, unit: str, end: pd.Timestamp) -> _Priced:
    """The to-date bill of ``usage`` and the bill of it plus the rest of the period to ``end``
    projected from like days (memoised on the inputs' content, see the module's docstring)."""
    size = _cache_size()
    key = _key(row, tz, usage, seconds, unit, end) if size > 0 else b""
    if size > 0:
        with _PRICED_LOCK:
            hit = _PRICED.get(key)
            if hit is not None:
                _PRICED.move_to_end(key)
                return hit
    bills = _bill(row, tz, usage.fillna({"kwh": 0.0}), seconds, unit)
    rest = project(usage, end, seconds, tz)
    full = pd.concat([usage.fillna({"kwh": 0.0}), rest], ignore_index=True)
    projected = _bill(row, tz, full, seconds, unit)
    priced = _Priced(
        tuple(b.total for b in bills),
        tuple((line.to_dict(), b.month) for b in bills for line in b.lines),
        sum(b.total for b in projected),
        float(full["kwh"].sum()),
    )
    if size > 0:
        with _PRICED_LOCK:
            _PRICED[key] = priced
            while len(_PRICED) > size:
                _PRICED.popitem(last=False)
    return priced


def bill_to_date(store: Store, account_id: str, as_of: dt.date | None = None) -> dict:
    if as_of is not None and not EARLIEST <= as_of <= LATEST:
        raise BadRequest(f"'as_of' ({as_of}) must be between {EARLIEST} and {LATEST}")
    with store.engine.connect() as conn:  # one connection for the request's reads
        return _bill_to_date(store, conn, account_id, as_of)


def _bill_to_date(store: Store, conn: sa.Connection, account_id: str, as_of: dt.date | None) -> dict:
    scope = account_scope(store, account_id, conn=conn)
    current = [p for p in scope.points if p.move_out is None] or scope.points[-1:]
    tz = current[0].timezone
    as_of = as_of or pd.Timestamp.now(tz=tz).date()
    period_start, period_end = billing_period(store, current[0], as_of, conn)
    doc: dict = {
        "account_id": account_id,
        "as_of": as_of.isoformat(),
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
        "currency": "USD",
        "to_date": {"total": 0.0, "usage": 0.0, "lines": []},
        "projected": {"total": None, "usage": None, "method": "like days (day type x local time of day)"},
        "service_points": [],
        "notes": [],
    }
    to_total, proj_total, proj_ok = 0.0, 0.0, True
    for sp in current:
        sp_scope = scope.only(sp.service_point_id)  # no second read of the account
        row = tariff_row(store, sp.rate_code, period_start, conn)
        read = _period_usage(store, sp_scope, period_start, min(as_of, period_end), row, conn)
        entry = {
            "service_point_id": sp.service_point_id,
            "rate_code": sp.rate_code,
            "intervals": read.intervals,
        }
        doc["service_points"].append(entry)
        if row is None:
            doc["notes"].append(
                f"service point {sp.service_point_id}: no tariff for rate code {sp.rate_code!r}"
            )
            proj_ok = False
            continue
        if read.usage is None:
            doc["notes"].append(f"service point {sp.service_point_id}: no reads in the period yet")
            proj_ok = False
            continue
        usage, seconds, unit, estimated = read.usage, read.seconds, read.unit, read.estimated
        end = local_range(period_end, period_end, sp.timezone)[1]
        priced = _price(row, sp.timezone, usage, seconds, unit, end)
        for total in priced.to_totals:
            to_total += total
        for line, month in priced.to_lines:
            doc["to_date"]["lines"].append(line | {"month": month, "service_point_id": sp.service_point_id})
        doc["to_date"]["usage"] += float(usage["kwh"].sum())
        doc["to_date"]["unit"] = unit
        entry["estimated_intervals"] = estimated
        proj_total += priced.proj_total
        doc["projected"]["usage"] = (doc["projected"]["usage"] or 0.0) + priced.proj_usage
    doc["to_date"]["total"] = cents(to_total)
    doc["to_date"]["usage"] = round(doc["to_date"]["usage"], 6)
    if proj_ok:
        doc["projected"]["total"] = cents(proj_total)
        doc["projected"]["usage"] = round(doc["projected"]["usage"], 6)
    return doc
