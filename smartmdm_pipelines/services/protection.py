"""Revenue protection against the store: evaluate an operating day (signals → cases with revenue at
stake), list the ranked cases, and record analysts' dispositions with their audit trail.

Reads the window's ``daily_usage`` (VEE's per meter-channel-day totals of current intervals),
``meter_events``, ``vee_exceptions``, the daily ``zone_balances`` rows, service points, accounts,
meter installs and the tariffs; pure logic lives in ``domain/protection``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.billing.urdb import parse_urdb
from smartmdm_pipelines.domain.protection.cases import CaseError, disposition, reconcile
from smartmdm_pipelines.domain.protection.detect import ProtectionInputs, find_signals
from smartmdm_pipelines.domain.protection.params import RECEIVED_CHANNEL, ProtectionParams
from smartmdm_pipelines.domain.protection.revenue import TariffContext, revenue_at_stake
from smartmdm_pipelines.domain.protection.scoring import combine
from smartmdm_pipelines.domain.protection.series import day_range, day_starts_utc, usage_matrix
from smartmdm_pipelines.services import audit
from smartmdm_pipelines.store.store import Store

EVENT_TYPES = ("tamper", "reverse_flow")
EXCEPTION_RULES = ("sum_check", "multiplier_mismatch", "prolonged_estimation")
CASE_COLUMNS = [
    "case_id",
    "service_point_id",
    "account_id",
    "meter_ids",
    "commodity",
    "customer_class",
    "rate_code",
    "zone_id",
    "status",
    "score",
    "revenue_at_stake",
    "unbilled_volume",
    "unit",
    "indicators",
    "first_signal_at",
    "last_signal_at",
    "evidence",
    "as_of",
    "opened_as_of",
    "opened_at",
    "updated_at",
    "disposition_at",
    "disposition_by",
    "disposition_reason",
    "disposition_score",
    "disposition_indicators",
    "reopened",
]
# the ranking: revenue at stake weighted by how sure the signals are, then the score
RANK_ORDER = "score * coalesce(revenue_at_stake, 0) DESC, score DESC, case_id"


@dataclass
class ProtectionRun:
    """What one evaluation found and changed."""

    as_of: dt.date
    signals: int = 0
    signals_by_indicator: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    opened: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # open cases no signal supports any more
    updated: int = 0
    high_score_new: list[str] = field(default_factory=list)


def _window(day: dt.date, params: ProtectionParams, tz: str) -> tuple[dt.date, pd.Timestamp, pd.Timestamp]:
    first = day - dt.timedelta(days=params.window_days - 1)
    start, end = day_starts_utc([first, day + dt.timedelta(days=1)], tz)
    return first, start, end


def _with_service_point(frame: pd.DataFrame, installs: pd.DataFrame, at: pd.Series) -> pd.DataFrame:
    """Each row's service point: the install of its meter that covers instant ``at``."""
    if frame.empty:
        return frame.assign(service_point_id=pd.Series(dtype="str"))
    rows = frame.reset_index(drop=True).assign(_at=at.reset_index(drop=True), _row=lambda f: f.index)
    joined = rows.merge(installs, on="meter_id", how="left")
    removed = joined["removed_at"].fillna(pd.Timestamp.max.tz_localize("UTC"))
    cover = (joined["installed_at"] <= joined["_at"]) & (removed > joined["_at"])
    joined = joined[cover | joined["installed_at"].isna()].drop_duplicates("_row")
    out = rows.merge(joined[["_row", "service_point_id"]], on="_row", how="left")
    return out.drop(columns=["_at", "_row"])


