"""Alert configuration per service point (``PUT``) and an account's alerts and rules (``GET``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from smartmdm_pipelines.server.portal import AccountId, Caller, ServicePointId, call, not_found
from smartmdm_pipelines.services import portal_alerts

router = APIRouter(prefix="/v1", tags=["portal alerts"])

Kind = Literal[
    "daily_usage_above",
    "period_usage_above",
    "projected_bill_above",
    "continuous_flow",
    "vacant_usage",
    "usage_vs_last_year",
]


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    threshold: Annotated[float | None, Field(ge=0, le=1e9)] = None
    hours: Annotated[int | None, Field(ge=1, le=24 * 31)] = None
    percent: Annotated[float | None, Field(ge=0, le=10_000)] = None
    quiet_start: Annotated[int | None, Field(ge=0, le=23, description="local hour quiet hours start")] = None
    quiet_end: Annotated[int | None, Field(ge=0, le=23, description="local hour quiet hours end")] = None
    cooldown_hours: Annotated[float, Field(ge=0, le=24 * 90)] = 24.0
    enabled: bool = True


class AlertRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: Annotated[list[AlertRule], Field(max_length=len(Kind.__args__))]
    reason: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=500,
            description="why the rules change (the audit log's reason; default: a change in the customer portal)",
        ),
    ] = None


@router.put("/service-points/{service_point_id}/alerts", summary="replace a service point's alert rules")
async def put_alerts(request: Request, who: Caller, service_point_id: ServicePointId, body: AlertRules):
    store = request.app.state.runtime.store
    if who.scope == "customer":
        owners = await run_in_threadpool(portal_alerts.accounts_of, store, service_point_id)
        if not owners & who.accounts:
            raise not_found(f"service point {service_point_id}")
    rules = [r.model_dump() for r in body.rules]
    why = body.reason or f"alert settings saved through the portal API ({who.scope} token)"
    stored = await call(
        request, portal_alerts.put_rules, service_point_id, rules, "api", who.subject,
        reason=why, what="service point",
    )  # fmt: skip
    return {"service_point_id": service_point_id, "rules": stored}


@router.get("/accounts/{account_id}/alerts", summary="an account's alert rules and alerts")
async def get_alerts(request: Request, who: Caller, account_id: AccountId):
    if not who.may_see_alerts(account_id):
        raise not_found(f"account {account_id}")
    return await call(request, portal_alerts.account_alerts, account_id)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_ids: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] | None, Field(max_length=1000)
    ] = None


@router.post("/alerts/replay", summary="queue failed alert notifications again (ops)")
async def replay_alerts(request: Request, who: Caller, body: Replay):
    if who.scope != "ops":
        raise HTTPException(403, "replaying notifications needs an ops token")
    n = await call(request, portal_alerts.replay_failed, body.alert_ids)
    return {"queued": n}
