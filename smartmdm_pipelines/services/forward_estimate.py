"""Forward estimates: project interval data that has not arrived yet, so billing can close.

Billing close calls ``forward_estimate`` before closing a cycle whose last days are missing.
For every AMI meter-channel whose current intervals stop before ``through``, the intervals
after its last current value up to ``through`` are projected with the estimation chain's
like-day, class-profile and average-daily-load steps (``estimate.estimate_forward``) and written
as new versions of ``intervals``: status ``estimated``, method ``forward``, ESPI 12 (projected)
and IEC 2.12.0, the projection inputs and the caller's reason in ``reason``.

They are ordinary estimates to the rest of the system: when the actual reads arrive the normal
VEE run (``services.vee.run_day``) writes the actual as a newer version; when a billed forward
estimate is replaced, it raises the ``billed_estimate_replaced`` restatement exception. While the
data is still awaited a VEE run keeps the forward estimate current; once the re-collection window
has passed, VEE's own chain re-estimates it (unless it was billed: billed estimates are locked).

A series silent for longer than ``forward_max_days`` is not projected (Oracle's "Max hours":
a long silence needs an operator) and is listed in the summary.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig, load_config
from smartmdm_pipelines.domain.calendar import holidays_for
from smartmdm_pipelines.domain.timeutil import day_range, operating_day
from smartmdm_pipelines.domain.vee.day import CHANNEL_UNITS
from smartmdm_pipelines.domain.vee.estimate import FORWARD_CODES, FORWARD_METHOD, estimate_forward
from smartmdm_pipelines.domain.vee.keys import Catalog
from smartmdm_pipelines.domain.vee.prepare import expected_grid
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

KEY = ["meter_id", "channel", "interval_end"]


@dataclass
class ForwardSummary:
    through: pd.Timestamp
    series_considered: int = 0
    series_estimated: int = 0
    intervals_written: int = 0
    intervals_unestimated: int = 0
    """Intervals no step of the chain could project (no usable history, no class profile)."""
    intervals_locked: int = 0
    """Target intervals whose current version is billed or has a value: left alone."""
    beyond_limit: list[tuple[str, str]] = field(default_factory=list)
    """(meter, channel) silent for longer than ``forward_max_days`` (or never read): not projected."""
    by_method: dict[str, int] = field(default_factory=dict)


def forward_estimate(
    store: Store,
    meter_ids: list[str] | None,
    through: dt.datetime,
    created_by: str,
    reason: str,
    cfg: UtilityConfig | None = None,
) -> ForwardSummary:
    """Project every AMI meter-channel (``meter_ids``; None = all) whose current intervals stop
    before ``through`` (UTC) up to ``through``; one frame and one bulk insert for all of them."""
    if not created_by or not reason:
        raise ValueError("forward_estimate needs who asks (created_by) and why (reason)")
    cfg = cfg or load_config()
    tz = cfg.utility.timezone
    vee = cfg.vee_config()
    through = pd.Timestamp(through)
    through = through.tz_localize("UTC") if through.tzinfo is None else through.tz_convert("UTC")
    summary = ForwardSummary(through=through)
    max_days = vee.default.forward_max_days
    meters = _meters(store, meter_ids)
    if meters.empty:
        return summary
    series = meters.assign(channel=meters["channels"].str.split(";")).explode("channel")
    series = series[series["channel"].str.len() > 0]
    summary.series_considered = len(series)
    since = (through - pd.Timedelta(days=max_days + 1)).date()
    last = _last_values(store, meters["meter_id"].tolist(), since, through)
    series = series.merge(last, on=["meter_id", "channel"], how="left")
    silent = series["last_end"].isna() | (series["last_end"] < through - pd.Timedelta(days=max_days))
    summary.beyond_limit = list(
        zip(series.loc[silent, "meter_id"], series.loc[silent, "channel"], strict=True)
    )
    series = series[~silent & (series["last_end"] < through)]
    if series.empty:
        return summary

    installs = store.read_frame(
        "SELECT meter_id, service_point_id, installed_at, removed_at FROM meter_installs"
    )
    sps = store.read_frame("SELECT service_point_id, timezone, customer_class FROM service_points")
    targets = _targets(series, meters, installs, sps, tz, through)
    if targets.empty:
        return summary
    targets["read_day"] = operating_day(targets["interval_end"], targets["interval_seconds"], tz)
    days = sorted(pd.to_datetime(targets["read_day"]).dt.date.unique())
    current = _current_versions(store, targets["meter_id"].unique().tolist(), days[0], days[-1])
    targets = targets.merge(current, on=KEY, how="left")
    locked = targets["billed"].fillna(False).astype(bool) | targets["current_value"].notna()
    summary.intervals_locked = int(locked.sum())
    targets = targets[~locked.to_numpy()].reset_index(drop=True)
    if targets.empty:
        return summary

    attrs = series[["meter_id", "channel", "commodity", "kind"]].merge(
        _customer_classes(installs, sps), on="meter_id", how="left"
    )
    history = _history(store, targets, vee.default.reference_weeks, tz)
    years = (days[0].year - 1, days[-1].year + 1)
    projected = estimate_forward(
        targets[[*KEY, "interval_seconds"]],
        history,
        attrs,
        tz,
        holidays_for(cfg.utility.holidays, *years),
        vee,
    )
    ok = projected["value"].notna().to_numpy()
    summary.intervals_unestimated = int((~ok).sum())
    rows = _version_rows(targets[ok], projected[ok], meters, through, created_by, reason)
    with store.begin() as conn:
        summary.intervals_written = store.bulk_insert("intervals", rows, conn)
        usage_rollup.refresh_written(conn, rows)  # the portal's hourly rollup
    summary.series_estimated = int(rows[["meter_id", "channel"]].drop_duplicates().shape[0])
    summary.by_method = projected.loc[ok, "base_method"].str.split("+").str[0].value_counts().to_dict()
    return summary


def _meters(store: Store, meter_ids: list[str] | None) -> pd.DataFrame:
    sql = (
        "SELECT meter_id, kind, commodity, channels, interval_seconds, unit FROM meters "
        "WHERE kind = 'ami' AND interval_seconds IS NOT NULL"
    )
    if meter_ids is None:
        return store.read_frame(sql)
    if not meter_ids:
        return store.read_frame(sql + " AND 1 = 0")
    return store.read_frame(sql + " AND meter_id IN (SELECT unnest(:meters))", {"meters": list(meter_ids)})


def _last_values(store: Store, meters: list[str], since: dt.date, through: pd.Timestamp) -> pd.DataFrame:
    """Per series: the end of its last current interval with a value, up to ``through``."""
    return store.read_frame(
        "SELECT meter_id, channel, max(interval_end) AS last_end FROM ("
        + current_intervals_sql(
            "read_day >= :since AND interval_end <= :through AND meter_id IN (SELECT unnest(:meters))",
            ["meter_id", "channel", "interval_end", "value"],
        )
        + ") c WHERE value IS NOT NULL GROUP BY meter_id, channel",
        {"since": since, "through": through, "meters": meters},
    ).assign(last_end=lambda f: pd.to_datetime(f["last_end"], utc=True))


def _meter_zones(installs: pd.DataFrame, sps: pd.DataFrame) -> pd.Series:
    if installs.empty or sps.empty:
        return pd.Series(dtype="object")
    inst = installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")
    zones = inst.merge(sps[["service_point_id", "timezone"]], on="service_point_id", how="left")
    return zones.set_index("meter_id")["timezone"].dropna()


def _customer_classes(installs: pd.DataFrame, sps: pd.DataFrame) -> pd.DataFrame:
    if installs.empty or sps.empty:
        return pd.DataFrame(columns=["meter_id", "customer_class"])
    inst = installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")
    return inst.merge(sps, on="service_point_id", how="left")[["meter_id", "customer_class"]]


def _targets(
    series: pd.DataFrame,
    meters: pd.DataFrame,
    installs: pd.DataFrame,
    sps: pd.DataFrame,
    tz: str,
    through: pd.Timestamp,
) -> pd.DataFrame:
    """The expected intervals (DST-aware grid, within installations) after each series' last
    value and up to ``through``: one grid per operating day, every meter at once."""
    first = operating_day(series["last_end"], series["interval_seconds"].astype("int64"), tz).min().date()
    last = operating_day(pd.Series([through]), 1, tz).iloc[0].date()
    active = meters[meters["meter_id"].isin(series["meter_id"])]
    catalog = Catalog(active["meter_id"])
    zones = _meter_zones(installs, sps)
    for col in ("installed_at", "removed_at"):
        installs[col] = pd.to_datetime(installs[col], utc=True)
    grids = [expected_grid(active, installs, day, tz, zones, catalog) for day in day_range(first, last)]
    grid = pd.concat(grids, ignore_index=True)
    grid = grid.assign(meter_id=grid["meter_id"].astype(str), channel=grid["channel"].astype(str))
    grid = grid.merge(series[["meter_id", "channel", "last_end"]], on=["meter_id", "channel"])
    keep = (grid["interval_end"] > grid["last_end"]) & (grid["interval_end"] <= through)
    grid = grid[keep.to_numpy()]
    return grid[[*KEY, "interval_seconds"]].drop_duplicates(KEY).reset_index(drop=True)


def _current_versions(store: Store, meters: list[str], first: dt.date, last: dt.date) -> pd.DataFrame:
    frame = store.read_frame(
        current_intervals_sql(
            "read_day >= :a AND read_day <= :b AND meter_id IN (SELECT unnest(:meters))",
            ["meter_id", "channel", "interval_end", "version", "value", "billed"],
        ),
        {"a": first, "b": last, "meters": meters},
    )
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    return frame.rename(columns={"value": "current_value"})


def _history(store: Store, targets: pd.DataFrame, weeks: int, tz: str) -> pd.DataFrame:
    """Current intervals of the reference weeks before each series' first projected day."""
    first_day = targets.groupby(["meter_id", "channel"])["read_day"].min().rename("first_day").reset_index()
    start = pd.Timestamp(first_day["first_day"].min()).date() - dt.timedelta(weeks=weeks)
    end = pd.Timestamp(first_day["first_day"].max()).date()
    history = store.read_frame(
        current_intervals_sql(
            "read_day >= :a AND read_day < :b AND meter_id IN (SELECT unnest(:meters))",
            "meter_id, channel, interval_end, interval_seconds, value, status, failed_rules, "
            "estimation_method, read_day",
        ),
        {"a": start, "b": end, "meters": first_day["meter_id"].unique().tolist()},
    )
    if history.empty:
        return history
    history = history.merge(first_day, on=["meter_id", "channel"])
    before = pd.to_datetime(history["read_day"]).to_numpy() < pd.to_datetime(history["first_day"]).to_numpy()
    return history[before].drop(columns=["read_day", "first_day"])