def load_inputs(store: Store, day: dt.date, cfg: UtilityConfig, params: ProtectionParams) -> ProtectionInputs:
    """The window of data ending on ``day`` that the indicators read."""
    tz = cfg.utility.timezone
    first, start, end = _window(day, params, tz)
    q = store.read_frame
    installs = q("SELECT meter_id, service_point_id, installed_at, removed_at FROM meter_installs")
    for column in ("installed_at", "removed_at"):
        installs[column] = pd.to_datetime(installs[column], utc=True)
    daily = q(
        "SELECT meter_id, channel, read_day, total, intervals, estimated_intervals, has_outage, unit "
        "FROM daily_usage WHERE read_day >= :a AND read_day <= :b",
        {"a": first, "b": day},
    )
    daily = pd.concat([daily, _unvalidated_received(store, daily, first, day)], ignore_index=True)
    daily["read_day"] = pd.to_datetime(daily["read_day"]).dt.date
    # the middle of the operating day (in UTC) dates which install a day's total belongs to
    noon = pd.Series(day_starts_utc(sorted(set(daily["read_day"])), tz), index=sorted(set(daily["read_day"])))
    daily = _with_service_point(daily, installs, daily["read_day"].map(noon) + pd.Timedelta(hours=12))
    events = q(
        "SELECT meter_id, event_at, event_type FROM meter_events WHERE event_at >= :s AND event_at < :e "
        f"AND event_type IN ({', '.join(repr(t) for t in EVENT_TYPES)})",
        {"s": start, "e": end},
    )
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True)
    events = _with_service_point(events, installs, events["event_at"])
    exceptions = q(
        "SELECT meter_id, read_day, rule FROM vee_exceptions WHERE read_day >= :a AND read_day <= :b "
        f"AND status <> 'dismissed' AND rule IN ({', '.join(repr(r) for r in EXCEPTION_RULES)})",
        {"a": first, "b": day},
    )
    exceptions["read_day"] = pd.to_datetime(exceptions["read_day"]).dt.date
    at = pd.Series(day_starts_utc(list(exceptions["read_day"]), tz)) + pd.Timedelta(hours=12)
    exceptions = _with_service_point(exceptions, installs, at)
    zone_daily = q(
        "SELECT zone_id, read_day, loss_volume, unit FROM zone_balances WHERE interval_seconds = 86400 "
        "AND read_day >= :a AND read_day <= :b",
        {"a": first, "b": day},
    )
    service_points = q(
        "SELECT service_point_id, commodity, customer_class, rate_code, zone_id, has_solar, status, timezone "
        "FROM service_points"
    )
    accounts = q("SELECT account_id, service_point_id, move_in, move_out FROM accounts")
    return ProtectionInputs(day, tz, daily, service_points, accounts, events, exceptions, zone_daily)


def _unvalidated_received(store: Store, daily: pd.DataFrame, first: dt.date, day: dt.date) -> pd.DataFrame:
    """Received energy of meters that have no received channel configured: VEE reports it
    (usage_on_inactive, reverse_flow) but does not validate it, so it is only in ``raw_reads``.
    One value per interval (the latest delivery's), summed per meter and day."""
    raw = store.read_frame(
        "SELECT meter_id, read_day, sum(value) AS total, count(*) AS intervals, max(unit) AS unit FROM ("
        " SELECT meter_id, interval_end, max(read_day) AS read_day, max(unit) AS unit,"
        " max(value) FILTER (WHERE file_id = last_file) AS value FROM ("
        "  SELECT r.*, max(file_id) OVER (PARTITION BY meter_id, interval_end) AS last_file FROM raw_reads r"
        "  WHERE channel = 'kwh_received' AND read_day >= :a AND read_day <= :b) w"
        " GROUP BY meter_id, interval_end) i GROUP BY meter_id, read_day",
        {"a": first, "b": day},
    )
    known = set(daily.loc[daily["channel"] == RECEIVED_CHANNEL, "meter_id"])
    raw = raw[~raw["meter_id"].isin(known)]
    return raw.assign(channel=RECEIVED_CHANNEL, estimated_intervals=0, has_outage=False)


def _tariffs(store: Store, day: dt.date, tz: str) -> dict[str, TariffContext]:
    rows = store.read_frame(
        "SELECT rate_code, holidays, netting, demand_method, billing_unit, urdb_json FROM tariffs "
        "WHERE effective_from <= :d AND (effective_to IS NULL OR effective_to > :d)",
        {"d": day},
    )
    return {
        r.rate_code: TariffContext(
            parse_urdb(json.loads(r.urdb_json), source=r.rate_code, tz=tz),
            holidays=r.holidays,
            netting=r.netting,
            demand_method=r.demand_method,
            billing_unit=r.billing_unit,
        )
        for r in rows.itertuples()
    }


def _account_of(accounts: pd.DataFrame, day: dt.date) -> pd.Series:
    """Per service point the account billed on ``day``, else its latest one."""
    acc = accounts.assign(
        move_in=pd.to_datetime(accounts["move_in"]).dt.date,
        move_out=pd.to_datetime(accounts["move_out"]).dt.date,
    )
    covers = (acc["move_in"] <= day) & (acc["move_out"].isna() | (acc["move_out"] >= day))
    acc = acc.assign(_covers=covers).sort_values(["_covers", "move_in"])
    return acc.drop_duplicates("service_point_id", keep="last").set_index("service_point_id")["account_id"]


