"""``POST /v1/headend/{source}/reads``: a head-end pushes a delivery (any supported format, the
content sniffed by the adapter registry) with its bearer token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

router = APIRouter(prefix="/v1/headend", tags=["head-end"])
MAX_BODY_BYTES = 256 << 20


def authorise(tokens: dict[str, str], source: str, header: str | None) -> None:
    """401 without a known bearer token; 403 for a token of another source."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "missing bearer token (Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"}
        )
    token = token.strip()
    own = tokens.get(source)
    if own is not None and hmac.compare_digest(own.encode(), token.encode()):
        return
    if any(hmac.compare_digest(t.encode(), token.encode()) for t in tokens.values()):
        raise HTTPException(403, f"this token is not allowed to post for source {source!r}")
    raise HTTPException(401, "unknown bearer token", {"WWW-Authenticate": "Bearer"})


@router.post("/{source}/reads", status_code=202)
async def post_reads(source: str, request: Request):
    runtime = request.app.state.runtime
    authorise(runtime.settings.tokens, source, request.headers.get("authorization"))
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty body: send the delivery's file content")
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body of {len(body)} bytes is over the {MAX_BODY_BYTES} byte limit")
    name = request.headers.get("x-filename") or request.query_params.get("name")
    summary = await run_in_threadpool(runtime.ingest, source, body, "http", name)
    payload = {
        "delivery_id": summary.duplicate_of if summary.status == "duplicate" else summary.file_id,
        "status": summary.status,
        "format": summary.format,
        "interval_reads": summary.interval_reads,
        "register_reads": summary.register_reads,
        "events": summary.events,
        "rejected_rows": summary.rejected_rows,
        "errors": summary.errors,
        "sha256": summary.sha256,
        "unmapped_meters": summary.unmapped_meters,
    }
    if summary.status == "rejected":
        return JSONResponse(payload | {"detail": "the delivery was rejected; see errors"}, status_code=422)
    return JSONResponse(payload, status_code=202)
