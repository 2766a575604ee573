"""Build small billing scenarios directly in a store: master data, a tariff, intervals."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from smartmdm_pipelines.store.store import Store

NOW = pd.Timestamp("2026-01-01", tz="UTC")


def schedule_rows(rate_code: str, effective_from: dt.date, kind: str, weekday, weekend) -> pd.DataFrame:
    rows = []
    for daytype, grid in (("weekday", weekday), ("weekend", weekend)):
        grid = np.asarray(grid)
        for m in range(12):
            for h in range(24):
                rows.append((rate_code, effective_from, kind, m + 1, daytype, h, int(grid[m][h])))
    return pd.DataFrame(
        rows, columns=["rate_code", "effective_from", "kind", "month", "daytype", "hour", "period"]
    )


def peak_grid(hours: range, period: int = 1) -> list[list[int]]:
    """12×24 with ``period`` in the given clock hours, 0 elsewhere."""
    return [[period if h in hours else 0 for h in range(24)] for _ in range(12)]


def add_tariff(
    store: Store,
    rate_code: str,
    *,
    effective_from: dt.date = dt.date(2000, 1, 1),
    effective_to: dt.date | None = None,
    energy_weekday=None,
    energy_weekend=None,
    demand_weekday=None,
    demand_weekend=None,
    holidays: list[dt.date] = (),
    netting: str = "per_period",
    demand_window_minutes: int = 15,
    demand_method: str = "block",
    billing_unit: str = "kWh",
) -> None:
    zero = peak_grid(range(0))
    tariffs = pd.DataFrame(
        [
            {
                "rate_code": rate_code,
                "effective_from": effective_from,
                "effective_to": effective_to,
                "label": rate_code,
                "name": rate_code,
                "utility": "test",
                "holidays": "custom",
                "netting": netting,
                "demand_window_minutes": demand_window_minutes,
                "demand_method": demand_method,
                "billing_unit": billing_unit,
                "urdb_json": json.dumps({"label": rate_code}),
                "content_hash": rate_code,
                "loaded_at": NOW,
            }
        ]
    )
    frames = [
        schedule_rows(rate_code, effective_from, "energy", energy_weekday or zero, energy_weekend or zero)
    ]
    if demand_weekday is not None:
        frames.append(
            schedule_rows(rate_code, effective_from, "demand", demand_weekday, demand_weekend or zero)
        )
    store.bulk_insert("tariffs", tariffs)
    store.bulk_insert("tariff_schedules", pd.concat(frames, ignore_index=True))
    if holidays:
        store.bulk_insert(
            "tariff_holidays",
            pd.DataFrame(
                {
                    "rate_code": rate_code,
                    "effective_from": effective_from,
                    "holiday": list(holidays),
                    "name": "h",
                }
            ),
        )


def add_service_point(
    store: Store,
    sp: str,
    *,
    account: str,
    meter: str,
    rate_code: str,
    cycle: str = "C01",
    timezone: str = "America/Chicago",
    commodity: str = "electric",
    kind: str = "ami",
    unit: str = "kWh",
    interval_seconds: int | None = 900,
    move_in: dt.date = dt.date(2020, 1, 1),
    move_out: dt.date | None = None,
    installed_at: str = "2020-01-01T00:00:00Z",
    has_solar: bool = False,
    dials: int | None = None,
    multiplier: float = 1.0,
) -> None:
    attributes = {
        "service_point_id": sp,
        "commodity": commodity,
        "timezone": timezone,
        "rate_code": rate_code,
        "billing_cycle": cycle,
        "has_solar": has_solar,
        "status": "active",
        "synced_at": NOW,
    }
    store.bulk_insert("service_points", pd.DataFrame([attributes]))
    history = {**attributes, "valid_from": dt.date(1900, 1, 1), "valid_to": None}
    store.bulk_insert("service_point_history", pd.DataFrame([history]))
    store.bulk_insert(
        "accounts",
        pd.DataFrame(
            [
                {
                    "account_id": account,
                    "service_point_id": sp,
                    "customer_name": account,
                    "move_in": move_in,
                    "move_out": move_out,
                    "synced_at": NOW,
                }
            ]
        ),
    )
    add_meter(
        store,
        meter,
        sp,
        kind=kind,
        commodity=commodity,
        unit=unit,
        interval_seconds=interval_seconds,
        installed_at=installed_at,
        dials=dials,
        multiplier=multiplier,
    )


def add_meter(
    store: Store,
    meter: str,
    sp: str,
    *,
    kind: str = "ami",
    commodity: str = "electric",
    unit: str = "kWh",
    interval_seconds: int | None = 900,
    installed_at: str = "2020-01-01T00:00:00Z",
    removed_at: str | None = None,
    start_register: float | None = None,
    end_register: float | None = None,
    dials: int | None = None,
    multiplier: float = 1.0,
) -> None:
    store.bulk_insert(
        "meters",
        pd.DataFrame(
            [
                {
                    "meter_id": meter,
                    "kind": kind,
                    "commodity": commodity,
                    "role": "customer",
                    "channels": "kwh_delivered",
                    "unit": unit,
                    "interval_seconds": interval_seconds,
                    "multiplier": multiplier,
                    "dials": dials,
                    "headend": "t",
                    "synced_at": NOW,
                }
            ]
        ),
    )
    store.bulk_insert(
        "meter_installs",
        pd.DataFrame(
            [
                {
                    "meter_id": meter,
                    "service_point_id": sp,
                    "installed_at": pd.Timestamp(installed_at),
                    "removed_at": pd.Timestamp(removed_at) if removed_at else pd.NaT,
                    "multiplier": multiplier,
                    "start_register": start_register,
                    "end_register": end_register,
                    "synced_at": NOW,
                }
            ]
        ),
    )


def add_cycle(
    store: Store, cycle: str, period_start: str, period_end: str, read_date: str | None = None
) -> None:
    store.bulk_insert(
        "billing_cycles",
        pd.DataFrame(
            [
                {
                    "cycle_id": cycle,
                    "period_start": dt.date.fromisoformat(period_start),
                    "period_end": dt.date.fromisoformat(period_end),
                    "read_date": dt.date.fromisoformat(read_date or period_end),
                    "synced_at": NOW,
                }
            ]
        ),
    )


def add_intervals(
    store: Store,
    meter: str,
    ends: pd.DatetimeIndex,
    values,
    *,
    channel: str = "kwh_delivered",
    interval_seconds: int = 900,
    status: str = "valid",
    version: int = 1,
    unit: str = "kWh",
    read_day_tz: str = "America/Chicago",
) -> None:
    ends = pd.DatetimeIndex(ends).tz_convert("UTC")
    values = np.broadcast_to(np.asarray(values, dtype="float64"), (len(ends),))
    read_day = (ends - pd.Timedelta(seconds=1)).tz_convert(read_day_tz).date
    frame = pd.DataFrame(
        {
            "meter_id": meter,
            "channel": channel,
            "interval_end": ends,
            "version": version,
            "interval_seconds": interval_seconds,
            "value": values,
            "unit": unit,
            "status": status,
            "read_day": read_day,
            "created_by": "test",
            "created_at": NOW,
            "billed": False,
        }
    )
    store.bulk_insert("intervals", frame)


def local_range(start: str, end: str, tz: str, seconds: int = 900) -> pd.DatetimeIndex:
    """Interval ends covering local [start, end) in ``tz``."""
    first = pd.Timestamp(start, tz=tz) + pd.Timedelta(seconds=seconds)
    last = pd.Timestamp(end, tz=tz)
    return pd.date_range(first.tz_convert("UTC"), last.tz_convert("UTC"), freq=f"{seconds}s")


def three_metered_accounts(
    store: Store,
    rate_code: str,
    period_start: str,
    period_end: str,
    *,
    intervals_from: str | None = None,
    hours_missing: int = 0,
    tz: str = "America/Chicago",
) -> None:
    """Cycle C01 over ``period_start..period_end``; SP0..SP2 with accounts A0..A2 and meters M0..M2
    reading 0.25 kWh per quarter-hour from ``intervals_from`` (the period start by default) to the
    end of the period; SP0 lacks its last ``hours_missing`` hours."""
    add_cycle(store, "C01", period_start, period_end)
    after = (dt.date.fromisoformat(period_end) + dt.timedelta(days=1)).isoformat()
    for i in range(3):
        add_service_point(store, f"SP{i}", account=f"A{i}", meter=f"M{i}", rate_code=rate_code, timezone=tz)
        ends = local_range(intervals_from or period_start, after, tz, 900)
        if i == 0 and hours_missing:
            ends = ends[: len(ends) - 4 * hours_missing]
        add_intervals(store, f"M{i}", ends, 0.25)


def determinants(store: Store) -> pd.DataFrame:
    return store.read_frame("select * from period_determinants order by account_id, determinant, tou_period")


def value(frame: pd.DataFrame, determinant: str, tou_period=None, account: str | None = None) -> float:
    sel = frame[frame.determinant == determinant]
    if account is not None:
        sel = sel[sel.account_id == account]
    sel = sel[sel.tou_period.isna()] if tou_period is None else sel[sel.tou_period == tou_period]
    assert len(sel) == 1, f"{determinant} p{tou_period}: {len(sel)} rows"
    return float(sel.value.iloc[0])


def add_register_reads(
    store: Store,
    meter: str,
    reads: list[tuple[str, float]],
    channel: str = "kwh_delivered",
    unit: str = "kWh",
) -> None:
    ends = pd.to_datetime([r[0] for r in reads], utc=True)
    store.bulk_insert(
        "register_reads",
        pd.DataFrame(
            {
                "file_id": 0,
                "line": range(1, len(reads) + 1),
                "meter_id": meter,
                "channel": channel,
                "read_at": ends,
                "value": [r[1] for r in reads],
                "unit": unit,
                "source_unit": unit,
                "source_quality": None,
                "read_day": ends.tz_convert("America/Chicago").date,
            }
        ),
    )


def set_rate_history(
    store: Store,
    sp: str,
    history: list[tuple[str, str | None, str]],
    *,
    cycle: str,
    timezone: str = "America/Chicago",
    commodity: str = "electric",
) -> None:
    """Replace a service point's history with (valid_from, valid_to, rate_code) rows."""
    store.execute("DELETE FROM service_point_history WHERE service_point_id = :sp", {"sp": sp})
    store.bulk_insert(
        "service_point_history",
        pd.DataFrame(
            [
                {
                    "service_point_id": sp,
                    "valid_from": dt.date.fromisoformat(a),
                    "valid_to": dt.date.fromisoformat(b) if b else None,
                    "commodity": commodity,
                    "timezone": timezone,
                    "rate_code": rate,
                    "billing_cycle": cycle,
                    "has_solar": False,
                    "status": "active",
                    "synced_at": NOW,
                }
                for a, b, rate in history
            ]
        ),
    )
