"""Missing scheduled reads of manual and AMR meters: estimate the register, store it as a version.

Scheduled reads come from the billing cycles: every manual/AMR meter installed at a service
point on cycle C is due a read on each of C's read dates. The scheduled read stands for the end
of the read date (local midnight after it, in the service point's time zone). When no actual
register read lies within ``register_read_window_days`` of it, the register is estimated
(``domain.vee.register_estimation``) and written to ``intervals`` like every other estimate:

- key (meter_id, register channel, interval_end = the scheduled instant), versioned;
- value = the estimated consumption since the read before it (actual or estimated) × multiplier,
  interval_seconds = the seconds between the two reads, read_day = the read date;
- status ``estimated``, method ``register_recent`` | ``register_previous_year`` |
  ``register_class``, ESPI 8 / IEC 2.8.0, failed_rules ``missing_register_read``, created_by
  ``vee:register_estimation``; the estimated register reading itself (dial units) is ``register_value``
  (billing reads it when the scheduled read is missing); the previous actual, the ADU and its
  source are in ``reason``.

Re-running is idempotent (a version is written only when the estimate changes); a billed or
edited current version is never rewritten. When the actual read later arrives, the estimate is
superseded by a version with status ``missing`` and no value (the actual read lives in
``register_reads`` at its own instant); a billed estimate superseded this way raises the
``billed_estimate_replaced`` restatement exception, as late interval actuals do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig, load_config
from smartmdm_pipelines.domain.vee.day import CHANNEL_UNITS, EXCEPTION_COLUMNS, exception_ids
from smartmdm_pipelines.domain.vee.quality import source_quality_rank
from smartmdm_pipelines.domain.vee.register_estimation import REGISTER_METHOD_CODES, estimate_registers
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

ACTOR = "vee:register_estimation"
RULE = "missing_register_read"
KEY = ["meter_id", "channel", "interval_end"]
EPS = 1e-9


@dataclass
class RegisterEstimationSummary:
    as_of: dt.date
    scheduled_reads: int = 0
    actual_reads: int = 0
    estimated: int = 0
    """Estimates computed (written or already current)."""
    versions_written: int = 0
    superseded: int = 0
    """Earlier estimates replaced because the actual read arrived."""
    locked: int = 0
    """Estimates not rewritten because the current version is billed or was edited."""
    restatements: int = 0
    unestimated: list[dict] = field(default_factory=list)
    """Missing reads that could not be estimated: meter_id, channel, read_date, reason."""
    by_source: dict[str, int] = field(default_factory=dict)


def estimate_missing_registers(
    store: Store, as_of: dt.date, meter_ids: list[str] | None = None, cfg: UtilityConfig | None = None
) -> RegisterEstimationSummary:
    cfg = cfg or load_config()
    vee = cfg.vee_config()
    summary = RegisterEstimationSummary(as_of=as_of)
    schedule = _schedule(store, as_of, meter_ids, vee.default.register_lookback_days)
    if schedule.empty:
        return summary
    reads = _reads(store, schedule, vee.default)
    parts = []
    for (commodity, kind), group in schedule.groupby(["commodity", "kind"], sort=True):
        parts.append(estimate_registers(group, reads, vee.for_class(commodity, kind, None), schedule))
    result = pd.concat(parts, ignore_index=True)
    summary.scheduled_reads = len(result)
    summary.actual_reads = int(result["actual"].sum())
    has_estimate = result["register_value"].notna()
    blocked = ~result["actual"].astype(bool) & ~has_estimate
    summary.unestimated = result.loc[blocked, ["meter_id", "channel", "read_date", "reason"]].to_dict(
        "records"
    )
    summary.by_source = result.loc[has_estimate, "adu_source"].value_counts().astype(int).to_dict()
    summary.estimated = int(has_estimate.sum())

    result = result.rename(columns={"scheduled_at": "interval_end"})
    result = result.merge(
        schedule[["meter_id", "unit"]].drop_duplicates("meter_id"), on="meter_id", how="left"
    )
    now = pd.Timestamp.now(tz="UTC")
    with store.begin() as conn:
        current = _current(store, result, conn)
        m = result.merge(current, on=KEY, how="left")
        status = m["cur_status"].fillna("")
        billed = m["cur_billed"].fillna(False).astype(bool).to_numpy()
        estimate = m["register_value"].notna().to_numpy()
        protected = status.isin(["edited", "verified", "valid"]).to_numpy() | (
            billed & status.eq("estimated").to_numpy()
        )
        same = (
            status.eq("estimated").to_numpy()
            & (np.abs(m["value"].to_numpy(dtype="float64") - m["cur_value"].to_numpy(dtype="float64")) <= EPS)
            & (m["interval_seconds"].to_numpy(dtype="float64") == m["cur_seconds"].to_numpy(dtype="float64"))
        )
        write = estimate & ~protected & ~same
        summary.locked = int((estimate & protected).sum())
        supersede = m["actual"].astype(bool).to_numpy() & status.eq("estimated").to_numpy()
        summary.superseded = int(supersede.sum())
        rows = pd.concat(
            [_estimate_rows(m[write], now), _superseded_rows(m[supersede], now)], ignore_index=True
        )
        summary.versions_written = store.bulk_insert("intervals", rows, conn) if len(rows) else 0
        usage_rollup.refresh_written(conn, rows)  # the portal's hourly rollup
        restate = _restatements(m[supersede & billed])
        if len(restate):
            known = store.read_frame(
                "SELECT exception_id FROM vee_exceptions WHERE exception_id IN (SELECT unnest(:ids))",
                {"ids": restate["exception_id"].tolist()},
                conn,
            )
            restate = restate[~restate["exception_id"].isin(known["exception_id"])]
            restate = restate.assign(status="open", created_at=now)
            summary.restatements = store.bulk_insert("vee_exceptions", restate, conn)
    return summary


def _schedule(store: Store, as_of: dt.date, meter_ids: list[str] | None, lookback: int) -> pd.DataFrame:
    """Scheduled reads of manual/AMR meters: meter, channel, read date, the instant it stands for."""
    meters = store.read_frame(
        "SELECT meter_id, kind, commodity, channels, unit, multiplier, dials FROM meters "
        "WHERE kind IN ('manual', 'amr')"
    )
    if meter_ids is not None:
        meters = meters[meters["meter_id"].isin(meter_ids)]
    if meters.empty:
        return pd.DataFrame()
    installs = store.read_frame(
        "SELECT meter_id, service_point_id, installed_at, removed_at, multiplier AS install_multiplier "
        "FROM meter_installs"
    )
    sps = store.read_frame(
        "SELECT service_point_id, timezone, customer_class, billing_cycle FROM service_points"
    )
    cycles = store.read_frame(
        "SELECT DISTINCT cycle_id AS billing_cycle, read_date FROM billing_cycles "
        "WHERE read_date >= :a AND read_date <= :b",
        {"a": as_of - dt.timedelta(days=lookback), "b": as_of},
    )
    s = (
        meters.merge(installs, on="meter_id")
        .merge(sps, on="service_point_id")
        .merge(cycles, on="billing_cycle")
    )
    if s.empty:
        return pd.DataFrame()
    s["read_date"] = pd.to_datetime(s["read_date"])
    s["scheduled_at"] = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    for zone, rows in s.groupby("timezone").groups.items():  # one conversion per time zone
        local = (s.loc[rows, "read_date"] + pd.Timedelta(days=1)).dt.tz_localize(
            zone, nonexistent="shift_forward"
        )
        s.loc[rows, "scheduled_at"] = local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    installed = pd.to_datetime(s["installed_at"], utc=True)
    removed = pd.to_datetime(s["removed_at"], utc=True)
    s = s[(installed < s["scheduled_at"]) & (removed.isna() | (removed >= s["scheduled_at"]))].copy()
    s["multiplier"] = s["install_multiplier"].fillna(s["multiplier"])
    s = s.assign(channel=s["channels"].str.split(";")).explode("channel")
    s = s[s["channel"].str.len() > 0]
    s["read_date"] = s["read_date"].dt.date
    cols = ["meter_id", "channel", "read_date", "scheduled_at", "commodity", "kind", "customer_class"]
    return s[[*cols, "dials", "multiplier", "unit", "installed_at"]].reset_index(drop=True)


def _reads(store: Store, schedule: pd.DataFrame, rules) -> pd.DataFrame:
    """Actual register reads of the scheduled meters (head-end estimates excluded) and their
    installations' start registers, far enough back for the previous-year ADU."""
    back = pd.Timedelta(days=365 + rules.register_adu_days + rules.register_previous_year_tolerance_days + 45)
    frame = store.read_frame(
        "SELECT meter_id, channel, read_at, value, source_quality FROM register_reads "
        "WHERE read_at >= :a AND meter_id IN (SELECT unnest(:meters))",
        {"a": schedule["scheduled_at"].min() - back, "meters": schedule["meter_id"].unique().tolist()},
    )
    frame = frame[source_quality_rank(frame["source_quality"], frame["value"]) == 0]
    starts = store.read_frame(
        "SELECT meter_id, installed_at AS read_at, start_register AS value FROM meter_installs "
        "WHERE start_register IS NOT NULL AND meter_id IN (SELECT unnest(:meters))",
        {"meters": schedule["meter_id"].unique().tolist()},
    )
    starts = starts.merge(schedule[["meter_id", "channel"]].drop_duplicates(), on="meter_id")
    out = pd.concat([frame[["meter_id", "channel", "read_at", "value"]], starts], ignore_index=True)
    out["read_at"] = pd.to_datetime(out["read_at"], utc=True)
    return out


