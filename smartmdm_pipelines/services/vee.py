"""VEE of one operating day against the store: load inputs, run the domain engine, write
new interval versions (append-only), the exception queue and the daily usage summary.

Both stages run in one pass and one transaction: the validation stage's versions (first-pass
status, created_by ``vee:validation``) and the estimation stage's (``vee:estimation``). A
version is written only where something changed, so re-running a day with unchanged data
writes nothing; a manual edit stays current until new data arrives; a billed estimate is
locked (only an actual read replaces it, which raises a restatement exception).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.calendar import holidays_for
from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee.engine import (
    EXCEPTION_COLUMNS,
    DayInputs,
    DayResult,
    daily_usage,
    estimate_day,
    validate_day,
)
from smartmdm_pipelines.store.store import Store

VALIDATION_ACTOR = "vee:validation"
ESTIMATION_ACTOR = "vee:estimation"
KEY = ["meter_id", "channel", "interval_end"]
EPS = 1e-9
RULE_SEVERITY = "error"


@dataclass
class VeeRun:
    day: dt.date
    validation: DayResult
    estimation: DayResult
    validation_versions: int
    estimation_versions: int
    exceptions_open: int


def load_inputs(
    store: Store, day: dt.date, cfg: UtilityConfig, with_history: pd.DataFrame | None = None
) -> DayInputs:
    tz = cfg.utility.timezone
    start, end = local_day_bounds(day, tz)
    vee = cfg.vee_config()
    weeks = vee.default.reference_weeks
    q = store.read_frame
    p = {"day": day, "start": start, "end": end}
    reads = q(
        "SELECT meter_id, channel, interval_end, interval_seconds, value, source_quality, file_id, line "
        "FROM raw_reads WHERE read_day = :day",
        p,
    )
    meters = q(
        "SELECT meter_id, kind, commodity, role, channels, interval_seconds, unit, multiplier, dials FROM meters"
    )
    installs = q(
        "SELECT meter_id, service_point_id, installed_at, removed_at, multiplier, start_register, end_register "
        "FROM meter_installs"
    )  # all of them: a meter installed later than the day must not be expected on it
    sps = q("SELECT service_point_id, status, timezone, customer_class, has_solar FROM service_points")
    accounts = q("SELECT service_point_id, move_in, move_out FROM accounts")
    events = q(
        "SELECT meter_id, event_at, event_type FROM meter_events WHERE event_at >= :from AND event_at < :end",
        {**p, "from": start - pd.Timedelta(days=2)},
    )
    registers = q(
        "SELECT meter_id, channel, read_at, value FROM register_reads WHERE read_at >= :a AND read_at <= :b",
        {"a": start - pd.Timedelta(hours=1), "b": end + pd.Timedelta(hours=1)},
    )
    daily = q(
        "SELECT meter_id, channel, read_day, total, max_value, intervals, valid_intervals, estimated_intervals, "
        "has_outage FROM daily_usage WHERE read_day >= :a AND read_day < :day",
        {"a": day - dt.timedelta(weeks=weeks), "day": day},
    )
    frontier = store.scalar("SELECT max(last_interval_end) FROM headend_files")
    last_seen = q(
        "SELECT meter_id, channel, max(interval_end) AS last_end FROM raw_reads "
        "WHERE read_day >= :day AND read_day <= :until AND value IS NOT NULL GROUP BY meter_id, channel",
        {"day": day, "until": day + dt.timedelta(days=7)},
    )
    years = (day.year - 1, day.year + 1)
    return DayInputs(
        day=day,
        tz=tz,
        reads=reads,
        meters=meters,
        installs=installs,
        service_points=sps,
        accounts=accounts,
        events=events,
        registers=registers,
        daily_history=daily,
        holidays=holidays_for(cfg.utility.holidays, *years),
        frontier=pd.Timestamp(frontier) if frontier is not None else None,
        last_seen=last_seen,
        config=vee,
    )


def load_history(store: Store, day: dt.date, series: pd.DataFrame, weeks: int) -> pd.DataFrame:
    """Current intervals of the reference weeks and the next day, only for the series to estimate."""
    if series.empty:
        return pd.DataFrame()
    meters = sorted(series["meter_id"].unique().tolist())
    frame = store.read_frame(
        "SELECT meter_id, channel, interval_end, interval_seconds, value, status, failed_rules, estimation_method "
        "FROM (SELECT i.*, row_number() OVER (PARTITION BY meter_id, channel, interval_end ORDER BY version DESC) AS rn "
        "      FROM intervals i WHERE read_day >= :a AND read_day <= :b AND read_day <> :day "
        "      AND meter_id IN (SELECT unnest(:meters))) ranked WHERE rn = 1",
        {"a": day - dt.timedelta(weeks=weeks), "b": day + dt.timedelta(days=1), "day": day, "meters": meters},
    )
    return frame.merge(series, on=["meter_id", "channel"])


def run_day(store: Store, day: dt.date, cfg: UtilityConfig) -> VeeRun:
    inputs = load_inputs(store, day, cfg)
    validated = validate_day(inputs)
    todo = validated.intervals.loc[
        validated.intervals["status"].isin(["suspect", "missing"]), ["meter_id", "channel"]
    ]
    inputs.history = load_history(store, day, todo.drop_duplicates(), inputs.config.default.reference_weeks)
    estimated = estimate_day(validated, inputs)
    now = pd.Timestamp.now(tz="UTC")
    with store.begin() as conn:
        latest = _latest_versions(store, day, conn)
        v_rows = _validation_versions(validated.intervals, latest, day, now)
        after = _apply(latest, v_rows)
        e_rows = _estimation_versions(estimated.intervals, after, day, now)
        restated = restatements(latest, v_rows, day)
        store.bulk_insert("intervals", v_rows, conn)
        store.bulk_insert("intervals", e_rows, conn)
        exceptions = pd.concat([validated.exceptions, restated], ignore_index=True)
        open_count = _write_exceptions(store, day, exceptions, now, conn)
        usage = daily_usage(estimated.intervals, day)
        store.replace_partition("daily_usage", {"read_day": day}, usage, conn)
    return VeeRun(day, validated, estimated, len(v_rows), len(e_rows), open_count)


def _latest_versions(store: Store, day: dt.date, conn) -> pd.DataFrame:
    """Per interval of the day: the current version, and the latest version the validation wrote."""
    frame = store.read_frame(
        "SELECT meter_id, channel, interval_end, version, value, status, created_by, failed_rules, "
        "source_file_id, estimation_method, billed FROM intervals WHERE read_day = :day",
        {"day": day},
        conn,
    )
    if frame.empty:
        return frame
    frame = frame.sort_values([*KEY, "version"])
    current = frame.drop_duplicates(KEY, keep="last").set_index(KEY)
    val = frame[frame["created_by"] == VALIDATION_ACTOR].drop_duplicates(KEY, keep="last").set_index(KEY)
    out = current.join(val[["value", "status", "failed_rules", "source_file_id"]], rsuffix="_val")
    return out.reset_index()


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
    return (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= EPS)


def _text_same(a: pd.Series, b: pd.Series) -> np.ndarray:
    return a.fillna("").astype(str).to_numpy() == b.fillna("").astype(str).to_numpy()


def _validation_versions(frame: pd.DataFrame, latest: pd.DataFrame, day: dt.date, now) -> pd.DataFrame:
    new = frame[
        KEY + ["interval_seconds", "value", "unit", "status", "failed_rules", "file_id", "line"]
    ].rename(columns={"file_id": "source_file_id", "line": "source_line"})
    if latest.empty:
        changed = new.assign(version=1, previous_value=np.nan)
    else:
        m = new.merge(
            latest[
                [
                    *KEY,
                    "version",
                    "value",
                    "status",
                    "value_val",
                    "status_val",
                    "failed_rules_val",
                    "source_file_id_val",
                ]
            ].rename(columns={"value": "current_value", "status": "current_status"}),
            on=KEY,
            how="left",
        )
        unchanged = (
            m["version"].notna().to_numpy()
            & _same(m["value"], m["value_val"])
            & _text_same(m["status"], m["status_val"])
            & _text_same(m["failed_rules"], m["failed_rules_val"])
            & _same(m["source_file_id"], m["source_file_id_val"])
        )
        # an estimate written before VEE ever saw the interval (a forward estimate for billing)
        # stays current while nothing has been received; the estimation stage may replace it
        unchanged |= (
            m["value"].isna().to_numpy()
            & m["status_val"].isna().to_numpy()
            & m["current_status"].eq("estimated").to_numpy()
        )
        changed = m[~unchanged].copy()
        changed["previous_value"] = changed["current_value"]
        changed["version"] = changed["version"].fillna(0).astype("int64") + 1
    espi = changed["status"].map({"valid": 0, "suspect": 10}).astype("Int16")
    iec = changed["status"].map({"valid": "2.0.0", "suspect": "2.5.256", "missing": "2.5.259"})
    return pd.DataFrame(
        {
            **{c: changed[c].to_numpy() for c in KEY},
            "version": changed["version"].astype("int32").to_numpy(),
            "interval_seconds": changed["interval_seconds"].to_numpy(),
            "value": changed["value"].to_numpy(dtype="float64"),
            "unit": changed["unit"].to_numpy(),
            "status": changed["status"].to_numpy(),
            "espi_quality": espi.to_numpy(),
            "iec_quality": iec.to_numpy(),
            "estimation_method": None,
            "failed_rules": changed["failed_rules"].to_numpy(),
            "source_file_id": changed["source_file_id"].to_numpy(dtype="float64"),
            "source_line": changed["source_line"].to_numpy(dtype="float64"),
            "read_day": pd.Timestamp(day),
            "created_by": VALIDATION_ACTOR,
            "created_at": now,
            "reason": "first-pass validation",
            "previous_value": changed["previous_value"].to_numpy(dtype="float64"),
        }
    )


def _apply(latest: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The current version per interval once ``rows`` are written."""
    cols = [*KEY, "version", "value", "status", "created_by", "estimation_method", "billed"]
    parts = [f[cols] for f in (latest, rows.assign(billed=False)) if len(f)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols}).astype(
            {"interval_end": "datetime64[us, UTC]"}
        )
    both = pd.concat(parts, ignore_index=True).sort_values([*KEY, "version"])
    both["interval_end"] = pd.to_datetime(both["interval_end"], utc=True)
    return both.drop_duplicates(KEY, keep="last")


