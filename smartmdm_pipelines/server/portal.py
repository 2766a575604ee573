"""The customer portal API (``/v1/accounts/…``, ``/v1/service-points/…/alerts``) on the same
service as the real-time path. Every endpoint is scoped to the caller's accounts: a customer
token asking for another account gets 404, never the data (server/portal_auth.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from typing import Annotated, Literal

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from smartmdm_pipelines.domain.portal.compare import baseline_range, compare
from smartmdm_pipelines.domain.portal.usage import iso_local
from smartmdm_pipelines.server.portal_auth import Principal, principal
from smartmdm_pipelines.services import portal_usage
from smartmdm_pipelines.services.portal_usage import BadRequest, NotFound

router = APIRouter(prefix="/v1", tags=["portal"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
AccountId = Annotated[str, Path(pattern=ID_PATTERN, description="account id")]
ServicePointId = Annotated[str, Path(pattern=ID_PATTERN, description="service point id")]
OptionalId = Annotated[str | None, Query(pattern=ID_PATTERN)]
FromDate = Annotated[dt.date, Query(alias="from", description="first local day (YYYY-MM-DD)")]
ToDate = Annotated[dt.date, Query(alias="to", description="last local day, inclusive (YYYY-MM-DD)")]
Caller = Annotated[Principal, Depends(principal)]
MAX_PAGE = 10_000


def install(app: FastAPI) -> None:
    """Register the portal routers on the service's app."""
    from smartmdm_pipelines.server import portal_alerts_api

    app.include_router(router)
    app.include_router(portal_alerts_api.router)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


def readable(who: Principal, account_id: str) -> None:
    if who.scope == "ops":
        raise HTTPException(403, "an ops token may configure alerts, not read customer usage")
    if not who.may_read(account_id):
        raise not_found(f"account {account_id}")


async def call(request: Request, fn, *args, what: str = "account", **kwargs):
    store = request.app.state.runtime.store
    try:
        return await run_in_threadpool(fn, store, *args, **kwargs)
    except NotFound as exc:
        raise not_found(f"{what} {exc.args[0]}") from None
    except BadRequest as exc:
        raise HTTPException(400, str(exc)) from None


def _number(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def _items(frame: pd.DataFrame, tz: str) -> list[dict]:
    starts, ends = iso_local(frame["start"], tz), iso_local(frame["end"], tz)
    values = np.round(frame["value"].to_numpy(dtype="float64"), 6)
    shown = values.astype(object)
    shown[np.isnan(values)] = None
    return [
        {"start": s, "end": e, "value": v, "status": st}
        for s, e, v, st in zip(starts, ends, shown.tolist(), frame["status"].tolist(), strict=True)
    ]


@router.get("/accounts/{account_id}/usage", summary="usage history in the service point's local time")
async def get_usage(
    request: Request,
    who: Caller,
    account_id: AccountId,
    first: FromDate,
    last: ToDate,
    resolution: Literal["interval", "hour", "day", "month"] = "hour",
    service_point_id: OptionalId = None,
    meter_id: OptionalId = None,
    format: Literal["json", "csv"] = "json",
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    page_token: Annotated[int, Query(ge=0, le=10_000_000, description="offset from a previous page")] = 0,
):
    readable(who, account_id)
    if resolution == "hour" and format == "json":  # the common call: JSON built by PostgreSQL
        fast = await call(
            request, portal_usage.hourly_json, account_id, first, last, service_point_id, meter_id,
            page_token, page_size,
        )  # fmt: skip
        if fast is not None:
            doc, total, items = fast
            nxt = page_token + page_size if page_token + page_size < total else None
            page = orjson.Fragment("[" + items + "]")  # already JSON
            body = orjson.dumps(doc | {"total_items": total, "next_page_token": nxt, "items": page})
            return Response(body, media_type="application/json")
    doc = await call(
        request, portal_usage.usage, account_id, first, last, resolution, service_point_id, meter_id
    )
    frame = doc.pop("items")
    total = len(frame)
    page = frame.iloc[page_token : page_token + page_size]
    items = _items(page, doc["timezone"])
    nxt = page_token + page_size if page_token + page_size < total else None
    if format == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["start", "end", "value", "unit", "status"])
        for it in items:
            w.writerow(
                [
                    it["start"],
                    it["end"],
                    "" if it["value"] is None else it["value"],
                    doc["unit"],
                    it["status"],
                ]
            )
        headers = {
            "X-Total-Count": str(total),
            "Content-Disposition": f'attachment; filename="usage-{account_id}.csv"',
        }
        if nxt is not None:
            headers["X-Next-Page-Token"] = str(nxt)
        return Response(out.getvalue(), media_type="text/csv", headers=headers)
    body = orjson.dumps(doc | {"total_items": total, "next_page_token": nxt, "items": items})
    return Response(body, media_type="application/json")  # orjson: a year of hours in ~2 ms