def _revenues(
    candidates: pd.DataFrame,
    inputs: ProtectionInputs,
    tariffs: dict[str, TariffContext],
    params: ProtectionParams,
) -> np.ndarray:
    """Revenue at stake per candidate (NaN where its rate code has no tariff): one shadow-bill pair
    per case, never per read."""
    days = day_range(inputs.as_of, params.window_days)
    matrix = usage_matrix(inputs.daily, inputs.service_points, days)
    tz = inputs.timezone
    out = np.full(len(candidates), np.nan)
    for i, row in enumerate(candidates.itertuples()):
        ctx = tariffs.get(row.rate_code)
        if ctx is None:
            continue
        first = pd.Timestamp(row.first_signal_at).tz_convert(tz).date()
        span = [d for d in days if d >= first] or days[-1:]
        recorded = (
            matrix.row(row.service_point_id)[-len(span) :]
            if row.service_point_id in matrix.sp_ids
            else np.zeros(len(span))
        )
        unit = row.unit if isinstance(row.unit, str) and row.unit else "kWh"
        out[i] = revenue_at_stake(ctx, tz, span, recorded, float(row.unbilled_volume), unit)
    return out


def _flag_ids(signals: pd.DataFrame, day: dt.date) -> list[str]:
    keys = (
        signals["service_point_id"].astype(str)
        + "|"
        + signals["indicator"]
        + "|"
        + signals["start_at"].astype(str)
        + "|"
        + day.isoformat()
    )
    return [hashlib.sha1(k.encode()).hexdigest()[:20] for k in keys]