def _estimation_versions(frame: pd.DataFrame, current: pd.DataFrame, day: dt.date, now) -> pd.DataFrame:
    est = frame[frame["final_status"].eq("estimated")]
    m = est.merge(current, on=KEY, how="left", suffixes=("", "_cur"))
    cur_status = m["status_cur"].fillna("")
    protected = cur_status.isin(["edited", "verified"]).to_numpy()
    billed_estimate = (cur_status.eq("estimated") & m["billed"].fillna(False).astype(bool)).to_numpy()
    same = (
        cur_status.eq("estimated").to_numpy()
        & _same(m["final_value"], m["value_cur"])
        & _text_same(m["estimation_method"], m["estimation_method_cur"])
    )
    write = m[~protected & ~billed_estimate & ~same]
    rows = pd.DataFrame(
        {
            **{c: write[c].to_numpy() for c in KEY},
            "version": (write["version"].fillna(0).astype("int64") + 1).astype("int32").to_numpy(),
            "interval_seconds": write["interval_seconds"].to_numpy(),
            "value": write["final_value"].to_numpy(dtype="float64"),
            "unit": write["unit"].to_numpy(),
            "status": "estimated",
            "espi_quality": write["espi_quality"].to_numpy(),
            "iec_quality": write["iec_quality"].to_numpy(),
            "estimation_method": write["estimation_method"].to_numpy(),
            "failed_rules": write["failed_rules"].to_numpy(),
            "source_file_id": write["file_id"].to_numpy(dtype="float64"),
            "source_line": write["line"].to_numpy(dtype="float64"),
            "read_day": pd.Timestamp(day),
            "created_by": ESTIMATION_ACTOR,
            "created_at": now,
            "reason": write["estimation_inputs"].to_numpy(),
            "previous_value": write["value_cur"].to_numpy(dtype="float64"),
        }
    )
    return rows