def _current(store: Store, result: pd.DataFrame, conn) -> pd.DataFrame:
    days = pd.to_datetime(result["read_date"])
    frame = store.read_frame(
        current_intervals_sql(
            "read_day >= :a AND read_day <= :b AND meter_id IN (SELECT unnest(:meters))",
            "meter_id, channel, interval_end, version AS cur_version, value AS cur_value, "
            "status AS cur_status, interval_seconds AS cur_seconds, billed AS cur_billed",
        ),
        {"a": days.min().date(), "b": days.max().date(), "meters": result["meter_id"].unique().tolist()},
        conn,
    )
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _base_rows(m: pd.DataFrame, now) -> dict:
    unit = m["channel"].map(CHANNEL_UNITS).fillna(m["unit"])
    return {
        **{c: m[c].to_numpy() for c in KEY},
        "version": (m["cur_version"].fillna(0).astype("int64") + 1).astype("int32").to_numpy(),
        "unit": unit.to_numpy(),
        "read_day": pd.to_datetime(m["read_date"]).to_numpy(),
        "created_by": ACTOR,
        "created_at": now,
        "previous_value": m["cur_value"].to_numpy(dtype="float64"),
        "source_file_id": np.nan,
        "source_line": np.nan,
    }


def _estimate_rows(m: pd.DataFrame, now) -> pd.DataFrame:
    if m.empty:
        return pd.DataFrame()
    codes = m["method"].map(REGISTER_METHOD_CODES)
    return pd.DataFrame(
        {
            **_base_rows(m, now),
            "interval_seconds": m["interval_seconds"].astype("int64").to_numpy(),
            "value": m["value"].to_numpy(dtype="float64"),
            "status": "estimated",
            "espi_quality": codes.str[0].astype("int16").to_numpy(),
            "iec_quality": codes.str[1].to_numpy(),
            "estimation_method": m["method"].to_numpy(),
            "failed_rules": RULE,
            "reason": m["reason"].to_numpy(),
            "register_value": m["register_value"].to_numpy(dtype="float64"),
        }
    )


