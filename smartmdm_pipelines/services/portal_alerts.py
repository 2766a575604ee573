"""Customer usage alerts: rule configuration (portal API ``PUT``, CIS sync), evaluation on
validated reads (the real-time path calls :func:`evaluate` after each VEE pass; the service
also evaluates periodically, which covers day end) and notifications through the outbox.

Notifications use the store's ``outbound_messages`` outbox (channel ``alert``; the interval
``outbox`` table of the CIS/portal push is shaped for interval versions, so alerts use this
adapter): the row is written in the transaction that records the episode, with the episode's
``alert_id`` as idempotency key, so a restart or a re-evaluation never queues it twice;
:func:`send_pending` POSTs them at least once to ``$SMARTMDM_ALERT_WEBHOOK_URL`` with that
key in ``Idempotency-Key``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import requests

from smartmdm_pipelines.domain.portal import alerts as A
from smartmdm_pipelines.domain.portal.usage import bucket
from smartmdm_pipelines.services import audit
from smartmdm_pipelines.services.portal_usage import (
    BadRequest,
    NotFound,
    Scope,
    ServicePoint,
    current_intervals,
)
from smartmdm_pipelines.store.store import Store

log = logging.getLogger("smartmdm.alerts")
WEBHOOK_ENV = "SMARTMDM_ALERT_WEBHOOK_URL"
WEBHOOK_TOKEN_ENV = "SMARTMDM_ALERT_WEBHOOK_TOKEN"
MAX_ATTEMPTS = 20
RULE_COLUMNS = ["threshold", "hours", "percent", "quiet_start", "quiet_end", "cooldown_hours"]


# --- configuration ---------------------------------------------------------------------------------


def check_rule(kind: str, threshold, hours, percent) -> None:
    if kind not in A.KINDS:
        raise BadRequest(f"kind must be one of {', '.join(A.KINDS)}, not {kind!r}")
    needs = {
        "daily_usage_above": threshold,
        "period_usage_above": threshold,
        "projected_bill_above": threshold,
        "continuous_flow": hours,
    }
    if kind in needs and needs[kind] is None:
        raise BadRequest(f"a {kind} alert needs {'hours' if kind == 'continuous_flow' else 'threshold'}")


def service_point(store: Store, service_point_id: str) -> pd.Series:
    rows = store.read_frame(
        "SELECT service_point_id, timezone, commodity, rate_code, billing_cycle, status FROM service_points "
        "WHERE service_point_id = :s",
        {"s": service_point_id},
    )
    if rows.empty:
        raise NotFound(service_point_id)
    return rows.iloc[0]


def _tenancies(store: Store, column: str, value: str) -> pd.DataFrame:
    """The accounts rows of one service point or one account, each marked ``current`` when the
    account is on the service point today (the service point's local day; move-out exclusive)."""
    rows = store.read_frame(
        "SELECT a.account_id, a.service_point_id, a.move_in, a.move_out, sp.timezone FROM accounts a "
        f"JOIN service_points sp ON sp.service_point_id = a.service_point_id WHERE a.{column} = :v",
        {"v": value},
    )
    now = clock()
    today = pd.to_datetime(rows["timezone"].map(lambda tz: now.tz_convert(tz).date()))
    move_in, move_out = pd.to_datetime(rows["move_in"]), pd.to_datetime(rows["move_out"])
    return rows.assign(current=(move_in <= today) & (move_out.isna() | (move_out > today)))


def accounts_of(store: Store, service_point_id: str) -> set[str]:
    """The accounts on the service point today: a former (or future) tenant may not set its alerts."""
    rows = _tenancies(store, "service_point_id", service_point_id)
    return set(rows.loc[rows["current"], "account_id"])


def put_rules(
    store: Store,
    service_point_id: str,
    rules: list[dict],
    source: str,
    by: str,
    now: pd.Timestamp | None = None,
    *,
    reason: str,
) -> list[dict]:
    """Replace the service point's rules (one per kind); returns them as stored. Who (``by``) and
    why (``reason``) are required: the change and its audit-log row (before and after) share one
    transaction; ``alert_config.sync`` from the CIS, else ``alert_config.put`` (``.delete`` when
    no rule is left)."""
    action = (
        "alert_config.sync" if source == "cis" else ("alert_config.put" if rules else "alert_config.delete")
    )
    try:
        by, reason = audit.require(by, reason, action)
    except audit.AuditError as exc:
        raise BadRequest(str(exc)) from None
    service_point(store, service_point_id)
    now = now or pd.Timestamp.now(tz="UTC")
    kinds = [r["kind"] for r in rules]
    if len(set(kinds)) != len(kinds):
        raise BadRequest("one rule per kind: the body repeats a kind")
    for r in rules:
        check_rule(r["kind"], r.get("threshold"), r.get("hours"), r.get("percent"))
    frame = pd.DataFrame(
        [
            {
                "rule_id": f"{service_point_id}:{r['kind']}",
                "service_point_id": service_point_id,
                "kind": r["kind"],
                **{c: r.get(c) for c in RULE_COLUMNS},
                "enabled": bool(r.get("enabled", True)),
                "source": source,
                "updated_by": by,
                "updated_at": now,
            }
            for r in rules
        ]
    )
    if not frame.empty:
        frame["cooldown_hours"] = frame["cooldown_hours"].fillna(24.0).astype("float64")
        for c in ("threshold", "percent"):
            frame[c] = frame[c].astype("float64")
        for c in ("hours", "quiet_start", "quiet_end"):
            frame[c] = frame[c].astype("Int64")

    def replace(conn) -> None:
        before = store.read_frame(
            "SELECT * FROM alert_rules WHERE service_point_id = :s ORDER BY kind",
            {"s": service_point_id},
            conn,
        )
        store.execute("DELETE FROM alert_rules WHERE service_point_id = :s", {"s": service_point_id}, conn)
        if not frame.empty:
            store.bulk_insert("alert_rules", frame, conn)
        audit.record(
            store,
            conn,
            actor=by,
            action=action,
            object_type="service_point",
            object_id=service_point_id,
            reason=reason,
            at=now,
            details={"source": source, "before": _rule_settings(before), "after": _rule_settings(frame)},
        )

    audit.transaction(store, replace)  # the API's threads may change two service points at once
    return get_rules(store, [service_point_id])


def _rule_settings(frame: pd.DataFrame) -> list[dict]:
    """The settings of a service point's rules (what the audit log keeps before and after)."""
    cols = ["kind", *RULE_COLUMNS, "enabled"]
    if frame.empty:
        return []
    return [{k: _clean(v) for k, v in r.items()} for r in frame.sort_values("kind")[cols].to_dict("records")]


def _clean(v):
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def get_rules(store: Store, service_points: list[str] | None = None) -> list[dict]:
    where = "" if service_points is None else " WHERE service_point_id IN (SELECT unnest(:s))"
    rows = store.read_frame(f"SELECT * FROM alert_rules{where} ORDER BY rule_id", {"s": service_points or []})
    out = []
    for r in rows.to_dict("records"):
        r = {k: _clean(v) for k, v in r.items()}
        r["updated_at"] = pd.Timestamp(r["updated_at"]).isoformat()
        out.append(r)
    return out


def account_alerts(store: Store, account_id: str, limit: int = 500) -> dict:
    sps = _tenancies(store, "account_id", account_id)
    if sps.empty:
        raise NotFound(account_id)
    # the rules of the service points the account is on now, not those a later tenant set
    ids = sorted(set(sps.loc[sps["current"], "service_point_id"]))
    rows = store.read_frame(
        "SELECT alert_id, rule_id, service_point_id, kind, episode_key, detected_at, ended_at, notified_at, "
        "value, threshold, detail, status FROM usage_alerts WHERE account_id = :a "
        "ORDER BY detected_at DESC LIMIT :n",
        {"a": account_id, "n": limit},
    )
    alerts = []
    for r in rows.to_dict("records"):
        r = {k: _clean(v) for k, v in r.items()}
        for k in ("detected_at", "ended_at", "notified_at"):
            r[k] = None if r[k] is None else pd.Timestamp(r[k]).isoformat()
        alerts.append(r)
    return {"account_id": account_id, "rules": get_rules(store, ids) if ids else [], "alerts": alerts}


# --- evaluation ------------------------------------------------------------------------------------


def clock() -> pd.Timestamp:
    """The evaluation's "now" (a function so that tests of the real-time hook can set it)."""
    return pd.Timestamp.now(tz="UTC")


def _scope(sp: pd.Series, store: Store) -> Scope:
    installs = store.read_frame(
        "SELECT mi.meter_id, mi.service_point_id, mi.installed_at, mi.removed_at, m.channels, m.unit "
        "FROM meter_installs mi JOIN meters m ON m.meter_id = mi.meter_id WHERE mi.service_point_id = :s",
        {"s": sp["service_point_id"]},
    )
    point = ServicePoint(
        sp["service_point_id"], sp["timezone"], sp["commodity"], _clean(sp["rate_code"]),
        _clean(sp["billing_cycle"]), sp["status"], dt.date(1970, 1, 1), None,
    )  # fmt: skip
    return Scope("", [point], installs)


def _current_account(store: Store, sp_id: str, day: dt.date) -> str | None:
    rows = store.read_frame(
        "SELECT account_id FROM accounts WHERE service_point_id = :s AND move_in <= :d "
        "AND (move_out IS NULL OR move_out > :d) ORDER BY move_in DESC LIMIT 1",
        {"s": sp_id, "d": day},
    )
    return None if rows.empty else str(rows["account_id"].iloc[0])


def findings(
    store: Store, rule: A.Rule, sp: pd.Series, now: pd.Timestamp
) -> tuple[list[A.Finding], str | None]:
    """What holds now for ``rule``, and the account the service point has today."""
    tz = sp["timezone"]
    today = now.tz_convert(tz).date()
    account = _current_account(store, rule.service_point_id, today)
    scope = _scope(sp, store)
    if rule.kind == "daily_usage_above":
        days = bucket(current_intervals(store, scope, today - dt.timedelta(days=1), today), "day", tz)
        totals = pd.Series(days["value"].to_numpy(), index=[t.tz_convert(tz).date() for t in days["start"]])
        return A.daily_above(rule, totals), account
    if rule.kind == "continuous_flow":
        hours = int(rule.hours or 1)
        first = (now - pd.Timedelta(hours=hours + 48)).tz_convert(tz).date()
        return A.continuous_flow(
            rule, bucket(current_intervals(store, scope, first, today), "hour", tz), tz
        ), account
    if rule.kind == "vacant_usage":
        if account is not None and sp["status"] != "vacant":
            return [], account
        days = bucket(current_intervals(store, scope, today - dt.timedelta(days=1), today), "day", tz)
        totals = pd.Series(days["value"].to_numpy(), index=[t.tz_convert(tz).date() for t in days["start"]])
        found = A.daily_above(rule, totals)
        return [
            A.Finding(f.episode_key, f.value, f.threshold, "vacant premise: " + f.detail) for f in found
        ], account
    if rule.kind == "usage_vs_last_year":
        first = today - dt.timedelta(days=6)
        cur = current_intervals(store, scope, first, today)["value"].sum()
        ly = (
            (pd.Timestamp(first) - pd.DateOffset(years=1)).date(),
            (pd.Timestamp(today) - pd.DateOffset(years=1)).date(),
        )
        base = current_intervals(store, scope, *ly)["value"].sum()
        return A.vs_last_year(rule, A.week_key(today), float(cur), float(base)), account
    from smartmdm_pipelines.services.portal_bill import bill_to_date, billing_period

    if account is None:
        return [], None
    start, _ = billing_period(store, scope.points[0], today)
    if rule.kind == "period_usage_above":
        used = float(current_intervals(store, scope, start, today)["value"].sum())
        return A.above(rule, f"period-{start.isoformat()}", used, f"usage since {start}"), account
    bill = bill_to_date(store, account, today)
    projected = bill["projected"]["total"]
    if projected is None:
        return [], account
    return A.above(
        rule, f"period-{start.isoformat()}", projected, "the projected bill of the period"
    ), account


def _rules(store: Store, service_points: list[str] | None) -> list[A.Rule]:
    where = "" if service_points is None else " AND service_point_id IN (SELECT unnest(:s))"
    rows = store.read_frame(
        f"SELECT * FROM alert_rules WHERE enabled{where} ORDER BY rule_id", {"s": service_points or []}
    )
    return [
        A.Rule(r["rule_id"], r["service_point_id"], r["kind"], **{c: _clean(r[c]) for c in RULE_COLUMNS})
        for r in rows.to_dict("records")
    ]


def evaluate(store: Store, now: pd.Timestamp | None = None, service_points: list[str] | None = None) -> dict:
    """Evaluate the enabled rules: open new episodes, end those whose condition no longer holds,
    queue one notification per episode (outside quiet hours, after the rule's cool-down)."""
    now = pd.Timestamp(now or clock()).tz_convert("UTC")
    counts = {"rules": 0, "opened": 0, "ended": 0, "notified": 0, "deferred": 0}
    for rule in _rules(store, service_points):
        counts["rules"] += 1
        try:
            sp = service_point(store, rule.service_point_id)
            found, account = findings(store, rule, sp, now)
        except Exception:
            log.exception("alert rule %s could not be evaluated", rule.rule_id)
            continue
        _record(store, rule, sp, found, account, now, counts)
    return counts


def _record(store, rule: A.Rule, sp, found: list[A.Finding], account, now, counts) -> None:
    with store.begin() as conn:
        known = store.read_frame(
            "SELECT alert_id, episode_key, ended_at, notified_at FROM usage_alerts WHERE rule_id = :r",
            {"r": rule.rule_id},
            conn,
        )
        keys = {f.episode_key for f in found}
        ended = known[known["ended_at"].isna() & ~known["episode_key"].isin(keys)]
        for alert in ended["alert_id"]:
            store.execute(
                "UPDATE usage_alerts SET ended_at = :now, status = 'ended' WHERE alert_id = :a",
                {"now": now.to_pydatetime(), "a": alert},
                conn,
            )
            counts["ended"] += 1
        fresh = [f for f in found if f.episode_key not in set(known["episode_key"])]
        if fresh:
            meter = None
            store.bulk_insert(
                "usage_alerts",
                pd.DataFrame(
                    {
                        "alert_id": [A.alert_id(rule.rule_id, f.episode_key) for f in fresh],
                        "account_id": account,
                        "meter_id": meter,
                        "kind": rule.kind,
                        "detected_at": now,
                        "detail": [f.detail for f in fresh],
                        "status": "open",
                        "rule_id": rule.rule_id,
                        "service_point_id": rule.service_point_id,
                        "episode_key": [f.episode_key for f in fresh],
                        "value": [f.value for f in fresh],
                        "threshold": [f.threshold for f in fresh],
                    }
                ),
                conn,
            )
            counts["opened"] += len(fresh)
        pending = store.read_frame(
            "SELECT alert_id, account_id, kind, episode_key, detected_at, value, threshold, detail FROM usage_alerts "
            "WHERE rule_id = :r AND notified_at IS NULL AND ended_at IS NULL ORDER BY detected_at, alert_id",
            {"r": rule.rule_id},
            conn,
        )
        if pending.empty:
            return
        last = store.read_frame(
            "SELECT max(notified_at) AS t FROM usage_alerts WHERE rule_id = :r", {"r": rule.rule_id}, conn
        )["t"].iloc[0]
        last = None if pd.isna(last) else pd.Timestamp(last).tz_convert("UTC")
        if A.in_quiet_hours(rule, now, sp["timezone"]) or A.cooling_down(rule, last, now):
            counts["deferred"] += len(pending)
            return
        row = pending.iloc[-1]  # the newest open episode; older unnotified ones are folded into it
        payload = {
            "alert_id": row["alert_id"],
            "account_id": _clean(row["account_id"]),
            "service_point_id": rule.service_point_id,
            "kind": rule.kind,
            "episode_key": row["episode_key"],
            "detected_at": pd.Timestamp(row["detected_at"]).isoformat(),
            "value": _clean(row["value"]),
            "threshold": _clean(row["threshold"]),
            "message": row["detail"],
            "rule": asdict(rule),
        }
        store.bulk_insert(
            "outbound_messages",
            pd.DataFrame(
                [
                    {
                        "idempotency_key": row["alert_id"],
                        "channel": "alert",
                        "kind": rule.kind,
                        "payload": json.dumps(payload, separators=(",", ":")),
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                    }
                ]
            ),
            conn,
        )
        store.execute(
            "UPDATE usage_alerts SET notified_at = :now WHERE alert_id IN (SELECT unnest(:ids))",
            {"now": now.to_pydatetime(), "ids": pending["alert_id"].tolist()},
            conn,
        )
        counts["notified"] += 1


# --- delivery --------------------------------------------------------------------------------------


def send_pending(
    store: Store, url: str | None = None, token: str | None = None, session: requests.Session | None = None,
    timeout: float = 10.0, limit: int = 100,
) -> dict:  # fmt: skip
    """POST pending alert notifications (oldest first); a failure leaves it pending for the next
    call until ``MAX_ATTEMPTS``, then ``failed``. Returns counts."""
    url = url or os.environ.get(WEBHOOK_ENV)
    token = token or os.environ.get(WEBHOOK_TOKEN_ENV)
    out = {"sent": 0, "failed": 0, "retry": 0}
    if not url:
        return out
    session = session or requests.Session()
    rows = store.read_frame(
        "SELECT idempotency_key, payload, attempts FROM outbound_messages WHERE channel = 'alert' "
        "AND status = 'pending' ORDER BY created_at, idempotency_key LIMIT :n",
        {"n": limit},
    )
    for r in rows.itertuples():
        headers = {"Content-Type": "application/json", "Idempotency-Key": r.idempotency_key}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = session.post(url, data=r.payload, headers=headers, timeout=timeout)
            ok, reason = 200 <= resp.status_code < 300, f"HTTP {resp.status_code}: {resp.text[:200]}"
        except requests.RequestException as exc:
            ok, reason = False, type(exc).__name__
        attempts = int(r.attempts) + 1
        status = "sent" if ok else ("failed" if attempts >= MAX_ATTEMPTS else "pending")
        store.execute(
            "UPDATE outbound_messages SET status = :s, attempts = :n, response = :why, sent_at = :t "
            "WHERE idempotency_key = :k",
            {"s": status, "n": attempts, "why": reason, "t": pd.Timestamp.now(tz="UTC").to_pydatetime(),
             "k": r.idempotency_key},
        )  # fmt: skip
        out["sent" if ok else ("failed" if status == "failed" else "retry")] += 1
        if not ok:
            break  # keep the order; retry later
    return out


def after_vee(store: Store) -> None:
    """The real-time path's hook: evaluate the rules on the reads a VEE pass just validated
    (never lets an alert problem fail the VEE worker)."""
    try:
        evaluate(store)
    except Exception:
        log.exception("alert evaluation after VEE failed")


def import_rules_csv(store: Store, path, now: pd.Timestamp | None = None) -> dict:
    """Alert rules from the CIS (``alert_rules.csv``: service_point_id, kind, threshold, hours,
    percent, quiet_start, quiet_end, cooldown_hours, enabled): each service point in the file gets
    exactly its rows. A bad row is reported with its line and skipped; the good ones load."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"service_point_id", "kind"} - set(frame.columns)
    if missing:
        raise BadRequest(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    known = set(store.read_frame("SELECT service_point_id FROM service_points")["service_point_id"])
    rules: dict[str, list[dict]] = {}
    errors: list[str] = []
    for i, row in enumerate(frame.to_dict("records"), start=2):
        try:
            sp = row["service_point_id"].strip()
            if sp not in known:
                raise BadRequest(f"unknown service point {sp!r}")
            rule = {"kind": row["kind"].strip()}
            for c in ("threshold", "percent", "cooldown_hours"):
                if str(row.get(c, "")).strip():
                    rule[c] = float(row[c])
            for c in ("hours", "quiet_start", "quiet_end"):
                if str(row.get(c, "")).strip():
                    rule[c] = int(row[c])
            if not 0 <= rule.get("quiet_start", 0) <= 23 or not 0 <= rule.get("quiet_end", 0) <= 23:
                raise BadRequest("quiet_start and quiet_end are local hours 0..23")
            rule["enabled"] = str(row.get("enabled", "true")).strip().lower() not in ("false", "0", "no")
            check_rule(rule["kind"], rule.get("threshold"), rule.get("hours"), rule.get("percent"))
            if any(r["kind"] == rule["kind"] for r in rules.get(sp, [])):
                raise BadRequest(f"a second {rule['kind']} rule for {sp}")
            rules.setdefault(sp, []).append(rule)
        except (BadRequest, ValueError) as exc:
            errors.append(f"{path}:{i}: {exc}")
    why = f"CIS alert rules file {Path(path).name}"
    for sp, sp_rules in rules.items():
        put_rules(store, sp, sp_rules, "cis", "cis-sync", now, reason=why)
    return {"service_points": len(rules), "rules": sum(map(len, rules.values())), "errors": errors}


def replay_failed(store: Store, alert_ids: list[str] | None = None) -> int:
    """Queue failed alert notifications again (all, or those ids): how many."""
    where = "channel = 'alert' AND status = 'failed'"
    params: dict = {}
    if alert_ids:
        where += " AND idempotency_key IN (SELECT unnest(:ids))"
        params["ids"] = list(alert_ids)
    with store.begin() as conn:
        n = int(
            store.execute(f"SELECT count(*) FROM outbound_messages WHERE {where}", params, conn).scalar_one()
        )
        store.execute(
            f"UPDATE outbound_messages SET status = 'pending', attempts = 0 WHERE {where}", params, conn
        )
    return n