def _write_exceptions(store: Store, day: dt.date, exceptions: pd.DataFrame, now, conn) -> int:
    """Refresh the day's open exceptions; keep operators' decisions; resolve what is no longer found."""
    existing = store.read_frame("SELECT * FROM vee_exceptions WHERE read_day = :day", {"day": day}, conn)
    decided = set(existing.loc[existing["status"] != "open", "exception_id"])
    still_open = existing[existing["status"] == "open"]
    created = dict(zip(still_open["exception_id"], still_open["created_at"], strict=False))
    fresh = exceptions[~exceptions["exception_id"].isin(decided)].copy()
    fresh["status"] = "open"
    fresh["created_at"] = fresh["exception_id"].map(created) if created else pd.NaT
    fresh["created_at"] = fresh["created_at"].fillna(now) if len(fresh) else fresh["created_at"]
    fresh["read_day"] = pd.Timestamp(day)
    gone = still_open[~still_open["exception_id"].isin(fresh["exception_id"])].assign(
        status="resolved", resolution="no longer detected by VEE", resolved_by="vee", resolved_at=now
    )
    store.delete("vee_exceptions", {"read_day": day, "status": "open"}, conn)
    store.bulk_insert("vee_exceptions", [fresh, gone], conn)
    return len(fresh)