def _superseded_rows(m: pd.DataFrame, now) -> pd.DataFrame:
    if m.empty:
        return pd.DataFrame()
    reason = (
        "estimate superseded: actual register read "
        + m["actual_value"].round(3).astype(str)
        + " at "
        + pd.to_datetime(m["actual_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%MZ")
    )
    return pd.DataFrame(
        {
            **_base_rows(m, now),
            "interval_seconds": m["cur_seconds"].astype("int64").to_numpy(),
            "value": np.nan,
            "status": "missing",
            "espi_quality": pd.array([None] * len(m), dtype="Int16"),
            "iec_quality": "2.5.259",
            "estimation_method": None,
            "failed_rules": None,
            "reason": reason.to_numpy(),
        }
    )


def _restatements(m: pd.DataFrame) -> pd.DataFrame:
    if m.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    g = m.assign(read_day=pd.to_datetime(m["read_date"]))
    day = g["read_day"].dt.strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "exception_id": exception_ids(g["meter_id"], g["channel"], day, "billed_estimate_replaced"),
            "meter_id": g["meter_id"].to_numpy(),
            "channel": g["channel"].to_numpy(),
            "read_day": g["read_day"].to_numpy(),
            "period_start": pd.to_datetime(g["interval_end"], utc=True)
            - pd.to_timedelta(g["cur_seconds"].astype("int64"), unit="s"),
            "period_end": pd.to_datetime(g["interval_end"], utc=True),
            "rule": "billed_estimate_replaced",
            "severity": "error",
            "intervals": 1,
            "detail": "billed register estimate replaced by the actual read "
            + g["actual_value"].round(3).astype(str)
            + ": restate the bill period",
        }
    ).drop_duplicates("exception_id")