def _compare(store, account_id, first, last, against, service_point_id):
    portal_usage.check_range(first, last, "hour")
    with store.engine.connect() as conn:  # one connection for the request's reads
        scope = portal_usage.account_scope(store, account_id, service_point_id, conn=conn)
        if first < portal_usage.EARLIEST + dt.timedelta(days=800):  # room for the baseline period
            raise BadRequest(
                f"'from' ({first}) must be after {portal_usage.EARLIEST + dt.timedelta(days=800)}"
            )
        b_first, b_last = baseline_range(first, last, against)
        cur = portal_usage.buckets(store, scope, first, last, "hour", conn)[1]
        base = portal_usage.buckets(store, scope, b_first, b_last, "hour", conn)[1]
    tz = scope.timezone
    unit = scope.installs["unit"].iloc[0] if not scope.installs.empty else None
    return {
        "account_id": account_id,
        "unit": unit,
        "timezone": tz,
        "against": against,
        "current": {"from": first.isoformat(), "to": last.isoformat()},
        "baseline": {"from": b_first.isoformat(), "to": b_last.isoformat()},
        **compare(cur, base, tz),
    }


@router.get("/accounts/{account_id}/usage/compare", summary="usage compared with a prior period")
async def get_compare(
    request: Request,
    who: Caller,
    account_id: AccountId,
    first: FromDate,
    last: ToDate,
    against: Literal["previous_period", "last_year"] = "previous_period",
    service_point_id: OptionalId = None,
):
    readable(who, account_id)
    return await call(request, _compare, account_id, first, last, against, service_point_id)


@router.get("/accounts/{account_id}/bill-to-date", summary="bill to date and projected bill of the period")
async def get_bill_to_date(
    request: Request,
    who: Caller,
    account_id: AccountId,
    as_of: Annotated[dt.date | None, Query(description="local day (default: today)")] = None,
):
    from smartmdm_pipelines.services.portal_bill import bill_to_date

    readable(who, account_id)
    return await call(request, bill_to_date, account_id, as_of)


@router.get(
    "/accounts/{account_id}/greenbutton",
    summary="Green Button Download My Data (ESPI Atom XML)",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
async def get_green_button(
    request: Request, who: Caller, account_id: AccountId, first: FromDate, last: ToDate
):
    from smartmdm_pipelines.services.portal_greenbutton import green_button

    readable(who, account_id)
    body = await call(request, green_button, account_id, first, last)
    return Response(
        body,
        media_type="application/atom+xml",
        headers={
            "Content-Disposition": f'attachment; filename="greenbutton-{account_id}-{first}-{last}.xml"'
        },
    )


def start(runtime) -> None:
    """The portal's background work: evaluate alert rules every ``$SMARTMDM_ALERT_EVALUATE_SECONDS``
    (default 900: covers day end; the real-time path also evaluates after each VEE pass) and send
    the queued alert notifications to ``$SMARTMDM_ALERT_WEBHOOK_URL``."""
    import logging
    import os
    import threading
    import time

    from smartmdm_pipelines.services import portal_alerts

    if not runtime.settings.workers:
        return
    every = float(os.environ.get("SMARTMDM_ALERT_EVALUATE_SECONDS") or 900)
    log = logging.getLogger("smartmdm.alerts")

    def loop() -> None:
        due = 0.0
        while not runtime.stop_event.is_set():
            try:
                if time.monotonic() >= due:
                    with runtime.alerts_lock:  # one alert evaluation at a time in the process
                        portal_alerts.evaluate(runtime.store)
                    due = time.monotonic() + every
                sent = portal_alerts.send_pending(runtime.store)
                if sent["retry"]:
                    runtime.stop_event.wait(5.0)
            except Exception:
                log.exception("alert evaluation or delivery failed; retrying")
                runtime.stop_event.wait(5.0)
            runtime.stop_event.wait(1.0)

    thread = threading.Thread(target=loop, name="portal-alerts", daemon=True)
    thread.start()
    runtime.threads.append(thread)