def restatements(latest: pd.DataFrame, validation_rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Billed estimates that an actual read now supersedes: the bill period must be restated (T13)."""
    if latest.empty or validation_rows.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    billed = latest[latest["status"].eq("estimated") & latest["billed"].fillna(False).astype(bool)]
    hit = validation_rows[validation_rows["status"].eq("valid")].merge(billed[KEY], on=KEY)
    if hit.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    g = (
        hit.groupby(["meter_id", "channel"])
        .agg(
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
            intervals=("interval_end", "size"),
        )
        .reset_index()
    )
    g["rule"], g["severity"] = "billed_estimate_replaced", RULE_SEVERITY
    g["detail"] = (
        g["intervals"].astype(str) + " billed estimate(s) replaced by actual reads: restate the bill period"
    )
    g["read_day"] = pd.Timestamp(day)
    key = (
        g["meter_id"].astype(str)
        + "|"
        + g["channel"].astype(str)
        + "|"
        + day.isoformat()
        + "|billed_estimate_replaced"
    )
    g["exception_id"] = [hashlib.sha1(k.encode()).hexdigest()[:20] for k in key]
    return g[EXCEPTION_COLUMNS]


def estimate_with_method(
    store: Store, cfg: UtilityConfig, exc: dict, ends: pd.Series, method: str
) -> pd.DataFrame:
    """An operator's request: estimate the exception's intervals with one named method."""
    day = pd.Timestamp(exc["read_day"]).date()
    inputs = load_inputs(store, day, cfg)
    validated = validate_day(inputs)
    frame = validated.intervals
    target = (
        frame["meter_id"].eq(exc["meter_id"])
        & frame["channel"].eq(exc["channel"])
        & frame["interval_end"].isin(pd.to_datetime(ends, utc=True))
    )
    frame.loc[target, "status"] = "suspect"
    if method == "zero_fill":
        frame.loc[target, "outage"] = True
        frame.loc[target, "value"] = np.nan
    series = frame.loc[target, ["meter_id", "channel"]].drop_duplicates()
    inputs.history = load_history(store, day, series, inputs.config.default.reference_weeks)
    estimated = estimate_day(validated, inputs, methods=(method,))
    f = estimated.intervals
    out = f[
        f["meter_id"].eq(exc["meter_id"])
        & f["channel"].eq(exc["channel"])
        & f["interval_end"].isin(pd.to_datetime(ends, utc=True))
        & f["estimation_method"].notna()
    ]
    return out[["interval_end", "final_value"]].rename(columns={"final_value": "value"})