def _version_rows(
    targets: pd.DataFrame,
    projected: pd.DataFrame,
    meters: pd.DataFrame,
    through: pd.Timestamp,
    created_by: str,
    reason: str,
) -> pd.DataFrame:
    unit_of_meter = meters.set_index("meter_id")["unit"]
    unit = targets["channel"].map(CHANNEL_UNITS).fillna(targets["meter_id"].map(unit_of_meter))
    base = projected["base_method"].astype(str).to_numpy()
    inputs = projected["inputs"].fillna("").astype(str).to_numpy()
    why = (
        f"forward estimate through {through.isoformat()} ({reason}): "
        + pd.Series(base).str.replace("+", " + ", regex=False).to_numpy()
        + np.where(inputs != "", ", " + inputs, "")
    )
    return pd.DataFrame(
        {
            **{c: targets[c].to_numpy() for c in KEY},
            "version": (targets["version"].fillna(0).astype("int64") + 1).astype("int32").to_numpy(),
            "interval_seconds": targets["interval_seconds"].to_numpy(dtype="int64"),
            "value": projected["value"].to_numpy(dtype="float64"),
            "unit": unit.to_numpy(),
            "status": "estimated",
            "espi_quality": np.int16(FORWARD_CODES[0]),
            "iec_quality": FORWARD_CODES[1],
            "estimation_method": FORWARD_METHOD,
            "failed_rules": None,
            "source_file_id": np.nan,
            "source_line": np.nan,
            "read_day": pd.to_datetime(targets["read_day"]).to_numpy(),
            "created_by": created_by,
            "created_at": pd.Timestamp.now(tz="UTC"),
            "reason": why,
            "previous_value": targets["current_value"].to_numpy(dtype="float64"),
        }
    )