def _conform_cases(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.reindex(columns=CASE_COLUMNS).copy()
    for column in ("first_signal_at", "last_signal_at", "opened_at", "updated_at", "disposition_at"):
        out[column] = pd.to_datetime(out[column], utc=True)
    for column in ("score", "revenue_at_stake", "unbilled_volume", "disposition_score"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    for column in ("as_of", "opened_as_of"):
        out[column] = pd.to_datetime(out[column]).dt.date
    out["reopened"] = out["reopened"].fillna(0).astype("int64")
    text = [c for c in CASE_COLUMNS if out[c].dtype == object]
    for column in text:
        out[column] = out[column].map(
            lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        )
    return out


def evaluate_day(
    store: Store,
    cfg: UtilityConfig,
    day: dt.date,
    params: ProtectionParams | None = None,
    now: pd.Timestamp | None = None,
) -> ProtectionRun:
    """Find the signals of the window ending on ``day``, turn them into cases with revenue at stake,
    and merge them into ``protection_cases`` (in one transaction with the day's signals)."""
    params = params or ProtectionParams()
    now = now or pd.Timestamp.now(tz="UTC")
    inputs = load_inputs(store, day, cfg, params)
    signals = find_signals(inputs, params)
    candidates = combine(signals, params)
    run = ProtectionRun(
        day,
        signals=len(signals),
        signals_by_indicator={k: int(v) for k, v in signals["indicator"].value_counts().sort_index().items()},
        candidates=len(candidates),
    )
    sps = inputs.service_points.set_index("service_point_id")
    for column in ("commodity", "customer_class", "rate_code", "zone_id"):
        candidates[column] = candidates["service_point_id"].map(sps[column])
    candidates["account_id"] = candidates["service_point_id"].map(_account_of(inputs.accounts, day))
    candidates["revenue_at_stake"] = _revenues(
        candidates, inputs, _tariffs(store, day, cfg.utility.timezone), params
    )

    existing = store.read_frame("SELECT * FROM protection_cases")
    rows, history = reconcile(candidates, existing, day, now, params.reopen_margin)
    if len(history):
        opening = history["status_to"].eq("open")
        run.opened = sorted(history.loc[opening & history["status_from"].isna(), "case_id"])
        run.reopened = sorted(history.loc[opening & history["status_from"].notna(), "case_id"])
        run.withdrawn = sorted(history.loc[history["status_to"].eq("withdrawn"), "case_id"])
        fresh = rows[rows["case_id"].isin(run.opened + run.reopened)]
        run.high_score_new = sorted(fresh.loc[fresh["score"] >= params.high_score, "case_id"])
    run.updated = len(rows) - len(run.opened) - len(run.reopened) - len(run.withdrawn)

    case_of = {sp: f"PC-{sp}" for sp in candidates["service_point_id"]}
    flags = pd.DataFrame(
        {
            "flag_id": _flag_ids(signals, day),
            "meter_id": signals["meter_id"].astype(str),
            "service_point_id": signals["service_point_id"],
            "indicator": signals["indicator"],
            "start_at": signals["start_at"],
            "end_at": signals["end_at"],
            "score": signals["strength"],
            "detail": [json.dumps(e, sort_keys=True, default=str) for e in signals["evidence"]],
            "status": "open",
            "case_id": signals["service_point_id"].map(case_of),
            "volume": signals["volume"],
            "unit": signals["unit"].map(lambda u: u or None),
            "read_day": day,
        }
    )
    with store.begin() as conn:
        if len(rows):
            store.delete("protection_cases", {"case_id": list(rows["case_id"])}, conn)
            store.bulk_insert("protection_cases", _conform_cases(rows), conn)
        if len(history):
            store.bulk_insert("protection_case_history", history, conn)
        store.replace_partition("protection_flags", {"read_day": day}, flags.drop_duplicates("flag_id"), conn)
    return run


def list_cases(store: Store, top: int | None = None, status: str = "open") -> pd.DataFrame:
    """Cases ranked by revenue at stake × score; ``status`` open | active (open, confirmed) | all | a status
    (confirmed, false_positive, closed, withdrawn)."""
    where = {
        "all": "",
        "active": "WHERE status IN ('open', 'confirmed')",
    }.get(status, "WHERE status = :status")
    limit = f" LIMIT {int(top)}" if top else ""
    frame = store.read_frame(
        f"SELECT * FROM protection_cases {where} ORDER BY {RANK_ORDER}{limit}", {"status": status}
    )
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def get_case(store: Store, case_id: str) -> dict:
    rows = store.read_frame("SELECT * FROM protection_cases WHERE case_id = :c", {"c": case_id})
    if rows.empty:
        raise CaseError(f"no case {case_id!r} (list them with: smartmdm protection cases)")
    return rows.iloc[0].to_dict()


def case_history(store: Store, case_id: str) -> pd.DataFrame:
    return store.read_frame(
        "SELECT * FROM protection_case_history WHERE case_id = :c ORDER BY changed_at", {"c": case_id}
    )


def mark_case(
    store: Store, case_id: str, status: str, by: str, reason: str, now: pd.Timestamp | None = None
) -> dict:
    """An analyst's decision on a case (confirmed | false_positive | closed), with its history row."""
    now = now or pd.Timestamp.now(tz="UTC")
    case = get_case(store, case_id)
    updates, history = disposition(case, status, by, reason, now)
    with store.begin() as conn:
        assignments = ", ".join(f"{k} = :{k}" for k in updates)
        store.execute(
            f"UPDATE protection_cases SET {assignments} WHERE case_id = :case_id",
            {**updates, "case_id": case_id},
            conn,
        )
        store.bulk_insert("protection_case_history", pd.DataFrame([history]), conn)
        audit.record(
            store,
            conn,
            actor=updates["disposition_by"],
            action="case.disposition",
            object_type="protection_case",
            object_id=case_id,
            reason=updates["disposition_reason"],
            at=now,
            details={
                "status": {"before": case["status"], "after": updates["status"]},
                "score": None if pd.isna(case["score"]) else float(case["score"]),
            },
        )
    return {
        "case_id": case_id,
        "status_from": case["status"],
        "status": updates["status"],
        "by": updates["disposition_by"],
    }


def open_case_totals(store: Store) -> tuple[int, float]:
    """How many cases are open and their revenue at stake in all."""
    row = store.read_frame(
        "SELECT count(*) AS n, coalesce(sum(revenue_at_stake), 0) AS at_stake FROM protection_cases "
        "WHERE status = 'open'"
    ).iloc[0]
    return int(row["n"] or 0), float(row["at_stake"] or 0.0)


def high_score_cases_opened(store: Store, first: str, last: str, threshold: float) -> pd.DataFrame:
    """Open cases opened or reopened as of the days ``first..last`` scoring at least ``threshold``,
    largest score × revenue at stake first."""
    return store.read_frame(
        "SELECT case_id, service_point_id, score, revenue_at_stake, indicators FROM protection_cases "
        "WHERE status = 'open' AND opened_as_of >= :a AND opened_as_of <= :b AND score >= :s "
        "ORDER BY score * coalesce(revenue_at_stake, 0) DESC",
        {"a": first, "b": last, "s": threshold},
    )
